using System.Buffers;

namespace SpIstio.Core.Capture;

/// <summary>
/// A rented array a captured body refers to: <see cref="BodyCaptureBuffer"/> hands its array over
/// to the exchange instead of copying the completed body into a new one (a 64 KiB body's copy, and
/// the gen-0/gen-1 collections the copies caused while they waited in the export queue, were a
/// seventh of the capture proxy's CPU). Whoever ends the exchange's life (the exporter once its
/// batch is encoded and done with, the pipeline when the exchange is not exported, the capture
/// when it is abandoned) calls <see cref="Model.Exchange.ReturnBodyArrays"/>; the array goes back to
/// the pool it came from at the first <see cref="Return"/> and never again.
/// </summary>
public sealed class BodyLease
{
    private readonly ArrayPool<byte> _pool;
    private byte[]? _array;

    /// <summary>A lease of <paramref name="array"/>, rented from <see cref="ArrayPool{T}.Shared"/> (ext_proc's body arrays, too).</summary>
    public BodyLease(byte[] array)
        : this(array, counted: 0)
    {
    }

    /// <summary>A lease of <paramref name="array"/>, rented from <paramref name="pool"/> (a capture budget's <see cref="CaptureByteBudget.Arrays"/>).</summary>
    public BodyLease(byte[] array, ArrayPool<byte> pool)
        : this(array, counted: 0, pool)
    {
    }

    /// <summary>
    /// A lease of <paramref name="array"/> of which the exchange's export estimate already counts
    /// <paramref name="counted"/> bytes elsewhere (a gRPC message's payload, counted with its list).
    /// </summary>
    public BodyLease(byte[] array, int counted)
        : this(array, counted, ArrayPool<byte>.Shared)
    {
    }

    /// <summary>
    /// A lease of <paramref name="array"/>, rented from <paramref name="pool"/>, of which the
    /// exchange's export estimate already counts <paramref name="counted"/> bytes elsewhere.
    /// </summary>
    public BodyLease(byte[] array, int counted, ArrayPool<byte> pool)
    {
        ArgumentNullException.ThrowIfNull(array);
        ArgumentNullException.ThrowIfNull(pool);
        _pool = pool;
        _array = array;
        Length = array.Length;
        Counted = counted;
    }

    /// <summary>The array's length (what the exchange holds while the lease lasts).</summary>
    public int Length { get; }

    /// <summary>Bytes of the array the exchange's estimate counts elsewhere; a body's array counts with its body.</summary>
    public int Counted { get; }

    /// <summary>The next lease of the same exchange (its other body).</summary>
    internal BodyLease? Next { get; set; }

    /// <summary>True once the array went back to the pool.</summary>
    public bool Returned => Volatile.Read(ref _array) is null;

    /// <summary>Returns the array to the pool; later calls do nothing.</summary>
    public void Return()
    {
        if (Interlocked.Exchange(ref _array, null) is { } array)
        {
            _pool.Return(array);
        }
    }
}
