using System.Text;
using System.Text.Json;
using SpIstio.Core.Otlp;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Core.Streams;

/// <summary>
/// How a captured stream travels as span attributes: the events of a server-sent event response
/// (<see cref="SseEvents"/>) or the messages of a WebSocket (<see cref="WebSocketMessages"/>), each
/// as one JSON attribute the backend, the Trace View and HAR export read back with
/// <see cref="DecodeSse"/> / <see cref="DecodeWebSocket"/>.
/// </summary>
/// <remarks>
/// Shapes: <c>sp.sse.events</c> = <c>{"count","truncated","end","events":[{"index","offset_ms",
/// "id","event","data","size","truncated"}]}</c>; <c>sp.ws.messages</c> = <c>{"count","truncated",
/// "end","messages":[{"index","offset_ms","direction":"send"|"receive","opcode":"text"|"binary"|
/// "close"|"ping"|"pong","size","text"|"data","code","compressed","truncated"}]}</c> — text for text
/// messages and close reasons, base64 <c>data</c> otherwise, <c>code</c> on a close frame. <c>count</c>
/// includes what was not kept; <c>end</c> says how the capture ended (<see cref="StreamEnd"/>).
/// </remarks>
public static class StreamSpanAttributes
{
    /// <summary>The events of a <c>text/event-stream</c> response.</summary>
    public const string SseEvents = "sp.sse.events";

    /// <summary>The messages of a WebSocket connection, both directions.</summary>
    public const string WebSocketMessages = "sp.ws.messages";

    /// <summary>True for <c>text/event-stream</c> (parameters ignored).</summary>
    public static bool IsEventStream(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return false;
        }

        var media = contentType.AsSpan();
        var semicolon = media.IndexOf(';');
        return (semicolon < 0 ? media : media[..semicolon]).Trim().Equals("text/event-stream", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>True for a response that switched the connection to WebSocket: 101 with <c>Upgrade: websocket</c>.</summary>
    public static bool IsWebSocketUpgrade(int? status, string? upgrade) =>
        status == 101 && upgrade is not null && upgrade.Trim().Equals("websocket", StringComparison.OrdinalIgnoreCase);

    /// <summary>True for a request asking to switch to WebSocket: its <c>Upgrade</c> header lists <c>websocket</c>.</summary>
    public static bool IsWebSocketUpgradeRequest(string? upgrade)
    {
        if (string.IsNullOrEmpty(upgrade))
        {
            return false;
        }

        foreach (var range in upgrade.AsSpan().Split(','))
        {
            if (upgrade.AsSpan()[range].Trim().Equals("websocket", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The events as JSON; with a <paramref name="redactor"/>, each event's data goes through the
    /// text/JSON body redaction and <paramref name="redacted"/> counts the values replaced.
    /// </summary>
    public static string EncodeSse(SseEventReader reader, string end, Redactor? redactor, out int redacted)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var count = 0;
        var json = JsonAttributeText.Write(writer =>
        {
            writer.WriteStartObject();
            writer.WriteNumber("count", reader.EventCount);
            writer.WriteBoolean("truncated", reader.Truncated);
            writer.WriteString("end", end);
            writer.WriteStartArray("events");
            foreach (var item in reader.Events)
            {
                writer.WriteStartObject();
                writer.WriteNumber("index", item.Index);
                writer.WriteNumber("offset_ms", Math.Round(item.Offset.TotalMilliseconds, 3));
                WriteOptional(writer, "id", item.Id);
                WriteOptional(writer, "event", item.Event);
                writer.WriteString("data", Redact(redactor, item.Data, item.Truncated, ref count));
                writer.WriteNumber("size", item.Size);
                writer.WriteBoolean("truncated", item.Truncated);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        });
        redacted = count;
        return json;
    }

    /// <summary>Reads what <see cref="EncodeSse"/> wrote; null when the text is not that shape.</summary>
    public static SseEventList? DecodeSse(string? json) => Decode(json, root =>
    {
        var events = new List<SseEvent>();
        foreach (var item in root.GetProperty("events").EnumerateArray())
        {
            events.Add(new SseEvent(
                item.GetProperty("index").GetInt32(),
                TimeSpan.FromMilliseconds(item.GetProperty("offset_ms").GetDouble()),
                Optional(item, "id"),
                Optional(item, "event"),
                item.GetProperty("data").GetString() ?? "",
                item.GetProperty("size").GetInt64(),
                item.GetProperty("truncated").GetBoolean()));
        }

        return new SseEventList(root.GetProperty("count").GetInt32(), root.GetProperty("truncated").GetBoolean(), Optional(root, "end"), events);
    });

    /// <summary>
    /// The messages as JSON; with a <paramref name="redactor"/>, text messages and close reasons go
    /// through the text/JSON body redaction and <paramref name="redacted"/> counts the values replaced.
    /// Binary payloads are not read, like binary bodies.
    /// </summary>
    public static string EncodeWebSocket(WebSocketFrameReader reader, string end, Redactor? redactor, out int redacted)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var count = 0;
        var json = JsonAttributeText.Write(writer =>
        {
            writer.WriteStartObject();
            writer.WriteNumber("count", reader.MessageCount);
            writer.WriteBoolean("truncated", reader.Truncated);
            writer.WriteString("end", end);
            writer.WriteStartArray("messages");
            foreach (var message in reader.Messages)
            {
                writer.WriteStartObject();
                writer.WriteNumber("index", message.Index);
                writer.WriteNumber("offset_ms", Math.Round(message.Offset.TotalMilliseconds, 3));
                writer.WriteString("direction", message.Direction == WebSocketDirection.Send ? "send" : "receive");
                writer.WriteString("opcode", OpcodeName(message.Opcode));
                writer.WriteNumber("size", message.Size);
                if (message.CloseCode is { } code)
                {
                    writer.WriteNumber("code", code);
                }

                if (message.Text is { } text)
                {
                    writer.WriteString("text", Redact(redactor, text, message.Truncated, ref count));
                }
                else
                {
                    writer.WriteBase64String("data", message.Payload.Span);
                }

                if (message.Compressed)
                {
                    writer.WriteBoolean("compressed", true);
                }

                writer.WriteBoolean("truncated", message.Truncated);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        });
        redacted = count;
        return json;
    }

    /// <summary>Reads what <see cref="EncodeWebSocket"/> wrote; null when the text is not that shape.</summary>
    public static WebSocketMessageList? DecodeWebSocket(string? json) => Decode(json, root =>
    {
        var messages = new List<WebSocketMessageView>();
        foreach (var item in root.GetProperty("messages").EnumerateArray())
        {
            var direction = item.GetProperty("direction").GetString() switch
            {
                "send" => WebSocketDirection.Send,
                "receive" => WebSocketDirection.Receive,
                var other => throw new FormatException("unknown direction " + other),
            };
            var opcode = ParseOpcode(item.GetProperty("opcode").GetString());
            messages.Add(new WebSocketMessageView(
                item.GetProperty("index").GetInt32(),
                TimeSpan.FromMilliseconds(item.GetProperty("offset_ms").GetDouble()),
                direction,
                opcode,
                item.GetProperty("size").GetInt64(),
                Optional(item, "text"),
                item.TryGetProperty("data", out var data) ? data.GetBytesFromBase64() : null,
                item.TryGetProperty("code", out var code) ? code.GetInt32() : null,
                item.TryGetProperty("compressed", out var compressed) && compressed.GetBoolean(),
                item.GetProperty("truncated").GetBoolean()));
        }

        return new WebSocketMessageList(root.GetProperty("count").GetInt32(), root.GetProperty("truncated").GetBoolean(), Optional(root, "end"), messages);
    });

    /// <summary>The opcode's name in the attribute: <c>text</c>, <c>binary</c>, <c>close</c>, <c>ping</c>, <c>pong</c>.</summary>
    public static string OpcodeName(WebSocketOpcode opcode) => opcode switch
    {
        WebSocketOpcode.Text => "text",
        WebSocketOpcode.Binary => "binary",
        WebSocketOpcode.Close => "close",
        WebSocketOpcode.Ping => "ping",
        WebSocketOpcode.Pong => "pong",
        _ => throw new ArgumentOutOfRangeException(nameof(opcode), opcode, "not a WebSocket opcode"),
    };

    private static WebSocketOpcode ParseOpcode(string? name) => name switch
    {
        "text" => WebSocketOpcode.Text,
        "binary" => WebSocketOpcode.Binary,
        "close" => WebSocketOpcode.Close,
        "ping" => WebSocketOpcode.Ping,
        "pong" => WebSocketOpcode.Pong,
        _ => throw new FormatException("unknown opcode " + name),
    };

    // Event data and text messages are redacted as a text body would be: JSON by field name when it
    // parses as JSON (a cut-off one as far as it goes), by value everywhere.
    private static string Redact(Redactor? redactor, string text, bool truncated, ref int count)
    {
        if (redactor is null || text.Length == 0)
        {
            return text;
        }

        var bytes = Encoding.UTF8.GetBytes(text);
        var body = new CapturedBody(bytes, bytes.Length, truncated, BodyKind.Text, "text/plain; charset=utf-8");
        var redacted = redactor.RedactBody(body, out var replaced);
        count += replaced;
        return replaced == 0 ? text : Encoding.UTF8.GetString(redacted.Content.Span);
    }

    private static void WriteOptional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is not null)
        {
            writer.WriteString(name, value);
        }
    }

    private static string? Optional(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static T? Decode<T>(string? json, Func<JsonElement, T> read)
        where T : class
    {
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            return read(document.RootElement);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }
}

/// <summary>How a stream's capture ended, the <c>end</c> of its attribute.</summary>
public static class StreamEnd
{
    /// <summary>The stream ended (the response completed; for a WebSocket, the connection closed).</summary>
    public const string Complete = "complete";

    /// <summary>A WebSocket's closing handshake finished: both sides sent a close frame.</summary>
    public const string Closed = "closed";

    /// <summary>The capture deadline (<c>capture.streams.max_duration_ms</c>) passed; the stream went on uncaptured.</summary>
    public const string Deadline = "deadline";

    /// <summary>The client went away.</summary>
    public const string Cancelled = "cancelled";

    /// <summary>The upstream failed.</summary>
    public const string Failed = "failed";

    /// <summary>The <c>end</c> of an exchange's outcome.</summary>
    public static string Of(ExchangeOutcome outcome, bool closed) => outcome switch
    {
        ExchangeOutcome.TimedOut => Deadline,
        ExchangeOutcome.Cancelled => Cancelled,
        ExchangeOutcome.Failed => Failed,
        _ => closed ? Closed : Complete,
    };
}

/// <summary>A response's captured events as read back from a span.</summary>
/// <param name="Count">Every event the stream carried while captured, listed or not.</param>
/// <param name="Truncated">True when something was not kept.</param>
/// <param name="End">How the capture ended (<see cref="StreamEnd"/>), if said.</param>
/// <param name="Events">The events kept.</param>
public sealed record SseEventList(int Count, bool Truncated, string? End, IReadOnlyList<SseEvent> Events);

/// <summary>A WebSocket's captured messages as read back from a span.</summary>
/// <param name="Count">Every message and control frame while captured, listed or not.</param>
/// <param name="Truncated">True when something was not kept.</param>
/// <param name="End">How the capture ended (<see cref="StreamEnd"/>), if said.</param>
/// <param name="Messages">The messages kept.</param>
public sealed record WebSocketMessageList(int Count, bool Truncated, string? End, IReadOnlyList<WebSocketMessageView> Messages);

/// <summary>One WebSocket message as read back from a span: text for text messages and close reasons, bytes otherwise.</summary>
/// <param name="Index">Position over both directions, from 0.</param>
/// <param name="Offset">When its first frame started, from the start of the exchange.</param>
/// <param name="Direction">Which way it went.</param>
/// <param name="Opcode">Text, binary, close, ping or pong.</param>
/// <param name="Size">Its payload size, kept or not.</param>
/// <param name="Text">The (redacted) text, for text messages and close reasons.</param>
/// <param name="Data">The payload bytes kept, for the other opcodes and compressed messages.</param>
/// <param name="CloseCode">The close frame's status code.</param>
/// <param name="Compressed">True when the payload is <c>permessage-deflate</c> compressed.</param>
/// <param name="Truncated">True when not the whole payload was kept.</param>
public sealed record WebSocketMessageView(
    int Index,
    TimeSpan Offset,
    WebSocketDirection Direction,
    WebSocketOpcode Opcode,
    long Size,
    string? Text,
    byte[]? Data,
    int? CloseCode,
    bool Compressed,
    bool Truncated);
