using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Tests.Api;

/// <summary>The query API over spans ingested through OTLP/HTTP: shapes, parameters, tenant isolation.</summary>
public sealed class QueryApiTests : IAsyncLifetime
{
    private static readonly DateTimeOffset _t0 = DateTimeOffset.UtcNow.AddMinutes(-30);
    private readonly ActivityTraceId _trace1 = ActivityTraceId.CreateRandom();
    private readonly ActivityTraceId _trace2 = ActivityTraceId.CreateRandom();
    private readonly ActivitySpanId _root = ActivitySpanId.CreateRandom();
    private readonly ActivitySpanId _call = ActivitySpanId.CreateRandom();
    private readonly ActivitySpanId _server = ActivitySpanId.CreateRandom();
    private readonly ActivitySpanId _later = ActivitySpanId.CreateRandom();
    private BackendFixture _backend = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        // Session "s-book": frontend receives POST /api/bookings, calls flights (GET /api/flights/42), which answers 500.
        var exchanges = new List<Exchange>
        {
            Make("frontend", TrafficDirection.Inbound, "POST", "/api/bookings", 201, _trace1, _root, default, 0, 40, "s-book", "{\"seat\":\"12A\"}"),
            Make("frontend", TrafficDirection.Outbound, "GET", "/api/flights/42", 500, _trace1, _call, _root, 5, 20, "s-book", null, authority: "flights:8080"),
            Make("flights", TrafficDirection.Inbound, "GET", "/api/flights/42", 500, _trace1, _server, _call, 6, 18, "s-book", null, authority: "flights:8080"),
            Make("frontend", TrafficDirection.Inbound, "GET", "/api/status", 200, _trace2, _later, default, 60, 2, "s-later", null),
        };
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, ExchangeSpanMapper.ToExportRequest(exchanges, null, "1").ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task Sessions_NewestFirst_WithCountsServicesErrorsAndDuration()
    {
        var page = await GetJsonAsync("/api/sessions");

        var items = page.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["s-later", "s-book"], items.Select(i => i.GetProperty("sessionId").GetString()));
        var book = items[1];
        Assert.Equal(3, book.GetProperty("spanCount").GetInt32());
        Assert.Equal(1, book.GetProperty("traceCount").GetInt32());
        Assert.Equal(2, book.GetProperty("errorCount").GetInt32());
        Assert.Equal(["flights", "frontend"], book.GetProperty("services").EnumerateArray().Select(s => s.GetString()).Order());
        Assert.Equal(40, book.GetProperty("durationMs").GetDouble());
        Assert.Equal(JsonValueKind.Null, page.GetProperty("nextCursor").ValueKind);
    }

    [Fact]
    public async Task Sessions_CursorPagination_WalksEveryPageOnce()
    {
        var first = await GetJsonAsync("/api/sessions?limit=1");
        var cursor = first.GetProperty("nextCursor").GetString();
        var second = await GetJsonAsync("/api/sessions?limit=1&cursor=" + Uri.EscapeDataString(cursor!));

        Assert.Equal("s-later", first.GetProperty("items")[0].GetProperty("sessionId").GetString());
        Assert.Equal("s-book", second.GetProperty("items")[0].GetProperty("sessionId").GetString());
        Assert.Equal(JsonValueKind.Null, second.GetProperty("nextCursor").ValueKind);
    }

    [Fact]
    public async Task Sessions_Filters_ByServiceStatusAndText()
    {
        var flights = await GetJsonAsync("/api/sessions?service=flights");
        var errors = await GetJsonAsync("/api/sessions?status=5xx");
        await _backend.SearchableAsync();
        var text = await GetJsonAsync("/api/sessions?q=12A");

        Assert.Equal(["s-book"], flights.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("sessionId").GetString()));
        Assert.Equal(["s-book"], errors.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("sessionId").GetString()));
        Assert.Equal(["s-book"], text.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("sessionId").GetString()));
    }

    [Fact]
    public async Task SessionDetail_ListsTracesAndSpansInTimeOrder()
    {
        var session = await GetJsonAsync("/api/sessions/s-book");

        Assert.Equal([_trace1.ToHexString()], session.GetProperty("traceIds").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(
            [_root.ToHexString(), _call.ToHexString(), _server.ToHexString()],
            session.GetProperty("spans").EnumerateArray().Select(s => s.GetProperty("spanId").GetString()));
    }

    [Fact]
    public async Task TraceView_AndItsCompatRoute_GiveWaterfallRowsWithDepthAndOffsets()
    {
        var trace = await GetJsonAsync("/api/traces/" + _trace1.ToHexString());
        var compat = await GetJsonAsync("/api/view?traceId=" + _trace1.ToHexString().ToUpperInvariant());

        Assert.Equal(trace.GetRawText(), compat.GetRawText());
        Assert.Equal([_root.ToHexString()], trace.GetProperty("rootSpanIds").EnumerateArray().Select(r => r.GetString()));
        var rows = trace.GetProperty("spans").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], rows.Select(r => r.GetProperty("depth").GetInt32()));
        Assert.Equal([0.0, 5.0, 6.0], rows.Select(r => r.GetProperty("offsetMs").GetDouble()));
        Assert.Equal(40, trace.GetProperty("durationMs").GetDouble());
    }

    [Fact]
    public async Task SpanDetail_AndItsCompatRoute_ShowHeadersAndDecodedBodies()
    {
        var path = $"/api/spans/{_trace1.ToHexString()}/{_root.ToHexString()}";
        var detail = await GetJsonAsync(path);
        var compat = await GetJsonAsync($"/api/detail?traceId={_trace1.ToHexString()}&spanId={_root.ToHexString()}");

        Assert.Equal(detail.GetRawText(), compat.GetRawText());
        Assert.Equal("{\"seat\":\"12A\"}", detail.GetProperty("requestBody").GetProperty("content").GetString());
        Assert.Equal("text", detail.GetProperty("requestBody").GetProperty("encoding").GetString());
        Assert.Equal("application/json", detail.GetProperty("requestBody").GetProperty("contentType").GetString());
        Assert.Equal("x-trace-me", detail.GetProperty("requestHeaders")[0][0].GetString());
        Assert.Equal("/api/bookings", detail.GetProperty("route").GetString());
    }

    [Fact]
    public async Task Services_GiveTheCallerCalleeEdgeWithErrorRate()
    {
        var graph = await GetJsonAsync("/api/services");

        Assert.Equal(["flights", "frontend"], graph.GetProperty("services").EnumerateArray().Select(s => s.GetString()));
        var edge = Assert.Single(graph.GetProperty("edges").EnumerateArray());
        Assert.Equal("frontend", edge.GetProperty("caller").GetString());
        Assert.Equal("flights", edge.GetProperty("callee").GetString());
        Assert.Equal(1, edge.GetProperty("calls").GetInt64());
        Assert.Equal(1.0, edge.GetProperty("errorRate").GetDouble());
    }

    [Fact]
    public async Task Endpoints_GroupByMethodAndRouteTemplate()
    {
        var endpoints = await GetJsonAsync("/api/endpoints?service=flights");

        var item = Assert.Single(endpoints.GetProperty("items").EnumerateArray());
        Assert.Equal("GET", item.GetProperty("method").GetString());
        Assert.Equal("/api/flights/{id}", item.GetProperty("route").GetString());
        Assert.Equal(1, item.GetProperty("errors").GetInt64());
    }

    [Theory]
    [InlineData("/api/sessions?limit=0", "limit")]
    [InlineData("/api/sessions?limit=501", "limit")]
    [InlineData("/api/sessions?status=9xx", "status")]
    [InlineData("/api/sessions?from=yesterday", "from")]
    [InlineData("/api/sessions?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z", "from")]
    [InlineData("/api/sessions?cursor=not-a-cursor", "cursor")]
    [InlineData("/api/traces/xyz", "traceId")]
    [InlineData("/api/view", "traceId")]
    [InlineData("/api/spans/0123456789abcdef0123456789abcdef/zz", "spanId")]
    [InlineData("/api/detail?traceId=0123456789abcdef0123456789abcdef", "spanId")]
    [InlineData("/api/services?to=soon", "to")]
    [InlineData("/api/endpoints?from=-", "from")]
    public async Task BadParameters_Are400ProblemsNamingTheParameter(string path, string parameter)
    {
        using var response = await _backend.GetAsync(path, _backend.AcmeKey);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(parameter, problem.RootElement.GetProperty("parameter").GetString());
        Assert.StartsWith("'" + parameter + "' ", problem.RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnotherTenant_SeesNoneOfThisTenantsData_OnAnyRoute()
    {
        var key = _backend.GlobexKey;
        var t = _trace1.ToHexString();
        var s = _root.ToHexString();

        Assert.Empty((await GetJsonAsync("/api/sessions", key)).GetProperty("items").EnumerateArray());
        Assert.Empty((await GetJsonAsync("/api/services", key)).GetProperty("edges").EnumerateArray());
        Assert.Empty((await GetJsonAsync("/api/endpoints", key)).GetProperty("items").EnumerateArray());
        foreach (var path in new[] { "/api/sessions/s-book", "/api/traces/" + t, "/api/view?traceId=" + t, $"/api/spans/{t}/{s}", $"/api/detail?traceId={t}&spanId={s}" })
        {
            using var response = await _backend.GetAsync(path, key);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, path + " answered " + response.StatusCode);
        }
    }

    [Fact]
    public async Task DeletingASession_RemovesItsSpansRollUpAndSearchEntries_OfThisTenantOnly()
    {
        var admin = (await KeyAdministration.CreateKeyAsync(_backend.Store, "acme", KeyScope.Admin, null, TimeProvider.System, CancellationToken.None)).Key;
        var globexAdmin = (await KeyAdministration.CreateKeyAsync(_backend.Store, "globex", KeyScope.Admin, null, TimeProvider.System, CancellationToken.None)).Key;
        // Globex has a session of the same name and one acme does not have.
        var globexTrace = ActivityTraceId.CreateRandom();
        var globex = new List<Exchange>
        {
            Make("frontend", TrafficDirection.Inbound, "POST", "/api/bookings", 201, globexTrace, ActivitySpanId.CreateRandom(), default, 0, 5, "s-book", "{\"seat\":\"12A\"}"),
        };
        using (var ingest = await _backend.PostAsync("/v1/traces", _backend.GlobexKey, ExchangeSpanMapper.ToExportRequest(globex, null, "1").ToByteArray(), "application/x-protobuf"))
        {
            Assert.Equal(HttpStatusCode.OK, ingest.StatusCode);
        }

        // The cross-tenant probe: globex's admin key cannot reach acme's session, nor delete acme's copy of a shared name.
        Assert.Equal(HttpStatusCode.NotFound, await DeleteAsync("/api/sessions/s-later", globexAdmin));
        Assert.Equal(HttpStatusCode.NoContent, await DeleteAsync("/api/sessions/s-book", globexAdmin));
        Assert.Equal(3, (await GetJsonAsync("/api/sessions/s-book")).GetProperty("spans").GetArrayLength());
        Assert.Equal(HttpStatusCode.NotFound, (await _backend.GetAsync("/api/traces/" + globexTrace.ToHexString(), _backend.GlobexKey)).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, await DeleteAsync("/api/sessions/s-book", admin));

        Assert.Equal(HttpStatusCode.NotFound, (await _backend.GetAsync("/api/sessions/s-book", _backend.AcmeKey)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _backend.GetAsync("/api/traces/" + _trace1.ToHexString(), _backend.AcmeKey)).StatusCode);
        Assert.Empty((await GetJsonAsync("/api/sessions?q=12A")).GetProperty("items").EnumerateArray());
        Assert.Equal(["s-later"], (await GetJsonAsync("/api/sessions")).GetProperty("items").EnumerateArray().Select(i => i.GetProperty("sessionId").GetString()));
        Assert.Equal(HttpStatusCode.NotFound, await DeleteAsync("/api/sessions/s-book", admin));
    }

    [Fact]
    public async Task DeletingASession_NeedsTheAdminScope()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, await DeleteAsync("/api/sessions/s-book", null));
        Assert.Equal(HttpStatusCode.Forbidden, await DeleteAsync("/api/sessions/s-book", _backend.AcmeReadOnlyKey));
        Assert.Equal(HttpStatusCode.Forbidden, await DeleteAsync("/api/sessions/s-book", _backend.AcmeIngestOnlyKey));
        Assert.Equal(HttpStatusCode.Forbidden, await DeleteAsync("/api/sessions/s-book", _backend.AcmeKey));

        // Refused deletes changed nothing.
        Assert.Equal(3, (await GetJsonAsync("/api/sessions/s-book")).GetProperty("spans").GetArrayLength());
    }

    private async Task<HttpStatusCode> DeleteAsync(string path, string? key)
    {
        using var request = _backend.Request(HttpMethod.Delete, path, key);
        using var response = await _backend.Http.SendAsync(request);
        return response.StatusCode;
    }

    [Theory]
    [InlineData("/api/sessions")]
    [InlineData("/api/sessions/s-book")]
    [InlineData("/api/services")]
    [InlineData("/api/endpoints")]
    [InlineData("/api/view?traceId=0123456789abcdef0123456789abcdef")]
    [InlineData("/api/detail?traceId=0123456789abcdef0123456789abcdef&spanId=0123456789abcdef")]
    public async Task Routes_NeedAKeyWithReadScope(string path)
    {
        using var none = await _backend.GetAsync(path, null);
        using var ingestOnly = await _backend.GetAsync(path, _backend.AcmeIngestOnlyKey);

        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, ingestOnly.StatusCode);
    }

    [Fact]
    public async Task OpenApiDocument_IsServedAndListsTheRoutes()
    {
        using var response = await _backend.GetAsync("/openapi/v1.json", null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var paths = document.RootElement.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains("/api/sessions", paths);
        Assert.Contains("/api/spans/{traceId}/{spanId}", paths);
        Assert.Contains("/v1/traces", paths);
    }

    [Fact]
    public async Task HealthAndReadiness_AnswerWithoutAKey()
    {
        using var health = await _backend.GetAsync("/healthz", null);
        using var ready = await _backend.GetAsync("/readyz", null);

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("ready\n", await ready.Content.ReadAsStringAsync());
    }

    private async Task<JsonElement> GetJsonAsync(string path, string? key = null)
    {
        using var response = await _backend.GetAsync(path, key ?? _backend.AcmeKey);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, path + " answered " + response.StatusCode + ": " + text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static Exchange Make(
        string service, TrafficDirection direction, string method, string path, int status, ActivityTraceId trace, ActivitySpanId span,
        ActivitySpanId parent, int startMs, int durationMs, string session, string? requestJson, string authority = "frontend:8080")
    {
        var exchange = new Exchange
        {
            ServiceName = service,
            Direction = direction,
            Method = method,
            Authority = authority,
            Path = path,
            StatusCode = status,
            TraceId = trace,
            SpanId = span,
            ParentSpanId = parent,
            StartTime = _t0.AddMilliseconds(startMs),
            EndTime = _t0.AddMilliseconds(startMs + durationMs),
            SessionId = session,
        };
        exchange.RequestHeaders.Add("x-trace-me", "1");
        if (requestJson is not null)
        {
            exchange.RequestHeaders.Add("content-type", "application/json");
            var bytes = Encoding.UTF8.GetBytes(requestJson);
            exchange.RequestBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        }

        return exchange;
    }
}
