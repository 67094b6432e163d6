using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Backend.Replay;

namespace SpIstio.Backend.Tests.Replay;

/// <summary>
/// Values carried between steps: what one recording teaches (bindings, fresh values), and a
/// replay against a real Kestrel service that issues new ids, ETags and cookies on every run and
/// refuses requests that send back the recorded ones.
/// </summary>
public sealed class ReplayCarryTests : IAsyncLifetime
{
    private const string RecordedId = "ORD7Q2X9";
    private const string RecordedEtag = "\"v1-ab12cd\"";
    private const string RecordedSid = "S3ss10nXyz";
    private const string Card = "4242424242424242";
    private static readonly DateTimeOffset RecordedAt = new(2026, 1, 5, 10, 0, 0, TimeSpan.Zero);

    private WebApplication _service = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddRoutingCore();
        _service = builder.Build();
        var orders = new ConcurrentDictionary<string, (string Sid, string Etag)>(StringComparer.Ordinal);

        // Every order gets a new id, session cookie and ETag; later calls must send those back.
        _service.MapPost("/api/orders", (HttpContext context) =>
        {
            var id = "ORD" + Guid.NewGuid().ToString("N")[..5].ToUpperInvariant();
            var sid = Guid.NewGuid().ToString("N")[..10];
            var etag = "\"v1-" + Guid.NewGuid().ToString("N")[..6] + "\"";
            orders[id] = (sid, etag);
            context.Response.Headers.ETag = etag;
            context.Response.Headers.SetCookie = "sid=" + sid + "; Path=/";
            return Results.Text(Order(id, "open", DateTimeOffset.UtcNow, "+447700900123"), "application/json", statusCode: 201);
        });
        _service.MapGet("/api/orders/{id}", (string id, HttpContext context) =>
            orders.TryGetValue(id, out var order) && context.Request.Headers.Cookie.ToString() == "sid=" + order.Sid
                ? Results.Text(Order(id, "open", null, "+447700900123"), "application/json")
                : Results.Text("{\"error\":\"unknown order or session\"}", "application/json", statusCode: 404));
        _service.MapPut("/api/orders/{id}/items", async (string id, HttpContext context) =>
        {
            var body = JsonNode.Parse(await new StreamReader(context.Request.Body).ReadToEndAsync())!;
            if (!orders.TryGetValue(id, out var order) || context.Request.Headers.IfMatch.ToString() != order.Etag
                || (string?)body["orderId"] != id || context.Request.Query["order"] != id)
            {
                return Results.Text("{\"error\":\"precondition failed\"}", "application/json", statusCode: 412);
            }

            return (string?)body["card"] == Card
                ? Results.Text(Order(id, "paid", null, "+447700900123"), "application/json")
                : Results.Text("{\"error\":\"card declined\"}", "application/json", statusCode: 402);
        });
        await _service.StartAsync();
        var address = _service.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _client = new HttpClient(new SocketsHttpHandler { UseCookies = false, UseProxy = false }) { BaseAddress = new Uri(address + "/") };
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _service.DisposeAsync();
    }

    [Fact]
    public void Learn_FindsWhereEachIssuedValueWasSentBack_AndTheFreshFields()
    {
        var learned = SessionValues.Learn(Recording(), [], []);

        Assert.Equal(
            [
                "$.order.id of step 1 → path segment 3 of steps 2 and 3; query order of step 3; $.orderId of step 3",
                "header:etag of step 1 → header if-match of step 3",
                "cookie:sid of step 1 → header cookie of step 2",
            ],
            learned.Bindings.Select(b => b.ToString()));
        // Issued by step 1 and shaped like generated values: the id and the creation time. Not
        // "open" (a word), not the phone (the client sent it).
        Assert.Equal(["$.order.createdAt", "$.order.id"], learned.Fresh[1].Order(StringComparer.Ordinal));
        Assert.False(learned.Fresh.ContainsKey(2));
        Assert.Empty(learned.Problems);
    }

    [Fact]
    public void Learn_GivenBindingsOverrideOrDrop_AndBadOnesAreNamed()
    {
        var learned = SessionValues.Learn(Recording(), ["1:$.order.id=2", "1:$.nope", "9:$.order.id"], ["cookie:sid", "$.missing"]);

        Assert.Equal(
            [
                "header:etag of step 1 → header if-match of step 3",
                "$.order.id of step 1 → path segment 3 of step 2 (given)",
            ],
            learned.Bindings.Select(b => b.ToString()));
        Assert.Equal(3, learned.Problems.Count);
        Assert.Contains(learned.Problems, p => p.StartsWith("--bind 1:$.nope: the recorded response of step 1 has no value at $.nope", StringComparison.Ordinal));
        Assert.Contains(learned.Problems, p => p.StartsWith("--bind 9:$.order.id: expected STEP:SOURCE", StringComparison.Ordinal));
        Assert.Contains("--no-bind $.missing: no binding was found there", learned.Problems);
    }

    [Theory]
    [InlineData("HLD-3F9A0C12BE", true)]
    [InlineData("pay_9c1e44a0b2d37f61", true)]
    [InlineData("23C", true)]
    [InlineData("482913", true)]
    [InlineData("0b9f6a3e-59c4-4d5e-9a53-1f2b0e0c7d11", true)]
    [InlineData("2026-01-05T10:15:00+00:00", true)]
    [InlineData("2026-03-01T06:05:00+00:00", false)]
    [InlineData("SP102-LHR-JFK-20260301", false)]
    [InlineData("SP 102", false)]
    [InlineData("held", false)]
    [InlineData("EUR", false)]
    public void LooksGenerated_ByShape(string value, bool generated)
    {
        Assert.Equal(generated, SessionValues.LooksGenerated(value, RecordedAt));
    }

    [Fact]
    public async Task Replay_CarriesIdEtagAndCookie_PutsBackTheRedactedCard_ZeroRegressions()
    {
        var values = ReplayValues.Parse("values:\n  $.card: \"4000000000000002\"\nwhen_status:\n  200:\n    $.card: \"" + Card + "\"\n", "replay.yaml");
        var runner = new ReplayRunner(_client, new ReplayOptions { Values = values });

        var report = await runner.RunAsync("s-orders", "orders", Recording(), null, CancellationToken.None);

        Assert.True(report.Regressions + report.Errors == 0, string.Join('\n', report.Results.SelectMany(r => r.Differences.Append(r.Error ?? ""))));
        Assert.Equal(3, report.Passed);
        // The id is carried (the target's own is what later steps send); the creation time is noise.
        Assert.Equal(["$.order.id"], report.Results[0].Carried);
        Assert.Equal(["$.order.createdAt"], report.Results[0].IgnoredNoise);
        Assert.Equal(["$.order.id"], report.Results[1].Carried);
        Assert.Equal(["$.card"], report.Results[2].ValuesApplied);
        Assert.Empty(report.Warnings);
        Assert.Equal("orders", report.Service);
    }

    [Fact]
    public async Task Replay_WithoutCarrying_TheLaterStepsRegress_AndARedactedValueIsWarnedAbout()
    {
        var runner = new ReplayRunner(_client, new ReplayOptions { NoBind = ["$.order.id", "header:etag", "cookie:sid"] });

        var report = await runner.RunAsync("s-orders", Recording(), null, CancellationToken.None);

        Assert.Equal(2, report.Regressions);
        Assert.Contains("status: 200 → 404", report.Results[1].Differences);
        Assert.Contains("status: 200 → 412", report.Results[2].Differences);
        Assert.Contains("step 3: $.card was redacted in the recording and the values file (--values) has no value for it; the redaction marker was sent", report.Warnings);
    }

    [Fact]
    public void TextReport_PrintsTextAsText()
    {
        var difference = new JsonDiff([]).Compare(JsonNode.Parse("""{"phone":"+447700900123"}"""), JsonNode.Parse("""{"phone":"+007700900123"}""")).Single();
        var report = new ReplayReport
        {
            SessionId = "s",
            Target = "http://127.0.0.1:1/",
            Results = [new ReplayResult { Index = 1, Name = "GET /", TraceId = "t", SpanId = "s", Verdict = ReplayVerdict.Regression, Differences = ["body " + difference.Path + ": " + difference.Expected + " → " + difference.Actual] }],
        };
        using var text = new StringWriter(CultureInfo.InvariantCulture);

        ReplayReports.WriteText(report, text);

        Assert.Contains("body $.phone: \"+447700900123\" → \"+007700900123\"", text.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("\\u002B", text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ValuesFile_ListsEveryProblemAtOnce()
    {
        var error = Assert.Throws<ReplayException>(() => ReplayValues.Parse("values:\n  card: x\n  query:: y\nwhen_status:\n  nine: {}\nbind: 3\nextra: 1\n", "replay.yaml"));

        Assert.Contains("'card' is not a location", error.Message, StringComparison.Ordinal);
        Assert.Contains("'query:' is not a location", error.Message, StringComparison.Ordinal);
        Assert.Contains("when_status: 'nine' is not an HTTP status", error.Message, StringComparison.Ordinal);
        Assert.Contains("bind: expected a list", error.Message, StringComparison.Ordinal);
        Assert.Contains("'extra' is not a key of a values file", error.Message, StringComparison.Ordinal);
    }

    private static string Order(string id, string status, DateTimeOffset? createdAt, string phone) =>
        "{\"order\":{\"id\":\"" + id + "\",\"status\":\"" + status + "\",\"phone\":\"" + phone + "\""
        + (createdAt is { } at ? ",\"createdAt\":\"" + at.ToString("O", CultureInfo.InvariantCulture) + "\"" : "") + "}}";

    /// <summary>A recorded session: create an order (id, ETag and cookie issued), read it, pay it with a card redaction removed.</summary>
    private static List<RecordedExchange> Recording() =>
    [
        new RecordedExchange
        {
            TraceId = "t1", SpanId = "s1", Method = "POST", Path = "/api/orders", StartTime = RecordedAt,
            RequestHeaders = [new("content-type", "application/json")],
            RequestBody = Encoding.UTF8.GetBytes("""{"sku":"A-1","phone":"+447700900123"}"""),
            Status = 201,
            ResponseHeaders = [new("content-type", "application/json"), new("etag", RecordedEtag), new("set-cookie", "sid=" + RecordedSid + "; Path=/")],
            ResponseBody = Encoding.UTF8.GetBytes(Order(RecordedId, "open", RecordedAt, "+447700900123")),
        },
        new RecordedExchange
        {
            TraceId = "t2", SpanId = "s2", Method = "GET", Path = "/api/orders/" + RecordedId, StartTime = RecordedAt.AddSeconds(1),
            RequestHeaders = [new("cookie", "sid=" + RecordedSid)],
            Status = 200,
            ResponseHeaders = [new("content-type", "application/json")],
            ResponseBody = Encoding.UTF8.GetBytes(Order(RecordedId, "open", null, "+447700900123")),
        },
        new RecordedExchange
        {
            TraceId = "t3", SpanId = "s3", Method = "PUT", Path = "/api/orders/" + RecordedId + "/items", Query = "order=" + RecordedId, StartTime = RecordedAt.AddSeconds(2),
            RequestHeaders = [new("content-type", "application/json"), new("if-match", RecordedEtag)],
            RequestBody = Encoding.UTF8.GetBytes("{\"orderId\":\"" + RecordedId + "\",\"card\":\"[REDACTED]\"}"),
            Status = 200,
            ResponseHeaders = [new("content-type", "application/json")],
            ResponseBody = Encoding.UTF8.GetBytes(Order(RecordedId, "paid", null, "+447700900123")),
        },
    ];
}
