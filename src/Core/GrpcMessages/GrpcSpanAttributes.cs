using System.Buffers.Binary;
using System.Text.Json;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// How a captured gRPC call travels as span attributes: the OpenTelemetry RPC conventions
/// (<c>rpc.system</c>, <c>rpc.service</c>, <c>rpc.method</c>, <c>rpc.grpc.status_code</c>) beside
/// ours, and each direction's messages as one JSON attribute that the backend and the UI decode
/// (with descriptor sets when they have them), never the data path.
/// </summary>
public static class GrpcSpanAttributes
{
    /// <summary><c>rpc.system</c>: <c>grpc</c>.</summary>
    public const string RpcSystem = "rpc.system";

    /// <summary><c>rpc.service</c>: the full service name, <c>package.Service</c>.</summary>
    public const string RpcService = "rpc.service";

    /// <summary><c>rpc.method</c>: the method name.</summary>
    public const string RpcMethod = "rpc.method";

    /// <summary><c>rpc.grpc.status_code</c>: the status code as an integer.</summary>
    public const string RpcStatusCode = "rpc.grpc.status_code";

    /// <summary>The status code's canonical name (<c>NOT_FOUND</c>).</summary>
    public const string StatusName = "sp.grpc.status";

    /// <summary>
    /// <c>true</c> when the call carried no status (reset by the client, deadline passed, upstream
    /// failed) and the agent recorded the one the client sees (<c>DEADLINE_EXCEEDED</c>,
    /// <c>CANCELLED</c> or <c>UNAVAILABLE</c>).
    /// </summary>
    public const string StatusInferred = "sp.grpc.status_inferred";

    /// <summary>The percent-decoded <c>grpc-message</c>.</summary>
    public const string StatusMessage = "sp.grpc.message";

    /// <summary>The decoded <c>grpc-status-details-bin</c> as JSON.</summary>
    public const string StatusDetails = "sp.grpc.status_details";

    /// <summary>The request stream's messages as JSON (<see cref="EncodeMessages(GrpcMessageList)"/>).</summary>
    public const string RequestMessages = "sp.grpc.request.messages";

    /// <summary>The response stream's messages as JSON (<see cref="EncodeMessages(GrpcMessageList)"/>).</summary>
    public const string ResponseMessages = "sp.grpc.response.messages";

    /// <summary>
    /// True for the gRPC content types (<c>application/grpc</c>, <c>application/grpc+proto</c>,
    /// <c>application/grpc+json</c>, …); gRPC-Web frames trailers into the body and is not one.
    /// </summary>
    public static bool IsGrpc(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return false;
        }

        var media = contentType.AsSpan();
        var semicolon = media.IndexOf(';');
        media = (semicolon < 0 ? media : media[..semicolon]).Trim();
        const string Grpc = "application/grpc";
        return media.StartsWith(Grpc, StringComparison.OrdinalIgnoreCase)
            && (media.Length == Grpc.Length || media[Grpc.Length] == '+');
    }

    /// <summary>Splits a gRPC request path <c>/package.Service/Method</c>; null when it is not one.</summary>
    public static (string Service, string Method)? ParsePath(string? path)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/')
        {
            return null;
        }

        var slash = path.IndexOf('/', 1);
        if (slash <= 1 || slash == path.Length - 1 || path.IndexOf('/', slash + 1) >= 0)
        {
            return null;
        }

        return (path[1..slash], path[(slash + 1)..]);
    }

    /// <summary>
    /// One direction's messages as JSON: <c>{"count":N,"truncated":b,"messages":[{"index","offset_ms",
    /// "compressed","decoded","size","truncated","data"}]}</c>, the payloads in base64; <c>count</c>
    /// includes messages past the limits, which are not listed.
    /// </summary>
    public static string EncodeMessages(GrpcFrameReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return EncodeMessages(new GrpcMessageList(reader.MessageCount, reader.Truncated, reader.Messages));
    }

    /// <summary>Writes a message list (one read back with <see cref="DecodeMessages"/> and rewritten, e.g. redacted) in the same form.</summary>
    public static string EncodeMessages(GrpcMessageList list)
    {
        ArgumentNullException.ThrowIfNull(list);
        return JsonAttributeText.Write(list, static (json, list) =>
        {
            json.WriteStartObject();
            json.WriteNumber("count", list.Count);
            json.WriteBoolean("truncated", list.Truncated);
            json.WriteStartArray("messages");
            foreach (var message in list.Messages)
            {
                json.WriteStartObject();
                json.WriteNumber("index", message.Index);
                json.WriteNumber("offset_ms", Math.Round(message.Offset.TotalMilliseconds, 3));
                json.WriteBoolean("compressed", message.Compressed);
                json.WriteBoolean("decoded", message.Decoded);
                json.WriteNumber("size", message.WireLength);
                json.WriteBoolean("truncated", message.Truncated);
                json.WriteBase64String("data", message.Payload.Span);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        });
    }

    /// <summary>Reads what <see cref="EncodeMessages(GrpcMessageList)"/> wrote; null when the text is not that shape.</summary>
    public static GrpcMessageList? DecodeMessages(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            var messages = new List<GrpcMessage>();
            foreach (var item in root.GetProperty("messages").EnumerateArray())
            {
                messages.Add(new GrpcMessage(
                    item.GetProperty("index").GetInt32(),
                    TimeSpan.FromMilliseconds(item.GetProperty("offset_ms").GetDouble()),
                    item.GetProperty("compressed").GetBoolean(),
                    item.GetProperty("size").GetInt64(),
                    item.GetProperty("data").GetBytesFromBase64(),
                    item.GetProperty("truncated").GetBoolean(),
                    item.GetProperty("decoded").GetBoolean()));
            }

            return new GrpcMessageList(root.GetProperty("count").GetInt32(), root.GetProperty("truncated").GetBoolean(), messages);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// True when <paramref name="body"/> is exactly the length-prefixed frames of <paramref name="list"/>
    /// (<see cref="OtlpAttributes.GrpcMessageFrames"/>): a binary body captured whole, not decoded, and
    /// every message of the stream listed in order, uncompressed and whole, each framed with flag 0
    /// and its payload's length. Then <see cref="Frames"/> of the list gives the body back, byte for byte.
    /// </summary>
    public static bool IsFramesOf(CapturedBody body, GrpcMessageList list)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(list);
        if (body.Kind != BodyKind.Binary || body.Truncated || body.Decoded || body.ContentEncoding is not null
            || list.Truncated || list.Count != list.Messages.Count || FramesLength(list) != body.Content.Length)
        {
            return false;
        }

        var content = body.Content.Span;
        var position = 0;
        for (var i = 0; i < list.Messages.Count; i++)
        {
            var message = list.Messages[i];
            var payload = message.Payload.Span;
            if (message.Index != i || message.Compressed || message.Truncated || content[position] != 0
                || BinaryPrimitives.ReadUInt32BigEndian(content[(position + 1)..]) != (uint)payload.Length
                || !content.Slice(position + 5, payload.Length).SequenceEqual(payload))
            {
                return false;
            }

            position += 5 + payload.Length;
        }

        return true;
    }

    /// <summary>The length-prefixed frames of <paramref name="list"/>'s messages (flag 0, each payload's length, the payload), in order.</summary>
    public static byte[] Frames(GrpcMessageList list)
    {
        ArgumentNullException.ThrowIfNull(list);
        var frames = new byte[checked((int)FramesLength(list))];
        var position = 0;
        foreach (var message in list.Messages)
        {
            BinaryPrimitives.WriteUInt32BigEndian(frames.AsSpan(position + 1), (uint)message.Payload.Length);
            message.Payload.Span.CopyTo(frames.AsSpan(position + 5));
            position += 5 + message.Payload.Length;
        }

        return frames;
    }

    private static long FramesLength(GrpcMessageList list)
    {
        long length = 0;
        foreach (var message in list.Messages)
        {
            length += 5 + message.Payload.Length;
        }

        return length;
    }

    /// <summary>The status details as JSON: code, message and each detail's type and base64 value.</summary>
    public static string EncodeStatusDetails(GrpcStatusDetails details)
    {
        ArgumentNullException.ThrowIfNull(details);
        return JsonAttributeText.Write(details, static (json, details) =>
        {
            json.WriteStartObject();
            json.WriteNumber("code", details.Code);
            json.WriteString("message", details.Message);
            json.WriteStartArray("details");
            foreach (var detail in details.Details)
            {
                json.WriteStartObject();
                json.WriteString("type_url", detail.TypeUrl);
                json.WriteBase64String("value", detail.Value.Span);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        });
    }
}

/// <summary>One direction's captured messages as read back from a span.</summary>
/// <param name="Count">Every message the stream carried, listed or not.</param>
/// <param name="Truncated">True when something was not kept.</param>
/// <param name="Messages">The messages kept.</param>
public sealed record GrpcMessageList(int Count, bool Truncated, IReadOnlyList<GrpcMessage> Messages);
