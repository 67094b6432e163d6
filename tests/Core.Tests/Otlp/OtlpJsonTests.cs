using System.Text;
using System.Text.Json.Nodes;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Core.Tests.Otlp;

public class OtlpJsonTests
{
    // The example request of the OTLP/JSON specification.
    private const string SpecSample =
        """{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173","name":"I'm a server span","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}]}]}]}]}""";

    [Fact]
    public void Parse_SpecSample_ReadsHexIdsEnumIntsAndNanos()
    {
        var request = OtlpJson.Parse<ExportTraceServiceRequest>(SpecSample);

        var resourceSpans = Assert.Single(request.ResourceSpans);
        Assert.Equal("my.service", resourceSpans.Resource.Attributes[0].Value.StringValue);
        var scope = Assert.Single(resourceSpans.ScopeSpans);
        Assert.Equal("my.library", scope.Scope.Name);
        Assert.Equal("1.0.0", scope.Scope.Version);
        var span = Assert.Single(scope.Spans);
        Assert.Equal("5b8efff798038103d269b633813fc60c", Convert.ToHexStringLower(span.TraceId.Span));
        Assert.Equal("eee19b7ec3c1b174", Convert.ToHexStringLower(span.SpanId.Span));
        Assert.Equal("eee19b7ec3c1b173", Convert.ToHexStringLower(span.ParentSpanId.Span));
        Assert.Equal("I'm a server span", span.Name);
        Assert.Equal(OtlpSpan.Types.SpanKind.Server, span.Kind);
        Assert.Equal(1544712660000000000UL, span.StartTimeUnixNano);
        Assert.Equal(1544712661000000000UL, span.EndTimeUnixNano);
        Assert.Equal("my.span.attr", span.Attributes[0].Key);
        Assert.Equal("some value", span.Attributes[0].Value.StringValue);
    }

    [Fact]
    public void Format_WritesHexIdsAndIntegerEnums()
    {
        var request = OtlpJson.Parse<ExportTraceServiceRequest>(SpecSample);

        var json = JsonNode.Parse(OtlpJson.Format(request))!;

        var span = json["resourceSpans"]![0]!["scopeSpans"]![0]!["spans"]![0]!;
        Assert.Equal("5b8efff798038103d269b633813fc60c", span["traceId"]!.GetValue<string>());
        Assert.Equal("eee19b7ec3c1b174", span["spanId"]!.GetValue<string>());
        Assert.Equal("eee19b7ec3c1b173", span["parentSpanId"]!.GetValue<string>());
        Assert.Equal(2, span["kind"]!.GetValue<int>());
        Assert.Equal("1544712660000000000", span["startTimeUnixNano"]!.GetValue<string>());
    }

    [Fact]
    public void FormatThenParse_ReturnsAnEqualMessage()
    {
        var request = OtlpJson.Parse<ExportTraceServiceRequest>(SpecSample);

        var again = OtlpJson.Parse<ExportTraceServiceRequest>(Encoding.UTF8.GetBytes(OtlpJson.Format(request)));

        Assert.Equal(request, again);
    }

    [Fact]
    public void Parse_UnknownFields_AreIgnoredAsTheSpecRequires()
    {
        var json = SpecSample.Replace("\"name\":\"I'm a server span\"", "\"name\":\"x\",\"someFutureField\":{\"a\":1}", StringComparison.Ordinal);

        var request = OtlpJson.Parse<ExportTraceServiceRequest>(json);

        Assert.Equal("x", request.ResourceSpans[0].ScopeSpans[0].Spans[0].Name);
    }

    [Fact]
    public void Parse_Base64IdsFromANonConformingExporter_AreAcceptedToo()
    {
        var json = SpecSample.Replace("5B8EFFF798038103D269B633813FC60C", Convert.ToBase64String(Convert.FromHexString("5B8EFFF798038103D269B633813FC60C")), StringComparison.Ordinal);

        var request = OtlpJson.Parse<ExportTraceServiceRequest>(json);

        Assert.Equal("5b8efff798038103d269b633813fc60c", Convert.ToHexStringLower(request.ResourceSpans[0].ScopeSpans[0].Spans[0].TraceId.Span));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[1,2]")]
    [InlineData("""{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz!"}]}]}]}""")]
    [InlineData("""{"resourceSpans":"nope"}""")]
    public void Parse_InvalidDocument_ThrowsFormatException(string json)
    {
        Assert.Throws<FormatException>(() => OtlpJson.Parse<ExportTraceServiceRequest>(json));
    }
}
