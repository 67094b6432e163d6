using System.Runtime.InteropServices;

namespace SpIstio.Backend.Storage;

/// <summary>
/// The system's zstd library (libzstd.so.1), when the machine has one: the same format as the
/// managed port (ZstdSharp) and several times faster per byte, which matters because every span's
/// bodies and headers are compressed on the ingest path (bench/README.md, "Backend"). Where the
/// library is missing or too old (the chiseled container image has none), <see cref="Available"/>
/// is false and <see cref="BodyCodec"/> uses the managed port; either reads what the other wrote.
/// </summary>
internal static partial class NativeZstd
{
    private const string Library = "libzstd.so.1";

    // ZSTD_cParameter and ZSTD_dParameter values from zstd.h (stable API since 1.4.0).
    private const int CompressionLevel = 100;
    private const int ContentSizeFlag = 200;
    private const int ChecksumFlag = 201;
    private const int DictIdFlag = 202;

    // ZSTD_CCtx_refCDict and ZSTD_compress2 became stable in 1.4.0.
    private const uint MinVersion = 1_04_00;

    /// <summary>True when libzstd.so.1 (1.4.0 or newer) could be loaded.</summary>
    public static bool Available { get; } = Probe();

    /// <summary>Set to false (SP_NATIVE_ZSTD=0) to use the managed port, e.g. to compare the two.</summary>
    private static bool Probe()
    {
        if (Environment.GetEnvironmentVariable("SP_NATIVE_ZSTD") == "0")
        {
            return false;
        }

        try
        {
            return ZSTD_versionNumber() >= MinVersion;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return false;
        }
    }

    /// <summary>A compression context at <paramref name="level"/> writing frames without content size, checksum or dictionary id.</summary>
    public static nint CreateCompressor(int level, nint dictionary)
    {
        nint context = ZSTD_createCCtx();
        if (context == 0)
        {
            throw new OutOfMemoryException("zstd could not allocate a compression context.");
        }

        Check(ZSTD_CCtx_setParameter(context, CompressionLevel, level));
        Check(ZSTD_CCtx_setParameter(context, ContentSizeFlag, 0));
        Check(ZSTD_CCtx_setParameter(context, ChecksumFlag, 0));
        Check(ZSTD_CCtx_setParameter(context, DictIdFlag, 0));
        if (dictionary != 0)
        {
            Check(ZSTD_CCtx_refCDict(context, dictionary));
        }

        return context;
    }

    public static nint CreateDecompressor(nint dictionary)
    {
        nint context = ZSTD_createDCtx();
        if (context == 0)
        {
            throw new OutOfMemoryException("zstd could not allocate a decompression context.");
        }

        if (dictionary != 0)
        {
            Check(ZSTD_DCtx_refDDict(context, dictionary));
        }

        return context;
    }

    /// <summary>A dictionary digested once for compression at <paramref name="level"/>, shared by every context of one pool.</summary>
    public static nint CreateCompressionDictionary(byte[] dictionary, int level)
    {
        nint digested = ZSTD_createCDict(ref MemoryMarshal.GetArrayDataReference(dictionary), (nuint)dictionary.Length, level);
        return digested != 0 ? digested : throw new InvalidDataException("zstd could not load a compression dictionary.");
    }

    public static nint CreateDecompressionDictionary(byte[] dictionary)
    {
        nint digested = ZSTD_createDDict(ref MemoryMarshal.GetArrayDataReference(dictionary), (nuint)dictionary.Length);
        return digested != 0 ? digested : throw new InvalidDataException("zstd could not load a decompression dictionary.");
    }

    /// <summary>Compresses <paramref name="source"/> into one frame; the destination must hold the compress bound.</summary>
    public static int Compress(nint context, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        nuint written = ZSTD_compress2(context, ref MemoryMarshal.GetReference(destination), (nuint)destination.Length, in MemoryMarshal.GetReference(source), (nuint)source.Length);
        Check(written);
        return (int)written;
    }

    /// <summary>Decompresses one frame; false when it is corrupt or does not fit <paramref name="destination"/>.</summary>
    public static bool TryDecompress(nint context, ReadOnlySpan<byte> source, Span<byte> destination, out int written)
    {
        nuint result = ZSTD_decompressDCtx(context, ref MemoryMarshal.GetReference(destination), (nuint)destination.Length, in MemoryMarshal.GetReference(source), (nuint)source.Length);
        if (ZSTD_isError(result) != 0)
        {
            written = 0;
            return false;
        }

        written = (int)result;
        return true;
    }

    public static void FreeCompressor(nint context) => ZSTD_freeCCtx(context);

    public static void FreeDecompressor(nint context) => ZSTD_freeDCtx(context);

    public static void FreeCompressionDictionary(nint dictionary) => ZSTD_freeCDict(dictionary);

    public static void FreeDecompressionDictionary(nint dictionary) => ZSTD_freeDDict(dictionary);

    private static void Check(nuint result)
    {
        if (ZSTD_isError(result) != 0)
        {
            throw new InvalidOperationException("zstd failed: " + Marshal.PtrToStringUTF8(ZSTD_getErrorName(result)));
        }
    }

    [LibraryImport(Library)]
    private static partial uint ZSTD_versionNumber();

    [LibraryImport(Library)]
    private static partial uint ZSTD_isError(nuint code);

    [LibraryImport(Library)]
    private static partial nint ZSTD_getErrorName(nuint code);

    [LibraryImport(Library)]
    private static partial nint ZSTD_createCCtx();

    [LibraryImport(Library)]
    private static partial nuint ZSTD_freeCCtx(nint context);

    [LibraryImport(Library)]
    private static partial nuint ZSTD_CCtx_setParameter(nint context, int parameter, int value);

    [LibraryImport(Library)]
    private static partial nint ZSTD_createCDict(ref byte dictionary, nuint size, int level);

    [LibraryImport(Library)]
    private static partial nuint ZSTD_freeCDict(nint dictionary);

    [LibraryImport(Library)]
    private static partial nuint ZSTD_CCtx_refCDict(nint context, nint dictionary);

    [LibraryImport(Library)]
    private static partial nuint ZSTD_compress2(nint context, ref byte destination, nuint capacity, in byte source, nuint size);

    [LibraryImport(Library)]
    private static partial nint ZSTD_createDCtx();

    [LibraryImport(Library)]
    private static partial nuint ZSTD_freeDCtx(nint context);

    [LibraryImport(Library)]
    private static partial nint ZSTD_createDDict(ref byte dictionary, nuint size);

    [LibraryImport(Library)]
    private static partial nuint ZSTD_freeDDict(nint dictionary);

    [LibraryImport(Library)]
    private static partial nuint ZSTD_DCtx_refDDict(nint context, nint dictionary);

    [LibraryImport(Library)]
    private static partial nuint ZSTD_decompressDCtx(nint context, ref byte destination, nuint capacity, in byte source, nuint size);
}
