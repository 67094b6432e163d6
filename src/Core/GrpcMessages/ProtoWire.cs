namespace SpIstio.Core.GrpcMessages;

/// <summary>The protobuf wire format's primitives (protobuf.dev/programming-guides/encoding), reading from a span without exceptions.</summary>
internal static class ProtoWire
{
    public const int Varint = 0;
    public const int Fixed64 = 1;
    public const int LengthDelimited = 2;
    public const int StartGroup = 3;
    public const int EndGroup = 4;
    public const int Fixed32 = 5;

    /// <summary>Largest field number the format allows (2^29 - 1).</summary>
    public const int MaxFieldNumber = (1 << 29) - 1;

    /// <summary>Reads a base-128 varint of at most 10 bytes.</summary>
    public static bool TryReadVarint(ReadOnlySpan<byte> data, ref int position, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 70 && position < data.Length; shift += 7)
        {
            var b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Reads a tag: a field number in range and a wire type.</summary>
    public static bool TryReadTag(ReadOnlySpan<byte> data, ref int position, out int field, out int wireType)
    {
        field = 0;
        wireType = 0;
        if (!TryReadVarint(data, ref position, out var tag) || tag > uint.MaxValue)
        {
            return false;
        }

        field = (int)(tag >> 3);
        wireType = (int)(tag & 7);
        return field is > 0 and <= MaxFieldNumber;
    }

    /// <summary>Reads the length of a length-delimited field and checks it fits in what is left.</summary>
    public static bool TryReadLength(ReadOnlySpan<byte> data, ref int position, out int length)
    {
        length = 0;
        if (!TryReadVarint(data, ref position, out var raw) || raw > (ulong)(data.Length - position))
        {
            return false;
        }

        length = (int)raw;
        return true;
    }

    /// <summary>Zig-zag decoding for sint32/sint64.</summary>
    public static long ZigZag(ulong value) => (long)(value >> 1) ^ -(long)(value & 1);

    /// <summary>
    /// True when <paramref name="data"/> is a sequence of whole fields (one level; nested values are
    /// not looked into), the test the schema-less view uses to guess a nested message. With
    /// <paramref name="cut"/> (the bytes are only the start of a value) the last field may run past
    /// the end: true when what is there is the start of such a sequence.
    /// </summary>
    public static bool IsWellFormed(ReadOnlySpan<byte> data, bool cut = false)
    {
        var position = 0;
        while (position < data.Length)
        {
            if (!TryReadTag(data, ref position, out _, out var wireType))
            {
                return cut && RanOffTheEnd(data, position);
            }

            switch (wireType)
            {
                case Varint:
                    if (!TryReadVarint(data, ref position, out _))
                    {
                        return cut && RanOffTheEnd(data, position);
                    }

                    break;
                case Fixed64 or Fixed32:
                    var size = wireType == Fixed64 ? 8 : 4;
                    if (data.Length - position < size)
                    {
                        return cut;
                    }

                    position += size;
                    break;
                case LengthDelimited:
                    if (!TryReadVarint(data, ref position, out var length))
                    {
                        return cut && RanOffTheEnd(data, position);
                    }

                    if (length > (ulong)(data.Length - position))
                    {
                        return cut;
                    }

                    position += (int)length;
                    break;
                default:
                    return false;
            }
        }

        return true;
    }

    // A varint that failed because the bytes ended inside it (its last byte still says "more"),
    // not because it was malformed.
    private static bool RanOffTheEnd(ReadOnlySpan<byte> data, int position) => position == data.Length && data[^1] >= 0x80;
}
