using System.Diagnostics;
using System.Net;
using SpIstio.Backend.Storage;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Backend.Tests.Mocks;

/// <summary>The mocks API, the agent lookup, the mock pull with ETag, and HAR export/import, on a real backend.</summary>
public sealed class MocksApiTests : IAsyncLifetime
{
    private readonly ActivityTraceId _trace = ActivityTraceId.CreateRandom();
    private readonly ActivitySpanId _quote = ActivitySpanId.CreateRandom();
    private readonly ActivitySpanId _rates = ActivitySpanId.CreateRandom();
    private BackendFixture _backend = null!;
    private string _acmeAdmin = "";
    private string _globexAdmin = "";

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        _acmeAdmin = (await KeyAdministration.CreateKeyAsync(_backend.Store, "acme", KeyScope.Admin | KeyScope.Read | KeyScope.Ingest, null, TimeProvider.System, CancellationToken.None)).Key;
        _globexAdmin = (await KeyAdministration.CreateKeyAsync(_backend.Store, "globex", KeyScope.Admin | KeyScope.Read | KeyScope.Ingest, null, TimeProvider.System, CancellationToken.None)).Key;
        var start = DateTimeOffset.UtcNow.AddMinutes(-5);
        var quote = Exchange("POST", "/api/quote", "from=EUR", """{"amount":10,"to":"USD"}""", 200, """{"rate":1.1}""", _quote, start);
        quote.ResponseHeaders.Add("x-upstream", "fx-1");
        var rates = Exchange("GET", "/api/rates", null, null, 200, """{"EUR":1}""", _rates, start.AddMilliseconds(50));
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, ExchangeSpanMapper.ToExportRequest([quote, rates], null, "1").ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    private Exchange Exchange(string method, string path, string? query, string? requestBody, int status, string responseBody, ActivitySpanId span, DateTimeOffset start)
    {
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Outbound,
            ServiceName = "checkout",
            Method = method,
            Authority = "fx.example:8080",
            Path = path,
            Query = query,
            StatusCode = status,
            StartTime = start,
            EndTime = start.AddMilliseconds(12),
            TraceId = _trace,
            SpanId = span,
            SessionId = "s-fx",
        };
        exchange.RequestHeaders.Add("accept", "application/json");
        if (requestBody is not null)
        {
            exchange.RequestHeaders.Add("content-type", "application/json");
            var bytes = Encoding.UTF8.GetBytes(requestBody);
            exchange.RequestBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        }

        exchange.ResponseHeaders.Add("content-type", "application/json");
        exchange.ResponseHeaders.Add("content-length", Encoding.UTF8.GetByteCount(responseBody).ToString(System.Globalization.CultureInfo.InvariantCulture));
        var response = Encoding.UTF8.GetBytes(responseBody);
        exchange.ResponseBody = new CapturedBody(response, response.Length, false, BodyKind.Text, "application/json");
        return exchange;
    }

    private static Exchange LookupRequest(string method, string path, string? query, string? body, string authority = "fx.example:8080", string service = "checkout")
    {
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Outbound,
            ServiceName = service,
            Method = method,
            Authority = authority,
            Path = path,
            Query = query,
            StartTime = DateTimeOffset.UtcNow,
            EndTime = DateTimeOffset.UtcNow,
            TraceId = ActivityTraceId.CreateRandom(),
            SpanId = ActivitySpanId.CreateRandom(),
        };
        if (body is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            exchange.RequestBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        }

        return exchange;
    }

    private async Task<(HttpStatusCode Status, Exchange? Answer)> LookupAsync(Exchange request, string? key = null)
    {
        using var response = await _backend.PostAsync("/v1/agent/lookup", key ?? _backend.AcmeIngestOnlyKey, ExchangeSpanMapper.ToExportRequest([request], null, "1").ToByteArray(), "application/x-protobuf");
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return (response.StatusCode, null);
        }

        var parsed = ExportTraceServiceRequest.Parser.ParseFrom(await response.Content.ReadAsByteArrayAsync());
        var resource = parsed.ResourceSpans[0];
        return (response.StatusCode, ExchangeSpanMapper.FromSpan(resource.ScopeSpans[0].Spans[0], resource.Resource));
    }

    private async Task<HttpResponseMessage> SendJsonAsync(HttpMethod method, string path, string key, string json)
    {
        using var request = _backend.Request(method, path, key);
        request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        return await _backend.Http.SendAsync(request);
    }

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    private const string NewMock = """
        {"service":"checkout","method":"get","authority":"fx.example:8080","path":"/api/health","status":203,
         "headers":[["content-type","text/plain"],["content-length","2"]],"body":"up","description":"hand-made"}
        """;

    [Fact]
    public async Task Mocks_CreateGetListUpdateExpireDelete()
    {
        using var created = await SendJsonAsync(HttpMethod.Post, "/api/mocks", _acmeAdmin, NewMock);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var mock = await JsonAsync(created);
        var id = mock.GetProperty("id").GetInt64();
        Assert.Equal("GET", mock.GetProperty("method").GetString());
        // Framing headers are not replayed: the answering side frames the body itself.
        Assert.Equal(["content-type"], mock.GetProperty("headers").EnumerateArray().Select(h => h[0].GetString()));

        using var got = await _backend.GetAsync($"/api/mocks/{id}", _backend.AcmeReadOnlyKey);
        Assert.Equal("up", (await JsonAsync(got)).GetProperty("body").GetString());
        var (hitStatus, hit) = await LookupAsync(LookupRequest("GET", "/api/health", null, null));
        Assert.Equal(HttpStatusCode.OK, hitStatus);
        Assert.Equal(203, hit!.StatusCode);

        using var updated = await SendJsonAsync(HttpMethod.Put, $"/api/mocks/{id}", _acmeAdmin, NewMock.Replace("\"up\"", "\"down\"", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, updated.StatusCode);
        var (_, changed) = await LookupAsync(LookupRequest("GET", "/api/health", null, null));
        Assert.Equal("down", Encoding.UTF8.GetString(changed!.ResponseBody.Content.Span));

        using var expired = await SendJsonAsync(HttpMethod.Post, $"/api/mocks/{id}/expire", _acmeAdmin, "");
        Assert.Equal(HttpStatusCode.OK, expired.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await LookupAsync(LookupRequest("GET", "/api/health", null, null))).Status);
        using var list = await _backend.GetAsync("/api/mocks", _backend.AcmeReadOnlyKey);
        Assert.Single((await JsonAsync(list)).GetProperty("items").EnumerateArray());
        using var live = await _backend.GetAsync("/api/mocks?live=true", _backend.AcmeReadOnlyKey);
        Assert.Empty((await JsonAsync(live)).GetProperty("items").EnumerateArray());

        using var deleted = await SendJsonAsync(HttpMethod.Delete, $"/api/mocks/{id}", _acmeAdmin, "");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        using var gone = await _backend.GetAsync($"/api/mocks/{id}", _backend.AcmeReadOnlyKey);
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task MockList_IsPaged_AndALimitOverTheMaximumIsRefusedByName()
    {
        var created = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await SendJsonAsync(HttpMethod.Post, "/api/mocks", _acmeAdmin, NewMock);
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            created.Add((await JsonAsync(response)).GetProperty("id").GetInt64());
        }

        using var first = await _backend.GetAsync("/api/mocks?limit=2", _backend.AcmeReadOnlyKey);
        var firstPage = await JsonAsync(first);
        Assert.Equal(created[..2], firstPage.GetProperty("items").EnumerateArray().Select(m => m.GetProperty("id").GetInt64()));
        var next = firstPage.GetProperty("next").GetString();
        using var second = await _backend.GetAsync("/api/mocks?limit=2&after=" + next, _backend.AcmeReadOnlyKey);
        var secondPage = await JsonAsync(second);
        Assert.Equal([created[2]], secondPage.GetProperty("items").EnumerateArray().Select(m => m.GetProperty("id").GetInt64()));
        Assert.False(secondPage.TryGetProperty("next", out _));

        using var tooMany = await _backend.GetAsync("/api/mocks?limit=1001", _backend.AcmeReadOnlyKey);
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Contains("limit: must be an integer from 1 to 1000", await tooMany.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var badAfter = await _backend.GetAsync("/api/mocks?after=abc", _backend.AcmeReadOnlyKey);
        Assert.Equal(HttpStatusCode.BadRequest, badAfter.StatusCode);
        Assert.Contains("after: must be a mock id", await badAfter.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mocks_ChangesNeedTheAdminScope_AndBadInputIsRefused()
    {
        using var readOnly = await SendJsonAsync(HttpMethod.Post, "/api/mocks", _backend.AcmeReadOnlyKey, NewMock);
        using var anonymous = await _backend.GetAsync("/api/mocks", null);
        using var badPath = await SendJsonAsync(HttpMethod.Post, "/api/mocks", _acmeAdmin, """{"path":"no-slash"}""");
        using var notJson = await SendJsonAsync(HttpMethod.Post, "/api/mocks", _acmeAdmin, "{");

        Assert.Equal(HttpStatusCode.Forbidden, readOnly.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badPath.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, notJson.StatusCode);
    }

    [Fact]
    public async Task Mocks_OfOneTenant_AreInvisibleToAnother()
    {
        using var created = await SendJsonAsync(HttpMethod.Post, "/api/mocks", _acmeAdmin, NewMock);
        var id = (await JsonAsync(created)).GetProperty("id").GetInt64();

        using var get = await _backend.GetAsync($"/api/mocks/{id}", _globexAdmin);
        using var list = await _backend.GetAsync("/api/mocks", _globexAdmin);
        using var delete = await SendJsonAsync(HttpMethod.Delete, $"/api/mocks/{id}", _globexAdmin, "");
        var lookup = await LookupAsync(LookupRequest("GET", "/api/health", null, null), _backend.GlobexKey);

        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Empty((await JsonAsync(list)).GetProperty("items").EnumerateArray());
        Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, lookup.Status);
        Assert.Equal(HttpStatusCode.OK, (await LookupAsync(LookupRequest("GET", "/api/health", null, null))).Status);
    }

    [Fact]
    public async Task MockFromACapturedExchange_AnswersLookupsWithAnEqualRequestOnly()
    {
        using var created = await SendJsonAsync(HttpMethod.Post, $"/api/mocks/from-span/{_trace.ToHexString()}/{_quote.ToHexString()}", _acmeAdmin, """{"environment":"ci"}""");
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        var (status, answer) = await LookupAsync(LookupRequest("POST", "/api/quote", "from=EUR", """{ "to": "USD", "amount": 10 }"""));
        var otherBody = await LookupAsync(LookupRequest("POST", "/api/quote", "from=EUR", """{"amount":11,"to":"USD"}"""));
        var otherPath = await LookupAsync(LookupRequest("POST", "/api/quote2", "from=EUR", """{"amount":10,"to":"USD"}"""));
        var otherService = await LookupAsync(LookupRequest("POST", "/api/quote", "from=EUR", """{"amount":10,"to":"USD"}""", service: "billing"));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(200, answer!.StatusCode);
        Assert.Equal("""{"rate":1.1}""", Encoding.UTF8.GetString(answer.ResponseBody.Content.Span));
        Assert.Equal("fx-1", answer.ResponseHeaders.Get("x-upstream"));
        Assert.Null(answer.ResponseHeaders.Get("content-length"));
        Assert.Equal(HttpStatusCode.NotFound, otherBody.Status);
        Assert.Equal(HttpStatusCode.NotFound, otherPath.Status);
        Assert.Equal(HttpStatusCode.NotFound, otherService.Status);
    }

    [Fact]
    public async Task Lookup_NeedsAKey_AndRefusesGarbage()
    {
        using var anonymous = await _backend.PostAsync("/v1/agent/lookup", null, [], "application/x-protobuf");
        using var garbage = await _backend.PostAsync("/v1/agent/lookup", _backend.AcmeKey, [0xff, 0xff, 0xff], "application/x-protobuf");

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, garbage.StatusCode);
    }

    [Fact]
    public async Task AgentMockSet_HasAnETag_And304WhenUnchanged()
    {
        using var created = await SendJsonAsync(HttpMethod.Post, "/api/mocks", _acmeAdmin, NewMock);
        using var first = await _backend.GetAsync("/v1/agent/mocks?service=checkout", _backend.AcmeIngestOnlyKey);
        var etag = first.Headers.ETag;
        Assert.NotNull(etag);
        Assert.Single((await JsonAsync(first)).GetProperty("items").EnumerateArray());

        using var again = _backend.Request(HttpMethod.Get, "/v1/agent/mocks?service=checkout", _backend.AcmeIngestOnlyKey);
        again.Headers.IfNoneMatch.Add(etag);
        using var notModified = await _backend.Http.SendAsync(again);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);

        using var added = await SendJsonAsync(HttpMethod.Post, "/api/mocks", _acmeAdmin, NewMock.Replace("/api/health", "/api/ready", StringComparison.Ordinal));
        using var third = _backend.Request(HttpMethod.Get, "/v1/agent/mocks?service=checkout", _backend.AcmeIngestOnlyKey);
        third.Headers.IfNoneMatch.Add(etag);
        using var changed = await _backend.Http.SendAsync(third);
        Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        Assert.NotEqual(etag, changed.Headers.ETag);
        using var otherService = await _backend.GetAsync("/v1/agent/mocks?service=billing", _backend.AcmeIngestOnlyKey);
        Assert.Empty((await JsonAsync(otherService)).GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task HarExport_OfASession_HasEveryRequiredHar12Field()
    {
        using var response = await _backend.GetAsync("/api/sessions/s-fx/har", _backend.AcmeReadOnlyKey);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var log = (await JsonAsync(response)).GetProperty("log");

        Assert.Equal("1.2", log.GetProperty("version").GetString());
        Assert.False(string.IsNullOrEmpty(log.GetProperty("creator").GetProperty("name").GetString()));
        Assert.True(log.GetProperty("creator").TryGetProperty("version", out _));
        var entries = log.GetProperty("entries").EnumerateArray().ToList();
        Assert.Equal(2, entries.Count);
        foreach (var entry in entries)
        {
            foreach (var field in new[] { "startedDateTime", "time", "request", "response", "cache", "timings" })
            {
                Assert.True(entry.TryGetProperty(field, out _), "entry lacks " + field);
            }

            foreach (var field in new[] { "method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize" })
            {
                Assert.True(entry.GetProperty("request").TryGetProperty(field, out _), "request lacks " + field);
            }

            foreach (var field in new[] { "status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL", "headersSize", "bodySize" })
            {
                Assert.True(entry.GetProperty("response").TryGetProperty(field, out _), "response lacks " + field);
            }

            Assert.True(entry.GetProperty("response").GetProperty("content").TryGetProperty("size", out _));
            Assert.True(entry.GetProperty("response").GetProperty("content").TryGetProperty("mimeType", out _));
            foreach (var field in new[] { "send", "wait", "receive" })
            {
                Assert.True(entry.GetProperty("timings").TryGetProperty(field, out _), "timings lack " + field);
            }

            Assert.True(DateTimeOffset.TryParse(entry.GetProperty("startedDateTime").GetString(), System.Globalization.CultureInfo.InvariantCulture, out _));
        }

        var quote = entries[0];
        Assert.Equal("http://fx.example:8080/api/quote?from=EUR", quote.GetProperty("request").GetProperty("url").GetString());
        Assert.Equal("""{"amount":10,"to":"USD"}""", quote.GetProperty("request").GetProperty("postData").GetProperty("text").GetString());
        Assert.Equal("EUR", quote.GetProperty("request").GetProperty("queryString")[0].GetProperty("value").GetString());
        Assert.Equal("""{"rate":1.1}""", quote.GetProperty("response").GetProperty("content").GetProperty("text").GetString());

        using var trace = await _backend.GetAsync($"/api/traces/{_trace.ToHexString()}/har", _backend.AcmeReadOnlyKey);
        Assert.Equal(2, (await JsonAsync(trace)).GetProperty("log").GetProperty("entries").GetArrayLength());
        using var missing = await _backend.GetAsync("/api/sessions/nope/har", _backend.AcmeReadOnlyKey);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task HarImport_OfAnExportedSession_AnswersItsRequests()
    {
        using var export = await _backend.GetAsync("/api/sessions/s-fx/har", _backend.AcmeReadOnlyKey);
        var har = await export.Content.ReadAsByteArrayAsync();

        using var import = await _backend.PostAsync("/api/mocks/har?environment=ci", _globexAdmin, har, "application/json");
        Assert.Equal(HttpStatusCode.Created, import.StatusCode);
        Assert.Equal(2, (await JsonAsync(import)).GetProperty("items").GetArrayLength());

        var (status, answer) = await LookupAsync(LookupRequest("POST", "/api/quote", "from=EUR", """{"to":"USD","amount":10}"""), _backend.GlobexKey);
        var (ratesStatus, rates) = await LookupAsync(LookupRequest("GET", "/api/rates", null, null), _backend.GlobexKey);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("""{"rate":1.1}""", Encoding.UTF8.GetString(answer!.ResponseBody.Content.Span));
        Assert.Equal(HttpStatusCode.OK, ratesStatus);
        Assert.Equal("""{"EUR":1}""", Encoding.UTF8.GetString(rates!.ResponseBody.Content.Span));
        using var notHar = await _backend.PostAsync("/api/mocks/har", _globexAdmin, "[1,2]"u8.ToArray(), "application/json");
        Assert.Equal(HttpStatusCode.BadRequest, notHar.StatusCode);
    }
}
