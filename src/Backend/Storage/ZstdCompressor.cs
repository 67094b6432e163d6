using System.Runtime.InteropServices;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace SpIstio.Backend.Storage;

/// <summary>
/// One zstd compression context of the body codec: the format settings of every stored value
/// (level, magicless frames, no content size, dictionary id or checksum in the frame; set once, in
/// <see cref="Configure"/>) over either zstd's C library or ZstdSharp's managed port.
/// Ingest compresses four to six values a span (two bodies, two header lists, the attributes, the
/// model), and the managed port was a fifth of the store's CPU; libzstd compresses the same frames
/// in ~0.7× the time for a 2 KiB body and ~0.3× for a 120-byte value (bench/README.md, "libzstd"). So
/// the codec uses libzstd where it loads (<see cref="NativeZstd"/>; the image ships it) and the
/// managed port where it does not. The frames are one format either way, and decoding stays with
/// the managed port: a read decodes one span, ingest encodes every span.
/// </summary>
internal abstract class ZstdCompressor : IDisposable
{
    /// <summary>A context at <paramref name="level"/> with <paramref name="dictionary"/> loaded (none when null), native when <paramref name="native"/> is given.</summary>
    public static ZstdCompressor Create(int level, byte[]? dictionary, NativeZstd? native) =>
        native is null ? new Managed(level, dictionary) : new Native(native, level, dictionary);

    /// <summary>The most bytes a frame of <paramref name="length"/> input bytes can take.</summary>
    public static int CompressBound(int length) => Compressor.GetCompressBound(length);

    /// <summary>Compresses <paramref name="source"/> into <paramref name="destination"/> as one frame; the frame's length.</summary>
    public abstract int Wrap(ReadOnlySpan<byte> source, Span<byte> destination);

    public abstract void Dispose();

    /// <summary>Sets a frame parameter.</summary>
    protected abstract void SetParameter(ZSTD_cParameter parameter, int value);

    /// <summary>Loads the dictionary every frame of this context is compressed with.</summary>
    protected abstract void LoadDictionary(byte[] dictionary);

    /// <summary>
    /// The settings of every frame the codec writes, whichever library writes it: the codec's own
    /// header records size and dictionary, and a checksum would only repeat what the store guarantees.
    /// </summary>
    protected void Configure(int level, byte[]? dictionary)
    {
        SetParameter(ZSTD_cParameter.ZSTD_c_compressionLevel, level);
        SetParameter(ZSTD_cParameter.ZSTD_c_contentSizeFlag, 0);
        SetParameter(ZSTD_cParameter.ZSTD_c_dictIDFlag, 0);
        SetParameter(ZSTD_cParameter.ZSTD_c_checksumFlag, 0);
        SetParameter(NativeZstd.FormatParameter, NativeZstd.MagiclessFormat);
        if (dictionary is not null)
        {
            LoadDictionary(dictionary);
        }
    }

    private sealed class Managed : ZstdCompressor
    {
        private readonly Compressor _compressor;

        public Managed(int level, byte[]? dictionary)
        {
            _compressor = new Compressor(level);
            Configure(level, dictionary);
        }

        public override int Wrap(ReadOnlySpan<byte> source, Span<byte> destination) => _compressor.Wrap(source, destination);

        public override void Dispose() => _compressor.Dispose();

        protected override void SetParameter(ZSTD_cParameter parameter, int value) => _compressor.SetParameter(parameter, value);

        protected override void LoadDictionary(byte[] dictionary) => _compressor.LoadDictionary(dictionary);
    }

    private sealed class Native : ZstdCompressor
    {
        private readonly NativeZstd _library;
        private readonly NativeZstd.Context _context;

        public Native(NativeZstd library, int level, byte[]? dictionary)
        {
            _library = library;
            _context = library.CreateContext();
            Configure(level, dictionary);
        }

        public override int Wrap(ReadOnlySpan<byte> source, Span<byte> destination) => _library.Compress(_context, source, destination);

        public override void Dispose() => _context.Dispose();

        protected override void SetParameter(ZSTD_cParameter parameter, int value) => _library.SetParameter(_context, parameter, value);

        protected override void LoadDictionary(byte[] dictionary) => _library.LoadDictionary(_context, dictionary);
    }
}

/// <summary>
/// zstd's C library (libzstd, 1.4.0 or later: <c>ZSTD_compress2</c> and the parameter API),
/// bound by hand to the few compression calls the codec makes. <see cref="Default"/> is the copy
/// beside the application (the image's <c>/app/libzstd.so.1</c>), else the system's
/// (<c>libzstd1</c> on Debian and Ubuntu), else null: the codec then compresses with the managed port.
/// </summary>
internal sealed class NativeZstd
{
    /// <summary>zstd's frame format switch (<c>ZSTD_c_format</c>, "experimental" in zstd.h but part of the frame format since v1.3.6).</summary>
    public const ZSTD_cParameter FormatParameter = ZSTD_cParameter.ZSTD_c_experimentalParam2;

    /// <summary><c>ZSTD_f_zstd1_magicless</c>.</summary>
    public const int MagiclessFormat = 1;

    private const string FileName = "libzstd.so.1";

    // ZSTD_compress2 and ZSTD_CCtx_setParameter/loadDictionary became stable API in 1.4.0.
    private const uint MinimumVersion = 10400;

    private readonly CreateCCtx _create;
    private readonly FreeCCtx _free;
    private readonly SetParameterFn _setParameter;
    private readonly LoadDictionaryFn _loadDictionary;
    private readonly Compress2 _compress;
    private readonly IsError _isError;
    private readonly GetErrorName _errorName;

    private NativeZstd(nint library, string path)
    {
        _create = Export<CreateCCtx>(library, "ZSTD_createCCtx");
        _free = Export<FreeCCtx>(library, "ZSTD_freeCCtx");
        _setParameter = Export<SetParameterFn>(library, "ZSTD_CCtx_setParameter");
        _loadDictionary = Export<LoadDictionaryFn>(library, "ZSTD_CCtx_loadDictionary");
        _compress = Export<Compress2>(library, "ZSTD_compress2");
        _isError = Export<IsError>(library, "ZSTD_isError");
        _errorName = Export<GetErrorName>(library, "ZSTD_getErrorName");
        var version = Export<VersionNumber>(library, "ZSTD_versionNumber")();
        Version = version;
        Path = path;
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nint CreateCCtx();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nuint FreeCCtx(nint context);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nuint SetParameterFn(nint context, int parameter, int value);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nuint LoadDictionaryFn(nint context, ref byte dictionary, nuint size);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nuint Compress2(nint context, ref byte destination, nuint capacity, ref byte source, nuint size);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate uint IsError(nuint code);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nint GetErrorName(nuint code);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate uint VersionNumber();

    /// <summary>The library the codec uses, or null when none loads (the managed port is used).</summary>
    public static NativeZstd? Default { get; } = Load([System.IO.Path.Combine(AppContext.BaseDirectory, FileName), FileName]);

    /// <summary>The library's version number (major × 10000 + minor × 100 + patch).</summary>
    public uint Version { get; }

    /// <summary>What was loaded: a path, or the name the system's loader resolved.</summary>
    public string Path { get; }

    /// <summary>What the codec compresses with, for the store's start-up log.</summary>
    public static string Describe(NativeZstd? library) =>
        library is null
            ? "zstd's managed port (ZstdSharp; no libzstd " + FileName + " found)"
            : $"libzstd {library.Version / 10000}.{library.Version / 100 % 100}.{library.Version % 100} ({library.Path})";

    /// <summary>The first of <paramref name="candidates"/> (paths or library names) that loads and is libzstd 1.4.0 or later; null when none is.</summary>
    public static NativeZstd? Load(IEnumerable<string> candidates)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        foreach (var candidate in candidates)
        {
            if (!NativeLibrary.TryLoad(candidate, out var handle))
            {
                continue;
            }

            try
            {
                var library = new NativeZstd(handle, candidate);
                if (library.Version >= MinimumVersion)
                {
                    // Kept loaded for the life of the process: contexts may live as long.
                    return library;
                }
            }
            catch (EntryPointNotFoundException)
            {
                // Not zstd, or too old to export the calls.
            }

            NativeLibrary.Free(handle);
        }

        return null;
    }

    public Context CreateContext()
    {
        var context = new Context(this);
        context.Own(_create());
        return context.IsInvalid ? throw new OutOfMemoryException("ZSTD_createCCtx returned null") : context;
    }

    public void SetParameter(Context context, ZSTD_cParameter parameter, int value) =>
        Check(_setParameter(context.Handle, (int)parameter, value), "ZSTD_CCtx_setParameter(" + parameter + ")");

    public void LoadDictionary(Context context, byte[] dictionary) =>
        Check(_loadDictionary(context.Handle, ref MemoryMarshal.GetArrayDataReference(dictionary), (nuint)dictionary.Length), "ZSTD_CCtx_loadDictionary");

    public int Compress(Context context, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (destination.Length < ZstdCompressor.CompressBound(source.Length))
        {
            // The codec always passes the bound; a shorter buffer is a bug, not a case to handle.
            throw new ArgumentException("destination is shorter than the compress bound", nameof(destination));
        }

        // An empty span's reference may be null: zstd accepts a null source of size 0.
        var written = _compress(
            context.Handle,
            ref MemoryMarshal.GetReference(destination),
            (nuint)destination.Length,
            ref MemoryMarshal.GetReference(source),
            (nuint)source.Length);
        GC.KeepAlive(context);
        return (int)Check(written, "ZSTD_compress2");
    }

    private nuint Check(nuint code, string call) =>
        _isError(code) != 0 ? throw new InvalidOperationException(call + " failed: " + Marshal.PtrToStringAnsi(_errorName(code))) : code;

    private static T Export<T>(nint library, string name)
        where T : Delegate =>
        Marshal.GetDelegateForFunctionPointer<T>(NativeLibrary.GetExport(library, name));

    /// <summary>A <c>ZSTD_CCtx*</c>, freed once.</summary>
    internal sealed class Context(NativeZstd library) : SafeHandle(0, ownsHandle: true)
    {
        public override bool IsInvalid => handle == 0;

        public nint Handle => handle;

        public void Own(nint context) => SetHandle(context);

        protected override bool ReleaseHandle()
        {
            library._free(handle);
            return true;
        }
    }
}
