using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace SpIstio.Backend.Storage;

/// <summary>
/// A reversible rearrangement of a JSON body, byte for byte, that zstd compresses better: the
/// structure (punctuation, whitespace, keys, <c>true</c>/<c>false</c>/<c>null</c>) stays in
/// order in a skeleton, and each string or number value moves to the stream of the key it sits
/// under, so the values of one field lie side by side. An array of records then costs zstd one
/// long match for its repeated skeleton and a few cheap matches per column, instead of several
/// sequences a record (a match for each key run, literals for each value).
/// <para>
/// Nothing is parsed or validated: a string is a quote to the next unescaped quote, a number a
/// run of <c>-0-9.eE+</c> starting with <c>-</c> or a digit, and a string is a key when the
/// structure before it expects one (after <c>{</c> or a comma in an object). The encoder and the
/// decoder apply the same rule to the same skeleton, so any input round-trips: invalid JSON only
/// models worse. What the model cannot carry (a string cut by the capture limit, a control byte
/// outside a string, nesting past <see cref="MaxDepth"/>) ends the modelled part; the rest is
/// kept as a literal tail.
/// </para>
/// Layout: varints for the skeleton length, the stream count and each stream's length, then the
/// skeleton, the streams and the tail. In the skeleton a value string keeps its opening quote
/// (its content and closing quote are in its stream) and a number is one byte: a decimal written
/// the one way its value and fraction digits give (<see cref="ScanNumber"/>) is a
/// <see cref="DecimalMark"/> plus its fraction digit count, its digits as a zig-zag varint in its
/// stream; any other is a <see cref="NumberMark"/>, its bytes and a <see cref="NumberEnd"/> in its stream.
/// </summary>
internal static class JsonColumns
{
    /// <summary>Containers open at once before the rest of a body is kept as a tail.</summary>
    public const int MaxDepth = 64;

    /// <summary>Distinct keys with a stream of their own; later keys share stream 0 with values under no key.</summary>
    public const int MaxKeyStreams = 64;

    private const byte NumberMark = 0;
    private const byte NumberEnd = (byte)',';

    // Marks DecimalMark..DecimalMark+MaxFractionDigits: control bytes, which never reach the
    // skeleton otherwise (outside a string they end the model).
    private const byte DecimalMark = 1;

    private const int MaxFractionDigits = 6;

    // 18 digits always fit a long.
    private const int MaxDecimalDigits = 18;

    /// <summary>
    /// The most bytes <see cref="Split"/> writes for an input of <paramref name="length"/> bytes:
    /// a one-digit number costs a mark and a terminator more, and the header at most one varint a stream.
    /// </summary>
    public static int MaxSplitLength(int length) => (3 * length) + (5 * (MaxKeyStreams + 3));

    /// <summary>
    /// Writes the split form of <paramref name="input"/> to <paramref name="output"/> (at least
    /// <see cref="MaxSplitLength"/> bytes) and returns its length, or -1 when the model covers
    /// less than half the input (the plain codec then does as well, for less work).
    /// </summary>
    public static int Split(ReadOnlySpan<byte> input, Span<byte> output)
    {
        var walker = Walker.Rent();
        // Values are noted (Value) while the skeleton is written, then copied stream by stream: one
        // pass over the input, one over the values. The list starts at one entry a body byte up to
        // the pooled bound and grows when a large body fills it: sized for the worst case, a 1 MiB
        // body's list was 16 MiB.
        Value[] values = ScratchArray<Value>.Rent(Math.Min(input.Length, ScratchArray<Value>.MaxPooledLength));
        try
        {
            // The skeleton is written in place, after room for the longest header, and moved down to
            // the header's end once the header is known (an overlapping copy, which CopyTo allows).
            var skeleton = output[MaxHeaderLength..];
            int valueCount = 0, skeletonLength = 0, i = 0, tailStart = input.Length;
            // In the walker, not on the stack: a method with a stackalloc is jitted once, straight to
            // full optimisation, and never recompiled at tier 1 (which knows, among others, that the
            // class's statics are initialised); that first compile measured slower here.
            int[] streamLengths = walker.StreamLengths;
            while (i < input.Length)
            {
                byte b = input[i];
                switch ((ByteKind)Kinds[b])
                {
                    case ByteKind.Quote:
                    {
                        bool key = walker.ExpectsKey;
                        // A record's keys come in the order the last record had them: the expected one
                        // is matched whole, without searching for the string's end.
                        int end = key ? walker.ExpectedKey(input, i + 1) : -1;
                        if (end < 0)
                        {
                            end = EndOfString(input, i + 1);
                            if (end < 0)
                            {
                                tailStart = i;
                                goto Modelled;
                            }

                            if (key)
                            {
                                walker.Key(input, i + 1, end - i - 2);
                            }
                        }

                        if (key)
                        {
                            input[i..end].CopyTo(skeleton[skeletonLength..]);
                            skeletonLength += end - i;
                            i = end;
                            // A key is nearly always followed by a colon and a value: taken here, the
                            // walk skips two trips through the switch.
                            if (i < input.Length - 1 && input[i] == ':')
                            {
                                skeleton[skeletonLength++] = (byte)':';
                                b = input[++i];
                                if (b == '"')
                                {
                                    goto case ByteKind.Quote;
                                }

                                if (b == '-' || (uint)(b - '0') <= 9)
                                {
                                    goto case ByteKind.Number;
                                }
                            }

                            break;
                        }

                        skeleton[skeletonLength++] = (byte)'"';
                        int stream = walker.ValueStream;
                        if (valueCount == values.Length)
                        {
                            values = Grow(values);
                        }

                        values[valueCount++] = Value.Text(i + 1, end - i - 1, stream);
                        streamLengths[stream] += end - i - 1;
                        walker.Value();
                        i = end;
                        goto case ByteKind.AfterValue;
                    }

                    case ByteKind.Number:
                    {
                        int end = ScanNumber(input, i, out long digits, out int fraction);
                        int stream = walker.ValueStream;
                        if (fraction >= 0)
                        {
                            skeleton[skeletonLength++] = (byte)(DecimalMark + fraction);
                            ulong zigZag = ZigZag(digits);
                            if (valueCount == values.Length)
                            {
                                values = Grow(values);
                            }

                            values[valueCount++] = Value.Decimal(zigZag, stream);
                            streamLengths[stream] += VarintLength(zigZag);
                        }
                        else
                        {
                            skeleton[skeletonLength++] = NumberMark;
                            if (valueCount == values.Length)
                            {
                                values = Grow(values);
                            }

                            values[valueCount++] = Value.NumberText(i, end - i, stream);
                            streamLengths[stream] += end - i + 1;
                        }

                        walker.Value();
                        i = end;
                        goto case ByteKind.AfterValue;
                    }

                    case ByteKind.Control:
                        tailStart = i;
                        goto Modelled;
                    default:
                        if (!walker.Structural(b))
                        {
                            tailStart = i;
                            goto Modelled;
                        }

                        skeleton[skeletonLength++] = b;
                        i++;
                        break;
                    case ByteKind.AfterValue:
                        // A value is nearly always followed by a comma and, in a record, the next key.
                        if (i < input.Length - 1 && input[i] == ',')
                        {
                            skeleton[skeletonLength++] = (byte)',';
                            walker.Structural((byte)',');
                            if (input[++i] == '"' && walker.ExpectsKey)
                            {
                                goto case ByteKind.Quote;
                            }
                        }

                        break;
                }
            }

        Modelled:
            if (tailStart < input.Length / 2)
            {
                return -1;
            }

            int streamCount = walker.StreamCount;
            int head = WriteVarint(output, skeletonLength);
            head += WriteVarint(output[head..], streamCount);
            for (int s = 0; s < streamCount; s++)
            {
                head += WriteVarint(output[head..], streamLengths[s]);
            }

            skeleton[..skeletonLength].CopyTo(output[head..]);
            int position = head + skeletonLength;
            // Each stream's length becomes its next write position: its values go in input order.
            int[] next = streamLengths;
            for (int s = 0; s < streamCount; s++)
            {
                int length = next[s];
                next[s] = position;
                position += length;
            }

            foreach (ref readonly var value in values.AsSpan(0, valueCount))
            {
                ref int at = ref next[value.Stream];
                if (value.Kind == ValueKind.Decimal)
                {
                    at += WriteVarint(output[at..], (ulong)value.Data);
                }
                else
                {
                    input.Slice((int)value.Data, value.Length).CopyTo(output[at..]);
                    at += value.Length;
                    if (value.Kind == ValueKind.NumberText)
                    {
                        output[at++] = NumberEnd;
                    }
                }
            }

            input[tailStart..].CopyTo(output[position..]);
            return position + input.Length - tailStart;
        }
        finally
        {
            ScratchArray<Value>.Return(values);
            Walker.Return(walker);
        }
    }

    // A full value list (a large body's): twice the room, the values so far copied over.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Value[] Grow(Value[] values)
    {
        var grown = ScratchArray<Value>.Rent(checked(values.Length * 2));
        values.CopyTo(grown, 0);
        ScratchArray<Value>.Return(values);
        return grown;
    }

    // The longest header: a varint for the skeleton length, the stream count and each stream's length.
    private const int MaxHeaderLength = 5 * (MaxKeyStreams + 3);

    private enum ValueKind : byte
    {
        String,
        NumberText,
        Decimal,
    }

    /// <summary>A value Split moves to a stream: where its bytes are in the input, or a decimal's zig-zag digits.</summary>
    private readonly struct Value(long data, int length, int stream, ValueKind kind)
    {
        public readonly long Data = data;
        public readonly int Length = length;
        public readonly byte Stream = (byte)stream;
        public readonly ValueKind Kind = kind;

        public static Value Text(int start, int length, int stream) => new(start, length, stream, ValueKind.String);

        public static Value NumberText(int start, int length, int stream) => new(start, length, stream, ValueKind.NumberText);

        public static Value Decimal(ulong zigZag, int stream) => new((long)zigZag, 0, stream, ValueKind.Decimal);
    }

    // What a byte starts outside a string, so Split's walk dispatches once a byte: a string, a number,
    // a byte the model cannot carry (a control byte that is not whitespace), or structure.
    private enum ByteKind : byte
    {
        Structure,
        Quote,
        Number,
        Control,

        // Not a byte's kind: where the walk goes after a value, to take the comma after it.
        AfterValue,
    }

    private static ReadOnlySpan<byte> Kinds =>
    [
        3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 3, 3, 0, 3, 3, // \t \n \r are whitespace
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, // '"' and '-'
        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, // '0'-'9'
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// <summary>Rebuilds the input of <see cref="Split"/> into <paramref name="output"/>, which must be its exact length.</summary>
    public static void Join(ReadOnlySpan<byte> split, Span<byte> output)
    {
        int offset = 0;
        int skeletonLength = ReadLength(split, ref offset);
        int streamCount = ReadLength(split, ref offset);
        if (streamCount > MaxKeyStreams + 1)
        {
            throw Corrupt();
        }

        Span<int> next = stackalloc int[MaxKeyStreams + 1];
        Span<int> ends = stackalloc int[MaxKeyStreams + 1];
        Span<int> lengths = stackalloc int[MaxKeyStreams + 1];
        for (int s = 0; s < streamCount; s++)
        {
            lengths[s] = ReadLength(split, ref offset);
        }

        var skeleton = Slice(split, offset, skeletonLength);
        long position = offset + skeletonLength;
        for (int s = 0; s < streamCount; s++)
        {
            next[s] = (int)position;
            position += lengths[s];
            ends[s] = (int)Math.Min(position, int.MaxValue);
        }

        if (position > split.Length)
        {
            throw Corrupt();
        }

        var walker = Walker.Rent();
        try
        {
            int written = 0;
            for (int j = 0; j < skeleton.Length; j++)
            {
                byte b = skeleton[j];
                if (b == '"' && walker.ExpectsKey)
                {
                    int end = EndOfString(skeleton, j + 1);
                    if (end < 0)
                    {
                        throw Corrupt();
                    }

                    written += Copy(skeleton[j..end], output, written);
                    walker.Key(skeleton, j + 1, end - j - 2);
                    j = end - 1;
                }
                else if (b is >= DecimalMark and <= DecimalMark + MaxFractionDigits)
                {
                    int stream = walker.ValueStream;
                    if (stream >= streamCount)
                    {
                        throw Corrupt();
                    }

                    int at = next[stream];
                    ulong value = ReadVarint(split[..ends[stream]], ref at);
                    long digits = UnZigZag(value);
                    if (digits is < -999_999_999_999_999_999 or > 999_999_999_999_999_999)
                    {
                        throw Corrupt();
                    }

                    written += WriteDecimal(digits, b - DecimalMark, output[written..]);
                    next[stream] = at;
                    walker.Value();
                }
                else if (b is (byte)'"' or NumberMark)
                {
                    int stream = walker.ValueStream;
                    if (stream >= streamCount)
                    {
                        throw Corrupt();
                    }

                    var rest = split[next[stream]..ends[stream]];
                    int length = b == NumberMark ? rest.IndexOf(NumberEnd) : EndOfString(rest, 0);
                    if (length < 0)
                    {
                        throw Corrupt();
                    }

                    if (b == '"')
                    {
                        output[written++] = b;
                    }

                    written += Copy(rest[..length], output, written);
                    next[stream] += b == NumberMark ? length + 1 : length;
                    walker.Value();
                }
                else if (walker.Structural(b))
                {
                    output[written++] = b;
                }
                else
                {
                    throw Corrupt();
                }
            }

            written += Copy(split[(int)position..], output, written);
            if (written != output.Length)
            {
                throw Corrupt();
            }
        }
        catch (IndexOutOfRangeException e)
        {
            throw new InvalidDataException("A stored body is corrupt: its JSON columns do not rebuild to the recorded length.", e);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException("A stored body is corrupt: its JSON columns do not rebuild to the recorded length.", e);
        }
        finally
        {
            Walker.Return(walker);
        }
    }

    private static int Copy(ReadOnlySpan<byte> source, Span<byte> output, int at)
    {
        source.CopyTo(output[at..]);
        return source.Length;
    }

    private static ReadOnlySpan<byte> Slice(ReadOnlySpan<byte> source, int offset, int length) =>
        (long)offset + length <= source.Length ? source.Slice(offset, length) : throw Corrupt();

    private static InvalidDataException Corrupt() =>
        new("A stored body is corrupt: its JSON columns do not rebuild to the recorded length.");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsNumberByte(byte b) => (uint)(b - '0') <= 9 || b is (byte)'.' or (byte)'e' or (byte)'E' or (byte)'+' or (byte)'-';

    /// <summary>The index just past the closing quote of a string whose content starts at <paramref name="start"/>, or -1.</summary>
    private static int EndOfString(ReadOnlySpan<byte> source, int start)
    {
        int i = start;
        while (true)
        {
            int found = source[i..].IndexOfAny((byte)'"', (byte)'\\');
            if (found < 0)
            {
                return -1;
            }

            i += found;
            if (source[i] == '"')
            {
                return i + 1;
            }

            // A backslash escapes the byte after it, whatever it is.
            i += 2;
            if (i > source.Length)
            {
                return -1;
            }
        }
    }

    private static int WriteVarint(Span<byte> destination, int value) => BodyCodec.WriteVarint(destination, (uint)value);

    private static int WriteVarint(Span<byte> destination, ulong value) => BodyCodec.WriteVarint(destination, value);

    private static int VarintLength(ulong v)
    {
        int length = 1;
        while (v >= 0x80)
        {
            v >>= 7;
            length++;
        }

        return length;
    }

    private static ulong ZigZag(long value) => (ulong)((value << 1) ^ (value >> 63));

    private static long UnZigZag(ulong value) => (long)(value >> 1) ^ -(long)(value & 1);

    /// <summary>
    /// Reads the number at <paramref name="start"/> (a <c>-</c> or a digit) to the end of its run of
    /// <c>-0-9.eE+</c> bytes, which it returns. <paramref name="fraction"/> is its fraction digit
    /// count when it is a decimal that <see cref="WriteDecimal"/> writes back byte for byte from
    /// <paramref name="digits"/> (all its digits as one integer, sign included): an optional minus,
    /// an integer part without leading zeros, at most <see cref="MaxFractionDigits"/> fraction
    /// digits, at most <see cref="MaxDecimalDigits"/> digits in all, no exponent, not a negative
    /// zero; otherwise -1 (the number is kept as text).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ScanNumber(ReadOnlySpan<byte> input, int start, out long digits, out int fraction)
    {
        bool negative = input[start] == '-';
        int first = negative ? start + 1 : start;
        int i = first;
        ulong value = 0;
        // Past MaxDecimalDigits the value wraps; such a number is text whatever it read.
        while (i < input.Length && (uint)(input[i] - '0') <= 9)
        {
            value = (value * 10) + (uint)(input[i++] - '0');
        }

        int integerDigits = i - first;
        fraction = 0;
        bool point = i < input.Length && input[i] == '.';
        if (point)
        {
            int fractionStart = ++i;
            while (i < input.Length && (uint)(input[i] - '0') <= 9)
            {
                value = (value * 10) + (uint)(input[i++] - '0');
            }

            fraction = i - fractionStart;
        }

        // An exponent, a sign or a second point: the run goes on, as text.
        int end = i;
        while (end < input.Length && IsNumberByte(input[end]))
        {
            end++;
        }

        digits = negative ? -(long)value : (long)value;
        bool canonical = end == i && integerDigits > 0 && integerDigits + fraction <= MaxDecimalDigits && fraction <= MaxFractionDigits
            && (!point || fraction > 0) && (integerDigits == 1 || input[first] != '0') && !(negative && value == 0);
        if (!canonical)
        {
            fraction = -1;
        }

        return end;
    }

    /// <summary>Writes the decimal <see cref="ScanNumber"/> read; the number of bytes written.</summary>
    private static int WriteDecimal(long digits, int fraction, Span<byte> output)
    {
        // Digits right to left into a scratch buffer: the fraction, the point, then at least one integer digit.
        Span<byte> text = stackalloc byte[24];
        ulong magnitude = digits < 0 ? (ulong)-digits : (ulong)digits;
        int at = text.Length;
        for (int d = 0; d < fraction; d++)
        {
            text[--at] = (byte)('0' + (magnitude % 10));
            magnitude /= 10;
        }

        if (fraction > 0)
        {
            text[--at] = (byte)'.';
        }

        do
        {
            text[--at] = (byte)('0' + (magnitude % 10));
            magnitude /= 10;
        }
        while (magnitude > 0);

        if (digits < 0)
        {
            text[--at] = (byte)'-';
        }

        text[at..].CopyTo(output);
        return text.Length - at;
    }

    private static int ReadLength(ReadOnlySpan<byte> source, ref int offset) =>
        ReadVarint(source, ref offset) is var value && value <= int.MaxValue ? (int)value : throw Corrupt();

    private static ulong ReadVarint(ReadOnlySpan<byte> source, ref int offset) =>
        BodyCodec.TryReadVarint(source, ref offset, out ulong value) ? value : throw Corrupt();

    /// <summary>
    /// The structure state both directions share: open containers, which stream each one's values
    /// go to, whether a key is expected, and the keys seen (by position in the skeleton's source,
    /// identical bytes in both directions).
    /// </summary>
    private sealed class Walker
    {
        [ThreadStatic]
        private static Walker? t_cached;

        private readonly bool[] _isObject = new bool[MaxDepth];
        private readonly int[] _stream = new int[MaxDepth];
        // The stream of the key that last followed a key of each stream (0: none yet).
        private readonly int[] _following = new int[MaxKeyStreams + 1];
        private readonly int[] _keyStarts = new int[MaxKeyStreams];
        private readonly int[] _keyLengths = new int[MaxKeyStreams];
        // Each key's first 8 bytes with its closing quote (little-endian, zero-padded): most keys are
        // shorter than 8, and one masked compare of a word is cheaper than a SequenceEqual call.
        private readonly ulong[] _keyHeads = new ulong[MaxKeyStreams];
        private int _depth;
        private int _keys;
        private int _usedStreams;

        public bool ExpectsKey { get; private set; }

        /// <summary>The stream a value here goes to: its key's in an object, the array's own key's in an array, 0 at the top.</summary>
        public int ValueStream
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => _depth == 0 ? 0 : _stream[_depth - 1];
        }

        public int StreamCount => _usedStreams;

        /// <summary>Split's bytes per stream, zero when rented.</summary>
        public int[] StreamLengths { get; } = new int[MaxKeyStreams + 1];

        public static Walker Rent()
        {
            var walker = t_cached ?? new Walker();
            t_cached = null;
            walker._depth = 0;
            walker._keys = 0;
            walker._usedStreams = 0;
            Array.Clear(walker._following);
            Array.Clear(walker.StreamLengths);
            walker.ExpectsKey = false;
            return walker;
        }

        public static void Return(Walker walker) => t_cached = walker;

        /// <summary>Notes a key (the content between its quotes, in <paramref name="source"/>) and sends the values after it to its stream.</summary>
        public void Key(ReadOnlySpan<byte> source, int start, int length)
        {
            ExpectsKey = false;
            var key = source.Slice(start, length);
            // Records repeat their keys in order: the key that followed the previous one last time
            // is tried first, then every known key. Only the speed depends on the guess; a key's
            // stream is its first occurrence's either way.
            int previous = _stream[_depth - 1];
            int guess = _following[previous];
            int stream = 0;
            if (guess > 0 && Matches(source, guess - 1, key))
            {
                stream = guess;
            }
            else
            {
                for (int k = 0; k < _keys; k++)
                {
                    if (Matches(source, k, key))
                    {
                        stream = k + 1;
                        break;
                    }
                }
            }

            if (stream == 0 && _keys < MaxKeyStreams)
            {
                Span<byte> head = stackalloc byte[sizeof(ulong)];
                head.Clear();
                var quoted = source.Slice(start, length + 1);
                quoted[..Math.Min(quoted.Length, head.Length)].CopyTo(head);
                _keyHeads[_keys] = BinaryPrimitives.ReadUInt64LittleEndian(head);
                _keyStarts[_keys] = start;
                _keyLengths[_keys++] = length;
                stream = _keys;
            }

            _following[previous] = stream;
            _stream[_depth - 1] = stream;
        }

        /// <summary>
        /// When the string whose content starts at <paramref name="start"/> is the key
        /// <see cref="Key"/> would try first there, notes it as <see cref="Key"/> does and returns
        /// the index just past its closing quote; otherwise -1 and nothing changes. The same bytes
        /// as a key already found, then a quote, end where that key ended: where a string ends
        /// depends on its bytes alone.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int ExpectedKey(ReadOnlySpan<byte> source, int start)
        {
            int guess = _following[_stream[_depth - 1]];
            if (guess == 0)
            {
                return -1;
            }

            // The key and its closing quote (which follows the key's first occurrence too) compared at once.
            int length = _keyLengths[guess - 1];
            int end = start + length;
            if (length < sizeof(ulong) && start <= source.Length - sizeof(ulong))
            {
                ulong quotedKey = ulong.MaxValue >> (8 * (sizeof(ulong) - 1 - length));
                if (((BinaryPrimitives.ReadUInt64LittleEndian(source[start..]) ^ _keyHeads[guess - 1]) & quotedKey) != 0)
                {
                    return -1;
                }
            }
            else if (end >= source.Length || !source.Slice(_keyStarts[guess - 1], length + 1).SequenceEqual(source.Slice(start, length + 1)))
            {
                return -1;
            }

            ExpectsKey = false;
            _stream[_depth - 1] = guess;
            return end + 1;
        }

        private bool Matches(ReadOnlySpan<byte> source, int k, ReadOnlySpan<byte> key) =>
            _keyLengths[k] == key.Length && source.Slice(_keyStarts[k], key.Length).SequenceEqual(key);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Value()
        {
            ExpectsKey = false;
            _usedStreams = Math.Max(_usedStreams, ValueStream + 1);
        }

        /// <summary>Follows one structural byte; false when it would open a container past <see cref="MaxDepth"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Structural(byte b)
        {
            switch (b)
            {
                case (byte)'{' or (byte)'[':
                    if (_depth == MaxDepth)
                    {
                        return false;
                    }

                    _stream[_depth] = ValueStream;
                    _isObject[_depth++] = b == '{';
                    ExpectsKey = b == '{';
                    break;
                case (byte)'}' or (byte)']':
                    if (_depth > 0)
                    {
                        _depth--;
                    }

                    ExpectsKey = false;
                    break;
                case (byte)',':
                    ExpectsKey = _depth > 0 && _isObject[_depth - 1];
                    break;
                case (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r':
                    break;
                default:
                    ExpectsKey = false;
                    break;
            }

            return true;
        }
    }
}
