using System.Text;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Trace;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>The ext_proc service on the real runtime: exchanges reach an OTLP receiver as spans.</summary>
public sealed class ExtProcExportTests
{
    [Fact]
    public async Task ExchangePlayedOverExtProc_ArrivesAtTheBackendAsASpanWithHeadersAndBodies()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var extProc = await ExportingExtProc.StartAsync(receiver);
        using var stream = extProc.OpenStream();

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/orders?draft=1", false, ("content-type", "application/json"), ("authorization", "Bearer s3cret"))
            .WithAttribute(ExtProcStream.ClusterNameAttribute, "outbound|8080||orders.shop.svc.cluster.local"));
        await stream.SendAsync(Envoy.RequestBody("""{"sku":"A1"}""", true));
        await stream.SendAsync(Envoy.ResponseHeaders(201, false, ("content-type", "application/json")));
        await stream.SendAsync(Envoy.ResponseBody("""{"id":42}""", true));
        await stream.CompleteAsync();
        await receiver.WaitForSpansAsync(1);

        var export = receiver.Requests[0];
        var span = receiver.Spans[0];
        string Attr(string key) => span.Attributes.Single(a => a.Key == key).Value.StringValue;
        Assert.Equal("pk-test", export.Header("x-public-key"));
        Assert.Equal(Span.Types.SpanKind.Client, span.Kind);
        Assert.Equal("orders", Attr(OtlpAttributes.ServiceName));
        Assert.Equal("outbound", Attr(OtlpAttributes.TrafficDirection));
        Assert.Equal("/orders", Attr(OtlpAttributes.UrlPath));
        Assert.Equal("""{"sku":"A1"}""", Attr(OtlpAttributes.RequestBody));
        Assert.Equal("""{"id":42}""", Attr(OtlpAttributes.ResponseBody));
        Assert.Equal("application/json", Attr(OtlpAttributes.RequestHeaderPrefix + "content-type"));
        // Redaction ran before export.
        Assert.DoesNotContain("s3cret", Attr(OtlpAttributes.RequestHeaderPrefix + "authorization"), StringComparison.Ordinal);
        Assert.Contains(
            "sp_extproc_messages_total{type=\"request_body\"} 1",
            extProc.Runtime.Metrics.Registry.Render(),
            StringComparison.Ordinal);
        Assert.NotEmpty(Encoding.UTF8.GetBytes(span.TraceId.ToBase64()));
    }

    [Fact]
    public async Task ManyExchangesWithWholeBodies_EachArrivesWithItsOwnBodies()
    {
        // Each body is kept by reference in an array rented for its message; arrays go back to the
        // pool once their exchange is encoded and are reused by later messages, so a body whose
        // array went back too early would arrive as another exchange's bytes.
        const int Exchanges = 48;
        const int Concurrent = 8;
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var extProc = await ExportingExtProc.StartAsync(receiver);
        var client = extProc.Client;

        static string Body(string side, int n) => $$"""{"{{side}}":{{n}},"pad":"{{new string((char)('a' + (n % 26)), 2000)}}"}""";
        async Task PlayAsync(int n)
        {
            using var stream = new EnvoyStream(client.Process());
            await stream.SendAsync(Envoy.RequestHeaders("POST", "/orders/" + n, false, ("content-type", "application/json")));
            await stream.SendAsync(Envoy.RequestBody(Body("request", n), true));
            await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/json")));
            await stream.SendAsync(Envoy.ResponseBody(Body("response", n), true));
            await stream.CompleteAsync();
        }

        for (var first = 0; first < Exchanges; first += Concurrent)
        {
            await Task.WhenAll(Enumerable.Range(first, Concurrent).Select(PlayAsync));
        }

        await receiver.WaitForSpansAsync(Exchanges);

        var spans = receiver.Spans;
        Assert.Equal(Exchanges, spans.Count);
        foreach (var span in spans)
        {
            string Attr(string key) => span.Attributes.Single(a => a.Key == key).Value.StringValue;
            var n = int.Parse(Attr(OtlpAttributes.UrlPath)["/orders/".Length..], System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(Body("request", n), Attr(OtlpAttributes.RequestBody));
            Assert.Equal(Body("response", n), Attr(OtlpAttributes.ResponseBody));
        }
    }
}
