using FsCheck.Xunit;
using Google.Protobuf;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Core.Tests.Otlp;

public class ExchangeSpanRoundTripProperties
{
    [Property(Arbitrary = [typeof(ExchangeGenerators)], MaxTest = 300)]
    public void FromSpan_of_ToSpan_reproduces_every_field(Exchange exchange)
    {
        var span = ExchangeSpanMapper.ToSpan(exchange, publicKey: "pk-test");

        var back = ExchangeSpanMapper.FromSpan(span, resource: null);

        Assert.Null(ExchangeComparer.Difference(exchange, back));
    }

    [Property(Arbitrary = [typeof(ExchangeGenerators)], MaxTest = 150)]
    public void An_export_request_survives_protobuf_bytes(Exchange exchange)
    {
        var request = ExchangeSpanMapper.ToExportRequest([exchange], publicKey: null, scopeVersion: "1.0.0");

        var parsed = ExportTraceServiceRequest.Parser.ParseFrom(request.ToByteArray());
        var resourceSpans = Assert.Single(parsed.ResourceSpans);
        var back = ExchangeSpanMapper.FromSpan(Assert.Single(Assert.Single(resourceSpans.ScopeSpans).Spans), resourceSpans.Resource);

        Assert.Null(ExchangeComparer.Difference(exchange, back));
    }

    [Property(Arbitrary = [typeof(ExchangeGenerators)], MaxTest = 150)]
    public void An_export_request_survives_otlp_json(Exchange exchange)
    {
        var request = ExchangeSpanMapper.ToExportRequest([exchange], publicKey: "pk", scopeVersion: "1.0.0");

        var parsed = OtlpJson.Parse<ExportTraceServiceRequest>(OtlpJson.Format(request));

        Assert.Equal(request, parsed);
    }
}
