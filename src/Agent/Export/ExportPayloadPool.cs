namespace SpIstio.Agent.Export;

/// <summary>
/// Keeps a few encoded-batch arrays for reuse. An uncompressed export batch is up to
/// <c>export.max_batch_bytes</c> (4 MiB by default), far above the 85,000 bytes from which .NET
/// puts an array on the large object heap; allocating one per batch made every few batches a
/// gen-2 collection (LOH allocations count toward gen 2, and the image's GCConserveMemory then
/// compacts), which cost the capture proxy more CPU per 64 KiB request than the capture itself.
/// ArrayPool.Shared is no place for them: it keeps what it is given per core and per size for the
/// life of the process. This pool keeps at most <see cref="MaxRetainedBytes"/> (two batches), and
/// rounds sizes up so batches of slightly different lengths share arrays. Thread-safe.
/// </summary>
internal sealed class ExportPayloadPool
{
    /// <summary>Arrays below this are allocated and left to the GC: gen 0 handles them cheaply.</summary>
    internal const int MinPooledBytes = 85_000;

    // Sizes are rounded up to a multiple of this, so a batch a little longer than the last reuses its array.
    private const int Granularity = 256 * 1024;

    private readonly Lock _lock = new();
    private readonly List<byte[]> _free = [];
    private long _retained;

    /// <summary>Creates a pool that keeps at most <paramref name="maxRetainedBytes"/> bytes of free arrays.</summary>
    public ExportPayloadPool(long maxRetainedBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxRetainedBytes);
        MaxRetainedBytes = maxRetainedBytes;
    }

    /// <summary>Most bytes of free arrays kept between batches.</summary>
    public long MaxRetainedBytes { get; }

    /// <summary>Bytes of free arrays kept now.</summary>
    public long RetainedBytes
    {
        get
        {
            lock (_lock)
            {
                return _retained;
            }
        }
    }

    /// <summary>An array of at least <paramref name="length"/> bytes: a kept one when one fits, else a new one.</summary>
    public byte[] Rent(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length < MinPooledBytes)
        {
            return new byte[length];
        }

        lock (_lock)
        {
            // The smallest kept array that fits, so a small batch does not take the big one.
            var best = -1;
            for (var i = 0; i < _free.Count; i++)
            {
                if (_free[i].Length >= length && (best < 0 || _free[i].Length < _free[best].Length))
                {
                    best = i;
                }
            }

            if (best >= 0)
            {
                var array = _free[best];
                _free.RemoveAt(best);
                _retained -= array.Length;
                return array;
            }
        }

        var rounded = (long)length + Granularity - 1;
        rounded -= rounded % Granularity;
        return new byte[(int)Math.Min(rounded, Array.MaxLength)];
    }

    /// <summary>
    /// Gives back an array from <see cref="Rent"/> once nothing reads it any more. Kept when it fits
    /// within <see cref="MaxRetainedBytes"/> (a larger one replaces smaller ones it can stand for); else left to the GC.
    /// </summary>
    public void Return(byte[] array)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (array.Length < MinPooledBytes || array.Length > MaxRetainedBytes)
        {
            return;
        }

        lock (_lock)
        {
            // Make room by letting smaller arrays go: the larger one serves every batch they did.
            while (_retained + array.Length > MaxRetainedBytes && _free.Count > 0)
            {
                var smallest = 0;
                for (var i = 1; i < _free.Count; i++)
                {
                    if (_free[i].Length < _free[smallest].Length)
                    {
                        smallest = i;
                    }
                }

                if (_free[smallest].Length >= array.Length)
                {
                    return;
                }

                _retained -= _free[smallest].Length;
                _free.RemoveAt(smallest);
            }

            _free.Add(array);
            _retained += array.Length;
        }
    }
}
