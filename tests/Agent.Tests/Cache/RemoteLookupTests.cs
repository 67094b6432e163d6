using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
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
/// The cache's remote lookup through the whole agent (runtime, capture proxy) against the real
/// backend in process: 200 is a hit, 404 a miss, and a slow or unreachable backend is a miss
/// within the deadline.
/// </summary>
public sealed class RemoteLookupTests : IAsyncLifetime
{
    private string _directory = "";
    private BackendServer _backend = null!;
    private string _key = "";
    private long _tenant;
    private int _upstreamCalls;
    private TestUpstream _upstream = null!;

    public async Task InitializeAsync()
    {
        _directory = Path.Combine(Path.GetTempPath(), "sp-agent-lookup-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        _backend = await BackendServer.StartAsync(new BackendOptions { Listen = "127.0.0.1:0", Store = "sqlite:" + Path.Combine(_directory, "sp.db") });
        var created = await KeyAdministration.CreateKeyAsync(_backend.Store, "acme", KeyScope.Ingest | KeyScope.Read, null, TimeProvider.System, CancellationToken.None);
        _key = created.Key;
        _tenant = created.Tenant.Id;
        _upstream = await TestUpstream.StartAsync(async context =>
        {
            Interlocked.Increment(ref _upstreamCalls);
            await context.Response.WriteAsync("live");
        });
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        await _backend.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private AgentOptions Options(Uri backend, int? fallbackTimeoutMs = null)
    {
        var options = TestExchanges.Options(backend, _key);
        options.ServiceName = "checkout";
        options.FallbackTimeoutMs = fallbackTimeoutMs;
        options.CircuitBreaker.MaxFailures = 1;
        options.CircuitBreaker.TimeoutSeconds = 60;
        options.Cache.Rules.Add(new CacheRule { Paths = ["/api/.*"], RemoteLookup = true });
        return options;
    }

    private static async Task<AgentUnderTest> StartAgentAsync(AgentOptions options, Uri upstream)
    {
        var runtime = AgentRuntime.Create(options, NullLoggerFactory.Instance);
        var proxy = await CaptureProxyServer.StartAsync(
            new SpIstio.Agent.Hosting.ListenAddress("127.0.0.1", 0),
            new CaptureProxyOptions { Upstream = upstream, Direction = Core.Model.TrafficDirection.Outbound },
            runtime.Pipeline,
            NullLoggerFactory.Instance);
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = proxy.Address };
        return new AgentUnderTest(runtime, proxy, client);
    }

    private Task AddMockAsync(string path, string body) => _backend.Store.AddMockAsync(
        _tenant,
        new MockRecord
        {
            Service = "checkout",
            Method = "GET",
            Path = path,
            MatchKey = MockKeys.ForMock("GET", "", path, null, []),
            StatusCode = 200,
            ResponseHeadersJson = """[["content-type","application/json"]]""",
            ResponseBody = System.Text.Encoding.UTF8.GetBytes(body),
            CreatedAt = DateTimeOffset.UtcNow,
            UpdatedAt = DateTimeOffset.UtcNow,
        },
        CancellationToken.None);

    [Fact]
    public async Task BackendMock_IsAHit_AndAnUnknownRequestAMiss()
    {
        await AddMockAsync("/api/rates", """{"from":"mock"}""");
        await using var agent = await StartAgentAsync(Options(_backend.Address), _upstream.Address);

        using var hit = await agent.Client.GetAsync("/api/rates");
        using var miss = await agent.Client.GetAsync("/api/unknown");

        Assert.Equal("""{"from":"mock"}""", await hit.Content.ReadAsStringAsync());
        Assert.Equal("hit", hit.Headers.GetValues("x-sp-cache").Single());
        Assert.Equal("application/json", hit.Content.Headers.ContentType?.MediaType);
        Assert.Equal("live", await miss.Content.ReadAsStringAsync());
        Assert.Equal(1, _upstreamCalls);
        Assert.Equal(1, agent.Runtime.Metrics.CacheHits.Value);
        Assert.Equal(1, agent.Runtime.Metrics.CacheMisses.Value);
        Assert.Equal(2, agent.Runtime.Metrics.LookupDuration.Count);
        Assert.Contains("sp_cache_hits_total 1", agent.Runtime.Metrics.Registry.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlowBackend_IsAMissWithinTheFallbackDeadline()
    {
        // The backend never answers while the request is in flight: the request can only complete
        // if the agent gives up on the lookup at its deadline and goes upstream.
        var backendAnswers = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = await TestUpstream.StartAsync(async context =>
        {
            await backendAnswers.Task.WaitAsync(context.RequestAborted);
        });
        await using var agent = await StartAgentAsync(Options(slow.Address, fallbackTimeoutMs: 200), _upstream.Address);

        try
        {
            using var response = await agent.Client.GetAsync("/api/rates");

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("live", await response.Content.ReadAsStringAsync());
            Assert.False(response.Headers.Contains("x-sp-cache"));
            Assert.Equal(1, agent.Runtime.Metrics.LookupFailures("timeout").Value);
        }
        finally
        {
            backendAnswers.TrySetResult();
        }
    }

    [Fact]
    public async Task UnreachableBackend_OpensTheCircuit_ThenLookupsAreSkipped()
    {
        await using var agent = await StartAgentAsync(Options(TestExchanges.RefusingBackend()), _upstream.Address);

        using var first = await agent.Client.GetAsync("/api/rates");
        using var second = await agent.Client.GetAsync("/api/rates?again=1");

        Assert.Equal("live", await first.Content.ReadAsStringAsync());
        Assert.Equal("live", await second.Content.ReadAsStringAsync());
        Assert.Equal(1, agent.Runtime.Metrics.LookupFailures("error").Value);
        Assert.Equal(1, agent.Runtime.Metrics.LookupFailures("circuit_open").Value);
        Assert.Equal(2, _upstreamCalls);
    }

    [Fact]
    public async Task FallbackDisabled_FailedLookupAnswers504InsteadOfGoingUpstream()
    {
        var options = Options(TestExchanges.RefusingBackend());
        options.FallbackEnabled = false;
        await using var agent = await StartAgentAsync(options, _upstream.Address);

        using var response = await agent.Client.GetAsync("/api/rates");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("lookup-failed", response.Headers.GetValues("x-sp-cache").Single());
        Assert.Equal(0, _upstreamCalls);
    }

    [Fact]
    public async Task ReplayOnly_Proxy_AnswersRecordingsAndRefusesEverythingElseWithoutReachingTheUpstream()
    {
        await AddMockAsync("/api/rates", """{"from":"mock"}""");
        var options = Options(_backend.Address);
        options.Cache.Mode = CacheMode.ReplayOnly;
        await using var agent = await StartAgentAsync(options, _upstream.Address);

        using var recorded = await agent.Client.GetAsync("/api/rates");
        using var unrecorded = await agent.Client.GetAsync("/api/payments/charge?card=1");
        using var uncovered = await agent.Client.GetAsync("/health");

        Assert.Equal("""{"from":"mock"}""", await recorded.Content.ReadAsStringAsync());
        Assert.Equal("hit", recorded.Headers.GetValues("x-sp-cache").Single());

        Assert.Equal(HttpStatusCode.BadGateway, unrecorded.StatusCode);
        Assert.Equal("miss-strict", unrecorded.Headers.GetValues("x-sp-cache").Single());
        var key = unrecorded.Headers.GetValues("x-sp-cache-key").Single();
        Assert.Matches("^[0-9a-f]{64}$", key);
        var refusal = await unrecorded.Content.ReadAsStringAsync();
        Assert.Contains("GET", refusal, StringComparison.Ordinal);
        Assert.Contains("/api/payments/charge?card=1", refusal, StringComparison.Ordinal);
        Assert.Contains(key, refusal, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.BadGateway, uncovered.StatusCode);
        Assert.Equal("miss-strict", uncovered.Headers.GetValues("x-sp-cache").Single());
        Assert.Contains("no cache rule covers", await uncovered.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        Assert.Equal(0, _upstreamCalls);
        Assert.Equal(2, agent.Runtime.Metrics.CacheStrictMisses.Value);
        Assert.Contains("sp_cache_strict_misses_total 2", agent.Runtime.Metrics.Registry.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReplayOnly_UnreachableBackend_RefusesInsteadOfFailingOpen()
    {
        var options = Options(TestExchanges.RefusingBackend());
        options.Cache.Rules[0].Mode = CacheMode.ReplayOnly;
        await using var agent = await StartAgentAsync(options, _upstream.Address);

        using var strict = await agent.Client.GetAsync("/api/rates");
        using var uncovered = await agent.Client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.BadGateway, strict.StatusCode);
        Assert.Equal("miss-strict", strict.Headers.GetValues("x-sp-cache").Single());

        // Only the rule is strict (cache.mode stays replay): a request no rule covers goes upstream.
        Assert.Equal("live", await uncovered.Content.ReadAsStringAsync());
        Assert.Equal(1, _upstreamCalls);
        Assert.Equal(1, agent.Runtime.Metrics.CacheStrictMisses.Value);
    }

    [Fact]
    public async Task ReplayOnly_ExtProc_AnswersWithAnImmediateMissStrict()
    {
        await AddMockAsync("/api/rates", """{"from":"mock"}""");
        var options = Options(_backend.Address);
        options.Cache.Mode = CacheMode.ReplayOnly;
        await using var runtime = AgentRuntime.Create(options, NullLoggerFactory.Instance);
        await using var server = await SpIstio.Agent.ExtProc.ExtProcServer.StartAsync(
            runtime.Pipeline,
            // The first lookup starts the backend's connection and JIT: on a loaded machine that can
            // exceed ext_proc's 150 ms cap, which in replay_only would (rightly) refuse the request.
            new SpIstio.Agent.ExtProc.ExtProcOptions { Listen = new SpIstio.Agent.Hosting.ListenAddress("127.0.0.1", 0), ShortCircuitTimeout = TimeSpan.FromSeconds(30) },
            NullLoggerFactory.Instance);
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{server.Port}");
        var client = new SpIstio.Agent.ExtProc.Proto.ExternalProcessor.ExternalProcessorClient(channel);

        using var recorded = new SpIstio.Agent.Tests.ExtProc.EnvoyStream(client.Process());
        var hit = await recorded.SendAsync(SpIstio.Agent.Tests.ExtProc.Envoy.RequestHeaders("GET", "/api/rates", true));
        using var unrecorded = new SpIstio.Agent.Tests.ExtProc.EnvoyStream(client.Process());
        var refused = await unrecorded.SendAsync(SpIstio.Agent.Tests.ExtProc.Envoy.RequestHeaders("GET", "/api/payments/charge", true));

        Assert.Equal("""{"from":"mock"}""", hit.ImmediateResponse.Body.ToStringUtf8());
        Assert.Equal(200, (int)hit.ImmediateResponse.Status.Code);
        Assert.Equal(502, (int)refused.ImmediateResponse.Status.Code);
        var headers = refused.ImmediateResponse.Headers.SetHeaders.ToDictionary(h => h.Header.Key, h => h.Header.RawValue.ToStringUtf8());
        Assert.Equal("miss-strict", headers["x-sp-cache"]);
        Assert.Contains(headers["x-sp-cache-key"], refused.ImmediateResponse.Body.ToStringUtf8(), StringComparison.Ordinal);
        Assert.Equal(1, runtime.Metrics.CacheStrictMisses.Value);
        Assert.Equal(0, _upstreamCalls);
    }

    [Fact]
    public async Task Record_AlwaysForwardsAndRecords_EvenWhenTheBackendHasAMock()
    {
        await AddMockAsync("/api/rates", """{"from":"mock"}""");
        var options = Options(_backend.Address);
        options.Cache.Rules[0].RemoteLookup = false;
        options.Cache.Rules[0].Mode = CacheMode.Record;
        await using var agent = await StartAgentAsync(options, _upstream.Address);

        using var first = await agent.Client.GetAsync("/api/rates");
        using var second = await agent.Client.GetAsync("/api/rates");

        Assert.Equal("live", await first.Content.ReadAsStringAsync());
        Assert.Equal("live", await second.Content.ReadAsStringAsync());
        Assert.False(second.Headers.Contains("x-sp-cache"));
        Assert.Equal(2, _upstreamCalls);
        Assert.Equal(2, agent.Runtime.Metrics.CacheMisses.Value);
        Assert.Equal(1, agent.Runtime.Metrics.CacheEntries.Value);
    }
}

/// <summary>The whole agent behind a capture proxy, and a client addressing it; disposed together.</summary>
internal sealed record AgentUnderTest(AgentRuntime Runtime, CaptureProxyServer Proxy, HttpClient Client) : IAsyncDisposable
{
    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Proxy.DisposeAsync();
        await Runtime.DisposeAsync();
    }
}
