using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf.Reflection;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;

namespace SpIstio.Core.Redaction;

/// <summary>
/// Redaction of captured gRPC messages (issue 18 §2): the messages travel as base64 protobuf in
/// <see cref="GrpcSpanAttributes.RequestMessages"/> / <see cref="GrpcSpanAttributes.ResponseMessages"/>
/// and, framed, in the raw body, so neither would ever meet the text redaction.
/// </summary>
/// <remarks>
/// <para>Every length-delimited field is walked as the schema-less view guesses it (text, a nested
/// message, or bytes); text gets the usual value detectors (and JSON / XML inside a string is
/// redacted as such). With descriptor sets (<c>capture.grpc.descriptor_sets</c>) the field names are
/// known too: a string field named like a secret or personal data is replaced whole, and a scalar
/// (varint / fixed) field so named is removed — a number cannot hold a marker, and an absent field
/// reads as its default.</para>
/// <para>A changed field is re-encoded with its new length and every enclosing length is rewritten,
/// so the result stays valid protobuf. Bytes that do not parse (a message cut by the capture
/// limits, gRPC with a JSON codec) are redacted as text, as any other body is.</para>
/// </remarks>
public sealed partial class Redactor
{
    // gRPC's own default for the largest message (grpc-dotnet MaxReceiveMessageSize): a compressed
    // frame of the raw body inflates at most this far for redaction.
    private const int MaxInflatedMessageBytes = 4 * 1024 * 1024;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<MessageDescriptor, bool> _typesWithRedactedNames = new();

    private int RedactGrpc(Exchange exchange)
    {
        var count = 0;
        var method = _descriptors.FindMethod(exchange.Path);
        GrpcMessageList? requestList = null, responseList = null;
        MessageRedaction[]? requestDone = null, responseDone = null;
        ListedCut requestCut = ListedCut.None, responseCut = ListedCut.None;
        if (exchange.GrpcCall is { } call)
        {
            // Captured by this agent: the lists are still bytes, so each message is walked once here and
            // its framed copy in the body below reuses the result.
            if (!call.Redacted)
            {
                requestList = call.Request;
                requestCut = CutFrame(exchange.RequestBody, requestList);
                call.Request = RedactGrpcList(requestList, method?.InputType, ref requestCut, ref count, out requestDone);
                if (call.Response is { } response)
                {
                    responseList = response;
                    responseCut = CutFrame(exchange.ResponseBody, response);
                    call.Response = RedactGrpcList(response, method?.OutputType, ref responseCut, ref count, out responseDone);
                }

                call.Redacted = true;
            }
        }
        else if (exchange.HasAttributes)
        {
            // Lists that came as attributes (an exchange mapped back from a span); most exchanges have none.
            RedactGrpcMessages(exchange.Attributes, GrpcSpanAttributes.RequestMessages, method?.InputType, ref count);
            RedactGrpcMessages(exchange.Attributes, GrpcSpanAttributes.ResponseMessages, method?.OutputType, ref count);
        }

        if (GrpcSpanAttributes.IsGrpc(exchange.RequestBody.ContentType))
        {
            exchange.RequestBody = RedactGrpcBody(exchange.RequestBody, exchange.RequestHeaders.Get("grpc-encoding"), method?.InputType, requestList, requestDone, requestCut, ref count, out var framesOfList);
            if (framesOfList && exchange.GrpcCall is { } checkedCall && ReferenceEquals(checkedCall.Request, requestList))
            {
                checkedCall.RequestFramesChecked = exchange.RequestBody;
            }
        }

        if (GrpcSpanAttributes.IsGrpc(exchange.ResponseBody.ContentType))
        {
            exchange.ResponseBody = RedactGrpcBody(exchange.ResponseBody, exchange.ResponseHeaders.Get("grpc-encoding"), method?.OutputType, responseList, responseDone, responseCut, ref count, out var framesOfList);
            if (framesOfList && exchange.GrpcCall is { } checkedCall && ReferenceEquals(checkedCall.Response, responseList))
            {
                checkedCall.ResponseFramesChecked = exchange.ResponseBody;
            }
        }

        return count;
    }

    // What redacting one listed message did: its new payload (null: unchanged) and how many values that replaced.
    private readonly record struct MessageRedaction(byte[]? Payload, int Count);

    // The body's last frame when the body's limit cut it inside a message the list holds more of: its
    // index and how many bytes of the message the body holds, the first ones of the listed payload;
    // once the list is redacted, Clean tells whether the pre-scan proved those bytes clean on their own.
    private readonly record struct ListedCut(int Frame, int Length, bool Clean = false)
    {
        public static ListedCut None => new(-1, 0);
    }

    /// <summary>
    /// Redacts a captured message list; <paramref name="done"/> holds each message's outcome for the
    /// framed body to reuse (null when no message changed). <paramref name="cut"/> is marked
    /// <see cref="ListedCut.Clean"/> when the pre-scan of its listed message proved the body's
    /// shorter copy clean too (its redaction would find nothing).
    /// </summary>
    private GrpcMessageList RedactGrpcList(GrpcMessageList list, MessageDescriptor? type, ref ListedCut cut, ref int count, out MessageRedaction[]? done)
    {
        done = null;
        GrpcMessage[]? rewritten = null;
        for (var i = 0; i < list.Messages.Count; i++)
        {
            var message = list.Messages[i];

            // A compressed message in a coding the capture could not decode is opaque to every reader.
            if (message.Compressed && !message.Decoded)
            {
                continue;
            }

            var found = 0;
            var prefixLength = i == cut.Frame ? cut.Length : message.Payload.Length;
            if (RedactTopMessage(message.Payload.Span, type, message.Truncated, prefixLength, out var prefixClean, ref found) is { } payload)
            {
                rewritten ??= [.. list.Messages];
                rewritten[i] = message with { Payload = payload };
                done ??= new MessageRedaction[list.Messages.Count];
                done[i] = new MessageRedaction(payload, found);
            }
            else if (found > 0)
            {
                done ??= new MessageRedaction[list.Messages.Count];
                done[i] = new MessageRedaction(null, found);
            }

            count += found;
            if (i == cut.Frame)
            {
                cut = cut with { Clean = prefixClean };
            }
        }

        return rewritten is null ? list : list with { Messages = rewritten };
    }

    /// <summary>Redacts one serialized protobuf message; null when nothing was found.</summary>
    /// <param name="message">The message bytes.</param>
    /// <param name="type">Its descriptor when a descriptor set names it (field names are then redacted too).</param>
    /// <param name="truncated">True when the bytes are only the start of the message.</param>
    /// <param name="redacted">How many values were replaced or removed.</param>
    public byte[]? RedactProtobuf(ReadOnlySpan<byte> message, MessageDescriptor? type, bool truncated, out int redacted)
    {
        redacted = 0;
        return _enabled ? RedactTopMessage(message, type, truncated, ref redacted) : null;
    }

    private void RedactGrpcMessages(Dictionary<string, string> attributes, string key, MessageDescriptor? type, ref int count)
    {
        if (!attributes.TryGetValue(key, out var json) || GrpcSpanAttributes.DecodeMessages(json) is not { } list)
        {
            return;
        }

        GrpcMessage[]? rewritten = null;
        for (var i = 0; i < list.Messages.Count; i++)
        {
            var message = list.Messages[i];

            // A compressed message in a coding the capture could not decode is opaque to every reader.
            if (message.Compressed && !message.Decoded)
            {
                continue;
            }

            if (RedactTopMessage(message.Payload.Span, type, message.Truncated, ref count) is { } payload)
            {
                rewritten ??= [.. list.Messages];
                rewritten[i] = message with { Payload = payload };
            }
        }

        if (rewritten is not null)
        {
            attributes[key] = GrpcSpanAttributes.EncodeMessages(list with { Messages = rewritten });
        }
    }

    /// <summary>
    /// Redacts the messages of a framed gRPC body. A compressed frame that needed redaction is
    /// written back uncompressed (flag 0): the gRPC framing allows any message to be sent so.
    /// A frame holding the very bytes of a message of <paramref name="listed"/> (the same call's
    /// captured list) takes that message's outcome from <paramref name="done"/> instead of a second walk,
    /// and the frame <paramref name="listedCut"/> (the start of a listed message, whose pre-scan gave this
    /// frame's verdict too) is walked without a pre-scan of its own, or not at all when it is clean.
    /// <paramref name="framesOfList"/> tells that the body came back unchanged and every byte of it was
    /// compared with <paramref name="listed"/> on the way (each frame the same as its listed message,
    /// the last possibly the start of one): <see cref="GrpcCallMessages.Seal"/> need not compare again.
    /// </summary>
    private CapturedBody RedactGrpcBody(CapturedBody body, string? grpcEncoding, MessageDescriptor? type, GrpcMessageList? listed, MessageRedaction[]? done, ListedCut listedCut, ref int count, out bool framesOfList)
    {
        framesOfList = listed is not null;
        var data = body.Content.Span;
        var coding = ContentDecoder.Parse(grpcEncoding);
        ArrayBufferWriter<byte>? output = null;
        var copied = 0;
        var position = 0;
        var frame = -1;
        while (data.Length - position >= 5)
        {
            frame++;
            var start = position;
            var compressed = data[position] != 0;
            var declared = BinaryPrimitives.ReadUInt32BigEndian(data[(position + 1)..]);
            var payloadStart = position + 5;
            var available = (int)Math.Min(declared, (uint)(data.Length - payloadStart));
            var cut = available < declared;
            var payload = data.Slice(payloadStart, available);
            position = payloadStart + available;

            byte[]? replaced;
            if (!compressed && SameAsListed(listed, frame, payload, declared, cut))
            {
                var outcome = done is null ? default : done[frame];
                replaced = outcome.Payload;
                count += outcome.Count;
            }
            else if (frame == listedCut.Frame)
            {
                // CutFrame compared this last frame with the start of its listed message.
                // What RedactTopMessage does after its pre-scan (or without one: patterns, names), with the list's verdict.
                if (listedCut.Clean)
                {
                    continue;
                }

                replaced = RedactMessage(payload, type, truncated: true, 0, ref count);
            }
            else if (!compressed)
            {
                framesOfList = false;
                replaced = RedactTopMessage(payload, type, cut, ref count);
            }
            else if (coding is ContentCoding.Gzip or ContentCoding.Deflate)
            {
                framesOfList = false;
                using var inflated = ContentDecoder.TryDecode(body.Content.Slice(payloadStart, available), cut, coding, MaxInflatedMessageBytes, out var inflatedCut);
                if (inflated is null)
                {
                    continue;
                }

                replaced = RedactTopMessage(inflated.Captured, type, cut || inflatedCut, ref count);
                if (replaced is null && inflatedCut && !cut)
                {
                    // Past the inflation bound the rest of the message is unread: keep the part that was checked.
                    replaced = inflated.Captured.ToArray();
                    count++;
                }
            }
            else
            {
                framesOfList = false;
                continue;
            }

            if (replaced is null)
            {
                continue;
            }

            framesOfList = false;
            output ??= new ArrayBufferWriter<byte>(data.Length + 64);
            output.Write(data[copied..start]);
            var header = output.GetSpan(5);
            header[0] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)replaced.Length);
            output.Advance(5);
            output.Write(replaced);
            copied = position;
        }

        // A body cut inside a frame header ends in bytes no frame compared.
        framesOfList &= position == data.Length;
        if (output is null)
        {
            return body;
        }

        output.Write(data[copied..]);
        return body with { Content = output.WrittenMemory.ToArray() };
    }

    // True when frame `frame` of a framed body is message `frame` of the call's captured list, byte
    // for byte (both are the stream's messages from the first; the list's payloads were kept uncompressed).
    private static bool SameAsListed(GrpcMessageList? listed, int frame, ReadOnlySpan<byte> payload, uint declared, bool cut)
    {
        if (listed is null || frame >= listed.Messages.Count)
        {
            return false;
        }

        var message = listed.Messages[frame];
        return message.Index == frame && !message.Compressed && message.WireLength == declared
            && message.Truncated == cut && message.Payload.Span.SequenceEqual(payload);
    }

    /// <summary>
    /// The frame of a framed gRPC body that the body's limit cut (its last) when <paramref name="listed"/>
    /// holds more of the same message: the list keeps up to <c>capture.grpc.max_message_bytes</c> of a
    /// message, the body up to its own limit of the stream, frame headers included, so a 65,540-byte
    /// message kept whole to 64 KiB in the list is 5 bytes shorter in the body. The list's pre-scan
    /// then gives the body's copy its verdict too (<see cref="RedactGrpcList"/>).
    /// </summary>
    private static ListedCut CutFrame(CapturedBody body, GrpcMessageList listed)
    {
        if (!body.Truncated || !GrpcSpanAttributes.IsGrpc(body.ContentType))
        {
            return ListedCut.None;
        }

        var data = body.Content.Span;
        var position = 0;
        for (var frame = 0; data.Length - position >= 5; frame++)
        {
            var compressed = data[position] != 0;
            var declared = BinaryPrimitives.ReadUInt32BigEndian(data[(position + 1)..]);
            var payloadStart = position + 5;
            if (declared <= (uint)(data.Length - payloadStart))
            {
                position = payloadStart + (int)declared;
                continue;
            }

            // The cut frame: the same message of the list (uncompressed, as the list's payloads are when not decoded), holding more of it.
            var payload = data[payloadStart..];
            if (compressed || frame >= listed.Messages.Count)
            {
                return ListedCut.None;
            }

            var message = listed.Messages[frame];
            return message.Index == frame && !message.Compressed && message.WireLength == declared
                && message.Payload.Length > payload.Length && message.Payload.Span.StartsWith(payload)
                ? new ListedCut(frame, payload.Length)
                : ListedCut.None;
        }

        return ListedCut.None;
    }

    /// <summary>
    /// Redacts one whole message (the top of <see cref="RedactMessage"/>'s walk). When no field
    /// can be redacted by its name and no operator pattern is configured, the value detectors are
    /// all the walk could apply, each to a run of the message's bytes that the pre-scan would see
    /// inside the whole message too: a pre-scan of the whole message that finds no anchor proves
    /// nothing is to be redacted, without walking the fields. (Every field value starts after a
    /// tag or length varint whose last byte is ASCII, so the decoder meets a value's bytes at a
    /// character boundary in both scans.)
    /// </summary>
    private byte[]? RedactTopMessage(ReadOnlySpan<byte> data, MessageDescriptor? type, bool truncated, ref int count) =>
        RedactTopMessage(data, type, truncated, data.Length, out _, ref count);

    /// <summary>
    /// <see cref="RedactTopMessage(ReadOnlySpan{byte}, MessageDescriptor?, bool, ref int)"/>, also
    /// telling (<paramref name="prefixClean"/>) whether the same pre-scan proved the message's first
    /// <paramref name="prefixLength"/> bytes, redacted as a cut message of their own, clean: false
    /// when it could not tell.
    /// </summary>
    private byte[]? RedactTopMessage(ReadOnlySpan<byte> data, MessageDescriptor? type, bool truncated, int prefixLength, out bool prefixClean, ref int count)
    {
        prefixClean = false;
        if (_patterns.Length == 0 && !NamesRedactedFields(type))
        {
            if (data.Length >= BinaryProbeMinBytes && MostlyUnread(data, type, truncated))
            {
                // The walk skips the bytes it would not read as text or fields, so it costs less than
                // the pre-scan here, and it is what the pre-scan could only have shortcut.
                return RedactMessage(data, type, truncated, 0, ref count);
            }

            var hits = default(AnchorHits);
            var scan = PreScan(data, ref hits, names: true, xml: true, prefixLength, out var prefixScan);
            prefixClean = prefixScan == Scan.None;
            if (scan == Scan.None)
            {
                return null;
            }
        }

        return RedactMessage(data, type, truncated, 0, ref count);
    }

    // Below this size a message's pre-scan costs little more than the probe for unread values.
    private const int BinaryProbeMinBytes = 4096;

    /// <summary>
    /// True when at least half of a message's bytes are top-level values that
    /// <see cref="RedactMessage"/> does not read: length-delimited values that are neither UTF-8
    /// text nor protobuf (an image, ciphertext, random bytes in a bytes field) and packed numbers.
    /// The pre-scan reads every byte (15–36 µs for the proxy bench's 64 KiB random message, and when
    /// a chance anchor turns up the walk runs too), where the walk skips such values after a few
    /// bytes. The probe makes the same per-value guesses as the walk (<see cref="RedactLengthDelimited"/>),
    /// which on binary bytes fail within a few bytes, and stops as soon as either half is reached;
    /// bench/README.md, issue 18 (grpccall).
    /// </summary>
    private static bool MostlyUnread(ReadOnlySpan<byte> data, MessageDescriptor? type, bool truncated)
    {
        var half = data.Length / 2;
        var unread = 0;
        var position = 0;
        while (position < data.Length)
        {
            if (position - unread > half)
            {
                return false;
            }

            if (!ProtoWire.TryReadTag(data, ref position, out var number, out var wireType))
            {
                return false;
            }

            if (wireType is ProtoWire.Varint or ProtoWire.Fixed64 or ProtoWire.Fixed32)
            {
                if (!SkipScalar(data, ref position, wireType))
                {
                    return false;
                }

                continue;
            }

            if (wireType != ProtoWire.LengthDelimited || !ProtoWire.TryReadVarint(data, ref position, out var declared))
            {
                return false;
            }

            var available = (int)Math.Min(declared, (ulong)(data.Length - position));
            var cut = (ulong)available < declared;
            if (cut && !truncated)
            {
                // The walk reads the rest as text.
                return false;
            }

            var value = data.Slice(position, available);
            position += available;
            var field = type?.FindFieldByNumber(number);
            var read = field?.FieldType switch
            {
                null or FieldType.Bytes => !value.IsEmpty && (System.Text.Unicode.Utf8.IsValid(value) || (cut && IsUtf8UpToCut(value)) || ProtoWire.IsWellFormed(value, cut)),
                FieldType.String or FieldType.Message or FieldType.Group => true,
                _ => false,
            };
            if (!read && (unread += available) >= half)
            {
                return true;
            }
        }

        return false;
    }

    // True when a field of the message type, or of a message type it holds, has a redacted name
    // (cached per type: descriptor sets are fixed for the redactor's life).
    private bool NamesRedactedFields(MessageDescriptor? type)
    {
        if (type is null)
        {
            return false;
        }

        if (_typesWithRedactedNames.TryGetValue(type, out var known))
        {
            return known;
        }

        var result = NamesRedactedFields(type, []);
        _typesWithRedactedNames.TryAdd(type, result);
        return result;
    }

    private bool NamesRedactedFields(MessageDescriptor type, HashSet<MessageDescriptor> seen)
    {
        if (!seen.Add(type))
        {
            return false;
        }

        foreach (var field in type.Fields.InDeclarationOrder())
        {
            if (IsRedactedName(field.Name)
                || (field.FieldType is FieldType.Message or FieldType.Group && NamesRedactedFields(field.MessageType, seen)))
            {
                return true;
            }
        }

        return false;
    }

    // Walks one message level; returns the rewritten message, or null when nothing changed.
    private byte[]? RedactMessage(ReadOnlySpan<byte> data, MessageDescriptor? type, bool truncated, int depth, ref int count)
    {
        ArrayBufferWriter<byte>? output = null;
        var copied = 0;
        var position = 0;
        while (position < data.Length)
        {
            var start = position;
            if (!ProtoWire.TryReadTag(data, ref position, out var number, out var wireType))
            {
                return RedactUnparsed(data, start, copied, output, ref count);
            }

            var field = type?.FindFieldByNumber(number);
            switch (wireType)
            {
                case ProtoWire.Varint or ProtoWire.Fixed64 or ProtoWire.Fixed32:
                    if (!SkipScalar(data, ref position, wireType))
                    {
                        return RedactUnparsed(data, start, copied, output, ref count);
                    }

                    if (field is not null && IsRedactedName(field.Name))
                    {
                        output ??= new ArrayBufferWriter<byte>(data.Length);
                        output.Write(data[copied..start]);
                        copied = position;
                        count++;
                    }

                    break;
                case ProtoWire.LengthDelimited:
                    var lengthStart = position;
                    if (!ProtoWire.TryReadVarint(data, ref position, out var declared))
                    {
                        return RedactUnparsed(data, start, copied, output, ref count);
                    }

                    var available = (int)Math.Min(declared, (ulong)(data.Length - position));
                    var cut = (ulong)available < declared;
                    if (cut && !truncated)
                    {
                        // A length past the end of a complete message: not protobuf after all.
                        return RedactUnparsed(data, start, copied, output, ref count);
                    }

                    var value = data.Slice(position, available);
                    position += available;
                    if (RedactLengthDelimited(value, field, cut, depth, ref count) is { } replaced)
                    {
                        output ??= new ArrayBufferWriter<byte>(data.Length + 64);
                        output.Write(data[copied..lengthStart]);
                        WriteVarint(output, (ulong)replaced.Length);
                        output.Write(replaced);
                        copied = position;
                    }

                    break;
                default:
                    // Groups are deprecated; like the schema-less view, treat them as not protobuf.
                    return RedactUnparsed(data, start, copied, output, ref count);
            }
        }

        if (output is null)
        {
            return null;
        }

        output.Write(data[copied..]);
        return output.WrittenSpan.ToArray();
    }

    private byte[]? RedactLengthDelimited(ReadOnlySpan<byte> value, FieldDescriptor? field, bool cut, int depth, ref int count)
    {
        if (field is not null)
        {
            switch (field.FieldType)
            {
                case FieldType.String:
                    return RedactNamedString(value, field.Name, cut, ref count);
                case FieldType.Message or FieldType.Group:
                    return depth < SchemalessProtobuf.MaxDepth ? RedactMessage(value, field.MessageType, cut, depth + 1, ref count) : null;
                case FieldType.Bytes:
                    break;
                default:
                    // A packed run of numbers: one sensitive name removes the whole run.
                    if (IsRedactedName(field.Name))
                    {
                        count++;
                        return [];
                    }

                    return null;
            }
        }

        // Schema-less: the same guess the viewer makes (SchemalessProtobuf), so what is shown as text is what is checked as text.
        if (SchemalessProtobuf.LooksLikeText(value))
        {
            // Text that is also a well-formed message (a nested message whose tag and length bytes are
            // printable) is walked as a message first: read as text, a length byte glued to a field's
            // value hides the boundary a token detector needs (`\nRgithub_pat_…`). The text pass then
            // checks what the viewer shows.
            if (depth < SchemalessProtobuf.MaxDepth && ProtoWire.IsWellFormed(value) && RedactMessage(value, null, cut, depth + 1, ref count) is { } nested)
            {
                return RedactContent(nested, default, cut, ref count) ?? nested;
            }

            return RedactContent(value, default, cut, ref count);
        }

        if (depth < SchemalessProtobuf.MaxDepth && !value.IsEmpty && ProtoWire.IsWellFormed(value))
        {
            return RedactMessage(value, null, cut, depth + 1, ref count);
        }

        // Text starting with a control character, or text the capture limit cut inside a character.
        if (System.Text.Unicode.Utf8.IsValid(value) || (cut && IsUtf8UpToCut(value)))
        {
            return RedactContent(value, default, cut, ref count);
        }

        // A cut value that is the start of a message (whose fields hold bytes that are not text) is
        // walked as one, so its strings are still checked.
        if (cut && depth < SchemalessProtobuf.MaxDepth && ProtoWire.IsWellFormed(value, cut: true))
        {
            return RedactMessage(value, null, cut, depth + 1, ref count);
        }

        // Binary (an image, ciphertext, compressed bytes), whole or cut: the viewer shows it as bytes,
        // so it is not read as text. Reading a cut one as text cost ~8x the whole walk on 64 KiB of
        // random bytes (bench/README.md, issue 18's 64 KiB cell), for nothing a reader sees as text.
        return null;
    }

    // Valid UTF-8 but for one character the cut split at the very end.
    private static bool IsUtf8UpToCut(ReadOnlySpan<byte> value)
    {
        var end = value.Length;
        for (var back = 1; back <= Math.Min(3, value.Length); back++)
        {
            var b = value[^back];
            if ((b & 0xC0) != 0x80)
            {
                // The last character's first byte: drop it and its continuation bytes when it needs more than the cut left.
                var needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
                if (needed > back)
                {
                    end -= back;
                }

                break;
            }
        }

        return System.Text.Unicode.Utf8.IsValid(value[..end]);
    }

    private byte[]? RedactNamedString(ReadOnlySpan<byte> value, string name, bool cut, ref int count)
    {
        if (value.IsEmpty || IsMarked(value))
        {
            return null;
        }

        Span<byte> scratch = stackalloc byte[ReplacementMaxBytes];
        if (_names.IsSensitive(name))
        {
            count++;
            return scratch[..ReplacementOf(value, scratch)].ToArray();
        }

        if (_pii != PiiMode.Keep && _names.IsPii(name))
        {
            count++;
            return scratch[..PiiFieldReplacementOf(value, scratch)].ToArray();
        }

        return RedactContent(value, default, cut, ref count);
    }

    private bool IsRedactedName(string name) => _names.IsSensitive(name) || (_pii != PiiMode.Keep && _names.IsPii(name));

    // The rest of a message from `start` does not parse: it is redacted as text (it may be a cut
    // value, or not protobuf at all), appended to what was rewritten so far.
    private byte[]? RedactUnparsed(ReadOnlySpan<byte> data, int start, int copied, ArrayBufferWriter<byte>? output, ref int count)
    {
        var tail = data[start..];
        var redactedTail = RedactContent(tail, default, truncated: true, ref count);
        if (output is null && redactedTail is null)
        {
            return null;
        }

        output ??= new ArrayBufferWriter<byte>(data.Length);
        output.Write(data[copied..start]);
        output.Write(redactedTail ?? tail);
        return output.WrittenSpan.ToArray();
    }

    private static bool SkipScalar(ReadOnlySpan<byte> data, ref int position, int wireType)
    {
        switch (wireType)
        {
            case ProtoWire.Varint:
                return ProtoWire.TryReadVarint(data, ref position, out _);
            default:
                var size = wireType == ProtoWire.Fixed64 ? 8 : 4;
                if (data.Length - position < size)
                {
                    return false;
                }

                position += size;
                return true;
        }
    }

    private static void WriteVarint(ArrayBufferWriter<byte> output, ulong value)
    {
        var span = output.GetSpan(10);
        var written = 0;
        while (value >= 0x80)
        {
            span[written++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[written++] = (byte)value;
        output.Advance(written);
    }
}
