using SpIstio.Core.Configuration;
using SpIstio.Core.Redaction;
using SpIstio.Core.Streams;

namespace SpIstio.Core.Tests.Streams;

public sealed class StreamSpanAttributesTests
{
    [Theory]
    [InlineData("text/event-stream", true)]
    [InlineData("Text/Event-Stream; charset=utf-8", true)]
    [InlineData("text/plain", false)]
    [InlineData(null, false)]
    public void IsEventStream(string? contentType, bool expected) => Assert.Equal(expected, StreamSpanAttributes.IsEventStream(contentType));

    [Fact]
    public void Sse_RoundTrips_WithEventDataRedacted()
    {
        using var reader = new SseEventReader(StreamCaptureLimits.Default);
        reader.Append("id: 1\nevent: login\ndata: {\"user\":\"ann\",\"password\":\"hunter2\"}\n\ndata: plain\n\n"u8, TimeSpan.FromMilliseconds(1.25));
        reader.Complete();

        var json = StreamSpanAttributes.EncodeSse(reader, StreamEnd.Complete, Redactor.Create(new RedactionOptions()), out var redacted);
        var decoded = StreamSpanAttributes.DecodeSse(json);

        Assert.Equal(1, redacted);
        Assert.DoesNotContain("hunter2", json);
        Assert.NotNull(decoded);
        Assert.Equal((2, false, "complete"), (decoded.Count, decoded.Truncated, decoded.End));
        Assert.Equal(("1", "login", TimeSpan.FromMilliseconds(1.25)), (decoded.Events[0].Id, decoded.Events[0].Event, decoded.Events[0].Offset));
        Assert.Contains("\"user\":\"ann\"", decoded.Events[0].Data);
        Assert.Equal(("plain", (string?)null), (decoded.Events[1].Data, decoded.Events[1].Id));
    }

    [Fact]
    public void WebSocket_RoundTrips_TextRedacted_BinaryAsBytes_CloseWithItsCode()
    {
        using var reader = new WebSocketFrameReader(StreamCaptureLimits.Default);
        reader.Append(WebSocketDirection.Send, [0x81, 0x17, .. "token=ghp_abcdefghijklm"u8], TimeSpan.FromMilliseconds(2));
        reader.Append(WebSocketDirection.Receive, [0x82, 0x02, 0x01, 0x02, 0x88, 0x05, 0x03, 0xE8, .. "bye"u8], TimeSpan.FromMilliseconds(3));

        var json = StreamSpanAttributes.EncodeWebSocket(reader, StreamEnd.Deadline, Redactor.Create(new RedactionOptions { Patterns = ["ghp_[a-z]+"] }), out var redacted);
        var decoded = StreamSpanAttributes.DecodeWebSocket(json);

        Assert.Equal(1, redacted);
        Assert.NotNull(decoded);
        Assert.Equal((3, "deadline"), (decoded.Count, decoded.End));
        Assert.Collection(
            decoded.Messages,
            m => Assert.Equal((WebSocketDirection.Send, WebSocketOpcode.Text, "token=[REDACTED]"), (m.Direction, m.Opcode, m.Text)),
            m => Assert.Equal((WebSocketOpcode.Binary, "AQI="), (m.Opcode, Convert.ToBase64String(m.Data!))),
            m => Assert.Equal((WebSocketOpcode.Close, 1000, "bye"), (m.Opcode, m.CloseCode, m.Text)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("{}")]
    [InlineData("not json")]
    [InlineData("{\"count\":1,\"truncated\":false,\"messages\":[{\"index\":0,\"offset_ms\":1,\"direction\":\"up\",\"opcode\":\"text\",\"size\":1,\"truncated\":false}]}")]
    public void Decode_NotTheShape_IsNull(string json)
    {
        Assert.Null(StreamSpanAttributes.DecodeSse(json));
        Assert.Null(StreamSpanAttributes.DecodeWebSocket(json));
    }
}
