using System.Globalization;
using System.Text.Json;
using SpIstio.Core.Streams;

namespace SpIstio.Backend.Har;

/// <summary>
/// Streams in HAR, in the forms the HAR ecosystem reads: a WebSocket's messages as Chrome DevTools'
/// <c>_webSocketMessages</c> (text and binary messages: <c>type</c>, <c>time</c> in epoch seconds,
/// <c>opcode</c> 1 or 2, <c>data</c>); a server-sent event stream as its response content
/// (<c>text/event-stream</c> text, which the agent writes from the captured events). What HAR has no
/// place for is named in the entry's comment: control frames (close, ping, pong), per-event times
/// of an SSE stream, and whatever the capture limits left out.
/// </summary>
public static class HarStreams
{
    /// <summary>The text and binary messages of a WebSocket exchange's <c>sp.ws.messages</c>, or null when it has none.</summary>
    public static IReadOnlyList<HarWebSocketMessage>? WebSocketMessages(JsonElement? attributes, DateTimeOffset start)
    {
        if (Decode(attributes, StreamSpanAttributes.WebSocketMessages) is not { } json
            || StreamSpanAttributes.DecodeWebSocket(json) is not { } list)
        {
            return null;
        }

        var messages = new List<HarWebSocketMessage>(list.Messages.Count);
        foreach (var m in list.Messages)
        {
            if (m.Opcode is not (WebSocketOpcode.Text or WebSocketOpcode.Binary))
            {
                continue;
            }

            var time = (start + m.Offset).ToUnixTimeMilliseconds() / 1000.0;
            var type = m.Direction == WebSocketDirection.Send ? "send" : "receive";
            var data = m.Text ?? Convert.ToBase64String(m.Data ?? []);

            // A compressed text message has no text (permessage-deflate is not inflated): its bytes go as base64 under opcode 2.
            var opcode = m.Opcode == WebSocketOpcode.Text && m.Text is not null ? 1 : 2;
            messages.Add(new HarWebSocketMessage(type, time, opcode, data));
        }

        return messages;
    }

    /// <summary>What the entry leaves out of a stream, for its comment; empty for other exchanges.</summary>
    public static string Note(JsonElement? attributes, IReadOnlyList<HarWebSocketMessage>? webSocket)
    {
        if (webSocket is not null)
        {
            var list = StreamSpanAttributes.DecodeWebSocket(Decode(attributes, StreamSpanAttributes.WebSocketMessages));
            var left = list is null ? 0 : list.Count - webSocket.Count;
            return string.Create(
                CultureInfo.InvariantCulture,
                $"; WebSocket: {webSocket.Count} text/binary message(s) in _webSocketMessages, {left} not listed (control frames, messages past the capture limits){(list?.Truncated == true ? "; some payloads truncated" : "")}");
        }

        if (StreamSpanAttributes.DecodeSse(Decode(attributes, StreamSpanAttributes.SseEvents)) is { } sse)
        {
            return string.Create(
                CultureInfo.InvariantCulture,
                $"; server-sent events: {sse.Events.Count} of {sse.Count} event(s) as the response text (comments and retry not kept; per-event times are in the span's {StreamSpanAttributes.SseEvents}){(sse.End == StreamEnd.Deadline ? "; capture stopped at its deadline while the stream went on" : "")}");
        }

        return "";
    }

    private static string? Decode(JsonElement? attributes, string name) =>
        attributes is { ValueKind: JsonValueKind.Object } a && a.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;
}
