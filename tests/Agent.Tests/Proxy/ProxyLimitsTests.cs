using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Proxy;
using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Tests.Proxy;

/// <summary>
/// The proxy lets through what Envoy lets through (60 KiB of headers, the URL within the same
/// budget), its limits and upstream timeout are configuration keys, and a timeout is a 504 naming
/// the upstream. The upstream is a real Kestrel with generous limits of its own, so every refusal
/// seen here is the proxy's.
/// </summary>
public sealed class ProxyLimitsTests
{
    [Fact]
    public async Task HeaderBlockOf40KiB_ThatKestrelsDefaultRefuses_ReachesTheUpstream()
    {
        await using var upstream = await GenerousUpstream.StartAsync();
        await using var proxy = await StartProxyAsync(upstream.Address, new ProxyOptions());
        using var request = new HttpRequestMessage(HttpMethod.Get, "/headers");
        for (var i = 0; i < 5; i++)
        {
            request.Headers.Add("x-big-" + i, new string((char)('a' + i), 8 * 1024));
        }

        using var response = await proxy.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new string('e', 8 * 1024), await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task UrlOf30KiB_ThatKestrelsDefaultRefuses_ReachesTheUpstream()
    {
        await using var upstream = await GenerousUpstream.StartAsync();
        await using var proxy = await StartProxyAsync(upstream.Address, new ProxyOptions());
        var query = new string('q', 30 * 1024);

        using var response = await proxy.Client.GetAsync("/path?" + query);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("?" + query, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task HeaderBlockOverEnvoysDefault_Is431FromTheProxy()
    {
        await using var upstream = await GenerousUpstream.StartAsync();
        await using var proxy = await StartProxyAsync(upstream.Address, new ProxyOptions());
        using var request = new HttpRequestMessage(HttpMethod.Get, "/headers");
        for (var i = 0; i < 8; i++)
        {
            request.Headers.Add("x-big-" + i, new string('h', 8 * 1024));
        }

        using var response = await proxy.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        Assert.Equal(0, upstream.Requests);
    }

    [Fact]
    public async Task ConfiguredHeaderLimit_RefusesHeadersAndUrlsOverIt()
    {
        await using var upstream = await GenerousUpstream.StartAsync();
        var limits = Load("proxy.max_request_headers_kb=16");
        await using var proxy = await StartProxyAsync(upstream.Address, limits);
        using var headers = new HttpRequestMessage(HttpMethod.Get, "/headers");
        headers.Headers.Add("x-big", new string('h', 20 * 1024));

        using var tooManyHeaderBytes = await proxy.Client.SendAsync(headers);
        using var tooLongUrl = await proxy.Client.GetAsync("/path?" + new string('q', 20 * 1024));
        using var fine = await proxy.Client.GetAsync("/path?" + new string('q', 10 * 1024));

        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, tooManyHeaderBytes.StatusCode);
        Assert.Equal(HttpStatusCode.RequestUriTooLong, tooLongUrl.StatusCode);
        Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
        Assert.Equal(1, upstream.Requests);
    }

    [Fact]
    public async Task ConfiguredHeaderCount_RefusesMoreHeaders()
    {
        await using var upstream = await GenerousUpstream.StartAsync();
        await using var proxy = await StartProxyAsync(upstream.Address, Load("proxy.max_request_headers_count=10"));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/headers");
        for (var i = 0; i < 20; i++)
        {
            request.Headers.Add("x-h-" + i, "v");
        }

        using var response = await proxy.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        Assert.Equal(0, upstream.Requests);
    }

    [Fact]
    public async Task ConfiguredBodyLimit_Is413AboveIt_AndNoLimitByDefault()
    {
        await using var upstream = await GenerousUpstream.StartAsync();
        await using var limited = await StartProxyAsync(upstream.Address, Load("proxy.max_request_body_bytes=1000"));
        await using var unlimited = await StartProxyAsync(upstream.Address, new ProxyOptions());
        var body = new string('b', 50_000);

        using var refused = await limited.Client.PostAsync("/body", new StringContent(body, Encoding.ASCII, "text/plain"));
        using var passed = await unlimited.Client.PostAsync("/body", new StringContent(body, Encoding.ASCII, "text/plain"));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, refused.StatusCode);
        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        Assert.Equal("50000", await passed.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task UpstreamThatSendsNothing_Is504NamingTheUpstream_AfterTheConfiguredTimeout()
    {
        await using var upstream = await GenerousUpstream.StartAsync();
        await using var proxy = await StartProxyAsync(upstream.Address, Load("proxy.upstream_timeout_ms=300"));

        using var response = await proxy.Client.GetAsync("/hang");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.StartsWith("sp agent proxy: upstream " + upstream.Address.GetLeftPart(UriPartial.Authority) + " timed out", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_AreEnvoys_AndTheTimeoutIsSixtySeconds()
    {
        var options = new CaptureProxyOptions { Upstream = new Uri("http://127.0.0.1:1") }.WithLimits(new ProxyOptions());

        Assert.Equal(60 * 1024, options.MaxRequestHeadersBytes);
        Assert.Equal(100, options.MaxRequestHeaderCount);
        Assert.Null(options.MaxRequestBodyBytes);
        Assert.Equal(TimeSpan.FromSeconds(60), options.ActivityTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), new CaptureProxyOptions().ActivityTimeout);
    }

    [Theory]
    [InlineData("proxy.max_request_headers_kb=0", "proxy.max_request_headers_kb: '0'")]
    [InlineData("proxy.max_request_headers_kb=9000", "proxy.max_request_headers_kb: '9000'")]
    [InlineData("proxy.upstream_timeout_ms=0", "proxy.upstream_timeout_ms: '0'")]
    [InlineData("proxy.max_request_body_bytes=-1", "proxy.max_request_body_bytes: '-1' must be 0 (no limit) or positive")]
    public void BadLimits_AreConfigurationErrorsNamingTheKey(string set, string expected)
    {
        var loaded = AgentConfigLoader.Load(null, new Dictionary<string, string?>(), [set]);

        Assert.Contains(loaded.Report.Errors, e => e.ToString().StartsWith(expected, StringComparison.Ordinal));
    }

    private static ProxyOptions Load(string set)
    {
        var loaded = AgentConfigLoader.Load(null, new Dictionary<string, string?>(), [set]);
        Assert.True(loaded.Report.IsValid, string.Join("; ", loaded.Report.Errors));
        return loaded.Options.Proxy;
    }

    private static async Task<Proxy> StartProxyAsync(Uri upstream, ProxyOptions limits)
    {
        var pipeline = new CapturePipeline(new AgentOptions(), new CollectingExporter(), new AgentMetrics(), NullLogger<CapturePipeline>.Instance);
        var options = new CaptureProxyOptions { Upstream = upstream }.WithLimits(limits);
        var server = await CaptureProxyServer.StartAsync(new ListenAddress("127.0.0.1", 0), options, pipeline, NullLoggerFactory.Instance);
        return new Proxy(server);
    }

    private sealed class Proxy(CaptureProxyServer server) : IAsyncDisposable
    {
        public HttpClient Client { get; } = new(new SocketsHttpHandler { UseProxy = false, MaxResponseHeadersLength = 1024 })
        {
            BaseAddress = server.Address,
            Timeout = TimeSpan.FromSeconds(60),
        };

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            await server.DisposeAsync();
        }
    }

    /// <summary>
    /// The proxied app: limits far above the proxy's, echoing the last header (/headers), the raw
    /// target's query (/path), the body length (/body), and never answering /hang until stopped.
    /// </summary>
    private sealed class GenerousUpstream : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private int _requests;

        private GenerousUpstream(WebApplication app) => _app = app;

        public Uri Address { get; private set; } = null!;

        public int Requests => Volatile.Read(ref _requests);

        public static async Task<GenerousUpstream> StartAsync()
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.Services.AddLogging();
            builder.WebHost.UseKestrel(k =>
            {
                k.Listen(IPAddress.Loopback, 0);
                k.Limits.MaxRequestBodySize = null;
                k.Limits.MaxRequestHeadersTotalSize = 1024 * 1024;
                k.Limits.MaxRequestLineSize = 1024 * 1024;
                k.Limits.MaxRequestHeaderCount = 1000;
            });
            var app = builder.Build();
            var upstream = new GenerousUpstream(app);
            app.Run(upstream.HandleAsync);
            await app.StartAsync();
            upstream.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            return upstream;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();

        private async Task HandleAsync(HttpContext context)
        {
            Interlocked.Increment(ref _requests);
            switch (context.Request.Path.Value)
            {
                case "/headers":
                    var last = context.Request.Headers.Where(h => h.Key.StartsWith("x-big", StringComparison.OrdinalIgnoreCase)).OrderBy(h => h.Key, StringComparer.Ordinal).LastOrDefault();
                    await context.Response.WriteAsync(last.Value.ToString());
                    break;
                case "/path":
                    await context.Response.WriteAsync(context.Request.QueryString.Value ?? "");
                    break;
                case "/body":
                    using (var copy = new MemoryStream())
                    {
                        await context.Request.Body.CopyToAsync(copy, context.RequestAborted);
                        await context.Response.WriteAsync(copy.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    }

                    break;
                case "/hang":
                    // Sends nothing until the client (the proxy) gives up or the app stops.
                    await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                    break;
                default:
                    context.Response.StatusCode = 404;
                    break;
            }
        }
    }
}
