using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SpIstio.Backend.Tests.Infrastructure;

namespace SpIstio.Backend.Tests.Api;

/// <summary>
/// The whole OpenTelemetry span model survives ingest, storage and the query API: a request of the
/// shape of opentelemetry-proto's <c>examples/trace.json</c> (resource, scope, spans), extended with
/// every attribute type, events, links, status, trace state and flags, on a generic span and on an
/// exchange span, comes back from <c>/api/spans/…</c> and <c>/api/traces/…</c> as it was sent.
/// </summary>
public sealed class SpanModelRoundTripTests : IAsyncLifetime
{
    private const string TraceId = "5b8efff798038103d269b633813fc60c";
    private const string ServerSpanId = "eee19b7ec3c1b174";
    private const string ExchangeSpanId = "eee19b7ec3c1b175";
    private const string LinkedTraceId = "0af7651916cd43dd8448eb211c80319c";
    private const string LinkedSpanId = "b7ad6b7169203331";

    private static readonly long s_start = DateTimeOffset.UtcNow.AddMinutes(-3).ToUnixTimeMilliseconds() * 1_000_000 + 123_456;

    private BackendFixture _backend = null!;
    private JsonNode _request = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        _request = JsonNode.Parse(Fixture())!;
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, Encoding.UTF8.GetBytes(_request.ToJsonString()), "application/json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Theory]
    [InlineData(ServerSpanId)]
    [InlineData(ExchangeSpanId)]
    public async Task SpanApi_ReturnsAttributesWithTheirTypes(string spanId)
    {
        var (detail, raw) = await GetAsync("/api/spans/" + TraceId + "/" + spanId);
        var sent = SentSpan(spanId);

        var attributes = detail["attributes"]!.AsObject();
        foreach (var kv in sent["attributes"]!.AsArray())
        {
            var key = kv!["key"]!.GetValue<string>();
            if (key.StartsWith("http.", StringComparison.Ordinal) || key.StartsWith("url.", StringComparison.Ordinal) || key.StartsWith("sp.", StringComparison.Ordinal))
            {
                continue; // the exchange fields, returned as method, path, headers and status
            }

            Assert.True(JsonNode.DeepEquals(Expected(kv["value"]!), attributes[key]), key + ": sent " + kv["value"]!.ToJsonString() + ", got " + attributes[key]?.ToJsonString());
        }

        // An int stays an int and a double stays a double even when its value is whole.
        Assert.Contains("\"app.int\":42,", raw, StringComparison.Ordinal);
        Assert.Contains("\"app.whole.double\":2.0", raw, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ServerSpanId)]
    [InlineData(ExchangeSpanId)]
    public async Task SpanApi_ReturnsResourceScopeEventsLinksAndStatus(string spanId)
    {
        var (detail, _) = await GetAsync("/api/spans/" + TraceId + "/" + spanId);

        AssertModel(detail["model"]!, spanId);
    }

    [Fact]
    public async Task TraceApi_ReturnsTheSpanModelOfEverySpan()
    {
        var (view, _) = await GetAsync("/api/traces/" + TraceId);

        var rows = view["spans"]!.AsArray();
        Assert.Equal(2, rows.Count);
        foreach (var row in rows)
        {
            var spanId = row!["span"]!["spanId"]!.GetValue<string>();
            AssertModel(row["model"]!, spanId);
            Assert.Equal(42, row["attributes"]!["app.int"]!.GetValue<long>());
            Assert.Equal(JsonValueKind.True, row["attributes"]!["app.flag"]!.GetValueKind());
        }
    }

    [Fact]
    public async Task ExchangeSpan_KeepsItsHttpFields()
    {
        var (detail, _) = await GetAsync("/api/spans/" + TraceId + "/" + ExchangeSpanId);

        Assert.True(detail["span"]!["isExchange"]!.GetValue<bool>());
        Assert.Equal("GET", detail["span"]!["method"]!.GetValue<string>());
        Assert.Equal("/orders/ord-1", detail["span"]!["path"]!.GetValue<string>());
        Assert.Equal(200, detail["span"]!["statusCode"]!.GetValue<int>());
    }

    private void AssertModel(JsonNode model, string spanId)
    {
        var resourceSpans = _request["resourceSpans"]![0]!;
        var scope = resourceSpans["scopeSpans"]![0]!["scope"]!;
        var sent = SentSpan(spanId);

        Assert.True(JsonNode.DeepEquals(ExpectedAttributes(resourceSpans["resource"]!["attributes"]!.AsArray()), model["resource"]), "resource: " + model["resource"]?.ToJsonString());
        Assert.Equal(scope["name"]!.GetValue<string>(), model["scope"]!["name"]!.GetValue<string>());
        Assert.Equal(scope["version"]!.GetValue<string>(), model["scope"]!["version"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(ExpectedAttributes(scope["attributes"]!.AsArray()), model["scope"]!["attributes"]));

        var sentStatus = sent["status"]!;
        Assert.Equal(sentStatus["code"]!.GetValue<int>() == 2 ? "ERROR" : "OK", model["status"]!["code"]!.GetValue<string>());
        Assert.Equal(sentStatus["message"]?.GetValue<string>(), model["status"]!["message"]?.GetValue<string>());
        Assert.Equal(sent["traceState"]?.GetValue<string>(), model["traceState"]?.GetValue<string>());
        Assert.Equal(sent["flags"]?.GetValue<uint>() ?? 0, model["flags"]!.GetValue<uint>());
        Assert.Equal(sent["droppedAttributesCount"]?.GetValue<uint>() ?? 0, model["droppedAttributesCount"]!.GetValue<uint>());

        var sentEvents = sent["events"]!.AsArray();
        var events = model["events"]!.AsArray();
        Assert.Equal(sentEvents.Count, events.Count);
        for (int i = 0; i < sentEvents.Count; i++)
        {
            Assert.Equal(sentEvents[i]!["name"]!.GetValue<string>(), events[i]!["name"]!.GetValue<string>());
            Assert.Equal(sentEvents[i]!["timeUnixNano"]!.GetValue<string>(), events[i]!["timeUnixNano"]!.GetValue<string>());
            Assert.True(JsonNode.DeepEquals(ExpectedAttributes(sentEvents[i]!["attributes"]!.AsArray()), events[i]!["attributes"]), "event " + i);
        }

        var sentLinks = sent["links"]?.AsArray() ?? [];
        var links = model["links"]!.AsArray();
        Assert.Equal(sentLinks.Count, links.Count);
        for (int i = 0; i < sentLinks.Count; i++)
        {
            Assert.Equal(sentLinks[i]!["traceId"]!.GetValue<string>().ToLowerInvariant(), links[i]!["traceId"]!.GetValue<string>());
            Assert.Equal(sentLinks[i]!["spanId"]!.GetValue<string>().ToLowerInvariant(), links[i]!["spanId"]!.GetValue<string>());
            Assert.Equal(sentLinks[i]!["traceState"]?.GetValue<string>(), links[i]!["traceState"]?.GetValue<string>());
            Assert.True(JsonNode.DeepEquals(ExpectedAttributes(sentLinks[i]!["attributes"]!.AsArray()), links[i]!["attributes"]), "link " + i);
        }
    }

    private JsonNode SentSpan(string spanId) =>
        _request["resourceSpans"]![0]!["scopeSpans"]![0]!["spans"]!.AsArray()
            .Single(s => string.Equals(s!["spanId"]!.GetValue<string>(), spanId, StringComparison.OrdinalIgnoreCase))!;

    private async Task<(JsonNode Node, string Raw)> GetAsync(string path)
    {
        using var response = await _backend.GetAsync(path, _backend.AcmeKey);
        var raw = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, path + ": " + response.StatusCode + " " + raw);
        return (JsonNode.Parse(raw)!, raw);
    }

    /// <summary>The JSON the API promises for an OTLP/JSON AnyValue — written here independently of the backend's encoder.</summary>
    private static JsonNode? Expected(JsonNode anyValue)
    {
        var o = anyValue.AsObject();
        if (o.TryGetPropertyValue("stringValue", out var s))
        {
            return JsonValue.Create(s!.GetValue<string>());
        }

        if (o.TryGetPropertyValue("boolValue", out var b))
        {
            return JsonValue.Create(b!.GetValue<bool>());
        }

        if (o.TryGetPropertyValue("intValue", out var i))
        {
            // OTLP/JSON sends int64 as a string.
            return JsonValue.Create(long.Parse(i!.GetValue<string>(), CultureInfo.InvariantCulture));
        }

        if (o.TryGetPropertyValue("doubleValue", out var d))
        {
            return JsonValue.Create(d!.GetValue<double>());
        }

        if (o.TryGetPropertyValue("arrayValue", out var a))
        {
            var array = new JsonArray();
            foreach (var item in a!["values"]!.AsArray())
            {
                array.Add(Expected(item!));
            }

            return array;
        }

        if (o.TryGetPropertyValue("kvlistValue", out var kv))
        {
            return ExpectedAttributes(kv!["values"]!.AsArray());
        }

        throw new InvalidOperationException("unexpected value " + anyValue.ToJsonString());
    }

    private static JsonObject ExpectedAttributes(JsonArray keyValues)
    {
        var result = new JsonObject();
        foreach (var kv in keyValues)
        {
            result[kv!["key"]!.GetValue<string>()] = Expected(kv["value"]!);
        }

        return result;
    }

    /// <summary>Our fixture of <c>examples/trace.json</c>'s shape (resource → scope → spans), with recent times.</summary>
    private static string Fixture()
    {
        string T(long offsetMs) => (s_start + offsetMs * 1_000_000).ToString(CultureInfo.InvariantCulture);
        string typed = """
            { "key": "app.int", "value": { "intValue": "42" } },
            { "key": "app.whole.double", "value": { "doubleValue": 2.0 } },
            { "key": "app.ratio", "value": { "doubleValue": 0.25 } },
            { "key": "app.flag", "value": { "boolValue": true } },
            { "key": "app.list", "value": { "arrayValue": { "values": [ { "stringValue": "a" }, { "intValue": "7" }, { "doubleValue": 1.5 } ] } } },
            { "key": "app.map", "value": { "kvlistValue": { "values": [ { "key": "inner", "value": { "boolValue": false } } ] } } }
            """;
        return $$"""
            {
              "resourceSpans": [
                {
                  "resource": {
                    "attributes": [
                      { "key": "service.name", "value": { "stringValue": "my.service" } },
                      { "key": "deployment.environment", "value": { "stringValue": "staging" } },
                      { "key": "host.cpu.count", "value": { "intValue": "8" } }
                    ]
                  },
                  "scopeSpans": [
                    {
                      "scope": {
                        "name": "my.library",
                        "version": "1.0.0",
                        "attributes": [ { "key": "my.scope.attribute", "value": { "stringValue": "some scope attribute" } } ]
                      },
                      "spans": [
                        {
                          "traceId": "{{TraceId.ToUpperInvariant()}}",
                          "spanId": "{{ServerSpanId.ToUpperInvariant()}}",
                          "parentSpanId": "EEE19B7EC3C1B173",
                          "traceState": "vendor=abc",
                          "flags": 257,
                          "name": "I'm a server span",
                          "startTimeUnixNano": "{{T(0)}}",
                          "endTimeUnixNano": "{{T(1000)}}",
                          "kind": 2,
                          "droppedAttributesCount": 3,
                          "attributes": [
                            { "key": "my.span.attr", "value": { "stringValue": "some value" } },
                            {{typed}}
                          ],
                          "events": [
                            { "timeUnixNano": "{{T(10)}}", "name": "cache.lookup", "attributes": [ { "key": "hit", "value": { "boolValue": false } } ] },
                            { "timeUnixNano": "{{T(900)}}", "name": "exception", "attributes": [
                              { "key": "exception.type", "value": { "stringValue": "System.TimeoutException" } },
                              { "key": "exception.attempt", "value": { "intValue": "3" } } ] }
                          ],
                          "links": [
                            { "traceId": "{{LinkedTraceId}}", "spanId": "{{LinkedSpanId}}", "traceState": "other=1",
                              "attributes": [ { "key": "link.reason", "value": { "stringValue": "batch" } } ] }
                          ],
                          "status": { "code": 2, "message": "upstream timed out" }
                        },
                        {
                          "traceId": "{{TraceId}}",
                          "spanId": "{{ExchangeSpanId}}",
                          "parentSpanId": "{{ServerSpanId}}",
                          "name": "GET /orders/{orderId}",
                          "startTimeUnixNano": "{{T(100)}}",
                          "endTimeUnixNano": "{{T(400)}}",
                          "kind": 2,
                          "attributes": [
                            { "key": "http.request.method", "value": { "stringValue": "GET" } },
                            { "key": "url.path", "value": { "stringValue": "/orders/ord-1" } },
                            { "key": "http.route", "value": { "stringValue": "/orders/{orderId}" } },
                            { "key": "http.response.status_code", "value": { "intValue": "200" } },
                            { "key": "http.request.header.accept", "value": { "stringValue": "application/json" } },
                            {{typed}}
                          ],
                          "events": [
                            { "timeUnixNano": "{{T(150)}}", "name": "order.loaded", "attributes": [ { "key": "order.items", "value": { "intValue": "2" } } ] }
                          ],
                          "status": { "code": 1 }
                        }
                      ]
                    }
                  ]
                }
              ]
            }
            """;
    }
}
