using System.Globalization;
using System.Text;
using SpIstio.Backend.Storage;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>
/// The codec's zstd compression over libzstd and over the managed port writes frames of one
/// format: what either writes, with or without a tenant dictionary, the managed decoder the store
/// reads with gives back byte for byte; and without libzstd the codec still works.
/// </summary>
public sealed class ZstdCompressorTests
{
    [Fact]
    public void The_codec_compresses_with_the_systems_libzstd_on_Debian()
    {
        // CI's machine and the image both have it (.ci/run installs libzstd1; the Dockerfile copies it to /app).
        var library = NativeZstd.Default;

        Assert.NotNull(library);
        Assert.InRange(library.Version, 10400u, 99999u);
        Assert.StartsWith("libzstd 1.", NativeZstd.Describe(library), StringComparison.Ordinal);
    }

    [Fact]
    public void Frames_from_libzstd_and_from_the_managed_port_decode_to_the_input_with_and_without_a_dictionary()
    {
        var random = new Random(11);
        var samples = Enumerable.Range(0, 300).Select(_ => Encoding.UTF8.GetBytes(Json(random, 20))).ToArray();
        byte[] dictionary = DictBuilder.TrainFromBuffer(samples, 8192).ToArray();
        byte[][] values =
        [
            Encoding.UTF8.GetBytes("[[\"content-type\",\"application/json\"],[\"x-request-id\",\"4bf92f35\"]]"),
            Encoding.UTF8.GetBytes(Json(random, 25)),
            Encoding.UTF8.GetBytes(Json(random, 20_000)),
            RandomBytes(random, 70_000),
            [42],
        ];

        foreach (var dict in new[] { null, dictionary })
        {
            using var native = ZstdCompressor.Create(1, dict, NativeZstd.Default ?? throw new InvalidOperationException("libzstd did not load"));
            using var managed = ZstdCompressor.Create(1, dict, native: null);
            foreach (var value in values)
            {
                foreach (var compressor in new[] { native, managed })
                {
                    var frame = new byte[ZstdCompressor.CompressBound(value.Length)];
                    int length = compressor.Wrap(value, frame);

                    Assert.Equal(value, Decode(frame.AsSpan(0, length), value.Length, dict));
                }
            }
        }
    }

    [Fact]
    public void Without_libzstd_the_codec_falls_back_to_the_managed_port()
    {
        // A path that does not exist, then a library that loads but is not zstd (libc has no ZSTD_ calls).
        var library = NativeZstd.Load(["/nonexistent/libzstd.so.1", "libc.so.6"]);

        Assert.Null(library);
        Assert.StartsWith("zstd's managed port", NativeZstd.Describe(library), StringComparison.Ordinal);
        byte[] value = Encoding.UTF8.GetBytes(Json(new Random(5), 30));
        using var compressor = ZstdCompressor.Create(1, null, library);
        var frame = new byte[ZstdCompressor.CompressBound(value.Length)];
        int length = compressor.Wrap(value, frame);
        Assert.Equal(value, Decode(frame.AsSpan(0, length), value.Length, null));
    }

    [Fact]
    public void A_call_libzstd_refuses_is_an_error_naming_the_call_and_zstds_reason()
    {
        var library = NativeZstd.Default ?? throw new InvalidOperationException("libzstd did not load");
        using var context = library.CreateContext();

        // zstd's smallest window is 2^10.
        var error = Assert.Throws<InvalidOperationException>(() => library.SetParameter(context, ZSTD_cParameter.ZSTD_c_windowLog, 5));
        Assert.Contains("ZSTD_CCtx_setParameter(ZSTD_c_windowLog)", error.Message, StringComparison.Ordinal);
        Assert.Contains("out of bound", error.Message, StringComparison.Ordinal);

        // The codec always passes the compress bound: a shorter buffer is refused before zstd writes.
        Assert.Throws<ArgumentException>(() => library.Compress(context, new byte[1000], new byte[10]));
    }

    /// <summary>The store's own decoding: the managed port, magicless frames, the dictionary loaded.</summary>
    private static byte[] Decode(ReadOnlySpan<byte> frame, int length, byte[]? dictionary)
    {
        using var decompressor = new Decompressor();
        decompressor.SetParameter(ZSTD_dParameter.ZSTD_d_experimentalParam1, NativeZstd.MagiclessFormat);
        if (dictionary is not null)
        {
            decompressor.LoadDictionary(dictionary);
        }

        var output = new byte[length];
        Assert.Equal(length, decompressor.Unwrap(frame, output));
        return output;
    }

    private static string Json(Random random, int records) =>
        "[" + string.Join(',', Enumerable.Range(0, records).Select(_ => string.Create(CultureInfo.InvariantCulture,
            $$"""{"id":{{random.Next(1_000_000)}},"city":"{{(random.Next(3) switch { 0 => "lisbon", 1 => "paris", _ => "oslo" })}}","price":{{random.Next(20, 900)}}.{{random.Next(100):D2}}}"""))) + "]";

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}
