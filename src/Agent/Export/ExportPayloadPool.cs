namespace SpIstio.Agent.Export;

/// <summary>
/// Keeps encoded-batch arrays for reuse. An uncompressed export batch is up to
/// <c>export.max_batch_bytes</c> (1 MiB by default, plus the span that crossed it), above the 85,000
/// bytes from which .NET puts an array on the large object heap; allocating one per batch made every
/// few batches a gen-2 collection (LOH allocations count toward gen 2, and the image's
/// GCConserveMemory then compacts), which cost the capture proxy more CPU per 64 KiB request than
/// the capture itself. ArrayPool.Shared is no place for them: it keeps what it is given per core and
/// per size for the life of the process. This pool keeps arrays while those rented out and those
/// kept together stay within <see cref="MaxRetainedBytes"/> (<c>export.max_inflight_bytes</c>: a
/// batch's array mirrors exchanges the budget holds, so every batch the budget lets be in flight
/// finds one), and rounds sizes up so batches of slightly different lengths share arrays. A bound of
/// two batches' bytes kept only one in practice (a batch passes max_batch_bytes by its last span,
/// then rounds up), so with two batches in flight every other one allocated anew (issue 13).
/// Thread-safe.
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
    private long _rented;

    /// <summary>Creates a pool whose arrays rented out and kept together stay within <paramref name="maxRetainedBytes"/> when returned.</summary>
    public ExportPayloadPool(long maxRetainedBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxRetainedBytes);
        MaxRetainedBytes = maxRetainedBytes;
    }

    /// <summary>Most bytes of arrays rented out and kept together once one comes back (what is rented is never refused).</summary>
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
                _rented += array.Length;
                return array;
            }
        }

        var rounded = (long)length + Granularity - 1;
        rounded -= rounded % Granularity;
        var created = new byte[(int)Math.Min(rounded, Array.MaxLength)];
        lock (_lock)
        {
            _rented += created.Length;
        }

        return created;
    }

    /// <summary>
    /// Gives back an array from <see cref="Rent"/> once nothing reads it any more. Kept when it, the
    /// arrays kept and those still rented out fit within <see cref="MaxRetainedBytes"/> (a larger one
    /// replaces smaller ones it can stand for); else left to the GC.
    /// </summary>
    public void Return(byte[] array)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (array.Length < MinPooledBytes)
        {
            return;
        }

        lock (_lock)
        {
            // Not below zero: an array this pool did not rent must not make room for more than the bound.
            _rented = Math.Max(0, _rented - array.Length);
            if (array.Length > MaxRetainedBytes)
            {
                return;
            }

            // Make room by letting smaller arrays go: the larger one serves every batch they did.
            while (_retained + _rented + array.Length > MaxRetainedBytes && _free.Count > 0)
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

            if (_retained + _rented + array.Length > MaxRetainedBytes)
            {
                // The other batches in flight hold the rest of the bound.
                return;
            }

            _free.Add(array);
            _retained += array.Length;
        }
    }

    /// <summary>Lets every kept array go to the GC; returns their bytes.</summary>
    public long Trim()
    {
        lock (_lock)
        {
            var trimmed = _retained;
            _free.Clear();
            _retained = 0;
            return trimmed;
        }
    }
}
