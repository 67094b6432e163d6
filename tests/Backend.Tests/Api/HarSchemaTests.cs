using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Redaction;

namespace SpIstio.Backend.Tests.Api;

/// <summary>
/// HAR exported by a running backend is valid HAR 1.2 by the published HAR schema (validated with
/// an independent validator, formats asserted: every URL a URI, every time a date-time), also for
/// the awkward exchanges — a query the agent redacted, a server span without a host, a binary body —
/// and comes back as the same requests and responses when re-imported as mocks.
/// </summary>
public sealed class HarSchemaTests : IAsyncLifetime
{
    private static readonly DateTimeOffset _t0 = DateTimeOffset.UtcNow.AddMinutes(-10);
    private static readonly byte[] _png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0xFF, 0x10, 0x80];
    private readonly ActivityTraceId _trace = ActivityTraceId.CreateRandom();
    private BackendFixture _backend = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        var root = ActivitySpanId.CreateRandom();

        // A query carrying a token and an e-mail address, redacted as the agent does before export.
        var redacted = Make(TrafficDirection.Inbound, "GET", "frontend:8080", "/api/search", "q=paris&access_token=abc123def456ghi789&email=ada@example.com", 200, root, default, 0);
        redacted.ResponseBody = Text("{\"hits\":2}");
        Assert.True(Redactor.Create(new RedactionOptions()).Redact(redacted) > 0);
        Assert.Contains(Redactor.Marker, redacted.Query, StringComparison.Ordinal);

        // A server span that recorded no host.
        var hostless = Make(TrafficDirection.Inbound, "POST", "", "/api/bookings", null, 201, ActivitySpanId.CreateRandom(), root, 5);
        hostless.ServiceName = "Booking Service";
        hostless.RequestHeaders.Add("content-type", "application/json");
        hostless.RequestBody = Text("{\"seat\":\"12A\"}");

        // A binary response.
        var binary = Make(TrafficDirection.Outbound, "GET", "images:9000", "/logo.png", null, 200, ActivitySpanId.CreateRandom(), root, 9);
        binary.ResponseHeaders.Add("content-type", "image/png");
        binary.ResponseBody = new CapturedBody(_png, _png.Length, false, BodyKind.Binary, "image/png");

        var request = ExchangeSpanMapper.ToExportRequest([redacted, hostless, binary], null, "1").ToByteArray();
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request, "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Theory]
    [InlineData("/api/sessions/s-har/har")]
    [InlineData("/api/traces/{trace}/har")]
    public async Task ExportedHar_IsValidByTheHar12Schema_WithAHostAndAUriInEveryEntry(string path)
    {
        using var har = await GetHarAsync(path.Replace("{trace}", _trace.ToHexString(), StringComparison.Ordinal));

        var errors = SchemaValidation.Errors(SchemaValidation.Load("har-schema/har.json"), har.RootElement);

        Assert.True(errors.Count == 0, string.Join('\n', errors));
        var urls = har.RootElement.GetProperty("log").GetProperty("entries").EnumerateArray().Select(e => e.GetProperty("request").GetProperty("url").GetString()!).ToList();
        Assert.Equal(3, urls.Count);
        // Stricter than the schema's "uri" format as .NET checks it: RFC 3986 characters only (a raw "[REDACTED]" is not).
        Assert.All(urls, url => Assert.True(Uri.IsWellFormedUriString(url, UriKind.Absolute) && new Uri(url).Host.Length > 0, url + " is not a well-formed absolute URI with a host"));
        Assert.Contains(urls, url => url.StartsWith("http://booking-service/api/bookings", StringComparison.Ordinal));
        Assert.Contains(urls, url => url.Contains("access_token=%5BREDACTED%5D", StringComparison.Ordinal));
    }

    [Fact]
    public void TheValidator_RefusesAnEntryWhoseUrlIsNotAnAbsoluteUri()
    {
        // Proves formats are asserted: an entry whose URL has no scheme fails (not "/search": .NET takes a rooted path for a file URI on Unix).
        var broken = JsonDocument.Parse("""
            {"log":{"version":"1.2","creator":{"name":"t","version":"1"},"entries":[{"startedDateTime":"2025-01-01T00:00:00.000Z","time":1,
            "request":{"method":"GET","url":"api search?token=x","httpVersion":"HTTP/1.1","cookies":[],"headers":[],"queryString":[],"headersSize":-1,"bodySize":0},
            "response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","cookies":[],"headers":[],"content":{"size":0,"mimeType":""},"redirectURL":"","headersSize":-1,"bodySize":0},
            "cache":{},"timings":{"send":0,"wait":1,"receive":0}}]}}
            """);

        Assert.NotEmpty(SchemaValidation.Errors(SchemaValidation.Load("har-schema/har.json"), broken.RootElement));
    }

    [Fact]
    public async Task ExportedHar_ReimportedAsMocks_GivesBackTheSameRequestsAndResponses()
    {
        using var har = await GetHarAsync("/api/sessions/s-har/har");
        var admin = (await KeyAdministration.CreateKeyAsync(_backend.Store, "acme", KeyScope.Admin, null, TimeProvider.System, CancellationToken.None)).Key;

        using var import = await _backend.PostAsync("/api/mocks/har", admin, Encoding.UTF8.GetBytes(har.RootElement.GetRawText()), "application/json");
        var text = await import.Content.ReadAsStringAsync();

        Assert.True(import.StatusCode == HttpStatusCode.Created, text);
        using var created = JsonDocument.Parse(text);
        var mocks = created.RootElement.GetProperty("items").EnumerateArray().ToList();
        var entries = har.RootElement.GetProperty("log").GetProperty("entries").EnumerateArray().ToList();
        Assert.Equal(entries.Count, mocks.Count);
        for (int i = 0; i < entries.Count; i++)
        {
            var url = new Uri(entries[i].GetProperty("request").GetProperty("url").GetString()!);
            Assert.Equal(entries[i].GetProperty("request").GetProperty("method").GetString(), mocks[i].GetProperty("method").GetString());
            Assert.Equal(url.AbsolutePath, mocks[i].GetProperty("path").GetString());
            Assert.Equal(url.Authority, mocks[i].GetProperty("authority").GetString());
            Assert.Equal(entries[i].GetProperty("response").GetProperty("status").GetInt32(), mocks[i].GetProperty("status").GetInt32());
        }

        var search = mocks.Single(m => m.GetProperty("path").GetString() == "/api/search");
        Assert.Contains("access_token=%5BREDACTED%5D", search.GetProperty("query").GetString(), StringComparison.Ordinal);
        Assert.Equal("{\"hits\":2}", search.GetProperty("body").GetString());
        var booking = mocks.Single(m => m.GetProperty("path").GetString() == "/api/bookings");
        Assert.Equal("booking-service", booking.GetProperty("authority").GetString());
        Assert.Equal("{\"seat\":\"12A\"}", booking.GetProperty("requestBody").GetString());
        var logo = mocks.Single(m => m.GetProperty("path").GetString() == "/logo.png");
        Assert.Equal(_png, Convert.FromBase64String(logo.GetProperty("bodyBase64").GetString()!));
    }

    private async Task<JsonDocument> GetHarAsync(string path)
    {
        using var response = await _backend.GetAsync(path, _backend.AcmeKey);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, path + " answered " + response.StatusCode + ": " + text);
        return JsonDocument.Parse(text);
    }

    private static CapturedBody Text(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
    }

    private Exchange Make(TrafficDirection direction, string method, string authority, string path, string? query, int status, ActivitySpanId span, ActivitySpanId parent, int startMs) => new()
    {
        ServiceName = "frontend",
        Direction = direction,
        Method = method,
        Authority = authority,
        Path = path,
        Query = query,
        StatusCode = status,
        TraceId = _trace,
        SpanId = span,
        ParentSpanId = parent,
        StartTime = _t0.AddMilliseconds(startMs),
        EndTime = _t0.AddMilliseconds(startMs + 3),
        SessionId = "s-har",
    };
}
