using SpIstio.Core.Memory;

namespace SpIstio.Core.Capture;

/// <summary>
/// The one bound on the bytes an agent holds for captured exchanges that are not exported yet:
/// body buffers being filled while the traffic flows (<see cref="BodyCaptureBuffer"/>), then the
/// finished exchanges queued for export or being sent. Every holder reserves before it holds and
/// releases when it lets go; a reservation that would pass <see cref="Limit"/> is refused, and the
/// holder drops what did not fit (a body is cut short and marked truncated, a finished exchange is
/// not exported) and counts it. Nothing waits for room: traffic is never held, and memory stays
/// within the limit whatever the number of concurrent requests and the body limits.
/// Thread-safe (one interlocked add per reservation).
/// </summary>
public sealed class CaptureByteBudget
{
    private long _held;
    private long _peak;
    private IdleHeapCollection? _idleCollection;

    /// <summary>Creates a budget of <paramref name="limit"/> bytes.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is not positive.</exception>
    public CaptureByteBudget(long limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        Limit = limit;
        Arrays = new CaptureArrayPool(this);
    }

    /// <summary>Most bytes held at once (<c>export.max_inflight_bytes</c>).</summary>
    public long Limit { get; }

    /// <summary>Where the body buffers held under this budget are rented and returned (large ones kept for reuse while the budget has room).</summary>
    public CaptureArrayPool Arrays { get; }

    /// <summary>Bytes reserved now.</summary>
    public long Held => Interlocked.Read(ref _held);

    /// <summary>Most bytes held at once since the budget was created (for tests and benchmarks of the bound).</summary>
    public long PeakHeld => Interlocked.Read(ref _peak);

    /// <summary>
    /// Reserves <paramref name="bytes"/> when they fit within <see cref="Limit"/>; false (nothing
    /// reserved) when they do not. A true result must be matched by a <see cref="Release"/> of the same bytes.
    /// </summary>
    public bool TryReserve(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        var held = Interlocked.Add(ref _held, bytes);
        if (held > Limit)
        {
            Interlocked.Add(ref _held, -bytes);
            return false;
        }

        // The peak is a statistic: a racing update may keep the smaller of two close values.
        if (held > Interlocked.Read(ref _peak))
        {
            Interlocked.Exchange(ref _peak, held);
        }

        return true;
    }

    /// <summary>Gives back <paramref name="bytes"/> reserved earlier.</summary>
    public void Release(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        var held = Interlocked.Add(ref _held, -bytes);
        _idleCollection?.Released(bytes, idleNow: held == 0);
    }

    /// <summary>
    /// Hands what a burst of captures grew back to the OS once the budget has gone idle: every
    /// release counts towards <paramref name="collection"/>, which runs when nothing is held
    /// (<see cref="IdleHeapCollection"/>). Set once, by the budget's owner.
    /// </summary>
    public void CollectWhenIdle(IdleHeapCollection collection)
    {
        ArgumentNullException.ThrowIfNull(collection);
        _idleCollection = collection;
    }
}
