using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using Google.Protobuf.Reflection;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// Turns a protobuf message into its proto3 JSON form (protobuf.dev/programming-guides/json) using
/// a descriptor from a configured descriptor set, without generated code: field names in lowerCamel,
/// 64-bit integers as strings, enums by name, bytes as base64, maps as objects and the well-known
/// types (Timestamp, Duration, wrappers, Struct, FieldMask, Empty, Any) in their special forms.
/// Fields the descriptor does not know are kept, schema-less, under <c>"@unknown"</c>.
/// </summary>
/// <remarks>Runs where a capture is viewed (backend, UI, replay), never on the data path.</remarks>
public static class DescribedProtobuf
{
    private const int MaxDepth = 64;

    /// <summary>Decodes <paramref name="message"/> as <paramref name="type"/>; null when the bytes are not a well-formed message of that type.</summary>
    /// <param name="message">The serialized message.</param>
    /// <param name="type">Its descriptor.</param>
    /// <param name="resolveAny">Finds the descriptor for an <c>Any</c>'s type name; null when unknown.</param>
    /// <param name="budget">What the decode may cost (depth, fields); null for no bound beyond the format's own depth limit. A decode that would pass it returns null.</param>
    public static JsonNode? TryDecode(ReadOnlySpan<byte> message, MessageDescriptor type, Func<string, MessageDescriptor?>? resolveAny = null, ProtobufDecodeBudget? budget = null)
    {
        ArgumentNullException.ThrowIfNull(type);
        return TryMessage(message, type, new Context(resolveAny ?? (_ => null), budget ?? ProtobufDecodeBudget.Unbounded()), 0, out var node) ? node : null;
    }

    private sealed record Context(Func<string, MessageDescriptor?> ResolveAny, ProtobufDecodeBudget Budget);

    // False when the bytes are malformed; a well-formed message may still be JSON null (a Value holding null).
    private static bool TryMessage(ReadOnlySpan<byte> data, MessageDescriptor type, Context context, int depth, out JsonNode? node)
    {
        node = null;
        if (depth > Math.Min(MaxDepth, context.Budget.MaxDepth))
        {
            return false;
        }

        // Field values in wire order, grouped by field; the JSON is then written in field-number order.
        var values = new SortedDictionary<int, List<JsonNode?>>();
        List<byte>? unknown = null;
        var position = 0;
        while (position < data.Length)
        {
            var start = position;
            if (!context.Budget.TrySpend() || !ProtoWire.TryReadTag(data, ref position, out var number, out var wireType) || !TrySkip(data, ref position, wireType))
            {
                return false;
            }

            var field = type.FindFieldByNumber(number);
            var raw = data[start..position];
            if (field is null || !TryField(raw, field, context, depth, values))
            {
                unknown ??= [];
                foreach (var b in raw)
                {
                    unknown.Add(b);
                }
            }
        }

        if (context.Budget.Exhausted)
        {
            return false;
        }

        node = TryWellKnown(type, values, out var special) ? special : Build(type, values, unknown, context.Budget);
        return true;
    }

    // Decodes one field occurrence (its tag and value) into `values`; false when its wire type does
    // not fit the field, so it is kept as unknown instead.
    private static bool TryField(ReadOnlySpan<byte> raw, FieldDescriptor field, Context context, int depth, SortedDictionary<int, List<JsonNode?>> values)
    {
        var position = 0;
        ProtoWire.TryReadTag(raw, ref position, out _, out var wireType);
        var value = raw[position..];
        if (!values.TryGetValue(field.FieldNumber, out var list))
        {
            list = [];
            values[field.FieldNumber] = list;
        }

        var expected = WireTypeOf(field.FieldType);
        if (wireType == ProtoWire.LengthDelimited && expected != ProtoWire.LengthDelimited && field.IsRepeated)
        {
            // A packed run of scalars.
            var p = 0;
            ProtoWire.TryReadLength(value, ref p, out var length);
            var packed = value.Slice(p, length);
            var at = 0;
            while (at < packed.Length)
            {
                if (!context.Budget.TrySpend() || !TryScalar(packed, ref at, field, out var item))
                {
                    return false;
                }

                list.Add(item);
            }

            return true;
        }

        if (wireType != expected)
        {
            return false;
        }

        if (wireType == ProtoWire.LengthDelimited)
        {
            var p = 0;
            ProtoWire.TryReadLength(value, ref p, out var length);
            var bytes = value.Slice(p, length);
            JsonNode? node;
            switch (field.FieldType)
            {
                case FieldType.String when Utf8.IsValid(bytes):
                    node = JsonValue.Create(Encoding.UTF8.GetString(bytes));
                    break;
                case FieldType.Bytes:
                    node = JsonValue.Create(Convert.ToBase64String(bytes));
                    break;
                case FieldType.Message when field.MessageType.FullName == "google.protobuf.Any":
                    node = DecodeAny(bytes, context, depth);
                    break;
                case FieldType.Message when TryMessage(bytes, field.MessageType, context, depth + 1, out var nested):
                    node = nested;
                    break;
                default:
                    return false;
            }

            list.Add(node);
            return true;
        }

        var q = 0;
        if (!TryScalar(value, ref q, field, out var scalar))
        {
            return false;
        }

        list.Add(scalar);
        return true;
    }

    private static bool TryScalar(ReadOnlySpan<byte> data, ref int position, FieldDescriptor field, out JsonNode? value)
    {
        value = null;
        switch (WireTypeOf(field.FieldType))
        {
            case ProtoWire.Varint:
                if (!ProtoWire.TryReadVarint(data, ref position, out var v))
                {
                    return false;
                }

                value = field.FieldType switch
                {
                    FieldType.Int32 => JsonValue.Create((int)(long)v),
                    FieldType.UInt32 => JsonValue.Create((uint)v),
                    FieldType.SInt32 => JsonValue.Create((int)ProtoWire.ZigZag(v)),
                    FieldType.Int64 => JsonValue.Create(((long)v).ToString(CultureInfo.InvariantCulture)),
                    FieldType.UInt64 => JsonValue.Create(v.ToString(CultureInfo.InvariantCulture)),
                    FieldType.SInt64 => JsonValue.Create(ProtoWire.ZigZag(v).ToString(CultureInfo.InvariantCulture)),
                    FieldType.Bool => JsonValue.Create(v != 0),
                    FieldType.Enum => EnumValue(field.EnumType, (int)(long)v),
                    _ => null,
                };
                return value is not null || field.FieldType == FieldType.Enum;
            case ProtoWire.Fixed32:
                if (data.Length - position < 4)
                {
                    return false;
                }

                var u32 = BinaryPrimitives.ReadUInt32LittleEndian(data[position..]);
                position += 4;
                value = field.FieldType switch
                {
                    FieldType.Fixed32 => JsonValue.Create(u32),
                    FieldType.SFixed32 => JsonValue.Create((int)u32),
                    _ => FloatingPoint(BitConverter.UInt32BitsToSingle(u32)),
                };
                return true;
            case ProtoWire.Fixed64:
                if (data.Length - position < 8)
                {
                    return false;
                }

                var u64 = BinaryPrimitives.ReadUInt64LittleEndian(data[position..]);
                position += 8;
                value = field.FieldType switch
                {
                    FieldType.Fixed64 => JsonValue.Create(u64.ToString(CultureInfo.InvariantCulture)),
                    FieldType.SFixed64 => JsonValue.Create(((long)u64).ToString(CultureInfo.InvariantCulture)),
                    _ => FloatingPoint(BitConverter.UInt64BitsToDouble(u64)),
                };
                return true;
            default:
                return false;
        }
    }

    private static JsonNode Build(MessageDescriptor type, SortedDictionary<int, List<JsonNode?>> values, List<byte>? unknown, ProtobufDecodeBudget? budget = null)
    {
        var result = new JsonObject();
        foreach (var (number, list) in values)
        {
            if (list.Count == 0)
            {
                continue;
            }

            var field = type.FindFieldByNumber(number);
            if (field.IsMap)
            {
                var map = new JsonObject();
                foreach (var entry in list)
                {
                    // A map entry is a message {key = 1, value = 2} already decoded with lowerCamel names.
                    var key = entry?["key"]?.ToString() ?? DefaultKey(field.MessageType.FindFieldByNumber(1));
                    map[key] = entry?["value"]?.DeepClone();
                }

                result[field.JsonName] = map;
            }
            else if (field.IsRepeated)
            {
                var array = new JsonArray();
                foreach (var item in list)
                {
                    array.Add(item?.DeepClone());
                }

                result[field.JsonName] = array;
            }
            else
            {
                // A singular field sent more than once: the last one wins, as in every protobuf parser.
                result[field.JsonName] = list[^1]?.DeepClone();
            }
        }

        if (unknown is { Count: > 0 })
        {
            result["@unknown"] = SchemalessProtobuf.TryDecode(unknown.ToArray(), budget);
        }

        return result;
    }

    // The proto3 JSON forms of the well-known types; false when `type` is not one.
    private static bool TryWellKnown(MessageDescriptor type, SortedDictionary<int, List<JsonNode?>> values, out JsonNode? node)
    {
        node = WellKnown(type, values, out var handled);
        return handled;
    }

    private static JsonNode? WellKnown(MessageDescriptor type, SortedDictionary<int, List<JsonNode?>> values, out bool handled)
    {
        handled = true;
        JsonNode? Last(int number) => values.TryGetValue(number, out var list) && list.Count > 0 ? list[^1] : null;
        switch (type.FullName)
        {
            case "google.protobuf.Timestamp":
                var seconds = long.Parse(Last(1)?.ToString() ?? "0", CultureInfo.InvariantCulture);
                var nanos = (int?)Last(2) ?? 0;
                return JsonValue.Create(FormatTimestamp(seconds, nanos));
            case "google.protobuf.Duration":
                return JsonValue.Create(FormatDuration(long.Parse(Last(1)?.ToString() ?? "0", CultureInfo.InvariantCulture), (int?)Last(2) ?? 0));
            case "google.protobuf.DoubleValue" or "google.protobuf.FloatValue" or "google.protobuf.Int32Value"
                or "google.protobuf.UInt32Value" or "google.protobuf.BoolValue":
                return Last(1)?.DeepClone() ?? DefaultScalar(type.FindFieldByNumber(1));
            case "google.protobuf.Int64Value" or "google.protobuf.UInt64Value":
                return Last(1)?.DeepClone() ?? JsonValue.Create("0");
            case "google.protobuf.StringValue" or "google.protobuf.BytesValue":
                return Last(1)?.DeepClone() ?? JsonValue.Create(string.Empty);
            case "google.protobuf.FieldMask":
                var paths = values.TryGetValue(1, out var list) ? list.Select(p => ToLowerCamel(p?.ToString() ?? string.Empty)) : [];
                return JsonValue.Create(string.Join(',', paths));
            case "google.protobuf.Struct":
                // Struct is map<string, Value> fields = 1: Build already made it {"fields": {...}}.
                return Build(type, values, null)["fields"]?.DeepClone() ?? new JsonObject();
            case "google.protobuf.ListValue":
                return Build(type, values, null)["values"]?.DeepClone() ?? new JsonArray();
            case "google.protobuf.Value":
                // A oneof: whichever kind is set (null_value = 1 is JSON null, as is an empty Value).
                var kind = values.Keys.Count > 0 ? values.Keys.Max() : 0;
                return kind <= 1 ? null : Last(kind)?.DeepClone();
            default:
                handled = false;
                return null;
        }
    }

    private static JsonNode DecodeAny(ReadOnlySpan<byte> data, Context context, int depth)
    {
        string typeUrl = string.Empty;
        ReadOnlySpan<byte> value = default;
        var position = 0;
        while (position < data.Length)
        {
            if (!ProtoWire.TryReadTag(data, ref position, out var number, out var wireType) || wireType != ProtoWire.LengthDelimited
                || !ProtoWire.TryReadLength(data, ref position, out var length))
            {
                return new JsonObject { ["value"] = Convert.ToBase64String(data) };
            }

            if (number == 1)
            {
                typeUrl = Encoding.UTF8.GetString(data.Slice(position, length));
            }
            else if (number == 2)
            {
                value = data.Slice(position, length);
            }

            position += length;
        }

        var result = new JsonObject { ["@type"] = typeUrl };
        var inner = context.ResolveAny(typeUrl[(typeUrl.LastIndexOf('/') + 1)..]);
        JsonNode? decoded = null;
        if (inner is not null && !TryMessage(value, inner, context, depth + 1, out decoded))
        {
            inner = null;
        }

        if (inner is not null && decoded is JsonObject fields && !WellKnownName(inner))
        {
            foreach (var (name, node) in fields)
            {
                result[name] = node?.DeepClone();
            }
        }
        else if (inner is not null)
        {
            // Well-known types inside Any carry their special form under "value".
            result["value"] = decoded?.DeepClone();
        }
        else
        {
            result["value"] = Convert.ToBase64String(value);
        }

        return result;
    }

    private static bool WellKnownName(MessageDescriptor type) =>
        type.File.Package == "google.protobuf" && type.FullName != "google.protobuf.Empty";

    private static bool TrySkip(ReadOnlySpan<byte> data, ref int position, int wireType)
    {
        switch (wireType)
        {
            case ProtoWire.Varint:
                return ProtoWire.TryReadVarint(data, ref position, out _);
            case ProtoWire.Fixed64:
                position += 8;
                return position <= data.Length;
            case ProtoWire.Fixed32:
                position += 4;
                return position <= data.Length;
            case ProtoWire.LengthDelimited:
                if (!ProtoWire.TryReadLength(data, ref position, out var length))
                {
                    return false;
                }

                position += length;
                return true;
            default:
                return false;
        }
    }

    private static int WireTypeOf(FieldType type) => type switch
    {
        FieldType.Double or FieldType.Fixed64 or FieldType.SFixed64 => ProtoWire.Fixed64,
        FieldType.Float or FieldType.Fixed32 or FieldType.SFixed32 => ProtoWire.Fixed32,
        FieldType.String or FieldType.Bytes or FieldType.Message => ProtoWire.LengthDelimited,
        FieldType.Group => ProtoWire.StartGroup,
        _ => ProtoWire.Varint,
    };

    private static JsonNode? EnumValue(EnumDescriptor type, int number) =>
        type.FindValueByNumber(number) is { } value
            ? JsonValue.Create(value.Name)
            : type.FullName == "google.protobuf.NullValue" ? null : JsonValue.Create(number);

    private static JsonNode FloatingPoint(double value) =>
        double.IsNaN(value) ? JsonValue.Create("NaN")
        : double.IsPositiveInfinity(value) ? JsonValue.Create("Infinity")
        : double.IsNegativeInfinity(value) ? JsonValue.Create("-Infinity")
        : JsonValue.Create(value);

    private static JsonNode FloatingPoint(float value) =>
        float.IsFinite(value) ? JsonValue.Create(value) : FloatingPoint((double)value);

    private static JsonNode? DefaultScalar(FieldDescriptor field) => field.FieldType switch
    {
        FieldType.Bool => JsonValue.Create(false),
        _ => JsonValue.Create(0),
    };

    private static string DefaultKey(FieldDescriptor keyField) => keyField.FieldType switch
    {
        FieldType.String => string.Empty,
        FieldType.Bool => "false",
        _ => "0",
    };

    // The fraction gets 0, 3, 6 or 9 digits, as the proto3 JSON mapping writes it.
    private static string Fraction(int nanos)
    {
        if (nanos == 0)
        {
            return string.Empty;
        }

        var digits = nanos % 1_000_000 == 0 ? (nanos / 1_000_000).ToString("D3", CultureInfo.InvariantCulture)
            : nanos % 1_000 == 0 ? (nanos / 1_000).ToString("D6", CultureInfo.InvariantCulture)
            : nanos.ToString("D9", CultureInfo.InvariantCulture);
        return "." + digits;
    }

    private static string FormatTimestamp(long seconds, int nanos)
    {
        var time = DateTimeOffset.UnixEpoch.AddSeconds(seconds);
        return time.ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss", CultureInfo.InvariantCulture) + Fraction(Math.Abs(nanos)) + "Z";
    }

    private static string FormatDuration(long seconds, int nanos)
    {
        var negative = seconds < 0 || nanos < 0;
        return (negative ? "-" : string.Empty) + Math.Abs(seconds).ToString(CultureInfo.InvariantCulture) + Fraction(Math.Abs(nanos)) + "s";
    }

    private static string ToLowerCamel(string path)
    {
        var builder = new StringBuilder(path.Length);
        var upper = false;
        foreach (var c in path)
        {
            if (c == '_')
            {
                upper = true;
                continue;
            }

            builder.Append(upper ? char.ToUpperInvariant(c) : c);
            upper = false;
        }

        return builder.ToString();
    }
}
