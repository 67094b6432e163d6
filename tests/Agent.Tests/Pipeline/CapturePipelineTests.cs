using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Redaction;
using SpIstio.Core.Rules;

namespace SpIstio.Agent.Tests.Pipeline;

public sealed class CapturePipelineTests
{
    private static string? Attr(SpIstio.Core.Otlp.Proto.Trace.Span span, string key) =>
        span.Attributes.FirstOrDefault(a => a.Key == key) is { } kv ? ExchangeSpanMapper.AsString(kv.Value) : null;

    [Fact]
    public async Task Complete_SampledOut_IsCountedAndNeverExported()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        var metrics = new AgentMetrics();
        var exporter = new OtlpExporter(options, metrics, NullLogger<OtlpExporter>.Instance);
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance);
        exporter.Start();

        var queued = pipeline.Complete(TestExchanges.Get("/sampled-out"), sampled: false);
        Assert.True(pipeline.Complete(TestExchanges.Get("/sampled-in"), sampled: true));
        await exporter.DisposeAsync();

        Assert.False(queued);
        var span = Assert.Single(receiver.Spans);
        Assert.Equal("/sampled-in", Attr(span, "url.path"));
        Assert.Equal(1, metrics.RequestsSampledOut(TrafficDirection.Inbound).Value);
        Assert.Equal(0, metrics.RequestsDropped(TrafficDirection.Inbound).Value);
        Assert.Equal(1, metrics.Requests(TrafficDirection.Inbound, CaptureDecision.Capture).Value);
        Assert.Contains("sp_requests_total{direction=\"inbound\",outcome=\"sampled_out\"} 1", metrics.Registry.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Complete_RedactsBeforeExport()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        var metrics = new AgentMetrics();
        var exporter = new OtlpExporter(options, metrics, NullLogger<OtlpExporter>.Instance);
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance);
        exporter.Start();
        var exchange = TestExchanges.Get("/login", responseBody: "{\"user\":\"ann\",\"password\":\"hunter2\"}");
        exchange.RequestHeaders.Add("authorization", "Bearer secret-token");
        var capturedBytes = exchange.ResponseBody.Content.Length;

        pipeline.Complete(exchange, sampled: true);
        await receiver.WaitForSpansAsync(1);
        await exporter.DisposeAsync();

        var span = receiver.Spans[0];
        Assert.Equal(Redactor.MaskValue, Attr(span, "http.request.header.authorization"));
        var body = Attr(span, "http.response.body");
        Assert.NotNull(body);
        Assert.DoesNotContain("hunter2", body, StringComparison.Ordinal);
        Assert.Contains("\"user\":\"ann\"", body, StringComparison.Ordinal);
        var everything = receiver.Requests[0].Export!.ToString();
        Assert.DoesNotContain("secret-token", everything, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", everything, StringComparison.Ordinal);
        // Capture bytes are what was copied from the traffic, before redaction rewrote the body.
        Assert.Equal(capturedBytes, metrics.CaptureBytes.Value);
    }

    [Fact]
    public void Decide_RuleSkips_AreCountedByDecision()
    {
        var options = new AgentOptions { PublicKey = "k" };
        options.CollectionRules.Http.Server.Add(new ServerRule { Path = "/api/.*" });
        var metrics = new AgentMetrics();
        var exporter = new RecordingExporter();
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance);

        var exempt = pipeline.Decide(TrafficDirection.Inbound, "POST", "collector:4318", "/v1/traces", new HeaderList());
        var notMatched = pipeline.Decide(TrafficDirection.Inbound, "GET", "orders", "/health", new HeaderList());
        var captured = pipeline.Decide(TrafficDirection.Inbound, "GET", "orders", "/api/orders", new HeaderList());

        Assert.Equal(CaptureDecision.Exempt, exempt);
        Assert.Equal(CaptureDecision.NotMatched, notMatched);
        Assert.Equal(CaptureDecision.Capture, captured);
        var text = metrics.Registry.Render();
        Assert.Contains("sp_requests_total{direction=\"inbound\",outcome=\"exempt\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("sp_requests_total{direction=\"inbound\",outcome=\"not_matched\"} 1", text, StringComparison.Ordinal);
        // A capture decision is only counted once the exchange is complete and queued.
        Assert.Contains("sp_requests_total{direction=\"inbound\",outcome=\"captured\"} 0", text, StringComparison.Ordinal);
        Assert.Empty(exporter.Exchanges);
    }

    [Fact]
    public async Task Complete_QueueFull_CountsTheExchangeAsDropped()
    {
        var options = TestExchanges.Options(TestExchanges.RefusingBackend());
        options.Export.QueueCapacity = 1;
        var metrics = new AgentMetrics();
        await using var exporter = new OtlpExporter(options, metrics, NullLogger<OtlpExporter>.Instance);
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance);
        var outbound = TestExchanges.Get();
        outbound.Direction = TrafficDirection.Outbound;

        Assert.True(pipeline.Complete(TestExchanges.Get(), sampled: true));
        Assert.False(pipeline.Complete(outbound, sampled: true));

        Assert.Equal(1, metrics.RequestsDropped(TrafficDirection.Outbound).Value);
        Assert.Equal(1, metrics.ExportDropped.Value);
        Assert.Equal(1, metrics.Requests(TrafficDirection.Inbound, CaptureDecision.Capture).Value);
    }

    private sealed class RecordingExporter : IExchangeExporter
    {
        public List<Exchange> Exchanges { get; } = [];

        public bool TryEnqueue(Exchange exchange)
        {
            Exchanges.Add(exchange);
            return true;
        }
    }
}
