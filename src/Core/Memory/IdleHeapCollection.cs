namespace SpIstio.Core.Memory;

/// <summary>
/// Hands the memory of large work back to the OS once the budget that bounds the work has gone
/// idle. After a burst (the backend's large reads or export requests, the agent's captured
/// bodies) the GC keeps the heap it grew (large objects are collected only with gen 2, and freed
/// memory stays committed until a collection decommits it), and an idle process runs no
/// collection: it would stay at its peak for good. One aggressive, compacting collection a moment
/// after the last large piece of work ended returns it, and a trim of the native heap returns what
/// native code (SQLite) freed.
/// </summary>
public sealed class IdleHeapCollection
{
    /// <summary>How long a budget must stay idle before the collection runs.</summary>
    public static readonly TimeSpan Delay = TimeSpan.FromSeconds(2);

    private readonly ITimer? _timer;
    private readonly Func<bool> _isIdle;
    private readonly Action _collect;
    private readonly long _minReleasedBytes;
    private long _releasedBytes;

    /// <summary>Creates the collection of one budget.</summary>
    /// <param name="timeProvider">The clock of the delay; null: never collect.</param>
    /// <param name="isIdle">Whether the budget has nothing in flight or waiting now (asked again when the delay is over).</param>
    /// <param name="minReleasedBytes">
    /// What the budget must have released since the last collection before one is worth running:
    /// a trickle of small pieces of work leaves nothing the GC would not reclaim on its own.
    /// </param>
    /// <param name="collect">The collection; null: the aggressive one described above (tests count calls instead).</param>
    public IdleHeapCollection(TimeProvider? timeProvider, Func<bool> isIdle, long minReleasedBytes, Action? collect = null)
    {
        _isIdle = isIdle;
        _collect = collect ?? CollectAggressively;
        _minReleasedBytes = minReleasedBytes;
        _timer = timeProvider?.CreateTimer(static state => ((IdleHeapCollection)state!).Collect(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// Counts <paramref name="bytes"/> released by work that ended; when the budget is idle now, the
    /// collection follows <see cref="Delay"/> later (re-armed by every release, so it follows the last one).
    /// </summary>
    public void Released(long bytes, bool idleNow)
    {
        var released = Interlocked.Add(ref _releasedBytes, bytes);
        if (idleNow && released >= _minReleasedBytes)
        {
            _timer?.Change(Delay, Timeout.InfiniteTimeSpan);
        }
    }

    private void Collect()
    {
        if (!_isIdle())
        {
            // Work came back: the next release at an idle moment re-arms the timer.
            return;
        }

        Interlocked.Exchange(ref _releasedBytes, 0);
        _collect();
    }

    /// <summary>The collection run by default: aggressive and compacting (large objects too), then <see cref="NativeHeap.Trim"/>.</summary>
    public static void CollectAggressively()
    {
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        NativeHeap.Trim();
    }
}
