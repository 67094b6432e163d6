using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.Unicode;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// Shows a protobuf message without its schema, as <c>protoc --decode_raw</c> does: each field's
/// number and wire type, with length-delimited fields guessed as text, a nested message or bytes.
/// </summary>
/// <remarks>
/// The guess prefers text when the bytes are printable UTF-8 that does not start with a control
/// character, because short strings often happen to parse as messages too ("hi" is field 13 = 105);
/// a nested message almost always starts with a tag byte below 0x20 or a length that is not printable.
/// </remarks>
public static class SchemalessProtobuf
{
    /// <summary>Nested messages are guessed this deep; deeper ones are shown as bytes.</summary>
    public const int MaxDepth = 32;

    /// <summary>
    /// Decodes <paramref name="message"/> into an array of <c>{field, wire, …}</c> entries in wire
    /// order; null when the bytes are not a well-formed message, or when decoding them would pass
    /// <paramref name="budget"/> (null: no bound beyond <see cref="MaxDepth"/>).
    /// </summary>
    public static JsonArray? TryDecode(ReadOnlySpan<byte> message, ProtobufDecodeBudget? budget = null)
    {
        budget ??= ProtobufDecodeBudget.Unbounded();
        var fields = TryDecode(message, 0, budget);
        return budget.Exhausted ? null : fields;
    }

    private static JsonArray? TryDecode(ReadOnlySpan<byte> data, int depth, ProtobufDecodeBudget budget)
    {
        var fields = new JsonArray();
        var position = 0;
        while (position < data.Length)
        {
            if (!budget.TrySpend() || !ProtoWire.TryReadTag(data, ref position, out var field, out var wireType))
            {
                return null;
            }

            var entry = new JsonObject { ["field"] = field };
            switch (wireType)
            {
                case ProtoWire.Varint:
                    if (!ProtoWire.TryReadVarint(data, ref position, out var varint))
                    {
                        return null;
                    }

                    entry["wire"] = "varint";
                    entry["value"] = Number(varint);
                    break;
                case ProtoWire.Fixed64:
                    if (data.Length - position < 8)
                    {
                        return null;
                    }

                    var fixed64 = BinaryPrimitives.ReadUInt64LittleEndian(data[position..]);
                    position += 8;
                    entry["wire"] = "i64";
                    entry["value"] = Number(fixed64);
                    entry["double"] = Finite(BitConverter.UInt64BitsToDouble(fixed64));
                    break;
                case ProtoWire.Fixed32:
                    if (data.Length - position < 4)
                    {
                        return null;
                    }

                    var fixed32 = BinaryPrimitives.ReadUInt32LittleEndian(data[position..]);
                    position += 4;
                    entry["wire"] = "i32";
                    entry["value"] = fixed32;
                    entry["float"] = Finite(BitConverter.UInt32BitsToSingle(fixed32));
                    break;
                case ProtoWire.LengthDelimited:
                    if (!ProtoWire.TryReadLength(data, ref position, out var length))
                    {
                        return null;
                    }

                    entry["wire"] = "len";
                    AddLengthDelimited(entry, data.Slice(position, length), depth, budget);
                    position += length;
                    break;
                default:
                    // Groups are deprecated and rare; treating them as malformed keeps the guess honest.
                    return null;
            }

            // As a JsonNode: the generic Add<T> would wrap it as a JsonValue through reflection (not trimmable).
            fields.Add((JsonNode)entry);
        }

        return fields;
    }

    private static void AddLengthDelimited(JsonObject entry, ReadOnlySpan<byte> value, int depth, ProtobufDecodeBudget budget)
    {
        if (LooksLikeText(value, out var text))
        {
            entry["string"] = text;
            return;
        }

        if (depth < Math.Min(MaxDepth, budget.MaxDepth) && !value.IsEmpty && TryDecode(value, depth + 1, budget) is { } nested)
        {
            entry["message"] = nested;
            return;
        }

        if (text is not null)
        {
            entry["string"] = text;
            return;
        }

        entry["bytes"] = Convert.ToBase64String(value);
    }

    // Printable text: valid UTF-8 without control characters other than tab and line breaks.
    // `text` is set for any valid UTF-8 so that a string starting with a control character that did
    // not parse as a message is still shown as text.
    private static bool LooksLikeText(ReadOnlySpan<byte> value, out string? text)
    {
        text = null;
        if (value.IsEmpty)
        {
            text = string.Empty;
            return true;
        }

        if (!Utf8.IsValid(value))
        {
            return false;
        }

        text = Encoding.UTF8.GetString(value);
        foreach (var c in text)
        {
            if (char.IsControl(c) && c is not ('\t' or '\n' or '\r'))
            {
                return false;
            }
        }

        return !char.IsControl(text[0]);
    }

    /// <summary>
    /// The text guess on raw bytes, as <see cref="TryDecode(ReadOnlySpan{byte}, ProtobufDecodeBudget)"/> makes it: valid
    /// UTF-8 without control characters other than tab and line breaks (empty counts as text).
    /// </summary>
    internal static bool LooksLikeText(ReadOnlySpan<byte> value)
    {
        if (!Utf8.IsValid(value))
        {
            return false;
        }

        for (var i = 0; i < value.Length; i++)
        {
            var b = value[i];
            if ((b < 0x20 && b is not ((byte)'\t' or (byte)'\n' or (byte)'\r')) || b == 0x7F
                || (b == 0xC2 && i + 1 < value.Length && value[i + 1] is >= 0x80 and <= 0x9F))
            {
                // C0 controls, DEL, and the C1 controls U+0080-U+009F (0xC2 0x80-0x9F in UTF-8).
                return false;
            }
        }

        return true;
    }

    // JSON numbers above 2^53 lose precision in browsers, so large values travel as strings.
    private static JsonNode Number(ulong value) =>
        value <= (1UL << 53) ? JsonValue.Create(value) : JsonValue.Create(value.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static JsonNode? Finite(double value) =>
        double.IsFinite(value) ? JsonValue.Create(value) : JsonValue.Create(value.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
