using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Xml.Linq;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Examples.Travel;
using SpIstio.Examples.Travel.Flights;
using SpIstio.Examples.Travel.Notifications;
using SpIstio.Examples.Travel.Payments;
using SpIstio.Examples.Travel.Web;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// <c>sp replay</c> as a user runs it: a session recorded in a running <c>sp backend</c> is
/// replayed against a local service whose stock endpoint was deliberately changed.
/// </summary>
public sealed class SpReplayTests : IAsyncLifetime
{
    private const string DemoKey = "sp_demo_00000000000000000000000000000000";
    private static readonly System.Text.Json.JsonSerializerOptions Json = new(System.Text.Json.JsonSerializerDefaults.Web);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-e2e-replay-" + Guid.NewGuid().ToString("N"));
    private WebApplication _service = null!;
    private Uri _serviceAddress = null!;

    private string Store => "sqlite:" + Path.Combine(_directory, "sp.db");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddRoutingCore();
        _service = builder.Build();
        // Prices carry a generation time (different on every call: noise); carts a fresh request id
        // (ignored with --ignore); stock was changed from 5 to 4 since the recording (the regression).
        _service.MapGet("/api/price/{id}", (string id) => Results.Text(
            "{\"id\":" + id + ",\"price\":10,\"generatedAt\":\"" + DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture) + "\"}", "application/json"));
        _service.MapPost("/api/cart", () => Results.Text("{\"total\":10,\"requestId\":\"" + Guid.NewGuid() + "\"}", "application/json", statusCode: 201));
        _service.MapGet("/api/stock/{id}", () => Results.Text("{\"inStock\":true,\"count\":4}", "application/json"));
        await _service.StartAsync();
        _serviceAddress = new Uri(_service.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public async Task DisposeAsync()
    {
        await _service.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Replay_FindsTheOneRegression_IgnoresNoise_AndWritesJUnit()
    {
        var keyRun = await SpProcess.RunAsync("keys", "create", "--tenant", "acme", "--scope", "ingest,read", "--store", Store, "--create-store");
        Assert.Equal(0, keyRun.ExitCode);
        var key = keyRun.StdOut.Trim();
        await using var backend = SpChild.Start("backend", "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--store", Store);
        var line = await backend.WaitForLineAsync(l => l.StartsWith("sp backend listening on ", StringComparison.Ordinal));
        var backendUrl = line["sp backend listening on ".Length..].Split(' ')[0];
        await RecordSessionAsync(new Uri(backendUrl), key);
        var junit = Path.Combine(_directory, "junit.xml");

        var run = await SpProcess.RunAsync(
            "replay", "--session", "s-replay", "--target", _serviceAddress.ToString(), "--backend", backendUrl, "--key", key,
            "--ignore", "requestId", "--report", junit);

        Assert.True(run.ExitCode == 3, run.StdOut + run.StdErr);
        var lines = run.StdOut.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines, l => l.StartsWith('✗'));
        Assert.Contains(lines, l => l.StartsWith('✗') && l.Contains("GET /api/stock/1", StringComparison.Ordinal));
        Assert.Contains("body $.count: 5 → 4", run.StdOut, StringComparison.Ordinal);
        Assert.Equal(2, lines.Count(l => l.StartsWith('✓') && l.Contains("/api/price/1", StringComparison.Ordinal) && l.Contains("noisy fields ignored", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith('✓') && l.Contains("POST /api/cart", StringComparison.Ordinal));
        Assert.Contains("4 replayed", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("3 passed, 1 regressions", run.StdOut, StringComparison.Ordinal);
        // Without --service the session's entry service is replayed, and the report says so.
        Assert.Contains("service 'shop' received", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("(the session's entry service", run.StdOut, StringComparison.Ordinal);
        // stderr is redirected here (a pipe, as in CI): no progress bar in it.
        Assert.DoesNotContain("[#", run.StdErr, StringComparison.Ordinal);

        var suite = XDocument.Load(junit).Root!.Element("testsuite")!;
        Assert.Equal("4", suite.Attribute("tests")!.Value);
        Assert.Equal("1", suite.Attribute("failures")!.Value);
        var failed = Assert.Single(suite.Elements("testcase"), c => c.Element("failure") is not null);
        Assert.Contains("/api/stock/1", failed.Attribute("name")!.Value, StringComparison.Ordinal);

        var accepted = await SpProcess.RunAsync(
            "replay", "--session", "s-replay", "--target", _serviceAddress.ToString(), "--backend", backendUrl, "--key", key,
            "--ignore", "requestId", "--ignore", "$.count");
        Assert.True(accepted.ExitCode == 0, accepted.StdOut + accepted.StdErr);

        // A values file with mistakes, and a binding that cannot be: exit 2 naming each one.
        var badValues = Path.Combine(_directory, "bad-replay.yaml");
        await File.WriteAllTextAsync(badValues, "values:\n  card: x\nwhen_status:\n  nine: {}\n");
        var bad = await SpProcess.RunAsync("replay", "--session", "s-replay", "--target", _serviceAddress.ToString(), "--backend", backendUrl, "--key", key, "--values", badValues);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("'card' is not a location", bad.StdErr, StringComparison.Ordinal);
        Assert.Contains("when_status: 'nine' is not an HTTP status", bad.StdErr, StringComparison.Ordinal);
        var badBind = await SpProcess.RunAsync("replay", "--session", "s-replay", "--target", _serviceAddress.ToString(), "--backend", backendUrl, "--key", key, "--bind", "9:$.count");
        Assert.Equal(2, badBind.ExitCode);
        Assert.Contains("--bind 9:$.count: expected STEP:SOURCE", badBind.StdErr, StringComparison.Ordinal);

        var unknown = await SpProcess.RunAsync("replay", "--session", "nope", "--target", _serviceAddress.ToString(), "--backend", backendUrl, "--key", key);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("session 'nope' was not found", unknown.StdErr, StringComparison.Ordinal);
    }

    /// <summary>
    /// The issue's acceptance: <c>sp demo</c> records real journeys; replayed against freshly
    /// started travel services (all four live, new state, new booking references, holds and
    /// payments), the booking, declined and sold-out journeys pass with the booking reference
    /// carried between steps and the test cards from the example's values file; a web that
    /// changed one response field is reported with that one regression.
    /// </summary>
    [Fact]
    public async Task Replay_DemoJourneys_AgainstFreshTravelServices_CarriesValues_AndFindsTheOneChangedField()
    {
        await using var demo = SpChild.Start("demo", "--port", "0", "--journeys", "6", "--rate", "6", "--data", Path.Combine(_directory, "demo"));
        var backendUrl = (await demo.WaitForLineAsync("Trace View: "))["Trace View: ".Length..].Trim();
        using var api = new HttpClient { BaseAddress = new Uri(backendUrl) };
        api.DefaultRequestHeaders.Add("x-public-key", DemoKey);

        // Journeys 0–5: 3 is declined, 5 sold out, the rest book. A session is replayable once
        // web's last answer of the journey is stored.
        var bookedSessions = await WaitForSessionsAsync(api, 4, web => web.Count == 4 && web[^1].Path!.EndsWith("/confirm", StringComparison.Ordinal) && web[^1].StatusCode == 200);
        var booked = bookedSessions[0];
        var declined = await WaitForSessionAsync(api, web => web.Count == 3 && web[^1].StatusCode == 402);
        var soldOut = await WaitForSessionAsync(api, web => web.Count == 2 && web[^1].StatusCode == 409);
        var values = Path.Combine(AppContext.BaseDirectory, "travel-replay.yaml");

        await using (var fresh = await FreshTravel.StartAsync(changePhone: false))
        {
            foreach (var session in new[] { booked, declined, soldOut })
            {
                var run = await SpProcess.RunAsync(
                    "replay", "--session", session, "--target", fresh.Web.ToString(), "--backend", backendUrl, "--key", DemoKey, "--values", values);

                Assert.True(run.ExitCode == 0, run.StdOut + run.StdErr);
                Assert.Contains("service 'web' received", run.StdOut, StringComparison.Ordinal);
                Assert.Contains("(the session's entry service", run.StdOut, StringComparison.Ordinal);
                Assert.Contains(" 0 regressions, 0 errors", run.StdOut, StringComparison.Ordinal);
                Assert.DoesNotContain("warning:", run.StdOut, StringComparison.Ordinal);
            }

            var bookedRun = await SpProcess.RunAsync(
                "replay", "--session", booked, "--target", fresh.Web.ToString(), "--backend", backendUrl, "--key", DemoKey, "--values", values);
            Assert.True(bookedRun.ExitCode == 0, bookedRun.StdOut + bookedRun.StdErr);
            Assert.Contains("4 replayed", bookedRun.StdOut, StringComparison.Ordinal);
            Assert.Contains("$.bookingReference of step 2 → path segment 3 of steps 3 and 4", bookedRun.StdOut, StringComparison.Ordinal);
            Assert.Contains("from the values file: $.card.number, $.card.cvc", bookedRun.StdOut, StringComparison.Ordinal);
            Assert.Contains("$.hold.holdId", bookedRun.StdOut, StringComparison.Ordinal);
            Assert.Contains("$.payment.paymentId", bookedRun.StdOut, StringComparison.Ordinal);

            // Learned from three of the four bookings: the reference is carried in every one of them.
            var learnedRun = await SpProcess.RunAsync(
                "replay", "--session", booked, "--learn-from", bookedSessions[1] + "," + bookedSessions[2], "--target", fresh.Web.ToString(), "--backend", backendUrl, "--key", DemoKey, "--values", values);
            Assert.True(learnedRun.ExitCode == 0, learnedRun.StdOut + learnedRun.StdErr);
            Assert.Contains("learning from 3 recordings of the journey: " + booked + ", " + bookedSessions[1] + ", " + bookedSessions[2], learnedRun.StdOut, StringComparison.Ordinal);
            Assert.Contains("$.bookingReference of step 2 → path segment 3 of steps 3 and 4 (seen in 3 of 3 recordings)", learnedRun.StdOut, StringComparison.Ordinal);
            Assert.Contains("4 passed, 0 regressions, 0 errors", learnedRun.StdOut, StringComparison.Ordinal);

            // Found without naming them: the other bookings (declined and sold-out journeys have other steps).
            var autoRun = await SpProcess.RunAsync(
                "replay", "--session", booked, "--learn-from", "auto", "--target", fresh.Web.ToString(), "--backend", backendUrl, "--key", DemoKey, "--values", values);
            Assert.True(autoRun.ExitCode == 0, autoRun.StdOut + autoRun.StdErr);
            Assert.Contains("learning from " + (bookedSessions.Count) + " recordings of the journey: " + booked, autoRun.StdOut, StringComparison.Ordinal);
            Assert.DoesNotContain(declined, autoRun.StdOut, StringComparison.Ordinal);
            Assert.Contains("(seen in " + bookedSessions.Count + " of " + bookedSessions.Count + " recordings)", autoRun.StdOut, StringComparison.Ordinal);

            // A declined journey is not a recording of the booking journey: named, exit 2.
            var mixed = await SpProcess.RunAsync(
                "replay", "--session", booked, "--learn-from", declined, "--target", fresh.Web.ToString(), "--backend", backendUrl, "--key", DemoKey, "--values", values);
            Assert.Equal(2, mixed.ExitCode);
            Assert.Contains("session " + declined + " is not a recording of the same journey: it has 3 steps, the replayed session 4", mixed.StdErr, StringComparison.Ordinal);
            // The agent redacted the authorization code ("authorization…" names a secret): not compared, and said so.
            Assert.Contains(
                bookedRun.StdOut.Split('\n', StringSplitOptions.TrimEntries),
                l => l.StartsWith("not compared (redacted in the recording): ", StringComparison.Ordinal) && l.Contains("$.payment.authorizationCode", StringComparison.Ordinal));
        }

        await using (var changed = await FreshTravel.StartAsync(changePhone: true))
        {
            var run = await SpProcess.RunAsync(
                "replay", "--session", booked, "--target", changed.Web.ToString(), "--backend", backendUrl, "--key", DemoKey, "--values", values);

            Assert.True(run.ExitCode == 3, run.StdOut + run.StdErr);
            var lines = run.StdOut.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var regression = Assert.Single(lines, l => l.StartsWith('✗'));
            Assert.Contains("POST /api/bookings →", regression, StringComparison.Ordinal);
            Assert.Contains("3 passed, 1 regressions, 0 errors", run.StdOut, StringComparison.Ordinal);
            // The one difference, as text: "+Margaret…", not "\u002BMargaret…". (The phone number, the
            // first choice, is personal data: the agent masks it, so it is not compared.)
            Assert.Contains(lines, l => l.StartsWith("body $.passengerName: \"", StringComparison.Ordinal) && l.Contains("→ \"+", StringComparison.Ordinal));
            Assert.DoesNotContain("\\u002B", run.StdOut, StringComparison.Ordinal);
        }

        Assert.Equal(0, await demo.TerminateAsync());
    }

    /// <summary>The id of a demo session whose web inbound exchanges, in order, match.</summary>
    private static async Task<string> WaitForSessionAsync(HttpClient api, Func<List<SpanRow>, bool> match) =>
        (await WaitForSessionsAsync(api, 1, match))[0];

    /// <summary>The ids of <paramref name="count"/> demo sessions whose web inbound exchanges, in order, match.</summary>
    private static async Task<List<string>> WaitForSessionsAsync(HttpClient api, int count, Func<List<SpanRow>, bool> match)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var page = await api.GetFromJsonAsync<SessionPage>("/api/sessions?limit=100", Json);
            var found = new List<string>();
            foreach (var row in page!.Items)
            {
                var detail = await api.GetFromJsonAsync<SessionDetail>("/api/sessions/" + row.SessionId, Json);
                var web = detail!.Spans.Where(s => s.ServiceName == "web" && s.Direction == "inbound" && s.StatusCode is not null).OrderBy(s => s.StartTime).ToList();
                if (web.Count > 0 && match(web))
                {
                    found.Add(row.SessionId);
                }
            }

            if (found.Count >= count)
            {
                return found;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("no matching demo session within 60 s among " + page.Items.Count + " sessions");
            }

            await Task.Delay(250);
        }
    }

    private static async Task RecordSessionAsync(Uri backend, string key)
    {
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        var trace = ActivityTraceId.CreateRandom();
        var exchanges = new List<Exchange>
        {
            Inbound(trace, start, "GET", "/api/price/1", null, 200, "{\"id\":1,\"price\":10,\"generatedAt\":\"2025-01-01T00:00:00Z\"}"),
            Inbound(trace, start.AddSeconds(1), "POST", "/api/cart", "{\"item\":1}", 201, "{\"total\":10,\"requestId\":\"r-1\"}"),
            Inbound(trace, start.AddSeconds(2), "GET", "/api/price/1", null, 200, "{\"generatedAt\":\"2025-01-01T00:00:05Z\",\"price\":10,\"id\":1}"),
            Inbound(trace, start.AddSeconds(3), "GET", "/api/stock/1", null, 200, "{\"inStock\":true,\"count\":5}"),
        };
        // What the service itself called is not replayed: only what its clients sent it.
        var outbound = Inbound(trace, start.AddSeconds(1.5), "GET", "/inventory", null, 200, "{}");
        outbound.Direction = TrafficDirection.Outbound;
        exchanges.Add(outbound);

        using var http = new HttpClient { BaseAddress = backend };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = new ByteArrayContent(ExchangeSpanMapper.ToExportRequest(exchanges, null, "1").ToByteArray()) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        request.Headers.Add("x-public-key", key);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static Exchange Inbound(ActivityTraceId trace, DateTimeOffset start, string method, string path, string? requestBody, int status, string responseBody)
    {
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Inbound,
            ServiceName = "shop",
            Method = method,
            Authority = "shop.example",
            Path = path,
            StatusCode = status,
            StartTime = start,
            EndTime = start.AddMilliseconds(5),
            TraceId = trace,
            SpanId = ActivitySpanId.CreateRandom(),
            SessionId = "s-replay",
        };
        exchange.RequestHeaders.Add("accept", "application/json");
        exchange.RequestHeaders.Add("traceparent", "00-" + trace.ToHexString() + "-" + exchange.SpanId.ToHexString() + "-01");
        if (requestBody is not null)
        {
            exchange.RequestHeaders.Add("content-type", "application/json");
            var bytes = Encoding.UTF8.GetBytes(requestBody);
            exchange.RequestBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        }

        exchange.ResponseHeaders.Add("content-type", "application/json; charset=utf-8");
        var response = Encoding.UTF8.GetBytes(responseBody);
        exchange.ResponseBody = new CapturedBody(response, response.Length, false, BodyKind.Text, "application/json");
        return exchange;
    }

    private sealed record SessionPage(List<SessionRow> Items);

    private sealed record SessionRow(string SessionId);

    private sealed record SessionDetail(string SessionId, List<SpanRow> Spans);

    private sealed record SpanRow(string ServiceName, string? Direction, string? Method, string? Path, int? StatusCode, DateTimeOffset StartTime);

    /// <summary>
    /// The four travel services started fresh in this process, calling each other directly (no
    /// capture): new state, so every booking reference, hold and payment id is new. With
    /// <c>changePhone</c>, web answers a booking with the passenger name changed — the deliberate
    /// regression, made by a middleware in front of the real endpoint.
    /// </summary>
    private sealed class FreshTravel : IAsyncDisposable
    {
        private readonly List<WebApplication> _apps = [];

        public Uri Web { get; private set; } = null!;

        public static async Task<FreshTravel> StartAsync(bool changePhone)
        {
            var travel = new FreshTravel();
            var notifications = await travel.StartAsync(NotificationsService.Build(new TravelServiceOptions()));
            var flights = await travel.StartAsync(FlightsService.Build(new TravelServiceOptions()));
            var payments = await travel.StartAsync(PaymentsService.Build(new TravelServiceOptions { NotificationsUrl = notifications }));
            var web = WebService.Build(new TravelServiceOptions { FlightsUrl = flights, PaymentsUrl = payments, NotificationsUrl = notifications });
            if (changePhone)
            {
                web.Use(async (context, next) =>
                {
                    if (context.Request.Method != "POST" || context.Request.Path != "/api/bookings")
                    {
                        await next(context);
                        return;
                    }

                    var original = context.Response.Body;
                    using var buffer = new MemoryStream();
                    context.Response.Body = buffer;
                    await next(context);
                    context.Response.Body = original;
                    var changed = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(buffer.ToArray()).Replace("\"passengerName\":\"", "\"passengerName\":\"+", StringComparison.Ordinal));
                    context.Response.ContentLength = changed.Length;
                    await original.WriteAsync(changed);
                });
            }

            travel.Web = await travel.StartAsync(web);
            return travel;
        }

        public async ValueTask DisposeAsync()
        {
            for (var i = _apps.Count - 1; i >= 0; i--)
            {
                await _apps[i].DisposeAsync();
            }
        }

        private async Task<Uri> StartAsync(WebApplication app)
        {
            _apps.Add(app);
            await app.StartAsync();
            return TravelHost.AddressOf(app);
        }
    }
}
