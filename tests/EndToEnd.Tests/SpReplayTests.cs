using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
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

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// <c>sp replay</c> as a user runs it: a session recorded in a running <c>sp backend</c> is
/// replayed against a local service whose stock endpoint was deliberately changed.
/// </summary>
public sealed class SpReplayTests : IAsyncLifetime
{
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
        Assert.Contains("[##############################] 4/4", run.StdErr, StringComparison.Ordinal);

        var suite = XDocument.Load(junit).Root!.Element("testsuite")!;
        Assert.Equal("4", suite.Attribute("tests")!.Value);
        Assert.Equal("1", suite.Attribute("failures")!.Value);
        var failed = Assert.Single(suite.Elements("testcase"), c => c.Element("failure") is not null);
        Assert.Contains("/api/stock/1", failed.Attribute("name")!.Value, StringComparison.Ordinal);

        var accepted = await SpProcess.RunAsync(
            "replay", "--session", "s-replay", "--target", _serviceAddress.ToString(), "--backend", backendUrl, "--key", key,
            "--ignore", "requestId", "--ignore", "$.count");
        Assert.True(accepted.ExitCode == 0, accepted.StdOut + accepted.StdErr);

        var unknown = await SpProcess.RunAsync("replay", "--session", "nope", "--target", _serviceAddress.ToString(), "--backend", backendUrl, "--key", key);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("session 'nope' was not found", unknown.StdErr, StringComparison.Ordinal);
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
}
