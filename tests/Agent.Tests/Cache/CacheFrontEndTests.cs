using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Cache;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Tests.ExtProc;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Agent.Tests.Proxy;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Tests.Cache;

/// <summary>The cache behind both front ends: the real capture proxy and the real ext_proc server.</summary>
public class CacheFrontEndTests
{
    private static AgentOptions Options(int maxRequestBody = CaptureOptions.DefaultBodyLimit)
    {
        var options = new AgentOptions { PublicKey = "k" };
        options.Cache.Rules.Add(new CacheRule { Paths = ["/api/.*"], IgnoreBodyFields = ["nonce"] });
        options.Capture.MaxRequestBodyBytes = maxRequestBody;
        return options;
    }

    private static TransparentCache NewCache(AgentOptions options) =>
        new(options, new AgentMetrics(), TimeProvider.System, NullLogger<TransparentCache>.Instance);

    [Fact]
    public async Task Proxy_SecondEqualGet_IsAnsweredByTheAgentAndMarkedHit()
    {
        var calls = 0;
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            Interlocked.Increment(ref calls);
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{\"rate\":1.1}");
        });
        var options = Options();
        using var cache = NewCache(options);
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, options: options, shortCircuit: cache);

        using var first = await proxy.Client.GetAsync("/api/rates?from=EUR");
        var missed = await proxy.Exporter.NextAsync();
        using var second = await proxy.Client.GetAsync("/api/rates?from=EUR");
        var hit = await proxy.Exporter.NextAsync();

        Assert.Equal(1, calls);
        Assert.False(first.Headers.Contains("x-sp-cache"));
        Assert.Equal("hit", second.Headers.GetValues("x-sp-cache").Single());
        Assert.Equal("{\"rate\":1.1}", await second.Content.ReadAsStringAsync());
        Assert.Equal("application/json", second.Content.Headers.ContentType?.MediaType);
        Assert.Equal(CacheOutcome.Miss, missed.Cache);
        Assert.Equal(CacheOutcome.Hit, hit.Cache);
        Assert.Equal(200, hit.StatusCode);
    }

    [Fact]
    public async Task Proxy_ConcurrentMissesForOneKey_ReachTheUpstreamOnce()
    {
        const int Clients = 12;
        var calls = 0;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            Interlocked.Increment(ref calls);
            await release.Task;
            await context.Response.WriteAsync("slow answer");
        });
        var options = Options();
        options.FallbackTimeoutMs = 60_000; // followers wait for the leader however loaded the machine is
        using var cache = NewCache(options);
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, options: options, shortCircuit: cache);

        // The upstream answers only once every other request has joined the leader's flight.
        var sending = Task.WhenAll(Enumerable.Range(0, Clients).Select(_ => proxy.Client.GetAsync("/api/slow")));
        await OtlpReceiver.WaitUntilAsync(() => cache.Followers == Clients - 1 || sending.IsCompleted);
        release.SetResult();
        var responses = await sending;

        Assert.Equal(1, calls);
        foreach (var response in responses)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("slow answer", await response.Content.ReadAsStringAsync());
            response.Dispose();
        }

        Assert.Equal(Clients - 1, responses.Count(r => r.Headers.Contains("x-sp-cache")));
    }

    [Fact]
    public async Task Proxy_PostBodies_AreKeyedCanonicallyAndStillReachTheUpstreamOnAMiss()
    {
        var received = new List<string>();
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            lock (received)
            {
                received.Add(body);
            }

            await context.Response.WriteAsync("quote for " + body);
        });
        var options = Options();
        using var cache = NewCache(options);
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, options: options, shortCircuit: cache);

        async Task<HttpResponseMessage> Post(string json) =>
            await proxy.Client.PostAsync("/api/quote", new StringContent(json, Encoding.UTF8, "application/json"));

        using var first = await Post("""{"from":"EUR","nonce":1}""");
        await proxy.Exporter.NextAsync();
        using var same = await Post("""{ "nonce": 7, "from": "EUR" }""");
        var hit = await proxy.Exporter.NextAsync();
        using var other = await Post("""{"from":"USD","nonce":1}""");

        Assert.Equal(["""{"from":"EUR","nonce":1}""", """{"from":"USD","nonce":1}"""], received);
        Assert.Equal("quote for {\"from\":\"EUR\",\"nonce\":1}", await same.Content.ReadAsStringAsync());
        Assert.Equal("hit", same.Headers.GetValues("x-sp-cache").Single());
        Assert.False(other.Headers.Contains("x-sp-cache"));
        Assert.Equal("""{ "nonce": 7, "from": "EUR" }""", Encoding.UTF8.GetString(hit.RequestBody.Content.Span));
    }

    [Fact]
    public async Task Proxy_BodyOverTheCaptureLimit_IsForwardedWholeAndNotCached()
    {
        var received = new List<int>();
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer);
            lock (received)
            {
                received.Add((int)buffer.Length);
            }

            await context.Response.WriteAsync("ok");
        });
        var options = Options(maxRequestBody: 16);
        using var cache = NewCache(options);
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, options: options, shortCircuit: cache);
        var big = new string('x', 5000);

        using var first = await proxy.Client.PostAsync("/api/upload", new StringContent(big));
        var exchange = await proxy.Exporter.NextAsync();
        using var second = await proxy.Client.PostAsync("/api/upload", new StringContent(big));

        Assert.Equal([5000, 5000], received);
        Assert.False(second.Headers.Contains("x-sp-cache"));
        Assert.Equal(CacheOutcome.None, exchange.Cache);
        Assert.True(exchange.RequestBody.Truncated);
        Assert.Equal(5000, exchange.RequestBody.OriginalSize);
    }

    [Fact]
    public async Task Proxy_ClientGoneWhileItsBodyIsReadForTheLookup_FinishesTheExchangeAndReturnsItsBuffers()
    {
        var calls = 0;
        await using var upstream = await TestUpstream.StartAsync(context =>
        {
            Interlocked.Increment(ref calls);
            return Task.CompletedTask;
        });
        var options = Options();
        using var cache = NewCache(options);
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, options: options, shortCircuit: cache);

        // A body-keyed lookup reads the body ahead; the client sends a part of it and goes away.
        using (var tcp = new System.Net.Sockets.TcpClient())
        {
            await tcp.ConnectAsync(proxy.Server.Address.Host, proxy.Server.Address.Port);
            var stream = tcp.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                "POST /api/quote HTTP/1.1\r\nHost: quotes\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"from\":"));
            await OtlpReceiver.WaitUntilAsync(() => proxy.Metrics.CapturesActive.Value == 1);
        }

        var exchange = await proxy.Exporter.NextAsync();
        await OtlpReceiver.WaitUntilAsync(() => proxy.Metrics.CapturesActive.Value == 0, describe: () => $"{proxy.Metrics.CapturesActive.Value} captures still hold buffers");

        Assert.Equal(ExchangeOutcome.Cancelled, exchange.Outcome);
        Assert.Equal("/api/quote", exchange.Path);
        Assert.StartsWith("request not completed", exchange.Error, StringComparison.Ordinal);
        Assert.Equal(0, calls);
    }

    [Fact]
    public async Task ExtProc_RecordedResponse_IsSentAsImmediateResponseWithTheHitHeader()
    {
        var options = Options();
        using var cache = NewCache(options);
        await using var host = await ExtProcTestHost.StartAsync(options, cache);
        const string Body = "{\"rate\":1.1}";

        using (var first = host.Open())
        {
            var headersAnswer = await first.SendAsync(Envoy.RequestHeaders("GET", "/api/rates", true));
            Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, headersAnswer.ResponseCase);
            await first.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/json"), ("content-length", "12")));
            await first.SendAsync(Envoy.ResponseBody(Body, true));
            await first.CompleteAsync();
        }

        var missed = await host.Exporter.NextAsync();
        using var second = host.Open();
        var answer = await second.SendAsync(Envoy.RequestHeaders("GET", "/api/rates", true));
        await second.CompleteAsync();
        var hit = await host.Exporter.NextAsync();

        Assert.Equal(CacheOutcome.Miss, missed.Cache);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ImmediateResponse, answer.ResponseCase);
        Assert.Equal(200, (int)answer.ImmediateResponse.Status.Code);
        Assert.Equal(Body, answer.ImmediateResponse.Body.ToStringUtf8());
        var set = answer.ImmediateResponse.Headers.SetHeaders.Select(h => (h.Header.Key, h.Header.RawValue.ToStringUtf8())).ToList();
        Assert.Contains(("x-sp-cache", "hit"), set);
        Assert.Contains(("content-type", "application/json"), set);
        Assert.DoesNotContain(set, h => h.Key == "content-length");
        Assert.Equal(CacheOutcome.Hit, hit.Cache);
    }

    [Fact]
    public async Task ExtProc_BufferedPostBody_IsPartOfTheKey()
    {
        var options = Options();
        using var cache = NewCache(options);
        await using var host = await ExtProcTestHost.StartAsync(options, cache);

        using (var first = host.Open())
        {
            await first.SendAsync(Envoy.RequestHeaders("POST", "/api/quote", false, ("content-type", "application/json")));
            await first.SendAsync(Envoy.RequestBody("""{"from":"EUR"}""", true));
            await first.SendAsync(Envoy.ResponseHeaders(200, false, ("content-length", "2")));
            await first.SendAsync(Envoy.ResponseBody("42", true));
            await first.CompleteAsync();
        }

        await host.Exporter.NextAsync();

        using var other = host.Open();
        await other.SendAsync(Envoy.RequestHeaders("POST", "/api/quote", false, ("content-type", "application/json")));
        var otherAnswer = await other.SendAsync(Envoy.RequestBody("""{"from":"USD"}""", true));
        using var same = host.Open();
        await same.SendAsync(Envoy.RequestHeaders("POST", "/api/quote", false, ("content-type", "application/json")));
        var sameAnswer = await same.SendAsync(Envoy.RequestBody("""{ "from" : "EUR" }""", true));

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, otherAnswer.ResponseCase);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ImmediateResponse, sameAnswer.ResponseCase);
        Assert.Equal("42", sameAnswer.ImmediateResponse.Body.ToStringUtf8());
    }
}
