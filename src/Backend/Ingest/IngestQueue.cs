using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using SpIstio.Backend.Telemetry;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ingest;

/// <summary>
/// The bounded write queue between ingest requests and the store. A writer takes everything
/// queued (up to a batch limit) and commits it per tenant in one <see cref="ISpanQueryStore.InsertSpansAsync"/>
/// transaction — group commit, so many small exports cost one fsync — and completes each
/// request's task only once its spans are committed: an exporter is answered 200 only for spans
/// that survive a crash. There are as many writers as the store commits at once
/// (<see cref="ISpanQueryStore.IngestWriters"/>: one on SQLite, two on PostgreSQL, where one
/// group copies while the other waits for its commit's flush); a free writer takes what has
/// queued meanwhile. Each request's spans are encoded for the store (<see cref="ISpanQueryStore.PrepareSpansAsync"/>)
/// on a pool thread as soon as they are queued, so concurrent requests compress in parallel while
/// the writers commit; what is encoded ahead is bounded by the queue's capacity like the rest. A
/// writer commits the requests it took that are encoded; one still encoding (a large request, a new
/// tenant's batch waiting for its first dictionary) joins a later group, so it never holds up the
/// requests queued after it, of any tenant.
/// </summary>
public sealed class IngestQueue : IAsyncDisposable
{
    private readonly ISpanStore _store;
    private readonly BackendMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly Channel<Pending> _channel;
    private readonly Task _writers;
    private readonly int _maxBatchSpans;
    private long _depth;

    /// <summary>Creates the queue and starts its writers.</summary>
    /// <param name="store">Where spans are committed.</param>
    /// <param name="capacitySpans">Spans that may wait (queued or committing) before new requests are refused.</param>
    /// <param name="maxBatchSpans">The most spans one group commit takes.</param>
    /// <param name="metrics">Queue depth, commit duration, span counters.</param>
    /// <param name="logger">Commit failures.</param>
    /// <param name="timeProvider">Commit timing.</param>
    public IngestQueue(ISpanStore store, int capacitySpans, int maxBatchSpans, BackendMetrics metrics, ILogger logger, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacitySpans, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSpans, 1);
        _store = store;
        Capacity = capacitySpans;
        _maxBatchSpans = maxBatchSpans;
        _metrics = metrics;
        _logger = logger;
        _timeProvider = timeProvider;
        var writers = Math.Max(1, store.IngestWriters);
        _channel = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = writers == 1 });
        var tasks = new Task[writers];
        for (var i = 0; i < writers; i++)
        {
            tasks[i] = Task.Run(RunWriterAsync);
        }

        _writers = Task.WhenAll(tasks);
    }

    /// <summary>Spans that may wait before new requests are refused.</summary>
    public int Capacity { get; }

    /// <summary>Spans queued or being committed.</summary>
    public long Depth => Interlocked.Read(ref _depth);

    /// <summary>
    /// Queues a request's spans. False when the queue is full or stopping (answer 429/503 with
    /// Retry-After); otherwise <paramref name="committed"/> completes once they are committed, or
    /// faults when the commit failed (then none of them is stored).
    /// </summary>
    public bool TryEnqueue(long tenantId, IReadOnlyList<StoredSpan> spans, out Task committed)
    {
        ArgumentNullException.ThrowIfNull(spans);
        var count = spans.Count;
        var depth = Interlocked.Add(ref _depth, count);
        // A request larger than the whole capacity still passes into an empty queue, or it could never be stored.
        if (depth > Capacity && depth != count)
        {
            Interlocked.Add(ref _depth, -count);
            committed = Task.CompletedTask;
            return false;
        }

        // Counted in the depth first, so what is encoded ahead of the writer is bounded; the
        // writer that takes this request awaits its encoding.
        var pending = new Pending(tenantId, count, Task.Run(() => _store.PrepareSpansAsync(tenantId, spans, CancellationToken.None).AsTask()));
        if (!_channel.Writer.TryWrite(pending))
        {
            Interlocked.Add(ref _depth, -count);
            committed = Task.CompletedTask;
            return false;
        }

        _metrics.QueueDepth.Set(depth);
        committed = pending.Completion.Task;
        return true;
    }

    /// <summary>Stops taking requests and waits until everything queued is committed.</summary>
    public async Task DrainAsync()
    {
        _channel.Writer.TryComplete();
        await _writers.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await DrainAsync().ConfigureAwait(false);

    private async Task RunWriterAsync()
    {
        var reader = _channel.Reader;
        var taken = new List<Pending>(); // taken from the queue, not answered yet
        var encoded = new List<Pending>();
        var tenantSpans = new List<PreparedSpans>();
        var takenSpans = 0;
        var closed = false;
        Task<bool>? arrival = null;
        while (true)
        {
            if (taken.Count == 0)
            {
                // Idle: wait for a request (through the wait already pending, if one is).
                var more = arrival is { } pending ? await pending.ConfigureAwait(false) : !closed && await reader.WaitToReadAsync().ConfigureAwait(false);
                arrival = null;
                if (!more)
                {
                    break;
                }
            }

            takenSpans += TakeBatch(reader, taken, _maxBatchSpans - takenSpans);
            foreach (var pending in taken)
            {
                if (pending.Prepared!.IsCompleted)
                {
                    encoded.Add(pending);
                }
            }

            if (encoded.Count == 0)
            {
                if (taken.Count > 0)
                {
                    // Nothing taken is encoded yet: wait for the first encoding to end or, with room
                    // left in the group, for another request (which may be encoded sooner).
                    var first = Task.WhenAny(taken.Select(p => p.Prepared!));
                    if (takenSpans < _maxBatchSpans && !closed)
                    {
                        arrival ??= reader.WaitToReadAsync().AsTask();
                        await Task.WhenAny(first, arrival).ConfigureAwait(false);
                        if (arrival.IsCompleted)
                        {
                            closed = !await arrival.ConfigureAwait(false);
                            arrival = null;
                        }
                    }
                    else
                    {
                        await first.ConfigureAwait(false);
                    }
                }

                continue;
            }

            // The encoded requests commit now; one still encoding (a large request, a new tenant
            // waiting for its first dictionary) joins a later group instead of holding this one.
            await CommitBatchAsync(encoded, tenantSpans).ConfigureAwait(false);
            foreach (var pending in encoded)
            {
                takenSpans -= pending.Count;
            }

            taken.RemoveAll(p => p.Done);
            encoded.Clear();
            _metrics.QueueDepth.Set(Depth);
        }
    }

    // Takes queued requests while the group holds fewer than `room` spans; returns the spans taken.
    private static int TakeBatch(ChannelReader<Pending> reader, List<Pending> batch, int room)
    {
        var spans = 0;
        while (spans < room && reader.TryRead(out var pending))
        {
            batch.Add(pending);
            spans += pending.Count;
        }

        return spans;
    }

    private async Task CommitBatchAsync(List<Pending> batch, List<PreparedSpans> tenantSpans)
    {
        // One transaction per tenant in the batch: InsertSpansAsync is scoped to a tenant.
        for (var i = 0; i < batch.Count; i++)
        {
            var tenantId = batch[i].TenantId;
            if (batch[i].Done)
            {
                continue;
            }

            for (var j = i; j < batch.Count; j++)
            {
                if (!batch[j].Done && batch[j].TenantId == tenantId)
                {
                    try
                    {
                        tenantSpans.Add(await batch[j].Prepared!.ConfigureAwait(false));
                    }
                    catch (Exception ex)
                    {
                        _metrics.SpansFailed.Add(batch[j].Count);
                        IngestLog.CommitFailed(_logger, batch[j].Count, tenantId, ex);
                    }
                }
            }

            var error = tenantSpans.Count > 0 ? await CommitAsync(tenantId, tenantSpans).ConfigureAwait(false) : null;
            // Emptied before any request is answered: the list holds the tenant's encoded spans.
            tenantSpans.Clear();
            for (var j = i; j < batch.Count; j++)
            {
                var pending = batch[j];
                if (pending.Done || pending.TenantId != tenantId)
                {
                    continue;
                }

                Interlocked.Add(ref _depth, -pending.Count);
                pending.Answer(error);
            }
        }
    }

    private async Task<Exception?> CommitAsync(long tenantId, List<PreparedSpans> batches)
    {
        var started = _timeProvider.GetTimestamp();
        var count = batches.Sum(b => b.Spans.Count);
        try
        {
            // Not cancellable: spans already queued are committed even while shutting down.
            await _store.InsertPreparedAsync(tenantId, batches, CancellationToken.None).ConfigureAwait(false);
            _metrics.SpansStored.Add(count);
            return null;
        }
        catch (Exception ex)
        {
            _metrics.SpansFailed.Add(count);
            IngestLog.CommitFailed(_logger, count, tenantId, ex);
            return ex;
        }
        finally
        {
            _metrics.CommitDuration.Observe(_timeProvider.GetElapsedTime(started).TotalSeconds);
            _metrics.CommitSpans.Observe(count);
        }
    }

    /// <summary>
    /// A queued request: its span count and its spans encoded for the store, until it is answered.
    /// Answering drops the encoded spans (the writer has cleared its own list of them by then), so
    /// nothing of a committed request stays referenced while a writer waits for the next: an idle
    /// backend held its last batch's spans, bodies and encoded values until more spans came.
    /// </summary>
    [DebuggerDisplay("{TenantId}: {Count} spans")]
    private sealed class Pending(long tenantId, int count, Task<PreparedSpans> prepared)
    {
        public long TenantId { get; } = tenantId;

        public int Count { get; } = count;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The spans encoded for the store, started when the request was queued; null once answered.</summary>
        public Task<PreparedSpans>? Prepared { get; private set; } = prepared;

        public bool Done => Prepared is null;

        /// <summary>Answers the request after its tenant's commit, which failed when <paramref name="commitError"/> is set.</summary>
        public void Answer(Exception? commitError)
        {
            // A request whose encoding failed was left out of the commit and fails alone.
            var failed = Prepared!.IsCompletedSuccessfully ? commitError : Prepared.Exception?.GetBaseException() ?? commitError;
            Prepared = null;
            if (failed is null)
            {
                Completion.TrySetResult();
            }
            else
            {
                Completion.TrySetException(failed);
            }
        }
    }
}
