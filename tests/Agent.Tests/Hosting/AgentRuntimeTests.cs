using System.Net;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Tests.Hosting;

public sealed class AgentRuntimeTests
{
    [Fact]
    public async Task Admin_ServesMetricsHealthAndReadiness_OnAnOsPickedPort()
    {
        var logs = new LogCollector();
        await using var runtime = AgentRuntime.Create(TestExchanges.Options(TestExchanges.RefusingBackend()), logs);
        var app = await runtime.StartAdminAsync(ListenAddress.Parse("127.0.0.1:0"), CancellationToken.None);
        var address = AgentRuntime.BoundAddress(app);
        using var http = new HttpClient { BaseAddress = address };

        Assert.NotEqual(0, address.Port);
        var metrics = await http.GetStringAsync("/metrics");
        foreach (var name in new[]
        {
            "sp_requests_total", "sp_export_spans_total", "sp_export_queue_depth", "sp_export_dropped_total",
            "sp_export_batch_duration_seconds", "sp_backend_circuit_open", "sp_extproc_streams_active",
        })
        {
            Assert.Contains("# TYPE " + name + " ", metrics, StringComparison.Ordinal);
        }

        using var health = await http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);

        using (var notReady = await http.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
            Assert.Contains("starting", await notReady.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        runtime.Readiness.MarkReady();
        using var ready = await http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task Create_WiresThePipelineToAStartedExporter()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var runtime = AgentRuntime.Create(TestExchanges.Options(receiver.BaseAddress), new LogCollector());

        Assert.True(runtime.Pipeline.Complete(TestExchanges.Get("/via-runtime"), sampled: true));
        await receiver.WaitForSpansAsync(1);
        await runtime.DisposeAsync();

        Assert.Same(runtime.Metrics, runtime.Pipeline.Metrics);
        Assert.Equal(1, runtime.Metrics.ExportSpansExported.Value);
        Assert.True(runtime.Exporter.IsStopped);
    }

    [Fact]
    public async Task Dispose_MarksNotReady_StopsAdmin_AndFlushesQueuedExchanges()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.BatchDelayMs = 60_000;
        var runtime = AgentRuntime.Create(options, new LogCollector());
        var app = await runtime.StartAdminAsync(ListenAddress.Parse("localhost:0"), CancellationToken.None);
        var address = AgentRuntime.BoundAddress(app);
        runtime.Readiness.MarkReady();
        runtime.Pipeline.Complete(TestExchanges.Get("/a"), sampled: true);
        runtime.Pipeline.Complete(TestExchanges.Get("/b"), sampled: true);

        await runtime.DisposeAsync();

        Assert.False(runtime.Readiness.IsReady);
        Assert.Equal("draining", runtime.Readiness.Reason);
        Assert.Equal(2, receiver.Spans.Count);
        using var http = new HttpClient { BaseAddress = address };
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/healthz"));
    }

    [Fact]
    public void Create_WithInvalidRules_Throws()
    {
        var options = new AgentOptions { PublicKey = "k" };
        options.CollectionRules.Http.Server.Add(new ServerRule { Path = "(" });

        Assert.ThrowsAny<ArgumentException>(() => AgentRuntime.Create(options, new LogCollector()));
    }

    [Fact]
    public async Task StartAdmin_PortInUse_Throws()
    {
        await using var runtime = AgentRuntime.Create(TestExchanges.Options(TestExchanges.RefusingBackend()), new LogCollector());
        var first = await runtime.StartAdminAsync(ListenAddress.Parse("127.0.0.1:0"), CancellationToken.None);
        var taken = AgentRuntime.BoundAddress(first).Port;

        await Assert.ThrowsAsync<IOException>(() => runtime.StartAdminAsync(new ListenAddress("127.0.0.1", taken), CancellationToken.None));
    }
}
