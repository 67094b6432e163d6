using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Streams;

namespace SpIstio.Backend.Tests.Api;

/// <summary>
/// HAR of stream exchanges exported by a running backend: a WebSocket with Chrome's
/// <c>_webSocketMessages</c> and a server-sent event response, valid by the published HAR 1.2 schema.
/// </summary>
public sealed class HarStreamSchemaTests : IAsyncLifetime
{
    private readonly ActivityTraceId _trace = ActivityTraceId.CreateRandom();
    private BackendFixture _backend = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        var start = DateTimeOffset.UtcNow.AddMinutes(-5);

        var ws = Make("/ws", 101, start);
        ws.ResponseHeaders.Add("upgrade", "websocket");
        using (var reader = new WebSocketFrameReader(StreamCaptureLimits.Default))
        {
            reader.Append(WebSocketDirection.Send, [0x81, 0x80 | 0x02, 0, 0, 0, 0, .. "hi"u8], TimeSpan.FromMilliseconds(3));
            reader.Append(WebSocketDirection.Receive, [0x82, 0x01, 0xFF, 0x8A, 0x00], TimeSpan.FromMilliseconds(4));
            ws.Attributes[StreamSpanAttributes.WebSocketMessages] = StreamSpanAttributes.EncodeWebSocket(reader, StreamEnd.Complete, null, out _);
        }

        var sse = Make("/events", 200, start.AddSeconds(1));
        sse.ResponseHeaders.Add("content-type", "text/event-stream");
        var text = Encoding.UTF8.GetBytes("id: 1\ndata: tick\n\n");
        sse.ResponseBody = new CapturedBody(text, text.Length, false, BodyKind.Text, "text/event-stream");
        using (var reader = new SseEventReader(StreamCaptureLimits.Default))
        {
            reader.Append(text, TimeSpan.FromMilliseconds(2));
            sse.Attributes[StreamSpanAttributes.SseEvents] = StreamSpanAttributes.EncodeSse(reader, StreamEnd.Complete, null, out _);
        }

        var request = ExchangeSpanMapper.ToExportRequest([ws, sse], null, "1").ToByteArray();
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request, "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task StreamExchanges_ExportAsSchemaValidHar_WithWebSocketMessagesAndTheEventText()
    {
        using var response = await _backend.GetAsync("/api/traces/" + _trace.ToHexString() + "/har", _backend.AcmeKey);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        using var har = JsonDocument.Parse(body);

        var errors = SchemaValidation.Errors(SchemaValidation.Load("har-schema/har.json"), har.RootElement);

        Assert.True(errors.Count == 0, string.Join('\n', errors));
        var entries = har.RootElement.GetProperty("log").GetProperty("entries").EnumerateArray().ToList();
        var messages = entries[0].GetProperty("_webSocketMessages").EnumerateArray()
            .Select(m => m.GetProperty("type").GetString() + " " + m.GetProperty("opcode").GetInt32() + " " + m.GetProperty("data").GetString());
        Assert.Equal(["send 1 hi", "receive 2 /w=="], messages);
        Assert.Equal("id: 1\ndata: tick\n\n", entries[1].GetProperty("response").GetProperty("content").GetProperty("text").GetString());
        Assert.Contains("server-sent events", entries[1].GetProperty("comment").GetString(), StringComparison.Ordinal);
    }

    private Exchange Make(string path, int status, DateTimeOffset start) => new()
    {
        ServiceName = "frontend",
        Direction = TrafficDirection.Inbound,
        Method = "GET",
        Authority = "frontend:8080",
        Path = path,
        StatusCode = status,
        TraceId = _trace,
        SpanId = ActivitySpanId.CreateRandom(),
        StartTime = start,
        EndTime = start.AddSeconds(2),
        SessionId = "s-streams",
    };
}
