using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Tests.Replay;

/// <summary>
/// Replay jobs over the API on a real backend: an admin starts one, the backend's worker replays the
/// recorded session against a real Kestrel target (carrying the order id it issues), and the job's
/// recorded status, progress and report are what the test waits on and reads. Tenants never see
/// each other's jobs.
/// </summary>
public sealed class ReplayJobsApiTests : IAsyncLifetime
{
    public const string Session = "order-journey-1";

    private readonly RecordingLoggerProvider _logs = new();
    private BackendFixture _backend = null!;
    private string _acmeAdmin = "";
    private ReplayTarget _target = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync(loggerFactory: LoggerFactory.Create(b => b.AddProvider(_logs)));
        _acmeAdmin = (await KeyAdministration.CreateKeyAsync(_backend.Store, "acme", KeyScope.Admin | KeyScope.Read, null, TimeProvider.System, CancellationToken.None)).Key;
        _target = await ReplayTarget.StartAsync();
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, ReplayTarget.RecordedJourney(Session).ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync()
    {
        await _target.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task AnAdminStartsAJob_TheWorkerReplaysTheSession_AndTheReportIsStored()
    {
        using var start = await SendAsync(HttpMethod.Post, "/api/replays", _acmeAdmin, new { sessionId = Session, target = _target.Address.ToString() });
        Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
        var id = (await start.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        Assert.Equal("/api/replays/" + id, start.Headers.Location?.OriginalString);

        var job = await WaitForEndAsync(id, _backend.AcmeReadOnlyKey);

        Assert.Equal("done", job.GetProperty("status").GetString());
        Assert.Equal(2, job.GetProperty("total").GetInt32());
        Assert.Equal(2, job.GetProperty("completed").GetInt32());
        Assert.Equal(1, job.GetProperty("passed").GetInt32());
        Assert.Equal(1, job.GetProperty("regressions").GetInt32());
        var report = job.GetProperty("report");
        var steps = report.GetProperty("results").EnumerateArray().ToList();
        // Step 2 was sent with the id the target issued at step 1, found and carried by the engine.
        Assert.Equal("GET /orders/" + _target.IssuedIds.Single(), steps[1].GetProperty("name").GetString());
        Assert.Equal("Regression", steps[1].GetProperty("verdict").GetString());
        Assert.Contains(steps[1].GetProperty("differences").EnumerateArray(), d => d.GetString() == "body $.status: \"paid\" → \"open\"");
        Assert.Contains("$.id", steps[0].GetProperty("carried").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal(200, steps[1].GetProperty("replayed").GetProperty("status").GetInt32());
        Assert.Contains("\"open\"", steps[1].GetProperty("replayed").GetProperty("body").GetString(), StringComparison.Ordinal);
        Assert.Equal(2, _target.Requests);
    }

    [Fact]
    public async Task StartingNeedsAdmin_BadRequestsNameTheField_AndTenantsNeverSeeEachOthersJobs()
    {
        using (var readOnly = await SendAsync(HttpMethod.Post, "/api/replays", _backend.AcmeReadOnlyKey, new { sessionId = Session, target = _target.Address.ToString() }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, readOnly.StatusCode);
        }

        using (var bad = await SendAsync(HttpMethod.Post, "/api/replays", _acmeAdmin, new { sessionId = "no-such-session", target = "ftp://x" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            var detail = (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!;
            Assert.Contains("target: 'ftp://x' is not an http or https URL", detail, StringComparison.Ordinal);
            Assert.Contains("session: no session 'no-such-session'", detail, StringComparison.Ordinal);
        }

        using var start = await SendAsync(HttpMethod.Post, "/api/replays", _acmeAdmin, new { sessionId = Session, target = _target.Address.ToString() });
        var id = (await start.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await WaitForEndAsync(id, _backend.AcmeKey);

        using (var other = await SendAsync(HttpMethod.Get, "/api/replays/" + id, _backend.GlobexKey, null))
        {
            Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        }

        using (var list = await SendAsync(HttpMethod.Get, "/api/replays", _backend.GlobexKey, null))
        {
            Assert.Empty((await list.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items").EnumerateArray());
        }

        // Globex has no session of that id either: its key cannot replay acme's recording.
        var globexAdmin = (await KeyAdministration.CreateKeyAsync(_backend.Store, "globex", KeyScope.Admin, null, TimeProvider.System, CancellationToken.None)).Key;
        using var probe = await SendAsync(HttpMethod.Post, "/api/replays", globexAdmin, new { sessionId = Session, target = _target.Address.ToString() });
        Assert.Equal(HttpStatusCode.BadRequest, probe.StatusCode);
    }

    private async Task<JsonElement> WaitForEndAsync(long id, string key)
    {
        // Waits on the job's recorded status, read back through the API as a user would.
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            using var response = await SendAsync(HttpMethod.Get, "/api/replays/" + id, key, null);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var job = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (job.GetProperty("status").GetString() is "done" or "failed")
            {
                return job;
            }

            if (patience.IsCancellationRequested)
            {
                Assert.Fail("job " + id + " is still " + job + "; log: " + string.Join("\n", _logs.Entries.Where(e => e.Level >= LogLevel.Information).Select(e => e.Category + ": " + e.Message + " " + e.Exception)));
            }

            await Task.Delay(50, CancellationToken.None);
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string key, object? body)
    {
        using var request = _backend.Request(method, path, key);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        return await _backend.Http.SendAsync(request);
    }
}

/// <summary>
/// A real Kestrel service to replay against: <c>POST /orders</c> issues a new order id on every
/// call, <c>GET /orders/{id}</c> answers only for an id it issued (status "open"). The recorded
/// journey's GET said "paid", so a replay finds exactly one regression.
/// </summary>
public sealed class ReplayTarget : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private ReplayTarget(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public ConcurrentQueue<string> IssuedIds { get; } = new();

    /// <summary>Requests received so far.</summary>
    public int Requests => Volatile.Read(ref _requests);

    public static async Task<ReplayTarget> StartAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddRoutingCore();
        var app = builder.Build();
        ReplayTarget? target = null;
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref target!._requests);
            await next(context);
        });
        app.MapPost("/orders", () =>
        {
            var id = "ord-" + Random.Shared.Next(100_000, 999_999);
            target!.IssuedIds.Enqueue(id);
            return Results.Text("{\"id\":\"" + id + "\",\"status\":\"open\"}", "application/json", statusCode: 201);
        });
        app.MapGet("/orders/{id}", (string id) => target!.IssuedIds.Contains(id)
            ? Results.Text("{\"id\":\"" + id + "\",\"status\":\"open\"}", "application/json")
            : Results.Text("{\"error\":\"unknown order\"}", "application/json", statusCode: 404));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        target = new ReplayTarget(app, new Uri(address + "/"));
        return target;
    }

    /// <summary>The recorded journey of service "shop": an order made (ord-482913), then read back as "paid".</summary>
    public static SpIstio.Core.Otlp.Proto.Collector.Trace.ExportTraceServiceRequest RecordedJourney(string session)
    {
        var start = DateTimeOffset.UtcNow.AddMinutes(-5);
        var trace = ActivityTraceId.CreateRandom();
        var create = Inbound(session, trace, "POST", "/orders", 201, "{\"id\":\"ord-482913\",\"status\":\"open\"}", start);
        create.RequestHeaders.Add("content-type", "application/json");
        var body = Encoding.UTF8.GetBytes("{\"item\":\"book\"}");
        create.RequestBody = new CapturedBody(body, body.Length, false, BodyKind.Text, "application/json");
        var read = Inbound(session, trace, "GET", "/orders/ord-482913", 200, "{\"id\":\"ord-482913\",\"status\":\"paid\"}", start.AddSeconds(1));
        return ExchangeSpanMapper.ToExportRequest([create, read], null, "test");
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    private static Exchange Inbound(string session, ActivityTraceId trace, string method, string path, int status, string response, DateTimeOffset start)
    {
        var exchange = new Exchange
        {
            ServiceName = "shop",
            Direction = TrafficDirection.Inbound,
            Method = method,
            Authority = "shop:8080",
            Path = path,
            StatusCode = status,
            TraceId = trace,
            SpanId = ActivitySpanId.CreateRandom(),
            StartTime = start,
            EndTime = start.AddMilliseconds(20),
            SessionId = session,
        };
        var bytes = Encoding.UTF8.GetBytes(response);
        exchange.ResponseHeaders.Add("content-type", "application/json");
        exchange.ResponseBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        return exchange;
    }
}
