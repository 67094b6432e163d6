using System.Net.Http.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Cache;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Proxy;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Agent.Tests.Proxy;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Mocks;
using SpIstio.Backend.Storage;
using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Tests.Cache;

/// <summary>
/// <c>cache.pull_mocks</c> through the whole agent (runtime, capture proxy) against the real
/// backend in process: a mock made through the API is pulled and answers locally, an unchanged set
/// is a 304, a deleted mock stops answering, and a backend outage keeps the last good set.
/// </summary>
public sealed class MockPullTests : IAsyncLifetime
{
    private string _directory = "";
    private BackendServer _backend = null!;
    private string _ingestKey = "";
    private HttpClient _admin = null!;
    private int _upstreamCalls;
    private TestUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _directory = Path.Combine(Path.GetTempPath(), "sp-agent-mockpull-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        _backend = await BackendServer.StartAsync(new BackendOptions { Listen = "127.0.0.1:0", Store = "sqlite:" + Path.Combine(_directory, "sp.db") });
        var ingest = await KeyAdministration.CreateKeyAsync(_backend.Store, "acme", KeyScope.Ingest, null, TimeProvider.System, CancellationToken.None);
        var admin = await KeyAdministration.CreateKeyAsync(_backend.Store, "acme", KeyScope.Admin | KeyScope.Read, null, TimeProvider.System, CancellationToken.None);
        _ingestKey = ingest.Key;
        _admin = new HttpClient { BaseAddress = _backend.Address };
        _admin.DefaultRequestHeaders.Add("x-public-key", admin.Key);
        _upstream = await TestUpstream.StartAsync(async context =>
        {
            Interlocked.Increment(ref _upstreamCalls);
            await context.Response.WriteAsync("live");
        });
    }

    public async Task DisposeAsync()
    {
        _admin.Dispose();
        await _upstream.DisposeAsync();
        await _backend.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private AgentOptions Options()
    {
        var options = TestExchanges.Options(_backend.Address, _ingestKey);
        options.ServiceName = "checkout";
        // The loop's first pull happens at start; the tests drive every later pull themselves.
        options.Cache.PullMocks = true;
        options.Cache.PullIntervalSeconds = 3600;
        options.Cache.Rules.Add(new CacheRule { Paths = ["/api/.*"] });
        return options;
    }

    private async Task<(AgentRuntime Runtime, CaptureProxyServer Proxy, HttpClient Client)> StartAgentAsync()
    {
        var runtime = AgentRuntime.Create(Options(), NullLoggerFactory.Instance);
        var proxy = await CaptureProxyServer.StartAsync(
            new SpIstio.Agent.Hosting.ListenAddress("127.0.0.1", 0),
            new CaptureProxyOptions { Upstream = _upstream.Address, Direction = Core.Model.TrafficDirection.Outbound },
            runtime.Pipeline,
            NullLoggerFactory.Instance);
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = proxy.Address };
        return (runtime, proxy, client);
    }

    /// <summary>The agent pulls once at start; later pulls in a test are its own, so their results are certain.</summary>
    private static async Task WaitForStartupPullAsync(AgentRuntime runtime)
    {
        var metrics = runtime.Metrics;
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (metrics.MockPullsUpdated.Value + metrics.MockPullsNotModified.Value + metrics.MockPullsFailed.Value == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the agent did not pull its mock set at start");
            await Task.Delay(20);
        }
    }

    private async Task<long> CreateMockAsync(string path, string body)
    {
        using var response = await _admin.PostAsJsonAsync(
            "/api/mocks",
            new MockDto { Service = "checkout", Method = "GET", Path = path, Status = 200, Headers = [["content-type", "application/json"]], Body = body },
            MockJsonContext.Default.MockDto);
        response.EnsureSuccessStatusCode();
        var created = await response.Content.ReadFromJsonAsync(MockJsonContext.Default.MockDto);
        return created!.Id;
    }

    [Fact]
    public async Task MockCreatedThroughTheApi_IsPulled_AndAnswersWithoutTheUpstream()
    {
        await CreateMockAsync("/api/rates", """{"from":"mock"}""");
        var (runtime, proxy, client) = await StartAgentAsync();
        await using var _ = runtime;
        await using var __ = proxy;
        using var ___ = client;

        await WaitForStartupPullAsync(runtime);
        using var hit = await client.GetAsync("/api/rates");
        using var miss = await client.GetAsync("/api/other");

        Assert.Equal(1, runtime.Metrics.MockPullsUpdated.Value);
        Assert.Equal(1, runtime.Cache!.PulledMocks.Count);
        Assert.Equal("""{"from":"mock"}""", await hit.Content.ReadAsStringAsync());
        Assert.Equal("hit", hit.Headers.GetValues("x-sp-cache").Single());
        Assert.Equal("application/json", hit.Content.Headers.ContentType?.MediaType);
        Assert.Equal("live", await miss.Content.ReadAsStringAsync());
        Assert.Equal(1, _upstreamCalls);
        Assert.Contains("sp_cache_hits_total 1", runtime.Metrics.Registry.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnchangedSet_IsA304_AndDeletingTheMockStopsTheHit()
    {
        var id = await CreateMockAsync("/api/rates", """{"from":"mock"}""");
        var (runtime, proxy, client) = await StartAgentAsync();
        await using var _ = runtime;
        await using var __ = proxy;
        using var ___ = client;
        var poller = runtime.MockPoller!;
        await WaitForStartupPullAsync(runtime);
        var etag = poller.ETag;

        // The set is loaded: this pull sends If-None-Match with its ETag, and only a match is a 304.
        var unchanged = await poller.PollAsync(CancellationToken.None);
        using var hit = await client.GetAsync("/api/rates");
        using (var deleted = await _admin.DeleteAsync("/api/mocks/" + id))
        {
            deleted.EnsureSuccessStatusCode();
        }

        var afterDelete = await poller.PollAsync(CancellationToken.None);
        using var live = await client.GetAsync("/api/rates");

        Assert.NotNull(etag);
        Assert.Equal(MockPullResult.NotModified, unchanged);
        Assert.Equal(1, runtime.Metrics.MockPullsNotModified.Value);
        Assert.Equal("hit", hit.Headers.GetValues("x-sp-cache").Single());
        Assert.Equal(MockPullResult.Updated, afterDelete);
        Assert.NotEqual(etag, poller.ETag);
        Assert.Equal(0, runtime.Cache!.PulledMocks.Count);
        Assert.Equal("live", await live.Content.ReadAsStringAsync());
        Assert.False(live.Headers.Contains("x-sp-cache"));
        Assert.Equal(1, _upstreamCalls);
    }

    [Fact]
    public async Task BackendDown_KeepsTheLastGoodSet_AndCountsTheFailure()
    {
        await CreateMockAsync("/api/rates", """{"from":"mock"}""");
        var (runtime, proxy, client) = await StartAgentAsync();
        await using var _ = runtime;
        await using var __ = proxy;
        using var ___ = client;
        var poller = runtime.MockPoller!;
        await WaitForStartupPullAsync(runtime);

        await _backend.DisposeAsync();
        var failed = await poller.PollAsync(CancellationToken.None);
        using var hit = await client.GetAsync("/api/rates");

        Assert.Equal(MockPullResult.Failed, failed);
        Assert.Equal(1, runtime.Metrics.MockPullsFailed.Value);
        Assert.Equal("""{"from":"mock"}""", await hit.Content.ReadAsStringAsync());
        Assert.Equal("hit", hit.Headers.GetValues("x-sp-cache").Single());
        Assert.Equal(0, _upstreamCalls);
    }
}
