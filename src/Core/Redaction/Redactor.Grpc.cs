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

    private int RedactGrpc(Exchange exchange)
    {
        var count = 0;
        var method = _descriptors.FindMethod(exchange.Path);
        RedactGrpcMessages(exchange.Attributes, GrpcSpanAttributes.RequestMessages, method?.InputType, ref count);
        RedactGrpcMessages(exchange.Attributes, GrpcSpanAttributes.ResponseMessages, method?.OutputType, ref count);
        if (GrpcSpanAttributes.IsGrpc(exchange.RequestBody.ContentType))
        {
            exchange.RequestBody = RedactGrpcBody(exchange.RequestBody, exchange.RequestHeaders.Get("grpc-encoding"), method?.InputType, ref count);
        }

        if (GrpcSpanAttributes.IsGrpc(exchange.ResponseBody.ContentType))
        {
            exchange.ResponseBody = RedactGrpcBody(exchange.ResponseBody, exchange.ResponseHeaders.Get("grpc-encoding"), method?.OutputType, ref count);
        }

        return count;
    }

    /// <summary>Redacts one serialized protobuf message; null when nothing was found.</summary>
    /// <param name="message">The message bytes.</param>
    /// <param name="type">Its descriptor when a descriptor set names it (field names are then redacted too).</param>
    /// <param name="truncated">True when the bytes are only the start of the message.</param>
    /// <param name="redacted">How many values were replaced or removed.</param>
    public byte[]? RedactProtobuf(ReadOnlySpan<byte> message, MessageDescriptor? type, bool truncated, out int redacted)
    {
        redacted = 0;
        return _enabled ? RedactMessage(message, type, truncated, 0, ref redacted) : null;
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

            if (RedactMessage(message.Payload.Span, type, message.Truncated, 0, ref count) is { } payload)
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
    /// </summary>
    private CapturedBody RedactGrpcBody(CapturedBody body, string? grpcEncoding, MessageDescriptor? type, ref int count)
    {
        var data = body.Content.Span;
        var coding = ContentDecoder.Parse(grpcEncoding);
        ArrayBufferWriter<byte>? output = null;
        var copied = 0;
        var position = 0;
        while (data.Length - position >= 5)
        {
            var start = position;
            var compressed = data[position] != 0;
            var declared = BinaryPrimitives.ReadUInt32BigEndian(data[(position + 1)..]);
            var payloadStart = position + 5;
            var available = (int)Math.Min(declared, (uint)(data.Length - payloadStart));
            var cut = available < declared;
            var payload = data.Slice(payloadStart, available);
            position = payloadStart + available;

            byte[]? replaced;
            if (!compressed)
            {
                replaced = RedactMessage(payload, type, cut, 0, ref count);
            }
            else if (coding is ContentCoding.Gzip or ContentCoding.Deflate)
            {
                using var inflated = ContentDecoder.TryDecode(body.Content.Slice(payloadStart, available), cut, coding, MaxInflatedMessageBytes, out var inflatedCut);
                if (inflated is null)
                {
                    continue;
                }

                replaced = RedactMessage(inflated.Captured, type, cut || inflatedCut, 0, ref count);
                if (replaced is null && inflatedCut && !cut)
                {
                    // Past the inflation bound the rest of the message is unread: keep the part that was checked.
                    replaced = inflated.Captured.ToArray();
                    count++;
                }
            }
            else
            {
                continue;
            }

            if (replaced is null)
            {
                continue;
            }

            output ??= new ArrayBufferWriter<byte>(data.Length + 64);
            output.Write(data[copied..start]);
            var header = output.GetSpan(5);
            header[0] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)replaced.Length);
            output.Advance(5);
            output.Write(replaced);
            copied = position;
        }

        if (output is null)
        {
            return body;
        }

        output.Write(data[copied..]);
        return body with { Content = output.WrittenMemory.ToArray() };
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
            return RedactContent(value, default, cut, ref count);
        }

        if (depth < SchemalessProtobuf.MaxDepth && !value.IsEmpty && ProtoWire.IsWellFormed(value))
        {
            return RedactMessage(value, null, cut, depth + 1, ref count);
        }

        // Text starting with a control character, or a cut value that is no longer a whole message.
        return cut || System.Text.Unicode.Utf8.IsValid(value) ? RedactContent(value, default, cut, ref count) : null;
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
