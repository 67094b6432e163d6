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
/// One definition of error on every API (a 4xx an SDK marked ERROR is a client error, not an error),
/// routes (http.route wins; otherwise learned), and a service map of every service with rates over
/// the traffic's own time span — over spans as OpenTelemetry SDKs send them.
/// </summary>
public sealed class ErrorsRoutesAndMapTests : IAsyncLifetime
{
    private static readonly DateTimeOffset s_t0 = DateTimeOffset.UtcNow.AddMinutes(-30);
    private BackendFixture _backend = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        var web = new List<OtlpSpan>();
        var payments = new List<OtlpSpan>();
        var orders = new List<OtlpSpan>();
        var flights = new List<OtlpSpan>();

        // web → payments: one 402 (client span ERROR, as the HTTP semconv asks of clients), one 503; four minutes apart.
        foreach (var (status, minute) in new[] { (402, 0), (503, 4) })
        {
            var trace = ActivityTraceId.CreateRandom();
            var client = Http(trace, default, OtlpSpan.Types.SpanKind.Client, "POST", "/payments", null, status, minute, clientError: true);
            web.Add(client);
            payments.Add(Http(trace, client.SpanId, OtlpSpan.Types.SpanKind.Server, "POST", "/payments", "/payments", status, minute, clientError: false));
        }

        for (int i = 0; i < 12; i++)
        {
            orders.Add(Http(ActivityTraceId.CreateRandom(), default, OtlpSpan.Types.SpanKind.Server, "GET", "/orders/ord-" + i, "/orders/{orderId}", 200, 1, false));
            flights.Add(Http(ActivityTraceId.CreateRandom(), default, OtlpSpan.Types.SpanKind.Server, "POST", "/flights/SP" + i + "-X" + (char)('A' + i) + "/holds", null, 201, 2, false));
        }

        var cron = new OtlpSpan
        {
            TraceId = Bytes(ActivityTraceId.CreateRandom().ToHexString()),
            SpanId = Bytes(ActivitySpanId.CreateRandom().ToHexString()),
            Name = "nightly cleanup",
            Kind = OtlpSpan.Types.SpanKind.Internal,
            StartTimeUnixNano = OtlpRequests.Nanos(s_t0.AddMinutes(2)),
            EndTimeUnixNano = OtlpRequests.Nanos(s_t0.AddMinutes(2).AddMilliseconds(5)),
        };
        var request = new ExportTraceServiceRequest();
        request.ResourceSpans.Add(Resource("web", web));
        request.ResourceSpans.Add(Resource("payments", payments));
        request.ResourceSpans.Add(Resource("orders", orders));
        request.ResourceSpans.Add(Resource("flights", flights));
        request.ResourceSpans.Add(Resource("cron", [cron]));
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request.ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task ServiceMapAndEndpoints_AgreeOnCallsErrorsAndClientErrors()
    {
        var graph = await GetAsync("/api/services");
        var endpoints = await GetAsync("/api/endpoints?service=payments");

        var edge = Assert.Single(graph.GetProperty("edges").EnumerateArray());
        var endpoint = Assert.Single(endpoints.GetProperty("items").EnumerateArray());
        Assert.Equal(("web", "payments"), (edge.GetProperty("caller").GetString(), edge.GetProperty("callee").GetString()));
        foreach (var (edgeName, endpointName) in new[] { ("calls", "count"), ("errors", "errors"), ("clientErrors", "clientErrors") })
        {
            Assert.Equal(endpoint.GetProperty(endpointName).GetInt64(), edge.GetProperty(edgeName).GetInt64());
        }

        Assert.Equal((2, 1, 1), (edge.GetProperty("calls").GetInt64(), edge.GetProperty("errors").GetInt64(), edge.GetProperty("clientErrors").GetInt64()));
        Assert.Equal(0.5, endpoint.GetProperty("errorRate").GetDouble());
    }

    [Fact]
    public async Task TraceSearch_UsesTheSameDefinition()
    {
        var errors = await GetAsync("/api/traces?service=web&status=error");
        var clientErrors = await GetAsync("/api/traces?service=web&status=client_error");

        Assert.Single(errors.GetProperty("items").EnumerateArray());
        var client = Assert.Single(clientErrors.GetProperty("items").EnumerateArray());
        Assert.Equal(0, client.GetProperty("errorCount").GetInt32());
        Assert.Equal(2, client.GetProperty("clientErrorCount").GetInt32());
    }

    [Fact]
    public async Task ServiceMap_ShowsEveryService_WithHealth_AndRatesOverTheTrafficSpan()
    {
        var graph = await GetAsync("/api/services");

        Assert.Equal(["cron", "flights", "orders", "payments", "web"], graph.GetProperty("services").EnumerateArray().Select(s => s.GetString()));
        var nodes = graph.GetProperty("nodes").EnumerateArray().ToDictionary(n => n.GetProperty("name").GetString()!, n => n.GetProperty("health").GetString());
        Assert.Equal("failing", nodes["payments"]);
        Assert.Equal("healthy", nodes["orders"]);
        Assert.Equal("healthy", nodes["cron"]);

        // The traffic spans 4 minutes of the default 24-hour range: 2 calls are 0.5 a minute, not 2 / 1440.
        var edge = graph.GetProperty("edges")[0];
        Assert.Equal(0.5, edge.GetProperty("callsPerMinute").GetDouble(), 3);
    }

    [Fact]
    public async Task Endpoints_UseHttpRoute_AndLearnTemplatesForTheRest()
    {
        var endpoints = await GetAsync("/api/endpoints");

        var routes = endpoints.GetProperty("items").EnumerateArray()
            .Select(i => (i.GetProperty("service").GetString(), i.GetProperty("method").GetString(), i.GetProperty("route").GetString(), i.GetProperty("count").GetInt64()))
            .ToList();
        Assert.Contains(("orders", "GET", "/orders/{orderId}", 12L), routes);
        Assert.Contains(("flights", "POST", "/flights/{id}/holds", 12L), routes);
        Assert.Equal(3, routes.Count);
    }

    private async Task<JsonElement> GetAsync(string path)
    {
        using var response = await _backend.GetAsync(path, _backend.AcmeKey);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, path + ": " + body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static ByteString Bytes(string hex) => ByteString.CopyFrom(Convert.FromHexString(hex));

    private static ResourceSpans Resource(string service, IEnumerable<OtlpSpan> spans)
    {
        var scope = new ScopeSpans { Scope = new InstrumentationScope { Name = "OpenTelemetry.Instrumentation.Http" } };
        scope.Spans.Add(spans);
        return new ResourceSpans { Resource = new Resource { Attributes = { OtlpRequests.Str("service.name", service) } }, ScopeSpans = { scope } };
    }

    private static OtlpSpan Http(ActivityTraceId trace, ByteString? parent, OtlpSpan.Types.SpanKind kind, string method, string path, string? route, int status, int minute, bool clientError)
    {
        var start = s_t0.AddMinutes(minute);
        var span = new OtlpSpan
        {
            TraceId = Bytes(trace.ToHexString()),
            SpanId = Bytes(ActivitySpanId.CreateRandom().ToHexString()),
            Name = method + " " + (route ?? path),
            Kind = kind,
            StartTimeUnixNano = OtlpRequests.Nanos(start),
            EndTimeUnixNano = OtlpRequests.Nanos(start.AddMilliseconds(20)),
            Attributes =
            {
                OtlpRequests.Str("http.request.method", method),
                OtlpRequests.Str("url.path", path),
                new KeyValue { Key = "http.response.status_code", Value = new AnyValue { IntValue = status } },
            },
        };
        if (parent is not null && !parent.IsEmpty)
        {
            span.ParentSpanId = parent;
        }

        if (route is not null)
        {
            span.Attributes.Add(OtlpRequests.Str("http.route", route));
        }

        // SDKs set ERROR on client spans for 4xx and 5xx, on server spans for 5xx only.
        if (status >= 500 || (clientError && status >= 400))
        {
            span.Status = new Status { Code = Status.Types.StatusCode.Error };
        }

        return span;
    }
}
