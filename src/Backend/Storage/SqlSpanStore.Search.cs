using System.Data.Common;
using System.Threading.Channels;

namespace SpIstio.Backend.Storage;

/// <summary>How far the post-commit search index has come; tests and the benchmark wait on it.</summary>
internal interface ISearchIndexProgress
{
    /// <summary>Every span with a row id at or below this one is in the text index (the persisted watermark, as this process last saw it).</summary>
    long IndexedUpTo { get; }

    /// <summary>
    /// Completes once every span this store had committed when the call was made is searchable
    /// by text (<c>q</c>). Text search only ever misses spans not yet indexed; it never returns
    /// wrong ones.
    /// </summary>
    Task WaitForSearchAsync(CancellationToken cancellationToken);

    /// <summary>
    /// How far the text index is behind the spans this process committed or found unindexed in the
    /// store (sp_search_index_lag_seconds, sp_search_index_behind_spans).
    /// </summary>
    SearchIndexLag Lag { get; }
}

/// <summary>
/// The search indexer's lag as one process sees it: <paramref name="OldestUnindexed"/> is the age
/// of the oldest commit of this process that text search does not find yet (zero when all are
/// indexed) — spans this process did not commit (a previous run's backlog found at start-up,
/// another replica's found while indexing) count from when it found them; <paramref name="SpansBehind"/>
/// the row ids between the index's watermark and the last of those spans (exact on SQLite, whose
/// ids are consecutive; an upper bound on PostgreSQL, whose identity skips the ids of rolled-back
/// batches).
/// </summary>
internal readonly record struct SearchIndexLag(TimeSpan OldestUnindexed, long SpansBehind);

/// <summary>
/// The post-commit search indexer and the per-tenant compression dictionaries, both shared by
/// the engines. Ingest commits spans without their text index (it was half of the commit's
/// cost); a loop in each backend process then indexes spans past the persisted watermark
/// (<c>search_progress.indexed_to</c>) in large batches and moves the watermark in the same
/// transaction, so it resumes after a restart and any replica can do it. Woken by each commit
/// of this process, and every <see cref="IndexPollInterval"/> for spans other replicas left.
/// </summary>
internal abstract partial class SqlSpanStore : ISearchIndexProgress
{
    /// <summary>Spans indexed per transaction: large batches amortise the index's merge work.</summary>
    protected const int IndexBatchSpans = 2048;

    private static readonly TimeSpan IndexPollInterval = TimeSpan.FromSeconds(5);

    private readonly Channel<bool> _indexSignal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly List<(long Target, TaskCompletionSource Done)> _indexWaiters = [];
    private readonly CancellationTokenSource _indexerStop = new();

    // Commits not yet indexed, oldest first: (highest row id, when committed). Bounded: past the
    // cap a commit joins the newest entry, which keeps that entry's older time (the lag can only
    // be over-reported for those spans, never under-reported).
    private readonly LinkedList<(long MaxId, long CommittedAt)> _unindexedCommits = new();
    private const int MaxTrackedCommits = 4096;
    private CodecDictionaries? _dictionaries;
    private Task? _indexer;
    private long _committedUpTo;
    private long _indexedUpTo;

    // The highest row id found unindexed in the store that this process did not commit: a previous
    // run's backlog (a restart under load, a crash) or another replica's commits. Without it the
    // lag read 0 while a restarted backend was still indexing what it had left behind.
    private long _foundUpTo;

    /// <summary>This store's per-tenant compression dictionaries.</summary>
    internal CodecDictionaries Dictionaries => LazyInitializer.EnsureInitialized(ref _dictionaries, () => new CodecDictionaries(
        LoadLatestDictionaryAsync, id => LoadDictionaryAsync(id).GetAwaiter().GetResult(), SaveDictionaryAsync, Logger, JsonColumnValues));

    public long IndexedUpTo => Interlocked.Read(ref _indexedUpTo);

    public SearchIndexLag Lag
    {
        get
        {
            lock (_unindexedCommits)
            {
                return _unindexedCommits.First is { } oldest
                    ? new SearchIndexLag(
                        TimeProvider.GetElapsedTime(oldest.Value.CommittedAt),
                        Math.Max(0, Math.Max(Interlocked.Read(ref _committedUpTo), _foundUpTo) - IndexedUpTo))
                    : default;
            }
        }
    }

    public Task WaitForSearchAsync(CancellationToken cancellationToken)
    {
        StartIndexer();
        long target = Interlocked.Read(ref _committedUpTo);
        if (target <= IndexedUpTo && target > 0)
        {
            return Task.CompletedTask;
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_indexWaiters)
        {
            _indexWaiters.Add((target, done));
        }

        _indexSignal.Writer.TryWrite(true);
        return done.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Indexes up to <paramref name="maxSpans"/> spans past the watermark; returns the new watermark and how many spans it read.</summary>
    protected abstract Task<(long IndexedUpTo, int Count)> IndexNextAsync(int maxSpans, CancellationToken cancellationToken);

    /// <summary>A scalar subquery of the row id at or below which every span is in the text index.</summary>
    protected abstract string IndexedToSql { get; }

    /// <summary>
    /// The store's text index backlog as stored: every span at or below <c>IndexedTo</c> is in the
    /// text index; <c>LastId</c> is the highest span row id (0 for none).
    /// </summary>
    private async Task<(long IndexedTo, long LastId)> IndexBacklogAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, null, "SELECT " + IndexedToSql + ", (SELECT COALESCE(MAX(id), 0) FROM spans)");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>The subclass committed spans up to row id <paramref name="maxId"/>: wake the indexer.</summary>
    protected void Committed(long maxId)
    {
        RaiseTo(ref _committedUpTo, maxId);
        lock (_unindexedCommits)
        {
            TrackLocked(maxId);
        }

        StartIndexer();
        _indexSignal.Writer.TryWrite(true);
    }

    /// <summary>Counts the store's backlog in the lag from now on (start-up, after the migrations).</summary>
    protected async Task FindBacklogAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        var (indexedTo, lastId) = await IndexBacklogAsync(connection, cancellationToken).ConfigureAwait(false);
        RaiseTo(ref _indexedUpTo, indexedTo);
        Found(lastId);
    }

    // Spans up to maxId that this process did not commit are in the store unindexed: counted from now.
    private void Found(long maxId)
    {
        lock (_unindexedCommits)
        {
            if (maxId > Math.Max(_foundUpTo, Interlocked.Read(ref _committedUpTo)))
            {
                _foundUpTo = maxId;
                TrackLocked(maxId);
            }
        }
    }

    // Remembers when spans up to maxId were committed (or found), unless already indexed; the
    // caller holds the list's lock.
    private void TrackLocked(long maxId)
    {
        if (maxId > IndexedUpTo)
        {
            if (_unindexedCommits.Count < MaxTrackedCommits)
            {
                _unindexedCommits.AddLast((maxId, TimeProvider.GetTimestamp()));
            }
            else
            {
                var newest = _unindexedCommits.Last!;
                newest.Value = (Math.Max(newest.Value.MaxId, maxId), newest.Value.CommittedAt);
            }
        }
    }

    /// <summary>
    /// Whether ingest builds each span's search text while encoding (<see cref="EncodedSpan.SearchText"/>),
    /// for an indexer that takes it from memory instead of decoding the stored bodies again.
    /// </summary>
    protected virtual bool SearchTextOnIngest => false;

    /// <summary>
    /// Whether JSON values are stored as <see cref="JsonColumns"/> (codec 4) and the tenants'
    /// dictionaries trained on that form: smaller values for more CPU a span at ingest
    /// (bench/README.md, "Where the targets stand"). A store whose rows take no fewer pages for
    /// it keeps plain zstd.
    /// </summary>
    protected internal virtual bool JsonColumnValues => true;

    /// <summary>Encodes a batch with the tenant's dictionary and feeds the dictionary's training.</summary>
    protected async Task<EncodedSpan[]> EncodeAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken)
    {
        var dictionary = await Dictionaries.ForTenantAsync(tenantId, cancellationToken).ConfigureAwait(false);
        var encoded = EncodedSpan.EncodeAll(spans, dictionary, SearchTextOnIngest, JsonColumnValues);
        if (Dictionaries.WantsSamples(dictionary))
        {
            Dictionaries.Observe(tenantId, encoded);
        }

        return encoded;
    }

    /// <summary>
    /// Prepared batches' spans encoded, in order (<see cref="PreparedSpans"/>), encoding what the
    /// store did not prepare ahead; refuses spans prepared for another tenant.
    /// </summary>
    protected async Task<EncodedSpan[]> EncodePreparedAsync(long tenantId, IReadOnlyList<PreparedSpans> batches, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batches);
        var encoded = new List<EncodedSpan>(batches.Sum(b => b.Spans.Count));
        foreach (var prepared in batches)
        {
            // Values compressed for another tenant name that tenant's dictionary, which its purge
            // deletes: refuse rather than mix.
            if (prepared.TenantId != tenantId)
            {
                throw new ArgumentException($"Spans prepared for tenant {prepared.TenantId} cannot be inserted for tenant {tenantId}.", nameof(batches));
            }

            encoded.AddRange(prepared.Encoded ?? await EncodeAsync(tenantId, prepared.Spans, cancellationToken).ConfigureAwait(false));
        }

        return [.. encoded];
    }

    /// <summary>
    /// The search text of a stored span, from its indexed columns (bodies decoded). A body that
    /// does not decode is left out rather than stopping the indexer at that span for good.
    /// </summary>
    protected string? SearchTextOf(DbDataReader reader, int authority, int path, int query, int requestBody, int responseBody) =>
        SearchTextOf(
            NullableString(reader, authority),
            NullableString(reader, path),
            NullableString(reader, query),
            NullableBytes(reader, requestBody),
            NullableBytes(reader, responseBody));

    /// <summary>
    /// Whether a stored span's rebuilt search text holds every term, to settle a "maybe" of its
    /// stored word hashes. A span whose body does not decode (corrupt, or written by a codec this
    /// version cannot read, as after a rollback) cannot be disproved: its hashes were taken from
    /// the body at ingest, so it is kept rather than hidden from the search.
    /// </summary>
    protected bool StoredTextHolds(DbDataReader reader, int authority, int path, int query, int requestBody, int responseBody, string[] terms)
    {
        if (!TryDecode(NullableBytes(reader, requestBody), out var request) || !TryDecode(NullableBytes(reader, responseBody), out var response))
        {
            return true;
        }

        return SearchText.Holds(SearchText.Build(NullableString(reader, authority), NullableString(reader, path), NullableString(reader, query), request, response), terms);
    }

    /// <summary>The search text of a span from its stored columns (bodies as stored: compressed).</summary>
    protected string? SearchTextOf(string? authority, string? path, string? query, byte[]? requestBody, byte[]? responseBody) =>
        SearchText.Build(authority, path, query, DecodeForIndex(requestBody), DecodeForIndex(responseBody));

    /// <summary>Stops the indexer (call first in DisposeAsync); waiters still pending are cancelled.</summary>
    protected async Task StopIndexerAsync()
    {
        await _indexerStop.CancelAsync().ConfigureAwait(false);
        if (_indexer is not null)
        {
            await _indexer.ConfigureAwait(false);
        }

        lock (_indexWaiters)
        {
            foreach (var (_, done) in _indexWaiters)
            {
                done.TrySetCanceled();
            }

            _indexWaiters.Clear();
        }

        _dictionaries?.Dispose();
    }

    private byte[] DecodeForIndex(byte[]? stored) => TryDecode(stored, out var body) ? body : [];

    // A stored body decoded, or false when it does not decode (corrupt, or a codec this version cannot read).
    private bool TryDecode(byte[]? stored, out byte[] body)
    {
        try
        {
            body = BodyCodec.Decode(stored, Dictionaries);
            return true;
        }
        catch (InvalidDataException)
        {
            body = [];
            return false;
        }
    }

    private void StartIndexer()
    {
        if (_indexer is null && !_indexerStop.IsCancellationRequested)
        {
            var started = new Task<Task>(RunIndexerAsync);
            if (Interlocked.CompareExchange(ref _indexer, started.Unwrap(), null) is null)
            {
                started.Start(TaskScheduler.Default);
            }
        }
    }

    private async Task RunIndexerAsync()
    {
        var stop = _indexerStop.Token;
        while (!stop.IsCancellationRequested)
        {
            // Waiters present before this drain are answered when it finds nothing more to index:
            // what they wait for was committed before the drain began, so the drain saw it.
            List<(long Target, TaskCompletionSource Done)> before;
            lock (_indexWaiters)
            {
                before = [.. _indexWaiters];
            }

            long committedBefore = Interlocked.Read(ref _committedUpTo);

            try
            {
                int count;
                bool looked = false;
                do
                {
                    (long upTo, count) = await IndexNextAsync(IndexBatchSpans, stop).ConfigureAwait(false);
                    Advance(upTo);
                    if (count == IndexBatchSpans && !looked)
                    {
                        // More than a batch behind: count what the store holds past the watermark,
                        // another replica's commits included (once a drain: one small query).
                        looked = true;
                        Found(await ReadAsync(async c => (await IndexBacklogAsync(c, stop).ConfigureAwait(false)).LastId, stop).ConfigureAwait(false));
                    }
                }
                while (count == IndexBatchSpans);

                Release(before);
                // Likewise every commit made before the drain (spans retention deleted before the
                // indexer read them leave the watermark below their batch's highest id).
                Forget(committedBefore);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException && !stop.IsCancellationRequested)
            {
                // The store briefly unavailable, or a race with retention: the next pass retries.
                StoreLog.IndexingFailed(Logger, e);
            }

            try
            {
                using var poll = new CancellationTokenSource(IndexPollInterval, TimeProvider);
                using var wake = CancellationTokenSource.CreateLinkedTokenSource(stop, poll.Token);
                await _indexSignal.Reader.ReadAsync(wake.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stop.IsCancellationRequested)
            {
                // The poll interval passed: look for spans other replicas committed.
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>The highest span row id a commit of this process reported through <see cref="Committed"/>.</summary>
    protected long CommittedUpTo => Interlocked.Read(ref _committedUpTo);

    // Raises a watermark that several threads move forward; a lower value leaves it as it is.
    private static void RaiseTo(ref long watermark, long value)
    {
        long seen;
        while ((seen = Interlocked.Read(ref watermark)) < value && Interlocked.CompareExchange(ref watermark, value, seen) != seen)
        {
        }
    }

    private void Advance(long upTo)
    {
        RaiseTo(ref _indexedUpTo, upTo);

        Forget(upTo);
        lock (_indexWaiters)
        {
            _indexWaiters.RemoveAll(w =>
            {
                if (w.Target > 0 && w.Target <= upTo)
                {
                    w.Done.TrySetResult();
                    return true;
                }

                return false;
            });
        }
    }

    private void Forget(long indexedUpTo)
    {
        lock (_unindexedCommits)
        {
            while (_unindexedCommits.First is { } oldest && oldest.Value.MaxId <= indexedUpTo)
            {
                _unindexedCommits.RemoveFirst();
            }
        }
    }

    private void Release(List<(long Target, TaskCompletionSource Done)> waiters)
    {
        if (waiters.Count == 0)
        {
            return;
        }

        lock (_indexWaiters)
        {
            foreach (var waiter in waiters)
            {
                waiter.Done.TrySetResult();
                _indexWaiters.Remove(waiter);
            }
        }
    }

    private Task<(long Id, byte[] Bytes)?> LoadLatestDictionaryAsync(long tenantId, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT id, dictionary FROM codec_dictionaries WHERE tenant_id = @t ORDER BY id DESC LIMIT 1");
        Add(command, "t", tenantId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? (Int64(reader, 0), (byte[])reader.GetValue(1)) : ((long, byte[])?)null;
    }, cancellationToken);

    private Task<(long TenantId, byte[] Bytes)?> LoadDictionaryAsync(long id) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT tenant_id, dictionary FROM codec_dictionaries WHERE id = @id");
        Add(command, "id", id);
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
        return await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false) ? (Int64(reader, 0), (byte[])reader.GetValue(1)) : ((long, byte[])?)null;
    }, CancellationToken.None);

    private Task<long> SaveDictionaryAsync(long tenantId, byte[] dictionary) => WriteAsync(async connection =>
    {
        await using var command = Command(connection, null, "INSERT INTO codec_dictionaries (tenant_id, created_ns, dictionary) VALUES (@t, @c, @d) RETURNING id");
        Add(command, "t", tenantId);
        Add(command, "c", StoreTime.ToNanos(TimeProvider.GetUtcNow()));
        Add(command, "d", dictionary);
        return Int64Scalar(await command.ExecuteScalarAsync(CancellationToken.None).ConfigureAwait(false));
    }, CancellationToken.None);

    private static long Int64Scalar(object? value) => Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
}
