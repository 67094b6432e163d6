using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Agent.Cache;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Tests.Cache;

public class TransparentCacheTests
{
    private static AgentOptions Options(Action<CacheRule>? configure = null)
    {
        var rule = new CacheRule { Paths = ["/api/.*"] };
        configure?.Invoke(rule);
        var options = new AgentOptions { PublicKey = "k" };
        options.Cache.Rules.Add(rule);
        return options;
    }

    private static TransparentCache Create(AgentOptions options, out AgentMetrics metrics, TimeProvider? time = null)
    {
        metrics = new AgentMetrics();
        return new TransparentCache(options, metrics, time ?? new FakeTimeProvider(), NullLogger<TransparentCache>.Instance);
    }

    private static Exchange Request(string path = "/api/rates", string method = "GET", string? body = null)
    {
        var exchange = new Exchange { Method = method, Authority = "rates.example", Path = path };
        if (body is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            exchange.RequestBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        }

        return exchange;
    }

    private static void Respond(Exchange exchange, int status = 200, string body = "{\"rate\":1.1}", params (string Name, string Value)[] headers)
    {
        exchange.StatusCode = status;
        var bytes = Encoding.UTF8.GetBytes(body);
        exchange.ResponseHeaders.Add("content-type", "application/json");
        exchange.ResponseHeaders.Add("content-length", bytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var (name, value) in headers)
        {
            exchange.ResponseHeaders.Add(name, value);
        }

        exchange.ResponseBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
    }

    private static async Task<Exchange> MissAndRecordAsync(TransparentCache cache, Exchange request, int status = 200, params (string Name, string Value)[] headers)
    {
        Assert.Null(await cache.TryAnswerAsync(request, CancellationToken.None));
        Respond(request, status, headers: headers);
        cache.Record(request);
        return request;
    }

    [Fact]
    public async Task RecordedResponse_AnswersTheNextEqualRequest()
    {
        using var cache = Create(Options(), out var metrics);
        var first = await MissAndRecordAsync(cache, Request());

        var answer = await cache.TryAnswerAsync(Request(), CancellationToken.None);

        Assert.Equal(CacheOutcome.Miss, first.Cache);
        Assert.NotNull(answer);
        Assert.Equal(200, answer.StatusCode);
        Assert.Equal("{\"rate\":1.1}", Encoding.UTF8.GetString(answer.Body.Span));
        Assert.Equal("application/json", answer.Headers.Get("content-type"));
        Assert.Null(answer.Headers.Get("content-length"));
        Assert.Equal(1, metrics.CacheHits.Value);
        Assert.Equal(1, metrics.CacheMisses.Value);
        Assert.Equal(0, cache.PendingCount);
    }

    [Fact]
    public async Task RequestNoRuleMatches_IsNotConsultedAndStaysUnmarked()
    {
        using var cache = Create(Options(), out var metrics);
        var request = Request("/other");

        Assert.Null(await cache.TryAnswerAsync(request, CancellationToken.None));
        Assert.Equal(CacheOutcome.None, request.Cache);
        Assert.Equal(0, metrics.CacheMisses.Value);
        Assert.False(cache.NeedsRequestBody(request));
    }

    [Fact]
    public async Task ExcludeRuleMatchingFirst_KeepsTheRequestOutOfTheCache()
    {
        var options = Options();
        options.Cache.Rules.Insert(0, new CacheRule { Paths = ["/api/private/.*"], Exclude = true });
        using var cache = Create(options, out _);
        await MissAndRecordAsync(cache, Request("/api/private/x"));

        Assert.Null(await cache.TryAnswerAsync(Request("/api/private/x"), CancellationToken.None));
        Assert.Equal(0, cache.Store.Count);
    }

    [Theory]
    [InlineData("no-store")]
    [InlineData("private, max-age=60")]
    [InlineData("max-age=0, No-Store")]
    public async Task CacheControlForbiddingStorage_IsRespected(string cacheControl)
    {
        using var cache = Create(Options(), out _);
        await MissAndRecordAsync(cache, Request(), headers: ("cache-control", cacheControl));

        Assert.Null(await cache.TryAnswerAsync(Request(), CancellationToken.None));
        Assert.Equal(0, cache.Store.Count);
    }

    [Fact]
    public async Task CacheControlNoStore_IsOverriddenByAForcingRule()
    {
        using var cache = Create(Options(r => r.Force = true), out _);
        await MissAndRecordAsync(cache, Request(), headers: ("cache-control", "no-store"));

        Assert.NotNull(await cache.TryAnswerAsync(Request(), CancellationToken.None));
    }

    [Fact]
    public async Task Statuses_DefaultToSuccessOnly_AndFollowTheRule()
    {
        using var defaults = Create(Options(), out _);
        await MissAndRecordAsync(defaults, Request(), status: 500);
        Assert.Null(await defaults.TryAnswerAsync(Request(), CancellationToken.None));

        using var notFound = Create(Options(r => r.Statuses = [404]), out _);
        await MissAndRecordAsync(notFound, Request(), status: 404);
        var answer = await notFound.TryAnswerAsync(Request(), CancellationToken.None);
        Assert.Equal(404, answer?.StatusCode);
    }

    [Fact]
    public async Task ResponseWhoseBodyWasNotSeenInFull_IsNotStored()
    {
        using var cache = Create(Options(), out _);
        var request = Request();
        Assert.Null(await cache.TryAnswerAsync(request, CancellationToken.None));
        request.StatusCode = 200;
        request.ResponseHeaders.Add("content-length", "5000"); // ext_proc without response bodies: nothing seen.
        cache.Record(request);

        Assert.Equal(0, cache.Store.Count);
    }

    [Fact]
    public async Task BodiesThatDifferOnlyInIgnoredFields_ShareAnEntry()
    {
        using var cache = Create(Options(r => r.IgnoreBodyFields = ["nonce"]), out _);
        await MissAndRecordAsync(cache, Request(method: "POST", body: """{"from":"EUR","nonce":1}"""));

        Assert.NotNull(await cache.TryAnswerAsync(Request(method: "POST", body: """{ "nonce": 2, "from": "EUR" }"""), CancellationToken.None));
        Assert.Null(await cache.TryAnswerAsync(Request(method: "POST", body: """{"from":"USD","nonce":1}"""), CancellationToken.None));
    }

    [Fact]
    public async Task Entry_ExpiresAfterCacheTtlSeconds()
    {
        var time = new FakeTimeProvider();
        var options = Options();
        options.CacheTtlSeconds = 10;
        using var cache = Create(options, out _, time);
        await MissAndRecordAsync(cache, Request());

        time.Advance(TimeSpan.FromSeconds(11));

        Assert.Null(await cache.TryAnswerAsync(Request(), CancellationToken.None));
    }

    [Fact]
    public async Task ConcurrentMisses_WaitForTheFirstResponse()
    {
        using var cache = Create(Options(), out var metrics, TimeProvider.System);
        var leader = Request();
        Assert.Null(await cache.TryAnswerAsync(leader, CancellationToken.None));

        var followers = Enumerable.Range(0, 5).Select(_ => cache.TryAnswerAsync(Request(), CancellationToken.None).AsTask()).ToList();
        await OtlpReceiver.WaitUntilAsync(() => cache.Followers == 5 || followers.Any(f => f.IsCompleted));
        Assert.All(followers, f => Assert.False(f.IsCompleted));
        Respond(leader);
        cache.Record(leader);
        var answers = await Task.WhenAll(followers);

        Assert.All(answers, a => Assert.Equal("{\"rate\":1.1}", Encoding.UTF8.GetString(a!.Body.Span)));
        Assert.Equal(5, metrics.CacheHits.Value);
        Assert.Equal(1, metrics.CacheMisses.Value);
    }

    [Fact]
    public async Task FollowerPastItsDeadline_GoesUpstreamAsAMiss()
    {
        using var cache = Create(Options(), out var metrics, TimeProvider.System);
        Assert.Null(await cache.TryAnswerAsync(Request(), CancellationToken.None));
        using var deadline = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        var follower = Request();

        var answer = await cache.TryAnswerAsync(follower, deadline.Token);

        Assert.Null(answer);
        Assert.Equal(CacheOutcome.Miss, follower.Cache);
        Assert.Equal(2, metrics.CacheMisses.Value);
    }

    [Fact]
    public async Task UncacheableLeaderResponse_SendsTheFollowersUpstream()
    {
        using var cache = Create(Options(), out _, TimeProvider.System);
        var leader = Request();
        Assert.Null(await cache.TryAnswerAsync(leader, CancellationToken.None));
        var follower = cache.TryAnswerAsync(Request(), CancellationToken.None).AsTask();

        Respond(leader, status: 503);
        cache.Record(leader);

        Assert.Null(await follower);
    }
}
