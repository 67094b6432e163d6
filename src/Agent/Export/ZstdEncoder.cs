using System.Collections.Concurrent;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace SpIstio.Agent.Export;

/// <summary>
/// <c>export.compression: zstd</c>: streams <see cref="OtlpSpanWriter"/>'s bytes through Zstandard
/// level 1 (ZstdSharp, the managed port the backend's store also uses). A compression context
/// holds its tables (about 1 MiB at level 1), so contexts are pooled rather than made per batch:
/// at most one per batch being encoded at once (<c>max_concurrent_requests</c> plus the spooler).
/// </summary>
internal static class ZstdEncoder
{
    // Level 1: the fastest positive level; measured in bench/Micro.Benchmarks (AgentPath.Zstd*)
    // against gzip Fastest and none.
    internal const int Level = 1;

    // The window the backend's decoder accepts is 8 MiB (windowLog 23); level 1 uses at most
    // 512 KiB, stated here so a later level change cannot produce frames the backend refuses.
    private const int WindowLog = 19;

    private static readonly ConcurrentBag<Compressor> _pool = [];

    /// <summary>Writes the OTLP request for <paramref name="batch"/> to <paramref name="destination"/> as one zstd frame.</summary>
    public static void Write(IReadOnlyList<Exchange> batch, string? publicKey, string version, Stream destination) =>
        Compress(destination, zstd => OtlpSpanWriter.Write(batch, publicKey, version, zstd));

    /// <summary>Writes an encoded OTLP request (<paramref name="request"/>) to <paramref name="destination"/> as one zstd frame.</summary>
    public static void Write(ReadOnlyMemory<byte> request, Stream destination) =>
        Compress(destination, zstd => zstd.Write(request.Span));

    private static Compressor Take()
    {
        if (!_pool.TryTake(out var compressor))
        {
            compressor = new Compressor(Level);
            compressor.SetParameter(ZSTD_cParameter.ZSTD_c_windowLog, WindowLog);
        }

        return compressor;
    }

    private static void Compress(Stream destination, Action<Stream> write)
    {
        var compressor = Take();
        try
        {
            compressor.ResetStream();
            using (var zstd = new CompressionStream(destination, compressor, preserveCompressor: true, leaveOpen: true))
            {
                write(zstd);
            }

            _pool.Add(compressor);
        }
        catch
        {
            // A context in an unknown state is not reused.
            compressor.Dispose();
            throw;
        }
    }
}
