using System.Buffers.Binary;
using System.Text.Json;
using SpIstio.Core.Model;
using Google.Protobuf;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Common;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// How a captured gRPC call travels as span attributes: the OpenTelemetry RPC conventions
/// (<c>rpc.system</c>, <c>rpc.service</c>, <c>rpc.method</c>, <c>rpc.grpc.status_code</c>) beside
/// ours, and each direction's messages as one attribute (sent structured, <see cref="ToAnyValue"/>;
/// stored as JSON, <see cref="EncodeMessages(GrpcMessageList)"/>) that the backend and the UI decode
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

    /// <summary>The request stream's messages (<see cref="ToAnyValue"/>; stored as <see cref="EncodeMessages(GrpcMessageList)"/>'s JSON).</summary>
    public const string RequestMessages = "sp.grpc.request.messages";

    /// <summary>The response stream's messages (<see cref="ToAnyValue"/>; stored as <see cref="EncodeMessages(GrpcMessageList)"/>'s JSON).</summary>
    public const string ResponseMessages = "sp.grpc.response.messages";

    /// <summary>Whether <paramref name="key"/> names a message list (<see cref="RequestMessages"/> or <see cref="ResponseMessages"/>).</summary>
    public static bool IsMessageList(string key) =>
        string.Equals(key, RequestMessages, StringComparison.Ordinal) || string.Equals(key, ResponseMessages, StringComparison.Ordinal);

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

    // The last paths split, one slot per path length modulo the table's size: a service's calls
    // to one method share its two names instead of cutting two strings a call. Eight entries bound
    // what the table holds; a slot is replaced whole (one reference), so readers on other threads
    // see either the old entry or the new one. A path is the caller's: only short ones are kept.
    private static readonly SplitPath?[] SplitPaths = new SplitPath?[8];
    private const int MaxKeptPathLength = 256;

    private sealed record SplitPath(string Path, string Service, string Method);

    /// <summary>Splits a gRPC request path <c>/package.Service/Method</c>; null when it is not one.</summary>
    public static (string Service, string Method)? ParsePath(string? path)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/')
        {
            return null;
        }

        var slot = path.Length & (SplitPaths.Length - 1);
        if (SplitPaths[slot] is { } known && string.Equals(known.Path, path, StringComparison.Ordinal))
        {
            return (known.Service, known.Method);
        }

        var slash = path.IndexOf('/', 1);
        if (slash <= 1 || slash == path.Length - 1 || path.IndexOf('/', slash + 1) >= 0)
        {
            return null;
        }

        if (path.Length > MaxKeptPathLength)
        {
            return (path[1..slash], path[(slash + 1)..]);
        }

        var split = new SplitPath(path, path[1..slash], path[(slash + 1)..]);
        SplitPaths[slot] = split;
        return (split.Service, split.Method);
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
        var length = MessagesJsonLength(list);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            return System.Text.Encoding.UTF8.GetString(buffer, 0, WriteMessagesJson(list, buffer));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // The JSON of a list, written straight from the payload bytes: only ASCII (names, numbers,
    // booleans, base64), so no escaping; numbers as Utf8JsonWriter writes them (Utf8Formatter), so it
    // is the text a backend stores for the structured form (ToAnyValue) and reads back the same.
    private static ReadOnlySpan<byte> ListStart => "{\"count\":"u8;
    private static ReadOnlySpan<byte> ListTruncated => ",\"truncated\":"u8;
    private static ReadOnlySpan<byte> ListMessages => ",\"messages\":["u8;
    private static ReadOnlySpan<byte> MessageIndex => "{\"index\":"u8;
    private static ReadOnlySpan<byte> MessageOffset => ",\"offset_ms\":"u8;
    private static ReadOnlySpan<byte> MessageCompressed => ",\"compressed\":"u8;
    private static ReadOnlySpan<byte> MessageDecoded => ",\"decoded\":"u8;
    private static ReadOnlySpan<byte> MessageSize => ",\"size\":"u8;
    private static ReadOnlySpan<byte> MessageTruncated => ",\"truncated\":"u8;
    private static ReadOnlySpan<byte> MessageData => ",\"data\":\""u8;

    /// <summary>The length in bytes of the UTF-8 JSON <see cref="WriteMessagesJson"/> writes for <paramref name="list"/>.</summary>
    private static int MessagesJsonLength(GrpcMessageList list)
    {
        ArgumentNullException.ThrowIfNull(list);
        Span<byte> number = stackalloc byte[32];
        long length = ListStart.Length + Format(list.Count, number) + ListTruncated.Length + Bool(list.Truncated) + ListMessages.Length + 2;
        var messages = list.Messages;
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            length += (i == 0 ? 0 : 1) + MessageIndex.Length + Format(message.Index, number)
                + MessageOffset.Length + FormatOffset(message.Offset, number)
                + MessageCompressed.Length + Bool(message.Compressed)
                + MessageDecoded.Length + Bool(message.Decoded)
                + MessageSize.Length + Format(message.WireLength, number)
                + MessageTruncated.Length + Bool(message.Truncated)
                + MessageData.Length + System.Buffers.Text.Base64.GetMaxEncodedToUtf8Length(message.Payload.Length) + 2;
        }

        return checked((int)length);
    }

    /// <summary>
    /// Writes <paramref name="list"/> as UTF-8 JSON (<see cref="EncodeMessages(GrpcMessageList)"/>'s form) into
    /// <paramref name="destination"/>, which holds at least <see cref="MessagesJsonLength"/> bytes; returns the bytes written.
    /// </summary>
    private static int WriteMessagesJson(GrpcMessageList list, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(list);
        var position = 0;
        Put(ListStart, destination, ref position);
        position += Format(list.Count, destination[position..]);
        Put(ListTruncated, destination, ref position);
        PutBool(list.Truncated, destination, ref position);
        Put(ListMessages, destination, ref position);
        var messages = list.Messages;
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            if (i > 0)
            {
                destination[position++] = (byte)',';
            }

            Put(MessageIndex, destination, ref position);
            position += Format(message.Index, destination[position..]);
            Put(MessageOffset, destination, ref position);
            position += FormatOffset(message.Offset, destination[position..]);
            Put(MessageCompressed, destination, ref position);
            PutBool(message.Compressed, destination, ref position);
            Put(MessageDecoded, destination, ref position);
            PutBool(message.Decoded, destination, ref position);
            Put(MessageSize, destination, ref position);
            position += Format(message.WireLength, destination[position..]);
            Put(MessageTruncated, destination, ref position);
            PutBool(message.Truncated, destination, ref position);
            Put(MessageData, destination, ref position);
            System.Buffers.Text.Base64.EncodeToUtf8(message.Payload.Span, destination[position..], out _, out var written);
            position += written;
            destination[position++] = (byte)'"';
            destination[position++] = (byte)'}';
        }

        destination[position++] = (byte)']';
        destination[position++] = (byte)'}';
        return position;
    }

    private static int Bool(bool value) => value ? 4 : 5;

    private static void Put(ReadOnlySpan<byte> text, Span<byte> destination, ref int position)
    {
        text.CopyTo(destination[position..]);
        position += text.Length;
    }

    private static void PutBool(bool value, Span<byte> destination, ref int position) =>
        Put(value ? "true"u8 : "false"u8, destination, ref position);

    private static int Format(long value, Span<byte> destination) =>
        System.Buffers.Text.Utf8Formatter.TryFormat(value, destination, out var written) ? written : throw new InvalidOperationException("No room for a number.");

    // Milliseconds to the microsecond, as Utf8JsonWriter.WriteNumber(Math.Round(ms, 3)) writes them
    // (shortest form: "12", "1.5", "0.001"), from the ticks in integers: formatting the double took
    // as long as the rest of the list's JSON (1.5 % of the capture proxy's CPU at 1 KiB unary calls).
    internal static int FormatOffset(TimeSpan offset, Span<byte> destination)
    {
        var micros = RoundToMicros(offset, out var negative);
        var position = 0;
        if (negative && micros != 0)
        {
            destination[position++] = (byte)'-';
        }

        if (!System.Buffers.Text.Utf8Formatter.TryFormat(micros / 1000, destination[position..], out var written))
        {
            throw new InvalidOperationException("No room for a number.");
        }

        position += written;
        var fraction = (int)(micros % 1000);
        if (fraction != 0)
        {
            destination[position++] = (byte)'.';
            destination[position++] = (byte)('0' + (fraction / 100));
            fraction %= 100;
            if (fraction != 0)
            {
                destination[position++] = (byte)('0' + (fraction / 10));
                fraction %= 10;
                if (fraction != 0)
                {
                    destination[position++] = (byte)('0' + fraction);
                }
            }
        }

        return position;
    }

    /// <summary>
    /// The offset in milliseconds to the microsecond, as the structured form carries it
    /// (<see cref="ToAnyValue"/>): the double whose shortest form is what <see cref="FormatOffset"/> writes.
    /// </summary>
    internal static double OffsetMilliseconds(TimeSpan offset)
    {
        var micros = RoundToMicros(offset, out var negative);
        return micros == 0 ? 0d : (negative ? -(double)micros : micros) / 1000d;
    }

    // The offset's magnitude in whole microseconds; a tie (an exact half microsecond) goes to the
    // even microsecond, as Math.Round does.
    private static ulong RoundToMicros(TimeSpan offset, out bool negative)
    {
        var ticks = offset.Ticks;
        negative = ticks < 0;
        var magnitude = negative ? unchecked(0UL - (ulong)ticks) : (ulong)ticks;
        var micros = magnitude / 10;
        var rest = magnitude % 10;
        if (rest > 5 || (rest == 5 && (micros & 1) == 1))
        {
            micros++;
        }

        return micros;
    }

    // The structured form's keys: the JSON form's names, in its order (see ToAnyValue).
    internal static ReadOnlySpan<byte> CountKey => "count"u8;
    internal static ReadOnlySpan<byte> TruncatedKey => "truncated"u8;
    internal static ReadOnlySpan<byte> MessagesKey => "messages"u8;
    internal static ReadOnlySpan<byte> IndexKey => "index"u8;
    internal static ReadOnlySpan<byte> OffsetKey => "offset_ms"u8;
    internal static ReadOnlySpan<byte> CompressedKey => "compressed"u8;
    internal static ReadOnlySpan<byte> DecodedKey => "decoded"u8;
    internal static ReadOnlySpan<byte> SizeKey => "size"u8;
    internal static ReadOnlySpan<byte> DataKey => "data"u8;

    /// <summary>
    /// A message list as the span carries it: a <c>kvlist_value</c> with <c>count</c>, <c>truncated</c>
    /// and <c>messages</c>, an array of one <c>kvlist_value</c> a message (<c>index</c>, <c>offset_ms</c>,
    /// <c>compressed</c>, <c>decoded</c>, <c>size</c>, <c>truncated</c>, and <c>data</c>, the payload as
    /// <c>bytes_value</c>). The agent writes the same bytes from the payloads (<see cref="OtlpSpanWriter"/>).
    /// </summary>
    /// <remarks>
    /// Its JSON (<see cref="ExchangeSpanMapper.AsString(AnyValue)"/>, bytes in base64) is the text
    /// <see cref="EncodeMessages(GrpcMessageList)"/> writes, character for character: the mapper reads
    /// the list, and the backend stores it, as that text (a backend from before this form stored the
    /// structured value as a JSON object with the same fields, which the backend's decoder reads too).
    /// The payloads go out as bytes, not base64: a quarter fewer bytes to send and read, and no
    /// encoding pass on the data path (issue 18: a 64 KiB call's two messages).
    /// </remarks>
    public static AnyValue ToAnyValue(GrpcMessageList list)
    {
        ArgumentNullException.ThrowIfNull(list);
        var array = new ArrayValue();
        var messages = list.Messages;
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            var entries = new KeyValueList();
            entries.Values.Add(Entry(IndexKey, new AnyValue { IntValue = message.Index }));
            entries.Values.Add(Entry(OffsetKey, new AnyValue { DoubleValue = OffsetMilliseconds(message.Offset) }));
            entries.Values.Add(Entry(CompressedKey, new AnyValue { BoolValue = message.Compressed }));
            entries.Values.Add(Entry(DecodedKey, new AnyValue { BoolValue = message.Decoded }));
            entries.Values.Add(Entry(SizeKey, new AnyValue { IntValue = message.WireLength }));
            entries.Values.Add(Entry(TruncatedKey, new AnyValue { BoolValue = message.Truncated }));
            entries.Values.Add(Entry(DataKey, new AnyValue { BytesValue = ByteString.CopyFrom(message.Payload.Span) }));
            array.Values.Add(new AnyValue { KvlistValue = entries });
        }

        var root = new KeyValueList();
        root.Values.Add(Entry(CountKey, new AnyValue { IntValue = list.Count }));
        root.Values.Add(Entry(TruncatedKey, new AnyValue { BoolValue = list.Truncated }));
        root.Values.Add(Entry(MessagesKey, new AnyValue { ArrayValue = array }));
        return new AnyValue { KvlistValue = root };

        static KeyValue Entry(ReadOnlySpan<byte> key, AnyValue value) => new() { Key = System.Text.Encoding.ASCII.GetString(key), Value = value };
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
    public static bool IsFramesOf(CapturedBody body, GrpcMessageList list) => IsFramesOf(body, list, bytesChecked: false);

    // bytesChecked: the caller compared the body's bytes with the list's frames already; only the rest is checked.
    internal static bool IsFramesOf(CapturedBody body, GrpcMessageList list, bool bytesChecked)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(list);
        if (body.Truncated || list.Truncated || list.Count != list.Messages.Count)
        {
            return false;
        }

        var length = FramesLength(list);
        return length == body.Content.Length && DefinedFramesLength(list) == length && HoldsFrames(body, list, bytesChecked);
    }

    /// <summary>
    /// True when <paramref name="body"/>, cut by its limit, is the start of the length-prefixed frames
    /// of <paramref name="list"/> (<see cref="OtlpAttributes.GrpcMessageFramesPrefix"/>): a binary body,
    /// not decoded, whose bytes are every listed message's frame in order (uncompressed, flag 0), the
    /// last one cut where the body is cut; a message the capture limits cut (only the last may be)
    /// declares its wire length, as its frame did. Then <see cref="FramesPrefix"/> of the list and the
    /// body's length gives the body back, byte for byte.
    /// </summary>
    /// <remarks>
    /// The body reaches into the last listed message: a list that went on past the body (a stream's
    /// later messages, up to <c>capture.grpc.max_stream_bytes</c>) keeps its bytes, so that what the
    /// span makes the backend rebuild the body from stays about the body's size (ingest cuts an
    /// attribute over its limit, and a cut list gives no body back).
    /// </remarks>
    public static bool IsFramesPrefixOf(CapturedBody body, GrpcMessageList list) => IsFramesPrefixOf(body, list, bytesChecked: false);

    internal static bool IsFramesPrefixOf(CapturedBody body, GrpcMessageList list, bool bytesChecked)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(list);
        var messages = list.Messages;
        if (!body.Truncated || messages.Count == 0)
        {
            return false;
        }

        var length = FramesLength(list);
        var lastFrameStart = length - 5 - messages[^1].Payload.Length;
        return body.Content.Length > lastFrameStart && body.Content.Length <= length
            && DefinedFramesLength(list) == length && HoldsFrames(body, list, bytesChecked);
    }

    /// <summary>The length-prefixed frames of <paramref name="list"/>'s messages (flag 0, each payload's length, the payload), in order.</summary>
    public static byte[] Frames(GrpcMessageList list)
    {
        ArgumentNullException.ThrowIfNull(list);
        var frames = new byte[checked((int)FramesLength(list))];
        WalkFrames(list, [], frames);
        return frames;
    }

    /// <summary>
    /// The first <paramref name="length"/> bytes of <paramref name="list"/>'s frames, as
    /// <see cref="IsFramesPrefixOf(CapturedBody, GrpcMessageList)"/> defines them; null when the list does not hold that many (a span
    /// is the caller's: what it makes the reader allocate is bounded by the list it carries).
    /// </summary>
    public static byte[]? FramesPrefix(GrpcMessageList list, long length)
    {
        ArgumentNullException.ThrowIfNull(list);
        if (length < 0 || length > DefinedFramesLength(list))
        {
            return null;
        }

        var frames = new byte[length];
        WalkFrames(list, [], frames);
        return frames;
    }

    // Whether a binary, undecoded body's bytes are the start of the list's frames.
    private static bool HoldsFrames(CapturedBody body, GrpcMessageList list, bool bytesChecked) =>
        body.Kind == BodyKind.Binary && !body.Decoded && body.ContentEncoding is null
            && (bytesChecked || WalkFrames(list, body.Content.Span, []));

    // Indexed, not foreach: Messages is an interface, whose enumerator would be boxed (Seal asks twice a call).
    private static long FramesLength(GrpcMessageList list)
    {
        long length = 0;
        var messages = list.Messages;
        for (var i = 0; i < messages.Count; i++)
        {
            length += 5 + messages[i].Payload.Length;
        }

        return length;
    }

    // How far the list defines its frames: each message listed at its index, uncompressed, up to and
    // including the first one the limits cut (its frame declared a wire length longer than the bytes
    // kept; past them the list holds nothing of the stream).
    private static long DefinedFramesLength(GrpcMessageList list)
    {
        long length = 0;
        var messages = list.Messages;
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            if (message.Index != i || message.Compressed
                || (message.Truncated && (message.WireLength <= message.Payload.Length || message.WireLength > uint.MaxValue)))
            {
                return length;
            }

            length += 5 + message.Payload.Length;
            if (message.Truncated)
            {
                return length;
            }
        }

        return length;
    }

    // Walks the list's frames (flag 0, the declared length, the payload) over the first
    // max(expected, destination) bytes: copies them into destination and compares them with expected
    // (either may be empty; one walk for the reader that rebuilds a body and the check that proves it
    // would). The caller bounds the length by DefinedFramesLength or FramesLength.
    private static bool WalkFrames(GrpcMessageList list, ReadOnlySpan<byte> expected, Span<byte> destination)
    {
        var length = Math.Max(expected.Length, destination.Length);
        Span<byte> header = stackalloc byte[5];
        var position = 0;
        var messages = list.Messages;
        for (var i = 0; position < length; i++)
        {
            var message = messages[i];
            header[0] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(header[1..], message.Truncated ? (uint)message.WireLength : (uint)message.Payload.Length);
            if (!Walk(header, expected, destination, length, ref position) || !Walk(message.Payload.Span, expected, destination, length, ref position))
            {
                return false;
            }
        }

        return true;

        static bool Walk(ReadOnlySpan<byte> part, ReadOnlySpan<byte> expected, Span<byte> destination, int length, ref int position)
        {
            part = part[..Math.Min(part.Length, length - position)];
            var start = position;
            position += part.Length;
            if (!destination.IsEmpty)
            {
                part.CopyTo(destination[start..]);
            }

            return expected.IsEmpty || part.SequenceEqual(expected.Slice(start, part.Length));
        }
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
