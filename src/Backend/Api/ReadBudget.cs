using System.Globalization;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Telemetry;
using SpIstio.Core.Memory;

namespace SpIstio.Backend.Api;

/// <summary>
/// The byte budget every large span read shares (API span detail, HAR exports, the exchange page).
/// A read reserves what its span decodes to, times <see cref="Amplification"/> (the text, the
/// encoded answer), before it decodes anything; reads that do not fit wait in arrival order, and
/// when <see cref="MaxWaiting"/> already wait the read is refused (503 + Retry-After). So however
/// many readers ask for however large spans at once, what they make the process hold together is
/// bounded by <see cref="TotalBytes"/>. Spans under <see cref="SmallReadBytes"/> pass without a
/// reservation: ordinary views never queue behind a large one.
/// </summary>
public sealed class ReadBudget
{
    /// <summary>The default budget: 64 MiB shared by every large read in flight.</summary>
    public const long DefaultTotalBytes = 64L * 1024 * 1024;

    /// <summary>Reads of spans decoding to fewer bytes than this take no reservation.</summary>
    public const long SmallReadBytes = 64 * 1024;

    /// <summary>What one decoded byte costs while a read is answered (the stored and decoded bytes, UTF-16 text, the escaped answer).</summary>
    public const int Amplification = 6;

    /// <summary>How many reads may wait for the budget before further ones are refused.</summary>
    public const int MaxWaiting = 32;

    /// <summary>Seconds a refused reader is asked to wait.</summary>
    public const int RetryAfterSeconds = 1;

    private readonly object _lock = new();
    private readonly LinkedList<Waiter> _waiting = new();
    private readonly BackendMetrics? _metrics;
    private readonly IdleHeapCollection _idleCollection;
    private long _inFlight;
    private long _releasedSinceCollect;

    /// <summary>Creates a budget of <paramref name="totalBytes"/>.</summary>
    /// <param name="totalBytes">The budget.</param>
    /// <param name="metrics">Gauges of the budget; none when null.</param>
    /// <param name="timeProvider">
    /// When given, the budget hands large reads' memory back to the OS once it has been idle for
    /// <see cref="IdleHeapCollection.Delay"/>; never when null.
    /// </param>
    public ReadBudget(long totalBytes = DefaultTotalBytes, BackendMetrics? metrics = null, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalBytes, 1);
        TotalBytes = totalBytes;
        _metrics = metrics;
        // Every large read that ends counts: the collection follows the last one of a burst.
        _idleCollection = new IdleHeapCollection(timeProvider, () => InFlightBytes == 0 && Waiting == 0, minReleasedBytes: 0);
    }

    /// <summary>The bytes all large reads in flight may reserve together.</summary>
    public long TotalBytes { get; }

    /// <summary>The bytes reserved by reads in flight now.</summary>
    public long InFlightBytes
    {
        get
        {
            lock (_lock)
            {
                return _inFlight;
            }
        }
    }

    /// <summary>How many reads wait for the budget now.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>
    /// Reserves the cost of reading spans that decode to <paramref name="decodedBytes"/>; waits while
    /// the budget is spent. Null when too many reads already wait: answer 503 + Retry-After.
    /// A read larger than the whole budget reserves all of it (it runs alone).
    /// </summary>
    public async ValueTask<Lease?> AcquireAsync(long decodedBytes, CancellationToken cancellationToken)
    {
        if (decodedBytes < SmallReadBytes)
        {
            return Lease.None;
        }

        var cost = decodedBytes > TotalBytes / Amplification ? TotalBytes : decodedBytes * Amplification;
        Waiter waiter;
        lock (_lock)
        {
            if (_waiting.Count == 0 && _inFlight + cost <= TotalBytes)
            {
                _inFlight += cost;
                Publish();
                return new Lease(this, cost);
            }

            if (_waiting.Count >= MaxWaiting)
            {
                _metrics?.ReadsRefused.Inc();
                return null;
            }

            waiter = new Waiter(cost);
            waiter.Node = _waiting.AddLast(waiter);
            Publish();
        }

        using (cancellationToken.Register(static state =>
        {
            var (budget, w) = ((ReadBudget, Waiter))state!;
            budget.Abandon(w);
        }, (this, waiter)))
        {
            await waiter.Granted.Task.ConfigureAwait(false);
        }

        return new Lease(this, cost);
    }

    /// <summary>
    /// Reserves the cost of reading the given spans whole (a HAR export builds them all into one
    /// document, so <paramref name="factor"/> counts its copies); null when refused.
    /// </summary>
    public async ValueTask<Lease?> AcquireForSpansAsync(
        Storage.ISpanQueryStore store, long tenantId, IEnumerable<(string TraceId, string SpanId)> spans, int factor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(spans);
        long total = 0;
        foreach (var (traceId, spanId) in spans)
        {
            var size = await store.GetSpanSizeAsync(tenantId, traceId, spanId, cancellationToken).ConfigureAwait(false) ?? 0;
            total = size >= long.MaxValue / 16 ? long.MaxValue / 16 : Math.Min(long.MaxValue / 16, total + size);
        }

        return await AcquireAsync(total * factor, cancellationToken).ConfigureAwait(false);
    }

    private void Abandon(Waiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Node?.List is null)
            {
                // Already granted: the caller gets the lease and returns it.
                return;
            }

            _waiting.Remove(waiter.Node);
            Publish();
        }

        waiter.Granted.TrySetCanceled();
    }

    private void Release(long cost)
    {
        List<Waiter>? granted = null;
        bool collect;
        bool idle;
        lock (_lock)
        {
            _inFlight -= cost;
            _releasedSinceCollect += cost;
            collect = _releasedSinceCollect >= TotalBytes;
            if (collect)
            {
                _releasedSinceCollect = 0;
            }

            while (_waiting.First is { } first && _inFlight + first.Value.Cost <= TotalBytes)
            {
                _waiting.RemoveFirst();
                _inFlight += first.Value.Cost;
                (granted ??= []).Add(first.Value);
            }

            Publish();
            idle = _inFlight == 0 && _waiting.Count == 0;
        }

        _idleCollection.Released(cost, idle);

        if (collect)
        {
            CollectGarbage();
        }

        if (granted is not null)
        {
            foreach (var waiter in granted)
            {
                waiter.Granted.TrySetResult();
            }
        }
    }

    /// <summary>
    /// The budget bounds what reads in flight hold, not the garbage finished ones leave: large
    /// objects are collected only with gen 2, which the GC schedules by its own budget, so a
    /// stream of large reads one after the other would grow the heap by hundreds of MB before a
    /// collection (bench/README.md, "Reader memory"). Once finished reads have released as much as
    /// the whole budget, one blocking gen-2 collection reclaims their buffers before the next reads
    /// are let in: what reads make the process hold stays near twice the budget.
    /// </summary>
    private static void CollectGarbage()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: false);
        NativeHeap.Trim();
    }

    private void Publish()
    {
        if (_metrics is not null)
        {
            _metrics.ReadBudgetInFlightBytes.Set(_inFlight);
            _metrics.ReadBudgetWaiting.Set(_waiting.Count);
        }
    }

    /// <summary>A reservation; disposing returns it (once).</summary>
    public sealed class Lease : IDisposable
    {
        /// <summary>The reservation of a small read: nothing to return.</summary>
        public static readonly Lease None = new(null, 0);

        private ReadBudget? _owner;

        internal Lease(ReadBudget? owner, long cost)
        {
            _owner = owner;
            Cost = cost;
        }

        /// <summary>The bytes reserved.</summary>
        public long Cost { get; }

        /// <inheritdoc />
        public void Dispose() => Interlocked.Exchange(ref _owner, null)?.Release(Cost);
    }

    private sealed class Waiter(long cost)
    {
        public long Cost { get; } = cost;

        public TaskCompletionSource Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }
    }

    /// <summary>The answer to a large read refused by the read budget: 503 + Retry-After.</summary>
    internal static IResult Busy(HttpContext context)
    {
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return Results.Problem(statusCode: 503, title: "Service Unavailable", detail: "too many large span reads are in flight; retry later");
    }
}
