using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Ingest;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Otlp.Proto.Resource;
using SpIstio.Core.Otlp.Proto.Trace;
using static SpIstio.Backend.Tests.Infrastructure.OtlpRequests;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Backend.Tests.Ingest;

/// <summary>OTLP/HTTP answers, per the specification, over a real server and store.</summary>
public sealed class OtlpHttpIngestTests : IAsyncLifetime
{
    private const int Limit = 256 * 1024;
    private BackendFixture _backend = null!;

    public async Task InitializeAsync() => _backend = await BackendFixture.StartAsync(o => o with { MaxBodyBytes = Limit });

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task JsonPayload_WithHexIdsStringInt64sAndEnumNumbers_IsStoredAndAnsweredInJson()
    {
        var traceId = ActivityTraceId.CreateRandom().ToHexString();
        var start = DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds() * 1_000_000;
        var json = $$$"""
            {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"inventory"}}]},
              "scopeSpans":[{"scope":{"name":"manual"},"spans":[
                {"traceId":"{{{traceId}}}","spanId":"00f067aa0ba902b7","name":"reserve","kind":3,
                 "startTimeUnixNano":"{{{start}}}","endTimeUnixNano":"{{{start + 7_000_000}}}",
                 "attributes":[{"key":"items","value":{"intValue":"12"}},{"key":"ok","value":{"boolValue":true}}],
                 "status":{"code":2,"message":"out of stock"}}]}]}]}
            """;

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, Encoding.UTF8.GetBytes(json), "application/json");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("{}", await response.Content.ReadAsStringAsync()); // nothing rejected: partial_success unset
        var detail = await GetJsonAsync($"/api/spans/{traceId}/00f067aa0ba902b7");
        var span = detail.GetProperty("span");
        Assert.Equal("inventory", span.GetProperty("serviceName").GetString());
        Assert.Equal(3, span.GetProperty("kind").GetInt32());
        Assert.Equal(7, span.GetProperty("durationMs").GetDouble());
        Assert.True(span.GetProperty("isError").GetBoolean());
        Assert.Equal(12, detail.GetProperty("attributes").GetProperty("items").GetInt64());
        Assert.True(detail.GetProperty("attributes").GetProperty("ok").GetBoolean());
        Assert.Equal("out of stock", detail.GetProperty("attributes").GetProperty("otel.status_description").GetString());
    }

    [Fact]
    public async Task OriginalAgentSpanShape_GetsTheFullExchangeView()
    {
        var (request, traceId, spanId) = OriginalAgentRequest();

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request.ToByteArray(), "application/x-protobuf");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var detail = await GetJsonAsync($"/api/spans/{traceId}/{spanId}");
        var span = detail.GetProperty("span");
        Assert.True(span.GetProperty("isExchange").GetBoolean());
        Assert.Equal("checkout", span.GetProperty("serviceName").GetString());
        Assert.Equal("outbound", span.GetProperty("direction").GetString());
        Assert.Equal("POST", span.GetProperty("method").GetString());
        Assert.Equal("payments.svc:8080", span.GetProperty("authority").GetString());
        Assert.Equal("/api/orders/123", span.GetProperty("path").GetString());
        Assert.Equal(201, span.GetProperty("statusCode").GetInt32());
        Assert.Equal("sess_abc", span.GetProperty("sessionId").GetString());
        Assert.Equal("id=7", detail.GetProperty("query").GetString());
        Assert.Equal("/api/orders/{id}", detail.GetProperty("route").GetString());
        Assert.Equal(
            [["content-type", "application/json"], ["x-request-id", "r-1"]],
            detail.GetProperty("requestHeaders").EnumerateArray().Select(h => h.EnumerateArray().Select(v => v.GetString()!).ToArray()).ToArray());
        var requestBody = detail.GetProperty("requestBody");
        Assert.Equal("text", requestBody.GetProperty("encoding").GetString());
        Assert.Equal("{\"qty\":2}", requestBody.GetProperty("content").GetString());
        var responseBody = detail.GetProperty("responseBody");
        Assert.Equal("base64", responseBody.GetProperty("encoding").GetString());
        Assert.Equal("binary", responseBody.GetProperty("kind").GetString());
        Assert.Equal(Convert.ToBase64String(new byte[] { 0, 1, 2, 0xFF }), responseBody.GetProperty("content").GetString());
        Assert.False(responseBody.GetProperty("truncated").GetBoolean());
        // The key on the span is a credential, never stored as data.
        Assert.DoesNotContain("pk-original", detail.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OurAgentsExchangeSpan_KeepsTruncationAndBodyMetadata()
    {
        var exchange = new SpIstio.Core.Model.Exchange
        {
            Direction = SpIstio.Core.Model.TrafficDirection.Inbound,
            ServiceName = "flights",
            Method = "GET",
            Authority = "flights:80",
            Path = "/api/flights/42",
            StatusCode = 503,
            TraceId = ActivityTraceId.CreateRandom(),
            SpanId = ActivitySpanId.CreateRandom(),
            StartTime = DateTimeOffset.UtcNow.AddSeconds(-3),
            EndTime = DateTimeOffset.UtcNow.AddSeconds(-2),
            SessionId = "s-1",
            ResponseBody = new SpIstio.Core.Model.CapturedBody(Encoding.UTF8.GetBytes("{\"err\":"), 5000, true, SpIstio.Core.Model.BodyKind.Text, "application/json", "gzip", true),
        };
        exchange.ResponseHeaders.Add("content-type", "application/json");
        var request = ExchangeSpanMapper.ToExportRequest([exchange], null, "1.0");

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request.ToByteArray(), "application/x-protobuf");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var detail = await GetJsonAsync($"/api/spans/{exchange.TraceId.ToHexString()}/{exchange.SpanId.ToHexString()}");
        Assert.True(detail.GetProperty("span").GetProperty("isError").GetBoolean());
        var body = detail.GetProperty("responseBody");
        Assert.Equal("{\"err\":", body.GetProperty("content").GetString());
        Assert.True(body.GetProperty("truncated").GetBoolean());
        Assert.Equal(5000, body.GetProperty("originalSize").GetInt64());
        Assert.Equal(7, body.GetProperty("capturedBytes").GetInt32());
        Assert.Equal("gzip", body.GetProperty("contentEncoding").GetString());
        Assert.True(body.GetProperty("decoded").GetBoolean());
        Assert.Equal(JsonValueKind.Null, detail.GetProperty("requestBody").ValueKind);
    }

    [Fact]
    public async Task InvalidIds_AreRejectedOneByOne_AndNamedInThePartialSuccess()
    {
        var trace = ActivityTraceId.CreateRandom();
        var good = GenericSpan(trace, ActivitySpanId.CreateRandom(), "good");
        var zeroTrace = GenericSpan(trace, ActivitySpanId.CreateRandom(), "zero trace");
        zeroTrace.TraceId = ByteString.CopyFrom(new byte[16]);
        var shortSpan = GenericSpan(trace, ActivitySpanId.CreateRandom(), "short span");
        shortSpan.SpanId = ByteString.CopyFrom(1, 2, 3);
        var missingSpan = GenericSpan(trace, ActivitySpanId.CreateRandom(), "missing span");
        missingSpan.SpanId = ByteString.Empty;

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, Wrap("svc", good, zeroTrace, shortSpan, missingSpan).ToByteArray(), "application/x-protobuf");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = ExportTraceServiceResponse.Parser.ParseFrom(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(3, answer.PartialSuccess.RejectedSpans);
        Assert.Equal(
            "1 span(s) rejected: trace_id missing, all zero or not 16 bytes; 2 span(s) rejected: span_id missing, all zero or not 8 bytes",
            answer.PartialSuccess.ErrorMessage);
        var stored = await GetJsonAsync("/api/traces/" + trace.ToHexString());
        Assert.Equal(["good"], stored.GetProperty("spans").EnumerateArray().Select(s => s.GetProperty("span").GetProperty("name").GetString()));
        Assert.Equal(3, _backend.Server.Metrics.SpansRejected.Value);
    }

    [Fact]
    public async Task TruncatedProtobuf_Is400NamingTheProblem_AndStoresNothing()
    {
        var trace = ActivityTraceId.CreateRandom();
        var bytes = Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom()), GenericSpan(trace, ActivitySpanId.CreateRandom())).ToByteArray();

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, bytes[..(bytes.Length - 9)], "application/x-protobuf");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var status = RpcStatus.ParseProtobuf(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(3, status.Code);
        Assert.StartsWith("the body is not a valid OTLP protobuf ExportTraceServiceRequest", status.Message, StringComparison.Ordinal);
        await AssertTraceAbsentAsync(trace);
    }

    [Fact]
    public async Task MalformedJson_Is400InJson()
    {
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, "{\"resourceSpans\":[{"u8.ToArray(), "application/json");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(3, body.RootElement.GetProperty("code").GetInt32());
        Assert.StartsWith("The document is not JSON", body.RootElement.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownContentType_Is415()
    {
        var trace = ActivityTraceId.CreateRandom();

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom())).ToByteArray(), "text/plain");

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Contains("unsupported content type 'text/plain'", RpcStatus.ParseProtobuf(await response.Content.ReadAsByteArrayAsync()).Message, StringComparison.Ordinal);
        await AssertTraceAbsentAsync(trace);
    }

    [Fact]
    public async Task GzipBody_IsInflatedAndStored()
    {
        var trace = ActivityTraceId.CreateRandom();

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, Gzip(Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom())).ToByteArray()), "application/x-protobuf", "gzip");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single((await GetJsonAsync("/api/traces/" + trace.ToHexString())).GetProperty("spans").EnumerateArray());
    }

    [Theory]
    [InlineData("application/x-protobuf", "")]
    [InlineData("application/x-protobuf", "gzip")]
    [InlineData("application/json", "")]
    public async Task A_body_read_in_many_pieces_is_parsed_whole_with_a_value_cut_mid_character_at_a_piece_boundary(string contentType, string encoding)
    {
        // The endpoint reads a body in pieces (SegmentedBody): a value of three-byte characters
        // spans two piece boundaries, padded so that the first falls inside a character (OTLP JSON
        // writes each as a six-byte escape, so fewer of them there).
        const int Piece = SegmentedBody.SegmentBytes;
        await using var backend = await BackendFixture.StartAsync(o => o with { MaxBodyBytes = 4 * Piece });
        var trace = ActivityTraceId.CreateRandom();
        var spanId = ActivitySpanId.CreateRandom();
        string value = string.Concat(Enumerable.Repeat("\u20ac", contentType == "application/json" ? 5 * Piece / 12 : Piece));
        byte[] payload = [];
        for (int pad = 0; pad < 3; pad++)
        {
            var span = GenericSpan(trace, spanId);
            span.Attributes.Add(Str("pad", new string('p', pad)));
            span.Attributes.Add(Str("blob", value));
            var request = Wrap("svc", span);
            payload = contentType == "application/json" ? Encoding.UTF8.GetBytes(OtlpJson.Format(request)) : request.ToByteArray();
            int start = payload.AsSpan().IndexOf(Encoding.UTF8.GetBytes("\u20ac\u20ac"));
            if ((Piece - start) % 3 != 0)
            {
                break;
            }
        }

        Assert.True(payload.Length is > 2 * Piece and < 4 * Piece, "the request should span several pieces and stay under the limit");
        using var response = await backend.PostAsync("/v1/traces", backend.AcmeKey, encoding == "gzip" ? Gzip(payload) : payload, contentType, encoding.Length == 0 ? null : encoding);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var read = await backend.GetAsync($"/api/spans/{trace.ToHexString()}/{spanId.ToHexString()}", backend.AcmeKey);
        var detail = JsonDocument.Parse(await read.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(value, detail.GetProperty("attributes").GetProperty("blob").GetString());
    }

    [Fact]
    public async Task GzipBomb_Is413_WithoutInflatingItWhole()
    {
        // 64 MiB of zeros compress to about 64 KiB: small on the wire, 256 times the limit inflated.
        var bomb = Gzip(new byte[64 * 1024 * 1024]);
        Assert.True(bomb.Length < Limit);

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, bomb, "application/x-protobuf", "gzip");

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(
            $"the body exceeds the limit of {Limit} bytes (counted after decompression)",
            RpcStatus.ParseProtobuf(await response.Content.ReadAsByteArrayAsync()).Message);
    }

    [Fact]
    public async Task OversizedBody_Is413_AndStoresNothing()
    {
        var trace = ActivityTraceId.CreateRandom();
        var span = GenericSpan(trace, ActivitySpanId.CreateRandom());
        span.Attributes.Add(Str("blob", new string('x', Limit)));

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, Wrap("svc", span).ToByteArray(), "application/x-protobuf");

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        await AssertTraceAbsentAsync(trace);
    }

    [Fact]
    public async Task ZstdBody_IsInflatedAndStored()
    {
        var trace = ActivityTraceId.CreateRandom();

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, Zstd(Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom())).ToByteArray()), "application/x-protobuf", "zstd");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single((await GetJsonAsync("/api/traces/" + trace.ToHexString())).GetProperty("spans").EnumerateArray());
    }

    [Fact]
    public async Task ZstdBomb_Is413_WithoutInflatingItWhole()
    {
        // Streamed (no content size in the frame), so the window stays small and only the limit stops it.
        var bomb = Zstd(new byte[64 * 1024 * 1024]);
        Assert.True(bomb.Length < Limit);

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, bomb, "application/x-protobuf", "zstd");

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task ZstdFrameAskingForAWindowAbove8MiB_Is400_BeforeAnyWindowIsAllocated()
    {
        // One-shot compression records the content size; a 32 MiB content means a 32 MiB window.
        using var compressor = new ZstdSharp.Compressor(1);
        compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_windowLog, 27);
        var frame = compressor.Wrap(new byte[32 * 1024 * 1024]).ToArray();

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, frame, "application/x-protobuf", "zstd");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("the body is not valid zstd", RpcStatus.ParseProtobuf(await response.Content.ReadAsByteArrayAsync()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CorruptZstd_Is400()
    {
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, "this is not zstd at all"u8.ToArray(), "application/x-protobuf", "zstd");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("the body is not valid zstd", RpcStatus.ParseProtobuf(await response.Content.ReadAsByteArrayAsync()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CorruptGzip_Is400()
    {
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, "this is not gzip at all"u8.ToArray(), "application/x-protobuf", "gzip");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("the body is not valid gzip", RpcStatus.ParseProtobuf(await response.Content.ReadAsByteArrayAsync()).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, HttpStatusCode.Unauthorized, "no API key")]
    [InlineData("sp_nosuchkey0000_notarealsecretatall", HttpStatusCode.Unauthorized, "unknown or revoked API key")]
    [InlineData("garbage", HttpStatusCode.Unauthorized, "unknown or revoked API key")]
    [InlineData("read-only", HttpStatusCode.Forbidden, "the API key has no ingest scope")]
    public async Task BadKeys_AreRefused_AndNothingIsStored(string? key, HttpStatusCode expected, string message)
    {
        var trace = ActivityTraceId.CreateRandom();
        key = key == "read-only" ? _backend.AcmeReadOnlyKey : key;

        using var response = await _backend.PostAsync("/v1/traces", key, Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom())).ToByteArray(), "application/x-protobuf");

        Assert.Equal(expected, response.StatusCode);
        Assert.StartsWith(message, RpcStatus.ParseProtobuf(await response.Content.ReadAsByteArrayAsync()).Message, StringComparison.Ordinal);
        await AssertTraceAbsentAsync(trace);
    }

    [Fact]
    public async Task BearerKey_IsAccepted()
    {
        var trace = ActivityTraceId.CreateRandom();
        using var request = _backend.Request(HttpMethod.Post, "/v1/traces", null);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", _backend.AcmeIngestOnlyKey);
        request.Content = new ByteArrayContent(Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom())).ToByteArray());
        request.Content.Headers.ContentType = new("application/x-protobuf");

        using var response = await _backend.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single((await GetJsonAsync("/api/traces/" + trace.ToHexString())).GetProperty("spans").EnumerateArray());
    }

    [Fact]
    public async Task Metrics_CountRequestsByProtocolAndCode()
    {
        using var ok = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, Wrap("svc", GenericSpan(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom())).ToByteArray(), "application/x-protobuf");
        using var refused = await _backend.PostAsync("/v1/traces", null, [], "application/x-protobuf");

        using var metrics = await _backend.GetAsync("/metrics", null);
        var text = await metrics.Content.ReadAsStringAsync();

        Assert.Contains("sp_ingest_requests_total{protocol=\"http\",code=\"200\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("sp_ingest_requests_total{protocol=\"http\",code=\"401\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("sp_ingest_spans_total{result=\"stored\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("sp_ingest_queue_depth 0", text, StringComparison.Ordinal);
        Assert.Contains("sp_ingest_commit_duration_seconds_count 1", text, StringComparison.Ordinal);
        Assert.Matches(@"sp_store_bytes [1-9]\d*", text);
        Assert.Matches(@"sp_search_index_lag_seconds \d", text);
        Assert.Matches(@"sp_search_index_behind_spans \d", text);
        Assert.Contains("process_resident_memory_bytes", text, StringComparison.Ordinal);
    }

    private async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await _backend.GetAsync(path, _backend.AcmeKey);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private async Task AssertTraceAbsentAsync(ActivityTraceId trace) =>
        Assert.Empty(await _backend.Store.GetTraceAsync(_backend.AcmeId, trace.ToHexString(), CancellationToken.None));

    private static byte[] Zstd(byte[] data)
    {
        using var output = new MemoryStream();
        using (var zstd = new ZstdSharp.CompressionStream(output, level: 1, leaveOpen: true))
        {
            zstd.Write(data);
        }

        return output.ToArray();
    }

    internal static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    /// <summary>A span as the original Rust agent builds it (ARCHITECTURE.md's attribute list, Envoy pseudo-headers, no semconv).</summary>
    internal static (ExportTraceServiceRequest Request, string TraceId, string SpanId) OriginalAgentRequest()
    {
        var trace = ActivityTraceId.CreateRandom();
        var span = ActivitySpanId.CreateRandom();
        var start = DateTimeOffset.UtcNow.AddMinutes(-2);
        var otlp = new OtlpSpan
        {
            TraceId = ByteString.CopyFrom(HexBytes(trace.ToHexString())),
            SpanId = ByteString.CopyFrom(HexBytes(span.ToHexString())),
            Name = "/api/orders/123?id=7",
            Kind = OtlpSpan.Types.SpanKind.Client,
            StartTimeUnixNano = Nanos(start),
            EndTimeUnixNano = Nanos(start.AddMilliseconds(12)),
            Attributes =
            {
                Str("sp.service.name", "checkout"),
                Str("sp.traffic.direction", "outbound"),
                Str("sp.span.type", "extract"),
                Str("sp.session.id", "sess_abc"),
                Str("sp.public.key", "pk-original"),
                Str("http.request.header.:authority", "payments.svc:8080"),
                Str("http.request.header.:path", "/api/orders/123?id=7"),
                Str("http.request.header.:method", "POST"),
                Str("http.request.header.content-type", "application/json"),
                Str("http.request.header.x-request-id", "r-1"),
                Str("url.path", "/api/orders/123?id=7"),
                Str("url.host", "payments.svc:8080"),
                Str("http.request.body", "{\"qty\":2}"),
                Str("http.response.header.:status", "201"),
                Str("http.response.header.content-type", "application/octet-stream"),
                new KeyValue { Key = "http.response.status_code", Value = new AnyValue { IntValue = 201 } },
                Str("http.response.body", Convert.ToBase64String(new byte[] { 0, 1, 2, 0xFF })),
            },
        };
        var request = new ExportTraceServiceRequest
        {
            ResourceSpans =
            {
                new ResourceSpans
                {
                    Resource = new Resource { Attributes = { Str("service.name", "checkout"), Str("sp.public.key", "pk-original") } },
                    ScopeSpans = { new ScopeSpans { Spans = { otlp } } },
                },
            },
        };
        return (request, trace.ToHexString(), span.ToHexString());
    }
}
