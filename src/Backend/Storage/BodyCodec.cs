using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace SpIstio.Backend.Storage;

/// <summary>
/// How bodies, headers and attributes are stored: one codec byte, then
/// <list type="bullet">
/// <item><c>0</c> raw: the bytes as they are;</item>
/// <item><c>1</c> Brotli (rows written before zstd): the original length (4 bytes, little endian) and a Brotli stream;</item>
/// <item><c>2</c> zstd: the dictionary id (unsigned LEB128 varint, 0 = none), the original length
/// (varint) and a zstd frame without its own size, checksum or dictionary id (the header carries them);</item>
/// <item><c>3</c> the same as <c>2</c> with a magicless zstd frame: the 4-byte magic number only says
/// "zstd", which the codec byte already does (about 20 bytes a span over its five values);</item>
/// <item><c>4</c> JSON columns: the dictionary id and original length as in <c>3</c>, the length of the
/// <see cref="JsonColumns"/> split form (varint) and a magicless zstd frame of that split form;
/// written for bodies that start like JSON, without a dictionary or with one trained on split
/// forms (<see cref="CodecDictionary.TrainedOnJsonColumns"/>).</item>
/// </list>
/// New values are written as zstd, with the tenant's trained dictionary once it has one
/// (<see cref="CodecDictionaries"/>): small JSON bodies share most of their structure (keys,
/// punctuation, enum values) with each other but not within themselves, which a dictionary
/// captures and a per-value stream cannot; zstd at a low level is also several times cheaper
/// per byte than Brotli. Every stored value names its codec and dictionary, so older rows read.
/// </summary>
internal static class BodyCodec
{
    /// <summary>Bytes of a stored value that always hold its whole header (codec byte and two varints).</summary>
    public const int HeadBytes = 16;

    private const byte Raw = 0;
    private const byte Brotli = 1;
    private const byte Zstd = 2;
    private const byte ZstdMagicless = 3;
    private const byte ZstdJsonColumns = 4;

    // Under this size a body holds too few records for the columns to pay for their lengths and
    // the extra pass: the column form's gain is per repeated record (bench/README.md, 2026-11-28,
    // issue 14 (jsoncodec): a 717-byte nested order gained nothing, 2 KiB of records ~60 bytes).
    private const int MinJsonColumnsLength = 256;

    // Under this size the framing costs more than it saves.
    private const int MinCompressLength = 96;

    // With a trained dictionary a short value is mostly a match into it: the tenant's response
    // headers and attributes repeat whole (the bench's 95-byte response headers and 62-byte
    // attributes went in raw, 159 B a span, and take ~20 B compressed). Under this size even a
    // single match cannot pay for the frame (~12 bytes of header); a value that does not shrink
    // is stored raw either way.
    private const int MinDictionaryCompressLength = 24;

    // Level 3: with the tenant's dictionary and libzstd, ~+1 µs a 2 KiB bench body over level 1
    // and 16 B smaller (406 against 422 B; a 4 KiB body of long strings 797 against 1,071), and
    // 2-6 µs a bench span of ingest CPU in alternated store runs; levels 2 and 4-9 were larger or
    // slower (bench/README.md, 2026-11-29, issue 14 (level3)). Its +27 µs a span measured earlier
    // (sqlitedisk2) was zstd's managed port, which now only decodes.
    private const int Level = 3;

    // zstd's frame format switch for decoding (ZSTD_d_format; the compressor's is NativeZstd.FormatParameter).
    private const ZSTD_dParameter DecompressFormatParameter = ZSTD_dParameter.ZSTD_d_experimentalParam1;

    // Compressors without a dictionary, shared by every store (a dictionary's own are in CodecDictionary).
    private static readonly ContextPool s_plain = new(null);

    /// <summary>
    /// Encodes <paramref name="data"/>, with <paramref name="dictionary"/> when given; null for an
    /// empty input. <paramref name="jsonColumns"/> false keeps a JSON body to plain zstd (the
    /// codec benchmark's comparison).
    /// </summary>
    public static byte[]? Encode(ReadOnlySpan<byte> data, CodecDictionary? dictionary = null, bool jsonColumns = true)
    {
        if (data.IsEmpty)
        {
            return null;
        }

        if (data.Length >= (dictionary is null ? MinCompressLength : MinDictionaryCompressLength))
        {
            var compressed = jsonColumns && data.Length >= MinJsonColumnsLength && (dictionary is null || dictionary.TrainedOnJsonColumns) && StartsLikeJson(data)
                ? CompressJsonColumns(data, dictionary) ?? Compress(data, ZstdMagicless, data.Length, dictionary)
                : Compress(data, ZstdMagicless, data.Length, dictionary);
            if (compressed is not null)
            {
                return compressed;
            }
        }

        var raw = new byte[data.Length + 1];
        raw[0] = Raw;
        data.CopyTo(raw.AsSpan(1));
        return raw;
    }

    // A JSON object or array: the only bodies whose structure the columns can model.
    private static bool StartsLikeJson(ReadOnlySpan<byte> data)
    {
        int first = data.IndexOfAnyExcept(" \t\n\r"u8);
        return first >= 0 && data[first] is (byte)'{' or (byte)'[';
    }

    /// <summary>
    /// What zstd sees of <paramref name="value"/> when it is stored (its <see cref="JsonColumns"/>
    /// split form, or the value itself): a dictionary is trained on these, since one trained on
    /// raw JSON matches a split body's skeleton and columns poorly (bench/README.md, 2026-11-28,
    /// issue 14 (jsoncodec): 615 B a 2 KiB bench body against 465 B with one trained on split forms).
    /// </summary>
    public static byte[] DictionarySample(ReadOnlySpan<byte> value)
    {
        if (value.Length < MinJsonColumnsLength || !StartsLikeJson(value))
        {
            return value.ToArray();
        }

        byte[] split = ScratchArray<byte>.Rent(JsonColumns.MaxSplitLength(value.Length));
        try
        {
            int length = JsonColumns.Split(value, split);
            return length < 0 ? value.ToArray() : split.AsSpan(0, length).ToArray();
        }
        finally
        {
            ScratchArray<byte>.Return(split);
        }
    }

    private static byte[]? CompressJsonColumns(ReadOnlySpan<byte> data, CodecDictionary? dictionary)
    {
        byte[] split = ScratchArray<byte>.Rent(JsonColumns.MaxSplitLength(data.Length));
        try
        {
            int length = JsonColumns.Split(data, split);
            return length < 0 ? null : Compress(split.AsSpan(0, length), ZstdJsonColumns, data.Length, dictionary);
        }
        finally
        {
            ScratchArray<byte>.Return(split);
        }
    }

    /// <summary>
    /// The header (<paramref name="codec"/>, dictionary id, <paramref name="originalLength"/> and,
    /// for JSON columns, the payload's length) and a magicless zstd frame of <paramref name="payload"/>;
    /// null when that is not smaller than the raw value.
    /// </summary>
    private static byte[]? Compress(ReadOnlySpan<byte> payload, byte codec, int originalLength, CodecDictionary? dictionary)
    {
        var pool = dictionary?.Contexts ?? s_plain;
        var compressor = pool.RentCompressor();
        byte[] rented = ScratchArray<byte>.Rent(ZstdCompressor.CompressBound(payload.Length) + HeadBytes);
        try
        {
            rented[0] = codec;
            int head = 1 + WriteVarint(rented.AsSpan(1), (ulong)(dictionary?.Id ?? 0));
            head += WriteVarint(rented.AsSpan(head), (ulong)originalLength);
            if (codec == ZstdJsonColumns)
            {
                head += WriteVarint(rented.AsSpan(head), (ulong)payload.Length);
            }

            int written = compressor.Wrap(payload, rented.AsSpan(head));
            return head + written < originalLength + 1 ? rented.AsSpan(0, head + written).ToArray() : null;
        }
        finally
        {
            ScratchArray<byte>.Return(rented);
            pool.Return(compressor);
        }
    }

    /// <summary>Encodes a string as UTF-8; null for null or empty.</summary>
    public static byte[]? EncodeString(string? text, CodecDictionary? dictionary = null, bool jsonColumns = true)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        byte[] rented = ScratchArray<byte>.Rent(max);
        try
        {
            int length = Encoding.UTF8.GetBytes(text, rented);
            return Encode(rented.AsSpan(0, length), dictionary, jsonColumns);
        }
        finally
        {
            ScratchArray<byte>.Return(rented);
        }
    }

    /// <summary>
    /// The length a stored value decodes to, from its first <see cref="HeadBytes"/> bytes (or all
    /// of it when shorter) and its stored length: the value itself need not be read.
    /// </summary>
    public static long DecodedLength(ReadOnlySpan<byte> head, long storedLength)
    {
        if (head.IsEmpty || storedLength == 0)
        {
            return 0;
        }

        switch (head[0])
        {
            case Brotli when head.Length >= 5:
                return BinaryPrimitives.ReadInt32LittleEndian(head[1..]);
            case Zstd or ZstdMagicless or ZstdJsonColumns:
                int offset = 1;
                if (TryReadVarint(head, ref offset, out _) && TryReadVarint(head, ref offset, out ulong length))
                {
                    return (long)length;
                }

                return storedLength - 1;
            default:
                return storedLength - 1;
        }
    }

    /// <summary>The id of the dictionary a stored value needs, or 0 when it needs none.</summary>
    public static long DictionaryIdOf(ReadOnlySpan<byte> stored)
    {
        int offset = 1;
        return stored.Length > 1 && stored[0] is Zstd or ZstdMagicless or ZstdJsonColumns && TryReadVarint(stored, ref offset, out ulong id) ? (long)id : 0;
    }

    /// <summary>The original bytes of a stored value (empty for null); <paramref name="dictionaries"/> resolves the dictionary a value names.</summary>
    public static byte[] Decode(byte[]? stored, CodecDictionaries? dictionaries = null)
    {
        if (stored is null || stored.Length == 0)
        {
            return [];
        }

        switch (stored[0])
        {
            case Raw:
                return stored.AsSpan(1).ToArray();
            case Brotli:
                {
                    int length = BinaryPrimitives.ReadInt32LittleEndian(stored.AsSpan(1));
                    var result = new byte[length];
                    if (!BrotliDecoder.TryDecompress(stored.AsSpan(5), result, out int written) || written != length)
                    {
                        throw new InvalidDataException("A stored body is corrupt: its Brotli stream does not decode to the recorded length.");
                    }

                    return result;
                }

            case Zstd or ZstdMagicless or ZstdJsonColumns:
                return DecodeZstd(stored, dictionaries);
            default:
                throw new InvalidDataException($"A stored body has an unknown codec flag {stored[0]}.");
        }
    }

    /// <summary>The original string of a stored value, or null when none was stored.</summary>
    public static string? DecodeString(byte[]? stored, CodecDictionaries? dictionaries = null) =>
        stored is null || stored.Length == 0 ? null : Encoding.UTF8.GetString(Decode(stored, dictionaries));

    private static byte[] DecodeZstd(byte[] stored, CodecDictionaries? dictionaries)
    {
        int offset = 1;
        ulong splitLength = 0;
        if (!TryReadVarint(stored, ref offset, out ulong id) || !TryReadVarint(stored, ref offset, out ulong length) || length > int.MaxValue
            || (stored[0] == ZstdJsonColumns && (!TryReadVarint(stored, ref offset, out splitLength) || splitLength > (ulong)JsonColumns.MaxSplitLength((int)length))))
        {
            throw new InvalidDataException("A stored body is corrupt: its zstd header is truncated.");
        }

        ContextPool pool = s_plain;
        if (id != 0)
        {
            pool = (dictionaries ?? throw new InvalidDataException($"A stored body needs compression dictionary {id}, and no dictionaries were given to read it."))
                .Get((long)id).Contexts;
        }

        var result = new byte[(int)length];
        if (stored[0] != ZstdJsonColumns)
        {
            Decompress(pool, stored, offset, result);
            return result;
        }

        byte[] split = ScratchArray<byte>.Rent((int)splitLength);
        try
        {
            Decompress(pool, stored, offset, split.AsSpan(0, (int)splitLength));
            JsonColumns.Join(split.AsSpan(0, (int)splitLength), result);
        }
        finally
        {
            ScratchArray<byte>.Return(split);
        }

        return result;
    }

    private static void Decompress(ContextPool pool, byte[] stored, int offset, Span<byte> destination)
    {
        bool magicless = stored[0] != Zstd;
        var decompressor = pool.RentDecompressor(magicless);
        try
        {
            if (!decompressor.TryUnwrap(stored.AsSpan(offset), destination, out int written) || written != destination.Length)
            {
                throw new InvalidDataException("A stored body is corrupt: its zstd frame does not decode to the recorded length.");
            }
        }
        catch (ZstdException e)
        {
            throw new InvalidDataException("A stored body is corrupt: " + e.Message, e);
        }
        finally
        {
            pool.Return(decompressor, magicless);
        }
    }

    /// <summary>Writes <paramref name="value"/> as an unsigned LEB128 varint; returns the bytes written.</summary>
    internal static int WriteVarint(Span<byte> destination, ulong value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    /// <summary>Reads an unsigned LEB128 varint at <paramref name="offset"/>; false when it is truncated or longer than 64 bits.</summary>
    internal static bool TryReadVarint(ReadOnlySpan<byte> source, ref int offset, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64 && offset < source.Length; shift += 7)
        {
            byte b = source[offset++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Reusable zstd contexts for one dictionary (or none): a context holds its window and the
    /// digested dictionary, so building one per value would cost more than compressing it. The
    /// pool holds at most what was in use at once (about one per core). Compression goes through
    /// libzstd where it loads (<see cref="ZstdCompressor"/>), decoding through the managed port.
    /// </summary>
    internal sealed class ContextPool(byte[]? dictionary) : IDisposable
    {
        private readonly ConcurrentBag<ZstdCompressor> _compressors = [];
        private readonly ConcurrentBag<Decompressor> _decompressors = [];
        private readonly ConcurrentBag<Decompressor> _magiclessDecompressors = [];

        public ZstdCompressor RentCompressor() =>
            _compressors.TryTake(out var compressor) ? compressor : ZstdCompressor.Create(Level, dictionary, NativeZstd.Default);

        public Decompressor RentDecompressor(bool magicless)
        {
            if ((magicless ? _magiclessDecompressors : _decompressors).TryTake(out var decompressor))
            {
                return decompressor;
            }

            decompressor = new Decompressor();
            if (magicless)
            {
                decompressor.SetParameter(DecompressFormatParameter, NativeZstd.MagiclessFormat);
            }

            if (dictionary is not null)
            {
                decompressor.LoadDictionary(dictionary);
            }

            return decompressor;
        }

        public void Return(ZstdCompressor compressor) => _compressors.Add(compressor);

        public void Return(Decompressor decompressor, bool magicless) => (magicless ? _magiclessDecompressors : _decompressors).Add(decompressor);

        public void Dispose()
        {
            while (_compressors.TryTake(out var c))
            {
                c.Dispose();
            }

            while (_decompressors.TryTake(out var d))
            {
                d.Dispose();
            }

            while (_magiclessDecompressors.TryTake(out var m))
            {
                m.Dispose();
            }
        }
    }
}
