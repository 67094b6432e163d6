using System.Diagnostics;
using System.Text;
using Google.Protobuf;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Otlp.Proto.Resource;
using SpIstio.Core.Otlp.Proto.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Core.Tests.Otlp;

public class ExchangeSpanMapperTests
{
    private static readonly ActivityTraceId _traceId = ActivityTraceId.CreateFromString("0af7651916cd43dd8448eb211c80319c");
    private static readonly ActivitySpanId _spanId = ActivitySpanId.CreateFromString("b7ad6b7169203331");
    private static readonly ActivitySpanId _parentId = ActivitySpanId.CreateFromString("00f067aa0ba902b7");
    private static readonly DateTimeOffset _start = new(2024, 5, 6, 7, 8, 9, TimeSpan.Zero);

    [Fact]
    public void ToSpan_FullyPopulatedExchange_CarriesExactlyTheDocumentedAttributes()
    {
        var exchange = FullExchange();

        var span = ExchangeSpanMapper.ToSpan(exchange, publicKey: "pk-123");

        var expected = new Dictionary<string, object>
        {
            ["sp.service.name"] = "checkout",
            ["sp.traffic.direction"] = "outbound",
            ["sp.span.type"] = "extract",
            ["sp.session.id"] = "sess-42",
            ["sp.public.key"] = "pk-123",
            ["url.host"] = "payments.svc:8443",
            ["url.path"] = "/v1/charges",
            ["url.query"] = "limit=5",
            ["url.scheme"] = "https",
            ["url.full"] = "https://payments.svc:8443/v1/charges?limit=5",
            ["http.request.method"] = "POST",
            ["server.address"] = "payments.svc",
            ["server.port"] = 8443L,
            ["http.request.header.content-type"] = "application/json",
            ["http.request.header.accept"] = new[] { "text/html", "application/json" },
            ["http.request.body"] = "{\"amount\":10}",
            ["sp.http.request.body.size"] = 40L,
            ["sp.http.request.body.truncated"] = true,
            ["sp.http.request.body.content_type"] = "application/json",
            ["sp.http.request.body.content_encoding"] = "gzip",
            ["sp.http.request.body.decoded"] = true,
            ["http.response.status_code"] = 502L,
            ["http.response.header.content-type"] = "application/octet-stream",
            ["http.response.body"] = "AAH/",
            ["sp.http.response.body.encoding"] = "base64",
            ["sp.http.response.body.size"] = 3L,
            ["sp.cache"] = "miss",
            ["sp.outcome"] = "failed",
            ["sp.error"] = "upstream reset",
            ["error.type"] = "failed",
            ["envoy.route"] = "payments",
        };
        Assert.Equal(expected, Attributes(span));
        Assert.Equal(OtlpSpan.Types.SpanKind.Client, span.Kind);
        Assert.Equal("POST /v1/charges", span.Name);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", Convert.ToHexStringLower(span.TraceId.Span));
        Assert.Equal("b7ad6b7169203331", Convert.ToHexStringLower(span.SpanId.Span));
        Assert.Equal("00f067aa0ba902b7", Convert.ToHexStringLower(span.ParentSpanId.Span));
        Assert.Equal(1714979289000000000UL, span.StartTimeUnixNano);
        Assert.Equal(1714979289000000000UL + 1_234_567_800UL, span.EndTimeUnixNano);
        Assert.Equal(Status.Types.StatusCode.Error, span.Status.Code);
        Assert.Equal("upstream reset", span.Status.Message);
    }

    [Fact]
    public void ToSpan_RootInboundExchange_IsServerSpanWithEmptyParent()
    {
        var exchange = new Exchange { Direction = TrafficDirection.Inbound, TraceId = _traceId, SpanId = _spanId, StatusCode = 200 };

        var span = ExchangeSpanMapper.ToSpan(exchange);

        Assert.Equal(OtlpSpan.Types.SpanKind.Server, span.Kind);
        Assert.True(span.ParentSpanId.IsEmpty);
        Assert.Null(span.Status);
        Assert.DoesNotContain(span.Attributes, kv => kv.Key is "sp.public.key" or "sp.session.id" or "url.query" or "sp.cache");
    }

    [Theory]
    [InlineData(TrafficDirection.Inbound, 404, ExchangeOutcome.Completed, Status.Types.StatusCode.Unset, null)]
    [InlineData(TrafficDirection.Outbound, 404, ExchangeOutcome.Completed, Status.Types.StatusCode.Error, "404")]
    [InlineData(TrafficDirection.Inbound, 500, ExchangeOutcome.Completed, Status.Types.StatusCode.Error, "500")]
    [InlineData(TrafficDirection.Outbound, 399, ExchangeOutcome.Completed, Status.Types.StatusCode.Unset, null)]
    [InlineData(TrafficDirection.Inbound, 200, ExchangeOutcome.Cancelled, Status.Types.StatusCode.Error, "cancelled")]
    [InlineData(TrafficDirection.Outbound, null, ExchangeOutcome.TimedOut, Status.Types.StatusCode.Error, "timed_out")]
    public void ToSpan_Status_FollowsOtelHttpSemanticConventions(
        TrafficDirection direction, int? status, ExchangeOutcome outcome, Status.Types.StatusCode code, string? errorType)
    {
        var exchange = new Exchange { Direction = direction, StatusCode = status, Outcome = outcome };

        var span = ExchangeSpanMapper.ToSpan(exchange);

        Assert.Equal(code, span.Status?.Code ?? Status.Types.StatusCode.Unset);
        Assert.Equal(errorType, span.Attributes.FirstOrDefault(kv => kv.Key == "error.type")?.Value.StringValue);
    }

    [Fact]
    public void ToSpan_OutcomeWithoutErrorText_UsesOutcomeAsStatusMessage()
    {
        var span = ExchangeSpanMapper.ToSpan(new Exchange { Outcome = ExchangeOutcome.TimedOut });

        Assert.Equal("timed_out", span.Status.Message);
    }

    [Fact]
    public void ToSpan_ExtraAttributeUnderReservedName_IsNotExportedTwice()
    {
        var exchange = new Exchange { Path = "/real" };
        exchange.Attributes["url.path"] = "/fake";
        exchange.Attributes["http.request.header.x"] = "smuggled";

        var span = ExchangeSpanMapper.ToSpan(exchange);

        Assert.Equal("/real", Assert.Single(span.Attributes, kv => kv.Key == "url.path").Value.StringValue);
        Assert.DoesNotContain(span.Attributes, kv => kv.Key == "http.request.header.x");
    }

    [Theory]
    [InlineData("example.com", "example.com", null)]
    [InlineData("example.com:8080", "example.com", 8080L)]
    [InlineData("[::1]:9000", "::1", 9000L)]
    [InlineData("[2001:db8::1]", "2001:db8::1", null)]
    [InlineData("10.0.0.7:80", "10.0.0.7", 80L)]
    public void ToSpan_ServerAddressAndPort_ComeFromTheAuthority(string authority, string address, long? port)
    {
        var span = ExchangeSpanMapper.ToSpan(new Exchange { Authority = authority });

        var attributes = Attributes(span);
        Assert.Equal(authority, attributes["url.host"]);
        Assert.Equal(address, attributes["server.address"]);
        Assert.Equal(port, attributes.TryGetValue("server.port", out var p) ? (long?)p : null);
    }

    [Fact]
    public void RoundTrip_FullyPopulatedExchange_IsExact()
    {
        var exchange = FullExchange();

        var back = ExchangeSpanMapper.FromSpan(ExchangeSpanMapper.ToSpan(exchange, "pk"), resource: null);

        Assert.Null(ExchangeComparer.Difference(exchange, back));
    }

    [Fact]
    public void RoundTrip_RepeatedHeaders_TravelAsOneArrayAndComeBackInOrder()
    {
        var exchange = new Exchange();
        exchange.ResponseHeaders.Add("set-cookie", "a=1");
        exchange.ResponseHeaders.Add("content-type", "text/plain");
        exchange.ResponseHeaders.Add("set-cookie", "b=2");
        exchange.ResponseHeaders.Add("set-cookie", "c=3");

        var span = ExchangeSpanMapper.ToSpan(exchange);
        var back = ExchangeSpanMapper.FromSpan(span, resource: null);

        var cookies = Assert.Single(span.Attributes, kv => kv.Key == "http.response.header.set-cookie").Value.ArrayValue;
        Assert.Equal(["a=1", "b=2", "c=3"], cookies.Values.Select(v => v.StringValue));
        Assert.Equal(
            [new("set-cookie", "a=1"), new("set-cookie", "b=2"), new("set-cookie", "c=3"), new("content-type", "text/plain")],
            back.ResponseHeaders.ToList());
    }

    [Fact]
    public void RoundTrip_BinaryBody_GoesAsMarkedBase64AndComesBackByteForByte()
    {
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0xFF];
        var exchange = new Exchange { RequestBody = new CapturedBody(png, png.Length, false, BodyKind.Binary, "image/png") };

        var span = ExchangeSpanMapper.ToSpan(exchange);
        var back = ExchangeSpanMapper.FromSpan(span, resource: null);

        var attributes = Attributes(span);
        Assert.Equal(Convert.ToBase64String(png), attributes["http.request.body"]);
        Assert.Equal("base64", attributes["sp.http.request.body.encoding"]);
        Assert.Equal(BodyKind.Binary, back.RequestBody.Kind);
        Assert.Equal(png, back.RequestBody.Content.ToArray());
        Assert.Equal("image/png", back.RequestBody.ContentType);
    }

    [Fact]
    public void RoundTrip_TextBodyThatIsNotUtf8_KeepsItsBytesAndStaysText()
    {
        byte[] latin1 = [0x63, 0x61, 0x66, 0xE9]; // "café" in ISO-8859-1
        var exchange = new Exchange { ResponseBody = new CapturedBody(latin1, 4, false, BodyKind.Text, "text/plain; charset=iso-8859-1") };

        var back = ExchangeSpanMapper.FromSpan(ExchangeSpanMapper.ToSpan(exchange), resource: null);

        Assert.Equal(BodyKind.Text, back.ResponseBody.Kind);
        Assert.Equal(latin1, back.ResponseBody.Content.ToArray());
    }

    [Fact]
    public void FromSpan_OriginalRustAgentExtractSpan_MapsEveryField()
    {
        var (span, resource) = OriginalAgentSpan(withMethod: true);

        var exchange = ExchangeSpanMapper.FromSpan(span, resource);

        Assert.Equal("checkout", exchange.ServiceName);
        Assert.Equal(TrafficDirection.Outbound, exchange.Direction); // sp.traffic.direction wins over kind SERVER
        Assert.Equal("POST", exchange.Method);
        Assert.Equal("http", exchange.Scheme);
        Assert.Equal("payments.svc:8080", exchange.Authority);
        Assert.Equal("/api/orders", exchange.Path);
        Assert.Equal("id=7", exchange.Query);
        Assert.Equal("sess_abc", exchange.SessionId);
        Assert.Equal(201, exchange.StatusCode);
        Assert.Equal(
            [new("content-type", "application/json"), new("x-request-id", "r-1")],
            exchange.RequestHeaders.ToList());
        Assert.Equal([new("content-type", "application/octet-stream")], exchange.ResponseHeaders.ToList());
        Assert.Equal(BodyKind.Text, exchange.RequestBody.Kind);
        Assert.Equal("{\"qty\":2}", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
        Assert.Equal("application/json", exchange.RequestBody.ContentType);
        Assert.Equal(BodyKind.Binary, exchange.ResponseBody.Kind);
        Assert.Equal([0x00, 0x01, 0x02, 0xFF], exchange.ResponseBody.Content.ToArray());
        Assert.Equal(4, exchange.ResponseBody.OriginalSize);
        Assert.Equal(_traceId, exchange.TraceId);
        Assert.Equal(_spanId, exchange.SpanId);
        Assert.Equal(_parentId, exchange.ParentSpanId);
        Assert.Equal(_start, exchange.StartTime);
        Assert.Equal(ExchangeOutcome.Completed, exchange.Outcome);
        Assert.Empty(exchange.Attributes); // sp.span.type=extract and the public key are not data
        Assert.Equal("pk-original", ExchangeSpanMapper.GetPublicKey(span, resource));
        Assert.True(ExchangeSpanMapper.IsExchangeSpan(span));
    }

    [Fact]
    public void FromSpan_OriginalAgentSpanWithoutAnyMethod_DefaultsToGet()
    {
        var (span, resource) = OriginalAgentSpan(withMethod: false);

        var exchange = ExchangeSpanMapper.FromSpan(span, resource);

        Assert.Equal("GET", exchange.Method);
    }

    [Fact]
    public void FromSpan_OriginalAgentInjectSpan_KeepsItsSpanType()
    {
        var (span, resource) = OriginalAgentSpan(withMethod: true);
        span.Attributes.Single(kv => kv.Key == "sp.span.type").Value.StringValue = "inject";

        var exchange = ExchangeSpanMapper.FromSpan(span, resource);

        Assert.Equal("inject", exchange.Attributes["sp.span.type"]);
        Assert.Contains(ExchangeSpanMapper.ToSpan(exchange).Attributes, kv => kv.Key == "sp.span.type" && kv.Value.StringValue == "inject");
    }

    [Fact]
    public void FromSpan_OldSemconvSdkClientSpan_ReadsHttpFieldsAndKeepsTheRest()
    {
        var span = new OtlpSpan
        {
            TraceId = ExchangeSpanMapper.TraceIdToBytes(_traceId),
            SpanId = ExchangeSpanMapper.SpanIdToBytes(_spanId),
            Kind = OtlpSpan.Types.SpanKind.Client,
            Name = "HTTP PUT",
            Status = new Status { Code = Status.Types.StatusCode.Error },
            Attributes =
            {
                Str("http.method", "PUT"),
                Str("http.url", "https://api.example.com:8443/v1/items?x=1#frag"),
                new KeyValue { Key = "http.status_code", Value = new AnyValue { IntValue = 503 } },
                Str("net.peer.name", "api.example.com"),
                Str("error.type", "System.Net.Http.HttpRequestException"),
                new KeyValue { Key = "retry.count", Value = new AnyValue { IntValue = 2 } },
                new KeyValue { Key = "ratio", Value = new AnyValue { DoubleValue = 0.5 } },
                new KeyValue { Key = "cached", Value = new AnyValue { BoolValue = true } },
                new KeyValue
                {
                    Key = "tags",
                    Value = new AnyValue { ArrayValue = new ArrayValue { Values = { new AnyValue { StringValue = "a\"b" }, new AnyValue { IntValue = 1 } } } },
                },
            },
        };
        var resource = new Resource { Attributes = { Str("service.name", "orders") } };

        var exchange = ExchangeSpanMapper.FromSpan(span, resource);

        Assert.True(ExchangeSpanMapper.IsExchangeSpan(span));
        Assert.Equal("orders", exchange.ServiceName);
        Assert.Equal(TrafficDirection.Outbound, exchange.Direction);
        Assert.Equal("PUT", exchange.Method);
        Assert.Equal("https", exchange.Scheme);
        Assert.Equal("api.example.com:8443", exchange.Authority);
        Assert.Equal("/v1/items", exchange.Path);
        Assert.Equal("x=1", exchange.Query);
        Assert.Equal(503, exchange.StatusCode);
        Assert.Equal(ExchangeOutcome.Completed, exchange.Outcome);
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["net.peer.name"] = "api.example.com",
                ["error.type"] = "System.Net.Http.HttpRequestException",
                ["retry.count"] = "2",
                ["ratio"] = "0.5",
                ["cached"] = "true",
                ["tags"] = "[\"a\\\"b\",1]",
            },
            exchange.Attributes);
    }

    [Fact]
    public void FromSpan_SpanWithoutHttp_IsNotAnExchangeSpanButKeepsItsAttributes()
    {
        var span = new OtlpSpan
        {
            Kind = OtlpSpan.Types.SpanKind.Internal,
            Name = "SELECT orders",
            Status = new Status { Code = Status.Types.StatusCode.Error, Message = "deadlock" },
            Attributes =
            {
                Str("db.system", "postgresql"),
                new KeyValue
                {
                    Key = "db.params",
                    Value = new AnyValue
                    {
                        KvlistValue = new KeyValueList { Values = { Str("id", "7"), new KeyValue { Key = "n", Value = new AnyValue { IntValue = 3 } } } },
                    },
                },
                new KeyValue { Key = "blob", Value = new AnyValue { BytesValue = ByteString.CopyFrom(1, 2, 3) } },
            },
        };

        var exchange = ExchangeSpanMapper.FromSpan(span, resource: null);

        Assert.False(ExchangeSpanMapper.IsExchangeSpan(span));
        Assert.Equal(ServiceNames.Default, exchange.ServiceName);
        Assert.Equal(ExchangeOutcome.Failed, exchange.Outcome);
        Assert.Equal("deadlock", exchange.Error);
        Assert.Equal(default, exchange.TraceId);
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["db.system"] = "postgresql",
                ["db.params"] = "{\"id\":\"7\",\"n\":3}",
                ["blob"] = "AQID",
            },
            exchange.Attributes);
    }

    [Fact]
    public void ToExportRequest_GroupsSpansIntoOneResourcePerService()
    {
        var a1 = new Exchange { ServiceName = "a", Path = "/1" };
        var b = new Exchange { ServiceName = "b", Path = "/2" };
        var a2 = new Exchange { ServiceName = "a", Path = "/3" };

        var request = ExchangeSpanMapper.ToExportRequest([a1, b, a2], publicKey: "pk", scopeVersion: "0.1.0");

        Assert.Equal(2, request.ResourceSpans.Count);
        Assert.Equal(["a", "b"], request.ResourceSpans.Select(rs => rs.Resource.Attributes.Single(kv => kv.Key == "service.name").Value.StringValue));
        var scope = Assert.Single(request.ResourceSpans[0].ScopeSpans);
        Assert.Equal("sp-istio-agent-dotnet", scope.Scope.Name);
        Assert.Equal("0.1.0", scope.Scope.Version);
        Assert.Equal(["GET /1", "GET /3"], scope.Spans.Select(s => s.Name));
        Assert.Equal(["GET /2"], request.ResourceSpans[1].ScopeSpans[0].Spans.Select(s => s.Name));
        Assert.All(scope.Spans, s => Assert.Equal("pk", Attributes(s)["sp.public.key"]));
    }

    [Fact]
    public void Times_KeepTickPrecisionThroughUnixNanos()
    {
        var time = new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.FromHours(2)).AddTicks(1234567);

        var nanos = ExchangeSpanMapper.ToUnixNanos(time);

        Assert.Equal(0UL, nanos % 100);
        Assert.Equal(time.UtcTicks, ExchangeSpanMapper.FromUnixNanos(nanos).UtcTicks);
        Assert.Equal(TimeSpan.Zero, ExchangeSpanMapper.FromUnixNanos(nanos).Offset);
    }

    [Theory]
    [InlineData("")]
    [InlineData("00000000000000000000000000000000")]
    [InlineData("0af7651916cd43dd8448eb211c8031")]
    public void TraceIdFromBytes_InvalidOtlpId_IsDefault(string hex)
    {
        Assert.Equal(default, ExchangeSpanMapper.TraceIdFromBytes(ByteString.CopyFrom(Convert.FromHexString(hex))));
    }

    private static Exchange FullExchange()
    {
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Outbound,
            ServiceName = "checkout",
            Method = "POST",
            Scheme = "https",
            Authority = "payments.svc:8443",
            Path = "/v1/charges",
            Query = "limit=5",
            RequestBody = new CapturedBody(Encoding.UTF8.GetBytes("{\"amount\":10}"), 40, true, BodyKind.Text, "application/json", "gzip", true),
            StatusCode = 502,
            ResponseBody = new CapturedBody(new byte[] { 0x00, 0x01, 0xFF }, 3, false, BodyKind.Binary),
            StartTime = _start,
            EndTime = _start.AddTicks(12_345_678),
            TraceId = _traceId,
            SpanId = _spanId,
            ParentSpanId = _parentId,
            SessionId = "sess-42",
            Cache = CacheOutcome.Miss,
            Outcome = ExchangeOutcome.Failed,
            Error = "upstream reset",
        };
        exchange.RequestHeaders.Add("Content-Type", "application/json");
        exchange.RequestHeaders.Add("accept", "text/html");
        exchange.RequestHeaders.Add("accept", "application/json");
        exchange.ResponseHeaders.Add("content-type", "application/octet-stream");
        exchange.Attributes["envoy.route"] = "payments";
        return exchange;
    }

    /// <summary>A span as the original Rust agent's create_extract_span builds it: string attributes, Envoy pseudo-headers, no semconv.</summary>
    private static (OtlpSpan Span, Resource Resource) OriginalAgentSpan(bool withMethod)
    {
        var span = new OtlpSpan
        {
            TraceId = ExchangeSpanMapper.TraceIdToBytes(_traceId),
            SpanId = ExchangeSpanMapper.SpanIdToBytes(_spanId),
            ParentSpanId = ExchangeSpanMapper.SpanIdToBytes(_parentId),
            Name = "/api/orders?id=7",
            Kind = OtlpSpan.Types.SpanKind.Server,
            StartTimeUnixNano = ExchangeSpanMapper.ToUnixNanos(_start),
            EndTimeUnixNano = ExchangeSpanMapper.ToUnixNanos(_start.AddMilliseconds(12)),
            Status = new Status { Code = Status.Types.StatusCode.Ok },
            Attributes =
            {
                Str("sp.service.name", "checkout"),
                Str("sp.traffic.direction", "outbound"),
                Str("sp.span.type", "extract"),
                Str("sp.session.id", "sess_abc"),
                Str("http.request.header.:authority", "payments.svc:8080"),
                Str("http.request.header.:path", "/api/orders?id=7"),
                Str("http.request.header.:scheme", "http"),
                Str("http.request.header.content-type", "application/json"),
                Str("http.request.header.x-request-id", "r-1"),
                Str("url.path", "/api/orders?id=7"),
                Str("url.full", "http://payments.svc:8080/api/orders?id=7"),
                Str("url.host", "payments.svc:8080"),
                Str("http.request.body", "{\"qty\":2}"),
                Str("http.response.header.:status", "201"),
                Str("http.response.header.content-type", "application/octet-stream"),
                new KeyValue { Key = "http.response.status_code", Value = new AnyValue { IntValue = 201 } },
                Str("http.response.body", Convert.ToBase64String(new byte[] { 0x00, 0x01, 0x02, 0xFF })),
            },
        };
        if (withMethod)
        {
            span.Attributes.Add(Str("http.request.header.:method", "POST"));
        }

        var resource = new Resource
        {
            Attributes = { Str("sp.public.key", "pk-original"), Str("service.name", "checkout"), Str("sp.resource.type", "sp-envoy-proxy") },
        };
        return (span, resource);
    }

    private static KeyValue Str(string key, string value) => new() { Key = key, Value = new AnyValue { StringValue = value } };

    /// <summary>The span's attributes as a dictionary (throws on a duplicate key): strings, longs, bools, string arrays.</summary>
    private static Dictionary<string, object> Attributes(OtlpSpan span) =>
        span.Attributes.ToDictionary(
            kv => kv.Key,
            kv => kv.Value.ValueCase switch
            {
                AnyValue.ValueOneofCase.StringValue => (object)kv.Value.StringValue,
                AnyValue.ValueOneofCase.IntValue => kv.Value.IntValue,
                AnyValue.ValueOneofCase.BoolValue => kv.Value.BoolValue,
                AnyValue.ValueOneofCase.ArrayValue => kv.Value.ArrayValue.Values.Select(v => v.StringValue).ToArray(),
                _ => throw new InvalidOperationException("unexpected value type " + kv.Value.ValueCase),
            },
            StringComparer.Ordinal);
}
