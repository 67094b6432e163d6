using System.Net;
using System.Text.Json;
using SpIstio.Agent.Admin;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Tests.Infrastructure;

namespace SpIstio.Agent.Tests.Hosting;

/// <summary>/status on the admin port says how the agent is: backend, export, circuit, cache, configuration; the same facts are metrics.</summary>
public sealed class AgentStatusTests
{
    [Fact]
    public async Task Status_BeforeAnyExport_SaysReachabilityIsUnknown_AndShowsTheConfig()
    {
        await using var runtime = AgentRuntime.Create(TestExchanges.Options(TestExchanges.RefusingBackend()), new LogCollector());
        runtime.Status.Config = new ConfigIdentity("sha256:abc", "file /etc/sp/agent.yaml");
        using var http = await AdminClientAsync(runtime);

        using var status = await GetStatusAsync(http);
        var metrics = await http.GetStringAsync("/metrics");

        var root = status.RootElement;
        Assert.Equal(JsonValueKind.Null, root.GetProperty("backend").GetProperty("reachable").ValueKind);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("backend").GetProperty("last_successful_export").ValueKind);
        Assert.Equal("closed", root.GetProperty("backend").GetProperty("circuit").GetString());
        Assert.Equal(0, root.GetProperty("export").GetProperty("queue_exchanges").GetInt64());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("export").GetProperty("buffer").ValueKind);
        Assert.Equal("sha256:abc", root.GetProperty("config").GetProperty("digest").GetString());
        Assert.Equal("file /etc/sp/agent.yaml", root.GetProperty("config").GetProperty("source").GetString());
        Assert.Contains("sp_backend_up -1", metrics, StringComparison.Ordinal);
        Assert.Contains("sp_config_info{digest=\"sha256:abc\"} 1", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_AfterAFailedExport_SaysTheBackendIsUnreachable()
    {
        await using var runtime = AgentRuntime.Create(TestExchanges.Options(TestExchanges.RefusingBackend()), new LogCollector());
        using var http = await AdminClientAsync(runtime);

        runtime.Pipeline.Complete(TestExchanges.Get("/lost"), sampled: true);
        // The first failed request says the backend is down; the batch's failure (after its retries) sets last_error.
        await OtlpReceiver.WaitUntilAsync(() => runtime.Exporter.Health.Snapshot() is { BackendReachable: false, LastError: not null });
        using var status = await GetStatusAsync(http);
        var metrics = await http.GetStringAsync("/metrics");

        var backend = status.RootElement.GetProperty("backend");
        Assert.False(backend.GetProperty("reachable").GetBoolean());
        Assert.False(string.IsNullOrEmpty(backend.GetProperty("last_error").GetString()));
        Assert.Equal(JsonValueKind.Null, backend.GetProperty("last_successful_export").ValueKind);
        Assert.Contains("sp_backend_up 0", metrics, StringComparison.Ordinal);
        Assert.Equal(0, runtime.Status.Totals().Delivered);
    }

    [Fact]
    public async Task Status_AfterADeliveredExport_ShowsTheLastSuccess_AndShutdownCountsItDelivered()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var runtime = AgentRuntime.Create(TestExchanges.Options(receiver.BaseAddress), new LogCollector());
        using var http = await AdminClientAsync(runtime);

        runtime.Pipeline.Complete(TestExchanges.Get("/delivered"), sampled: true);
        await receiver.WaitForSpansAsync(1);
        await OtlpReceiver.WaitUntilAsync(() => runtime.Exporter.Health.Snapshot().LastSuccess is not null);
        using var status = await GetStatusAsync(http);
        var metrics = await http.GetStringAsync("/metrics");
        await runtime.DisposeAsync();

        var backend = status.RootElement.GetProperty("backend");
        Assert.True(backend.GetProperty("reachable").GetBoolean());
        Assert.True(DateTimeOffset.TryParse(backend.GetProperty("last_successful_export").GetString(), System.Globalization.CultureInfo.InvariantCulture, out _));
        Assert.Equal(1, status.RootElement.GetProperty("export").GetProperty("delivered_spans").GetInt64());
        Assert.Contains("sp_backend_up 1", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain("sp_export_last_success_timestamp_seconds 0\n", metrics, StringComparison.Ordinal);
        Assert.Equal((1L, 0L, 0L), runtime.Status.Totals());
    }

    [Fact]
    public async Task Status_ReportsTheBufferAnExportBufferProvides()
    {
        await using var runtime = AgentRuntime.Create(TestExchanges.Options(TestExchanges.RefusingBackend()), new LogCollector());
        runtime.Status.Buffer = new FixedBuffer();
        using var http = await AdminClientAsync(runtime);

        using var status = await GetStatusAsync(http);

        var buffer = status.RootElement.GetProperty("export").GetProperty("buffer");
        Assert.Equal("disk", buffer.GetProperty("kind").GetString());
        Assert.Equal(4096, buffer.GetProperty("bytes").GetInt64());
        Assert.Equal(3, buffer.GetProperty("exchanges").GetInt64());
        Assert.Equal(12.5, buffer.GetProperty("oldest_age_seconds").GetDouble());
    }

    private static async Task<HttpClient> AdminClientAsync(AgentRuntime runtime)
    {
        var app = await runtime.StartAdminAsync(ListenAddress.Parse("127.0.0.1:0"), CancellationToken.None);
        return new HttpClient { BaseAddress = AgentRuntime.BoundAddress(app) };
    }

    private static async Task<JsonDocument> GetStatusAsync(HttpClient http)
    {
        using var response = await http.GetAsync("/status");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    private sealed class FixedBuffer : IExportBufferStatus
    {
        public string Kind => "disk";

        public long Bytes => 4096;

        public long Exchanges => 3;

        public TimeSpan? OldestAge => TimeSpan.FromSeconds(12.5);
    }
}
