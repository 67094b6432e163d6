using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Otlp.Proto.Resource;
using SpIstio.Core.Otlp.Proto.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Backend.Tests.Api;

/// <summary>
/// <c>GET /api/traces</c> over traces from a plain OpenTelemetry SDK (no session ids): every filter,
/// newest first, and cursor pages that list each trace exactly once.
/// </summary>
public sealed class TraceSearchApiTests : IAsyncLifetime
{
    private static readonly DateTimeOffset s_t0 = DateTimeOffset.UtcNow.AddMinutes(-20);

    // Oldest first: (trace, service, span name, route, status, duration ms, environment, start minute).
    private readonly List<(string TraceId, string Service, string Name, string? Route, int? Status, int DurationMs, string Environment, int Minute)> _traces = [];
    private BackendFixture _backend = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        Add("orders", "GET /orders/{orderId}", "/orders/{orderId}", 200, 12, "prod", 0);
        Add("orders", "GET /orders/{orderId}", "/orders/{orderId}", 503, 900, "prod", 1);
        Add("payments", "POST /payments", "/payments", 402, 40, "staging", 2);
        Add("payments", "charge", null, null, 250, "prod", 3);
        Add("orders", "GET /orders/{orderId}", "/orders/{orderId}", 200, 30, "staging", 4);

        var request = new ExportTraceServiceRequest();
        foreach (var t in _traces)
        {
            request.ResourceSpans.Add(Resource(t.Service, t.Environment, Server(t.TraceId, t.Name, t.Route, t.Status, t.DurationMs, t.Minute)));
        }

        // A trace with two matching spans far apart in time: listed once, at its newer one.
        var twice = ActivityTraceId.CreateRandom().ToHexString();
        _traces.Add((twice, "batch", "tick", null, null, 5, "prod", 6));
        request.ResourceSpans.Add(Resource("batch", "prod", Server(twice, "tick", null, null, 5, 6), Server(twice, "tick", null, null, 5, 5)));

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request.ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task NoFilters_ListsEveryTrace_NewestFirst_WithoutSessions()
    {
        var items = await SearchAsync("");

        Assert.Equal(_traces.OrderByDescending(t => t.Minute).Select(t => t.TraceId), items.Select(i => i.GetProperty("traceId").GetString()));
        Assert.All(items, i => Assert.Equal(JsonValueKind.Null, i.GetProperty("sessionId").ValueKind));
        var slow = items.Single(i => i.GetProperty("traceId").GetString() == _traces[1].TraceId);
        Assert.Equal("orders", slow.GetProperty("rootService").GetString());
        Assert.Equal("/orders/{orderId}", slow.GetProperty("rootRoute").GetString());
        Assert.Equal(503, slow.GetProperty("rootStatusCode").GetInt32());
        Assert.Equal(1, slow.GetProperty("errorCount").GetInt32());
        Assert.Equal(900, slow.GetProperty("durationMs").GetDouble());
    }

    [Theory]
    [InlineData("service=payments", new[] { 3, 2 })]
    [InlineData("operation=charge", new[] { 3 })]
    [InlineData("route=/orders/{orderId}", new[] { 4, 1, 0 })]
    [InlineData("route=/orders/{id}", new[] { 4, 1, 0 })]
    [InlineData("route=/orders", new int[0])]
    [InlineData("status=error", new[] { 1 })]
    [InlineData("status=client_error", new[] { 2 })]
    [InlineData("status=5xx", new[] { 1 })]
    [InlineData("status=ok", new[] { 5, 4, 3, 0 })]
    [InlineData("minDuration=100ms", new[] { 3, 1 })]
    [InlineData("minDuration=0.2s&maxDuration=300", new[] { 3 })]
    [InlineData("maxDuration=12ms", new[] { 5, 0 })]
    [InlineData("attr.deployment.environment=staging", new[] { 4, 2 })]
    [InlineData("attr.app.attempt=2", new[] { 1 })]
    [InlineData("attr.app.cached=true&service=orders", new[] { 4, 0 })]
    [InlineData("service=orders&status=error&minDuration=500ms", new[] { 1 })]
    public async Task Filters_SelectTheMatchingTraces(string filter, int[] expected)
    {
        var items = await SearchAsync(filter);

        Assert.Equal(expected.Select(i => _traces[i].TraceId), items.Select(i => i.GetProperty("traceId").GetString()));
    }

    [Fact]
    public async Task TimeRange_SelectsBySpanStart()
    {
        var from = s_t0.AddMinutes(2).ToUnixTimeMilliseconds();
        var to = s_t0.AddMinutes(4).ToUnixTimeMilliseconds();

        var items = await SearchAsync("from=" + from + "&to=" + to);

        Assert.Equal([_traces[3].TraceId, _traces[2].TraceId], items.Select(i => i.GetProperty("traceId").GetString()));
    }

    [Fact]
    public async Task CursorPages_ListEveryTraceOnce_InOrder()
    {
        var seen = new List<string>();
        string? cursor = null;
        do
        {
            var page = await GetAsync("/api/traces?limit=1" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor)));
            seen.AddRange(page.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("traceId").GetString()!));
            cursor = page.GetProperty("nextCursor").GetString();
            Assert.True(seen.Count <= _traces.Count + 1, "pages do not end");
        }
        while (cursor is not null);

        Assert.Equal(_traces.OrderByDescending(t => t.Minute).Select(t => t.TraceId), seen);
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("status=broken", "status")]
    [InlineData("minDuration=fast", "minDuration")]
    [InlineData("minDuration=2s&maxDuration=1s", "minDuration")]
    [InlineData("from=yesterday", "from")]
    [InlineData("cursor=bm90LWEtY3Vyc29y", "cursor")]
    [InlineData("attr.=x", "attr.")]
    public async Task BadParameters_AreNamed(string query, string parameter)
    {
        using var response = await _backend.GetAsync("/api/traces?" + query, _backend.AcmeKey);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(parameter, JsonDocument.Parse(body).RootElement.GetProperty("parameter").GetString());
    }

    [Fact]
    public async Task OtherTenant_SeesNothing()
    {
        using var response = await _backend.GetAsync("/api/traces", _backend.GlobexKey);
        var page = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Empty(page.GetProperty("items").EnumerateArray());
    }

    private void Add(string service, string name, string? route, int? status, int durationMs, string environment, int minute) =>
        _traces.Add((ActivityTraceId.CreateRandom().ToHexString(), service, name, route, status, durationMs, environment, minute));

    private async Task<List<JsonElement>> SearchAsync(string query) =>
        [.. (await GetAsync("/api/traces?" + query)).GetProperty("items").EnumerateArray()];

    private async Task<JsonElement> GetAsync(string path)
    {
        using var response = await _backend.GetAsync(path, _backend.AcmeKey);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, path + ": " + body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static ResourceSpans Resource(string service, string environment, params OtlpSpan[] spans)
    {
        var scope = new ScopeSpans { Scope = new InstrumentationScope { Name = "OpenTelemetry.Instrumentation.AspNetCore", Version = "1.12.0" } };
        scope.Spans.Add(spans);
        return new ResourceSpans
        {
            Resource = new Resource { Attributes = { OtlpRequests.Str("service.name", service), OtlpRequests.Str("deployment.environment", environment) } },
            ScopeSpans = { scope },
        };
    }

    private static OtlpSpan Server(string traceId, string name, string? route, int? status, int durationMs, int minute)
    {
        var start = s_t0.AddMinutes(minute);
        var span = new OtlpSpan
        {
            TraceId = ByteString.CopyFrom(Convert.FromHexString(traceId)),
            SpanId = ByteString.CopyFrom(Convert.FromHexString(ActivitySpanId.CreateRandom().ToHexString())),
            Name = name,
            Kind = OtlpSpan.Types.SpanKind.Server,
            StartTimeUnixNano = OtlpRequests.Nanos(start),
            EndTimeUnixNano = OtlpRequests.Nanos(start.AddMilliseconds(durationMs)),
        };
        if (route is not null)
        {
            span.Attributes.Add(OtlpRequests.Str("http.request.method", name.Split(' ')[0]));
            span.Attributes.Add(OtlpRequests.Str("http.route", route));
            span.Attributes.Add(OtlpRequests.Str("url.path", route.Replace("{orderId}", "ord-" + minute, StringComparison.Ordinal)));
            span.Attributes.Add(new KeyValue { Key = "http.response.status_code", Value = new AnyValue { IntValue = status ?? 200 } });
        }

        span.Attributes.Add(new KeyValue { Key = "app.attempt", Value = new AnyValue { IntValue = minute + 1 } });
        span.Attributes.Add(new KeyValue { Key = "app.cached", Value = new AnyValue { BoolValue = minute % 2 == 0 } });
        return span;
    }
}
