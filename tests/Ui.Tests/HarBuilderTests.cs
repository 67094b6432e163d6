using System.Text;
using System.Text.Json;
using SpIstio.Backend.Har;
using SpIstio.Backend.Storage;
using SpIstio.Core.Streams;
using SpIstio.Ui.Tests.Infrastructure;

namespace SpIstio.Ui.Tests;

public sealed class HarBuilderTests
{
    private static readonly DateTimeOffset _start = new(2025, 3, 4, 10, 20, 30, 123, TimeSpan.Zero);

    [Fact]
    public void Build_ExchangeSpan_IsAValidHar12Entry()
    {
        var span = Span(
            status: 302,
            requestHeaders: "[[\"cookie\",\"a=1; b=two\"],[\"content-type\",\"application/json\"]]",
            responseHeaders: "[[\"location\",\"/next\"],[\"set-cookie\",\"sid=xyz; Path=/; HttpOnly\"]]",
            requestBody: "{\"x\":1}",
            attributes: "{\"sp.http.request.body.content_type\":\"application/json\",\"network.protocol.version\":\"2\"}");

        var json = HarBuilder.Serialize(HarBuilder.Build([span]));

        using var document = JsonDocument.Parse(json);
        Assert.Empty(HarValidator.Validate(document.RootElement));
        var log = document.RootElement.GetProperty("log");
        Assert.Equal("1.2", log.GetProperty("version").GetString());
        Assert.Equal(HarBuilder.CreatorName, log.GetProperty("creator").GetProperty("name").GetString());
        var entry = log.GetProperty("entries")[0];
        Assert.Equal("2025-03-04T10:20:30.123+00:00", entry.GetProperty("startedDateTime").GetString());
        Assert.Equal(250, entry.GetProperty("time").GetDouble());
        Assert.Equal(250, entry.GetProperty("timings").GetProperty("wait").GetDouble());
        var request = entry.GetProperty("request");
        Assert.Equal("HTTP/2", request.GetProperty("httpVersion").GetString());
        Assert.Equal("http://api:8080/orders?id=7&q=a%20b", request.GetProperty("url").GetString());
        Assert.Equal("a b", request.GetProperty("queryString")[1].GetProperty("value").GetString());
        Assert.Equal(["a", "b"], request.GetProperty("cookies").EnumerateArray().Select(c => c.GetProperty("name").GetString()));
        Assert.Equal("{\"x\":1}", request.GetProperty("postData").GetProperty("text").GetString());
        Assert.Equal("application/json", request.GetProperty("postData").GetProperty("mimeType").GetString());
        var response = entry.GetProperty("response");
        Assert.Equal("Found", response.GetProperty("statusText").GetString());
        Assert.Equal("/next", response.GetProperty("redirectURL").GetString());
        Assert.Equal("sid", response.GetProperty("cookies")[0].GetProperty("name").GetString());
        Assert.Equal(0, response.GetProperty("content").GetProperty("size").GetInt64());
    }

    [Fact]
    public void Build_BinaryTruncatedResponse_IsBase64WithATruncationComment()
    {
        var span = Span(responseBytes: [0, 1, 2, 255], attributes:
            "{\"sp.http.response.body.kind\":\"binary\",\"sp.http.response.body.size\":9000,\"sp.http.response.body.truncated\":true,\"sp.http.response.body.content_type\":\"image/png\"}");

        var entry = HarBuilder.Build([span]).Log.Entries[0];

        Assert.Equal("base64", entry.Response.Content.Encoding);
        Assert.Equal(Convert.ToBase64String([0, 1, 2, 255]), entry.Response.Content.Text);
        Assert.Equal("image/png", entry.Response.Content.MimeType);
        Assert.Equal(9000, entry.Response.Content.Size);
        Assert.Equal("truncated: 4 of 9000 bytes captured", entry.Response.Content.Comment);
    }

    [Fact]
    public void Build_SkipsGenericSpans_AndOrdersByStart_AndParseReadsItBack()
    {
        var late = Span(startOffsetMs: 50) with { SpanId = "00000000000000b2" };
        var early = Span() with { SpanId = "00000000000000a1" };
        var generic = Span() with { SpanId = "00000000000000c3", IsExchange = false };

        var document = HarBuilder.Build([late, generic, early]);
        var parsed = HarBuilder.Parse(HarBuilder.Serialize(document));

        Assert.Equal(["00000000000000a1", "00000000000000b2"], parsed.Log.Entries.Select(e => e.SpanId));
        Assert.Equal("GET", parsed.Log.Entries[0].Request.Method);
    }

    [Fact]
    public void Parse_NotAHar_Throws()
    {
        Assert.Throws<JsonException>(() => HarBuilder.Parse("{\"foo\":1}"u8));
    }

    [Fact]
    public void Build_RedactedQueryAndMissingHost_GiveAValidUriWithTheServiceAsHost()
    {
        var span = Span() with { Authority = null, Path = "/checkout/0", Query = "token=[REDACTED]&q=a b&ok=%41" };

        var json = HarBuilder.Serialize(HarBuilder.Build([span]));

        using var document = JsonDocument.Parse(json);
        Assert.Empty(HarValidator.Validate(document.RootElement));
        var url = document.RootElement.GetProperty("log").GetProperty("entries")[0].GetProperty("request").GetProperty("url").GetString()!;
        Assert.Equal("http://orders/checkout/0?token=%5BREDACTED%5D&q=a%20b&ok=%41", url);
        // RFC 3986: only unreserved, reserved and percent-escape characters.
        Assert.Matches("^[A-Za-z0-9._~:/?#\\[\\]@!$&'()*+,;=%-]+$", url);
        Assert.True(Uri.TryCreate(url, UriKind.Absolute, out var uri), url);
        Assert.Equal("orders", uri!.Host);

        // What we export, our own import reads back.
        var reimported = HarBuilder.Parse(json);
        Assert.Equal(url, Assert.Single(reimported.Log.Entries).Request.Url);
    }

    [Fact]
    public void Build_WebSocket_WritesChromesWebSocketMessages_AndNamesWhatItLeavesOut()
    {
        using var reader = new WebSocketFrameReader(StreamCaptureLimits.Default);
        reader.Append(WebSocketDirection.Send, [0x81, 0x02, .. "hi"u8], TimeSpan.FromMilliseconds(1.5));
        reader.Append(WebSocketDirection.Receive, [0x82, 0x02, 0x01, 0x02], TimeSpan.FromMilliseconds(40));
        reader.Append(WebSocketDirection.Receive, [0x89, 0x00, 0x88, 0x02, 0x03, 0xE8], TimeSpan.FromMilliseconds(50));
        var attributes = JsonSerializer.Serialize(new Dictionary<string, string>
        {
            [StreamSpanAttributes.WebSocketMessages] = StreamSpanAttributes.EncodeWebSocket(reader, StreamEnd.Closed, null, out _),
        });

        var json = HarBuilder.Serialize(HarBuilder.Build([Span(status: 101, attributes: attributes)]));

        using var document = JsonDocument.Parse(json);
        Assert.Empty(HarValidator.Validate(document.RootElement));
        var entry = document.RootElement.GetProperty("log").GetProperty("entries")[0];
        var messages = entry.GetProperty("_webSocketMessages").EnumerateArray().ToList();
        Assert.Equal(2, messages.Count);
        Assert.Equal(("send", 1, "hi"), (messages[0].GetProperty("type").GetString(), messages[0].GetProperty("opcode").GetInt32(), messages[0].GetProperty("data").GetString()));
        Assert.Equal(("receive", 2, "AQI="), (messages[1].GetProperty("type").GetString(), messages[1].GetProperty("opcode").GetInt32(), messages[1].GetProperty("data").GetString()));
        Assert.Equal(_start.AddMilliseconds(1.5).ToUnixTimeMilliseconds() / 1000.0, messages[0].GetProperty("time").GetDouble(), 3);
        Assert.Contains("2 not listed (control frames", entry.GetProperty("comment").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Build_ServerSentEvents_AreTheResponseText_AndTheCommentSaysWhatIsLeftOut()
    {
        using var reader = new SseEventReader(StreamCaptureLimits.Default);
        reader.Append("data: one\n\ndata: two\n\n"u8, TimeSpan.Zero);
        var attributes = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            [StreamSpanAttributes.SseEvents] = StreamSpanAttributes.EncodeSse(reader, StreamEnd.Deadline, null, out _),
            ["sp.http.response.body.content_type"] = "text/event-stream",
        });

        var json = HarBuilder.Serialize(HarBuilder.Build([Span(responseBytes: "data: one\n\ndata: two\n\n"u8.ToArray(), attributes: attributes)]));

        using var document = JsonDocument.Parse(json);
        Assert.Empty(HarValidator.Validate(document.RootElement));
        var entry = document.RootElement.GetProperty("log").GetProperty("entries")[0];
        Assert.Equal("data: one\n\ndata: two\n\n", entry.GetProperty("response").GetProperty("content").GetProperty("text").GetString());
        Assert.False(entry.TryGetProperty("_webSocketMessages", out _));
        Assert.Contains("server-sent events: 2 of 2", entry.GetProperty("comment").GetString(), StringComparison.Ordinal);
        Assert.Contains("deadline", entry.GetProperty("comment").GetString(), StringComparison.Ordinal);
    }

    private static StoredSpan Span(
        int status = 200, string? requestHeaders = null, string? responseHeaders = null, string? requestBody = null,
        byte[]? responseBytes = null, string attributes = "{}", int startOffsetMs = 0) => new()
    {
        TraceId = "0123456789abcdef0123456789abcdef",
        SpanId = "0123456789abcdef",
        Name = "GET /orders",
        Kind = 2,
        ServiceName = "orders",
        StartTime = _start.AddMilliseconds(startOffsetMs),
        EndTime = _start.AddMilliseconds(startOffsetMs + 250),
        IsExchange = true,
        Direction = "inbound",
        Method = "GET",
        Scheme = "http",
        Authority = "api:8080",
        Path = "/orders",
        Query = "id=7&q=a%20b",
        StatusCode = status,
        RequestHeadersJson = requestHeaders ?? "[]",
        ResponseHeadersJson = responseHeaders ?? "[]",
        RequestBody = requestBody is null ? ReadOnlyMemory<byte>.Empty : Encoding.UTF8.GetBytes(requestBody),
        ResponseBody = responseBytes ?? ReadOnlyMemory<byte>.Empty,
        AttributesJson = attributes,
    };
}
