using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenQA.Selenium;
using SpIstio.Backend.Storage;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Ui.Tests.Infrastructure;

namespace SpIstio.Ui.Tests;

/// <summary>
/// The Mocks pages, "Replay this session" as a backend job, and the side-by-side diffs, in headless
/// Chromium against a real backend; the other tenant's mocks and jobs never show.
/// </summary>
public sealed class MocksReplayDiffBrowserTests(SeededBackend backend) : IClassFixture<SeededBackend>, IDisposable
{
    private readonly Browser browser = new();

    private Uri Base => backend.Address;

    public void Dispose() => browser.Dispose();

    [Fact]
    public async Task Mocks_UseAsMockOpensTheMock_ThenEditFilterExpireAndDelete()
    {
        browser.SignIn(Base, backend.AcmeAdminKey);
        browser.Go(Base, "/traces/" + backend.CheckoutTrace + "/spans/" + backend.PaymentServer);
        browser.ClickToNavigate(By.Id("use-as-mock"));

        var id = browser.Text(By.Id("mock-id"));
        Assert.Equal("/mocks/" + id, browser.CurrentPath);
        Assert.Equal("GET payments:8080/api/payments/ord-5521", browser.Text(By.Id("mock-matcher")));
        Assert.Equal("live", browser.Text(By.Id("mock-state")));

        // Edit the response: another status and body.
        Replace(By.Id("m-status"), "503");
        Replace(By.Id("m-body"), "{\"retry\":true}");
        browser.ClickToNavigate(By.Id("save-mock"));
        Assert.Equal("Changes saved.", browser.Text(By.Id("mock-notice")));
        var stored = await MockAsync(long.Parse(id, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(503, stored.GetProperty("status").GetInt32());
        Assert.Equal("{\"retry\":true}", stored.GetProperty("body").GetString());
        browser.Screenshot("30-mock-edited");

        // Listed under its service, filtered out under another.
        browser.Go(Base, "/mocks?service=payments");
        Assert.Contains(browser.FindAll(By.CssSelector("#mocks tbody tr")), r => r.GetAttribute("data-mock-id") == id);
        browser.Go(Base, "/mocks?service=nobody");
        Assert.NotNull(browser.Find(By.Id("mocks-empty")));

        // Expired: still listed, but not among the live ones.
        browser.Go(Base, "/mocks/" + id);
        browser.ClickToNavigate(By.Id("expire-mock"));
        Assert.Equal("expired", browser.Text(By.Id("mock-state")));
        browser.Go(Base, "/mocks?service=payments&live=true");
        Assert.DoesNotContain(browser.FindAll(By.CssSelector("#mocks tbody tr")), r => r.GetAttribute("data-mock-id") == id);
        browser.Go(Base, "/mocks?service=payments");
        Assert.Contains(browser.FindAll(By.CssSelector("#mocks tbody tr")), r => r.GetAttribute("data-mock-id") == id);

        browser.Go(Base, "/mocks/" + id);
        browser.ClickToNavigate(By.Id("delete-mock"));
        Assert.Equal("/mocks", browser.CurrentPath);
        Assert.Equal("Mock " + id + " deleted.", browser.Text(By.Id("mocks-notice")));
        Assert.DoesNotContain(browser.FindAll(By.CssSelector("#mocks tbody tr")), r => r.GetAttribute("data-mock-id") == id);
    }

    [Fact]
    public async Task Mocks_NewMockAndHarImport_AndAReadOnlyKeyCanLookButNotChange()
    {
        browser.SignIn(Base, backend.AcmeAdminKey);
        browser.Go(Base, "/mocks");
        browser.ClickToNavigate(By.Id("new-mock"));
        Replace(By.Id("m-path"), "/api/health");
        Replace(By.Id("m-service"), "handmade");
        Replace(By.Id("m-body"), "{\"ok\":true}");
        browser.ClickToNavigate(By.Id("save-mock"));
        Assert.Equal("Mock created.", browser.Text(By.Id("mock-notice")));
        var id = browser.Text(By.Id("mock-id"));

        // A bad field comes back as a sentence naming it, and nothing is stored.
        browser.Go(Base, "/mocks/new");
        Replace(By.Id("m-path"), "no-slash");
        browser.ClickToNavigate(By.Id("save-mock"));
        Assert.Equal("The request path must start with '/'.", browser.Text(By.Id("mock-problem")));

        var har = Path.Combine(browser.Downloads, "import.har");
        await File.WriteAllTextAsync(har, """
            {"log":{"version":"1.2","creator":{"name":"test","version":"1"},"entries":[
              {"startedDateTime":"2026-01-01T00:00:00Z","time":1,"request":{"method":"GET","url":"http://rates.example/eur","httpVersion":"HTTP/1.1","headers":[],"queryString":[],"cookies":[],"headersSize":-1,"bodySize":0},
               "response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","headers":[{"name":"content-type","value":"application/json"}],"cookies":[],"content":{"size":9,"mimeType":"application/json","text":"{\"eur\":1}"},"redirectURL":"","headersSize":-1,"bodySize":9},"cache":{},"timings":{"send":0,"wait":1,"receive":0}},
              {"startedDateTime":"2026-01-01T00:00:01Z","time":1,"request":{"method":"GET","url":"http://rates.example/usd","httpVersion":"HTTP/1.1","headers":[],"queryString":[],"cookies":[],"headersSize":-1,"bodySize":0},
               "response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","headers":[],"cookies":[],"content":{"size":9,"mimeType":"application/json","text":"{\"usd\":1}"},"redirectURL":"","headersSize":-1,"bodySize":9},"cache":{},"timings":{"send":0,"wait":1,"receive":0}}]}}
            """);
        browser.Go(Base, "/mocks");
        browser.Find(By.Id("har-file")).SendKeys(har);
        Replace(By.Id("har-service"), "rates");
        browser.ClickToNavigate(By.Id("har-import"));
        Assert.Equal("2 mock(s) imported from the HAR file.", browser.Text(By.Id("mocks-notice")));
        browser.Go(Base, "/mocks?service=rates");
        Assert.Equal(2, browser.FindAll(By.CssSelector("#mocks tbody tr")).Count);
        browser.Screenshot("31-mocks-imported");

        // A key that may only read sees the mock but changes nothing.
        using var reader = new Browser();
        reader.SignIn(Base, backend.AcmeReadKey);
        reader.Go(Base, "/mocks/" + id);
        reader.ClickToNavigate(By.Id("expire-mock"));
        Assert.StartsWith("This needs an admin key: sp keys create --tenant acme --scope admin", reader.Text(By.Id("mock-problem")), StringComparison.Ordinal);
        Assert.Equal("live", reader.Text(By.Id("mock-state")));
        Assert.False((await MockAsync(long.Parse(id, System.Globalization.CultureInfo.InvariantCulture))).TryGetProperty("expiresAt", out _));
    }

    [Fact]
    public async Task AnotherTenantsMocksAndReplays_AreNeverShown()
    {
        var globex = (await backend.Server.Store.FindTenantAsync("globex", CancellationToken.None))!.Id;
        var now = DateTimeOffset.UtcNow;
        var mock = await backend.Server.Store.AddMockAsync(globex, new MockRecord
        {
            Service = "ledger", Method = "GET", Path = SeededBackend.GlobexPath, MatchKey = "globex-key", CreatedAt = now, UpdatedAt = now,
        }, CancellationToken.None);
        var job = await ((IReplayJobStore)backend.Server.Store).AddReplayJobAsync(globex, new ReplayJob
        {
            SessionId = SeededBackend.GlobexSession, Target = "http://127.0.0.1:9/", CreatedAt = now,
        }, CancellationToken.None);

        browser.SignIn(Base, backend.AcmeReadKey);
        browser.Go(Base, "/mocks");
        Assert.DoesNotContain(SeededBackend.GlobexPath, browser.Find(By.TagName("main")).Text, StringComparison.Ordinal);
        browser.Go(Base, "/mocks/" + mock.Id);
        Assert.Contains("belongs to another tenant's key", browser.Text(By.Id("mock-problem")), StringComparison.Ordinal);
        browser.Go(Base, "/replays");
        Assert.Empty(browser.FindAll(By.CssSelector("#replays tr[data-job-id='" + job.Id + "']")));
        browser.Go(Base, "/replays/" + job.Id);
        Assert.Contains("No replay " + job.Id + " is stored for this tenant", browser.Text(By.Id("replay-problem")), StringComparison.Ordinal);
        browser.Go(Base, "/diff?a=" + backend.CheckoutTrace + "/" + backend.CheckoutRoot + "&b=" + backend.GlobexTrace + "/" + backend.GlobexSpan);
        Assert.StartsWith("Exchange B is not stored for this tenant", browser.Text(By.Id("diff-problem")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReplayThisSession_RunsAsAJob_ShowsItsReport_AndTheStepSideBySideWithNoiseGreyed()
    {
        await using var target = await CheckoutTarget.StartAsync();
        browser.SignIn(Base, backend.AcmeAdminKey);
        browser.Go(Base, "/sessions/" + SeededBackend.CheckoutSession);
        browser.Click(By.CssSelector("#replay-start summary"));
        browser.Find(By.Id("replay-target")).SendKeys(target.Address.ToString());
        browser.ClickToNavigate(By.Id("replay-go"));

        Assert.StartsWith("/replays/", browser.CurrentPath, StringComparison.Ordinal);
        // The page reloads itself while the job runs; this waits on the job's recorded status it shows.
        browser.WaitFor(d => d.FindElements(By.Id("replay-status")).FirstOrDefault()?.Text is "done" or "failed", "the replay job to end");
        Assert.Equal("done", browser.Text(By.Id("replay-status")));
        Assert.Equal("1", browser.Text(By.Id("replay-passed")));
        Assert.Equal("0", browser.Text(By.Id("replay-regressions")));
        Assert.Equal(1, target.Requests);
        browser.Screenshot("32-replay-job");

        browser.ClickToNavigate(By.CssSelector("#replay-steps tr[data-step='1'] a.step-diff"));
        Assert.Equal("passed", browser.Text(By.Id("step-verdict")));
        Assert.Contains("diff-noise", RowClass("$.orderId"), StringComparison.Ordinal);
        Assert.Contains("diff-same", RowClass("$.status"), StringComparison.Ordinal);
        Assert.Contains("diff-same", RowClass("status"), StringComparison.Ordinal);
        Assert.Equal("ord-5521", browser.Text(By.CssSelector("#diff tr[data-field='$.orderId'] td:nth-of-type(1)")));
        Assert.Equal(target.IssuedIds.Single(), browser.Text(By.CssSelector("#diff tr[data-field='$.orderId'] td:nth-of-type(2)")));
        browser.Screenshot("33-replay-step-diff");

        browser.Go(Base, "/replays");
        Assert.NotEmpty(browser.FindAll(By.CssSelector("#replays tbody tr")));
    }

    [Fact]
    public async Task Diff_OfTwoExchanges_FromTheExchangePage_HighlightsChangesAndGreysGeneratedValues()
    {
        var (a, b) = await IngestTwoOrdersAsync();
        browser.SignIn(Base, backend.AcmeReadKey);
        browser.Go(Base, "/traces/" + a.Replace("/", "/spans/", StringComparison.Ordinal));
        browser.Find(By.Id("compare-with")).SendKeys(b);
        browser.ClickToNavigate(By.Id("compare"));

        Assert.Equal("/diff", browser.CurrentPath);
        Assert.Contains("diff-noise", RowClass("$.id"), StringComparison.Ordinal);
        Assert.Contains("diff-differs", RowClass("$.total"), StringComparison.Ordinal);
        Assert.Contains("diff-same", RowClass("$.state"), StringComparison.Ordinal);
        Assert.Contains("diff-noise", RowClass("header x-request-id"), StringComparison.Ordinal);
        browser.Screenshot("34-diff-two-exchanges");
    }

    private string RowClass(string field) =>
        browser.Find(By.CssSelector("#diff tr[data-field='" + field + "']")).GetAttribute("class") ?? "";

    private void Replace(By by, string text)
    {
        var input = browser.Find(by);
        input.Clear();
        input.SendKeys(text);
    }

    private async Task<JsonElement> MockAsync(long id)
    {
        using var client = new HttpClient { BaseAddress = Base };
        client.DefaultRequestHeaders.Add("x-public-key", backend.AcmeAdminKey);
        using var response = await client.GetAsync("/api/mocks/" + id);
        response.EnsureSuccessStatusCode();
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.Clone();
    }

    /// <summary>Two answers of one order endpoint: different generated ids and request ids, a different total, the same state.</summary>
    private async Task<(string A, string B)> IngestTwoOrdersAsync()
    {
        var trace = ActivityTraceId.CreateRandom();
        var at = DateTimeOffset.UtcNow.AddMinutes(-1);
        Exchange Order(string id, int total, string requestId, int offsetMs)
        {
            var exchange = new Exchange
            {
                ServiceName = "orders", Direction = TrafficDirection.Inbound, Method = "GET", Authority = "orders:80", Path = "/orders/latest", StatusCode = 200,
                TraceId = trace, SpanId = ActivitySpanId.CreateRandom(), StartTime = at.AddMilliseconds(offsetMs), EndTime = at.AddMilliseconds(offsetMs + 5),
            };
            var body = Encoding.UTF8.GetBytes("{\"id\":\"" + id + "\",\"state\":\"open\",\"total\":" + total + "}");
            exchange.ResponseHeaders.Add("content-type", "application/json");
            exchange.ResponseHeaders.Add("x-request-id", requestId);
            exchange.ResponseBody = new CapturedBody(body, body.Length, false, BodyKind.Text, "application/json");
            return exchange;
        }

        var first = Order("ord-100231", 10, "req-1", 0);
        var second = Order("ord-200982", 12, "req-2", 100);
        using var http = new HttpClient { BaseAddress = Base };
        using var content = new ByteArrayContent(ExchangeSpanMapper.ToExportRequest([first, second], null, "test").ToByteArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = content };
        request.Headers.Add("x-public-key", backend.AcmeIngestKey);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (trace + "/" + first.SpanId, trace + "/" + second.SpanId);
    }

    /// <summary>A real Kestrel stand-in for the shop: every checkout gets a new order id.</summary>
    private sealed class CheckoutTarget : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private int _requests;

        private CheckoutTarget(WebApplication app) => _app = app;

        public Uri Address { get; private set; } = null!;

        public System.Collections.Concurrent.ConcurrentQueue<string> IssuedIds { get; } = new();

        public int Requests => Volatile.Read(ref _requests);

        public static async Task<CheckoutTarget> StartAsync()
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
            builder.Services.AddRoutingCore();
            var app = builder.Build();
            var target = new CheckoutTarget(app);
            app.Use(async (context, next) =>
            {
                Interlocked.Increment(ref target._requests);
                await next(context);
            });
            app.MapPost("/api/checkout", () =>
            {
                var id = "ord-" + Random.Shared.Next(10_000, 99_999);
                target.IssuedIds.Enqueue(id);
                return Results.Text("{\"orderId\":\"" + id + "\",\"status\":\"pending-payment\"}", "application/json", statusCode: 201);
            });
            await app.StartAsync();
            target.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
            return target;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}
