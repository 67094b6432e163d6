using Microsoft.Extensions.Logging;

namespace SpIstio.Backend.Storage.Postgres;

/// <summary>
/// The text index's common buckets (<c>search_common_buckets</c>): buckets found in at least one
/// span in <see cref="CommonShare"/> of a sample, which new spans leave out of
/// <c>term_buckets</c>. The index's cost is per posting (bench/README.md, "Backend"), and the
/// words every span of an API carries (its JSON keys, its host, the few values of an enum or a
/// city field) were ~40 % of a span's postings while each narrows a query to a large share of the
/// rows, where reading the rows costs about what the posting list would. The exact hashes in
/// <c>terms</c> still hold every word, so search stays exact: a query drops its common buckets
/// from the index condition and the rows decide.
/// </summary>
/// <remarks>
/// The set only grows, and it is in the store before any span leaves a bucket out, so a query
/// removes the set it reads in its own snapshot (<see cref="PostgresSpanStore"/>'s text
/// condition) and never misses a span that left out a bucket; this process's copy only decides
/// whether a query has an index condition at all. Each process samples the first
/// <see cref="SampleSpans"/> spans with search text it stores after it starts, across tenants
/// (the set is the store's: a bucket common in one busy tenant is read through its rows for
/// every tenant), and adds what it found; other replicas' additions reach its copy within
/// <see cref="ReloadInterval"/>.
/// </remarks>
internal sealed class PostgresCommonBuckets
{
    /// <summary>Spans with search text sampled before the set is extended (one batch of the exporter's is 512).</summary>
    public const int SampleSpans = 4096;

    /// <summary>A bucket in at least one sampled span in this many is common: a word in a quarter of the rows already has them on most heap pages (four ~2 KB rows a page).</summary>
    public const int CommonShare = 4;

    /// <summary>How often this process re-reads the set for its queries (other replicas add to it).</summary>
    public static readonly TimeSpan ReloadInterval = TimeSpan.FromMinutes(1);

    private readonly Func<CancellationToken, Task<short[]>> _load;
    private readonly Func<short[], Task> _add;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _sampleLock = new();
    private readonly SemaphoreSlim _loading = new(1, 1);

    private readonly TaskCompletionSource _sampled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile Set? _current;
    private long _loadedAt;
    private int _reloading;

    // Sample counts per bucket (index: bucket + 32,768); null once the sample is taken.
    private ushort[]? _counts = new ushort[Set.Buckets];
    private int _sampledSpans;

    /// <param name="load">Reads the store's whole set.</param>
    /// <param name="add">Adds buckets to the store's set (committed when the task completes).</param>
    /// <param name="logger">Learning outcomes.</param>
    /// <param name="timeProvider">When the set was last read.</param>
    public PostgresCommonBuckets(Func<CancellationToken, Task<short[]>> load, Func<short[], Task> add, ILogger logger, TimeProvider timeProvider)
    {
        _load = load;
        _add = add;
        _logger = logger;
        _timeProvider = timeProvider;
    }

    /// <summary>
    /// The set for ingest: read from the store on first use, so every bucket a span leaves out is
    /// already in it; re-read like <see cref="ForQuery"/> to pick up other replicas' additions.
    /// </summary>
    public async ValueTask<Set> ForIngestAsync(CancellationToken cancellationToken)
    {
        if (_current is not null)
        {
            return ForQuery();
        }

        await _loading.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_current is null)
            {
                await ReloadAsync(cancellationToken).ConfigureAwait(false);
            }

            return _current!;
        }
        finally
        {
            _loading.Release();
        }
    }

    /// <summary>
    /// This process's copy for a query (empty before the first read): buckets in it are left out
    /// of the query's index condition. Re-read in the background once it is
    /// <see cref="ReloadInterval"/> old.
    /// </summary>
    public Set ForQuery()
    {
        if (_current is null || _timeProvider.GetElapsedTime(Interlocked.Read(ref _loadedAt)) >= ReloadInterval)
        {
            if (Interlocked.CompareExchange(ref _reloading, 1, 0) == 0)
            {
                _ = ReloadInBackgroundAsync();
            }
        }

        return _current ?? Set.Empty;
    }

    /// <summary>Counts the buckets of a batch's spans while the sample is open; once it is full, adds the common ones to the store in the background.</summary>
    public void Observe(PostgresSearchTerms.SpanTerms[] terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        if (Volatile.Read(ref _counts) is null)
        {
            return;
        }

        short[]? common = null;
        lock (_sampleLock)
        {
            var counts = _counts;
            if (counts is null)
            {
                return;
            }

            foreach (var t in terms)
            {
                // A span without search text is not in the index: it says nothing of how common a bucket is there.
                if (t.Hashes.Length == 0 && t.Numbers.Length == 0)
                {
                    continue;
                }

                foreach (short bucket in t.Buckets)
                {
                    counts[bucket - short.MinValue]++;
                }

                _sampledSpans++;
            }

            if (_sampledSpans >= SampleSpans)
            {
                var found = new List<short>();
                for (int i = 0; i < counts.Length; i++)
                {
                    if (counts[i] * CommonShare >= _sampledSpans)
                    {
                        found.Add((short)(i + short.MinValue));
                    }
                }

                common = [.. found];
                _counts = null;
            }
        }

        if (common is not null)
        {
            _ = AddAsync(common, _sampledSpans);
        }
    }

    /// <summary>Completes once this process's sample is taken and what it found is in the store and in use (tests wait on this, not on time).</summary>
    public Task Sampled => _sampled.Task;

    private async Task AddAsync(short[] common, int sampled)
    {
        try
        {
            if (common.Length > 0)
            {
                await _add(common).ConfigureAwait(false);
            }

            await ReloadAsync(CancellationToken.None).ConfigureAwait(false);
            StoreLog.CommonBucketsLearned(_logger, common.Length, sampled, _current!.Count);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Spans keep every bucket (as before the sample): slower to index, never wrong.
            StoreLog.CommonBucketsFailed(_logger, e);
        }
        finally
        {
            _sampled.TrySetResult();
        }
    }

    private async Task ReloadInBackgroundAsync()
    {
        try
        {
            await ReloadAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Queries use the copy they have (or none): the store's own set still keeps them exact.
            StoreLog.CommonBucketsFailed(_logger, e);
        }
        finally
        {
            Volatile.Write(ref _reloading, 0);
        }
    }

    private async Task ReloadAsync(CancellationToken cancellationToken)
    {
        var buckets = await _load(cancellationToken).ConfigureAwait(false);
        _current = new Set(buckets);
        Interlocked.Exchange(ref _loadedAt, _timeProvider.GetTimestamp());
    }

    /// <summary>A set of buckets, one bit each.</summary>
    internal sealed class Set
    {
        /// <summary>How many buckets there are: every 16-bit value.</summary>
        public const int Buckets = 1 << 16;

        public static readonly Set Empty = new([]);

        private readonly ulong[] _bits = new ulong[Buckets / 64];

        public Set(short[] buckets)
        {
            ArgumentNullException.ThrowIfNull(buckets);
            foreach (short b in buckets)
            {
                int i = b - short.MinValue;
                _bits[i >> 6] |= 1UL << i;
            }

            Count = buckets.Length;
        }

        /// <summary>How many buckets the set holds.</summary>
        public int Count { get; }

        public bool Contains(short bucket)
        {
            int i = bucket - short.MinValue;
            return (_bits[i >> 6] & (1UL << i)) != 0;
        }
    }
}
