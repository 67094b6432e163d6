using SpIstio.Agent.Metrics;

namespace SpIstio.Agent.Cache;

/// <summary>
/// The local response cache: least-recently-used entries are evicted once the stored bytes
/// exceed the bound (<c>max_cache_size_mb</c>), and an entry answers for <c>cache_ttl_seconds</c>
/// after it was stored. One lock around a dictionary and a recency list: every operation is
/// O(1) and short, so contention stays low next to the network work around it.
/// </summary>
public sealed class ResponseStore
{
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _recency = new();
    private readonly Lock _lock = new();
    private readonly long _maxBytes;
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;
    private readonly AgentMetrics _metrics;
    private long _bytes;

    /// <summary>Creates an empty store.</summary>
    /// <param name="maxBytes">Bound on the stored bytes; 0 stores nothing.</param>
    /// <param name="ttl">How long an entry answers; zero stores nothing.</param>
    /// <param name="time">The clock.</param>
    /// <param name="metrics">Where evictions, bytes and entries are counted.</param>
    public ResponseStore(long maxBytes, TimeSpan ttl, TimeProvider time, AgentMetrics metrics)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        _maxBytes = maxBytes;
        _ttl = ttl;
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _metrics = metrics ?? throw new ArgumentNullException(nameof(metrics));
    }

    /// <summary>Bytes held now.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    /// <summary>Entries held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>The live entry for <paramref name="key"/>, made most recently used; an expired one is removed.</summary>
    public bool TryGet(string key, out CachedResponse? response)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var node))
            {
                if (node.Value.ExpiresAt > now)
                {
                    _recency.Remove(node);
                    _recency.AddFirst(node);
                    response = node.Value.Response;
                    return true;
                }

                RemoveLocked(node);
                _metrics.CacheEvictionsExpired.Inc();
                PublishLocked();
            }
        }

        response = null;
        return false;
    }

    /// <summary>
    /// Stores <paramref name="response"/> under <paramref name="key"/> (replacing an older one),
    /// then evicts least-recently-used entries until the bound holds. An entry larger than the
    /// whole bound is not stored. Returns true when stored.
    /// </summary>
    public bool Set(string key, CachedResponse response)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(response);
        var size = response.Size + key.Length;
        if (size > _maxBytes || _ttl <= TimeSpan.Zero)
        {
            return false;
        }

        var entry = new Entry(key, response, size, _time.GetUtcNow() + _ttl);
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var existing))
            {
                RemoveLocked(existing);
            }

            var node = _recency.AddFirst(entry);
            _entries[key] = node;
            _bytes += size;
            var now = entry.ExpiresAt - _ttl;
            while (_bytes > _maxBytes && _recency.Last is { } last && !ReferenceEquals(last, node))
            {
                RemoveLocked(last);
                if (last.Value.ExpiresAt > now)
                {
                    _metrics.CacheEvictionsSize.Inc();
                }
                else
                {
                    _metrics.CacheEvictionsExpired.Inc();
                }
            }

            PublishLocked();
        }

        return true;
    }

    /// <summary>Removes every entry (counted as nothing: an operator's action, not an eviction).</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _entries.Clear();
            _recency.Clear();
            _bytes = 0;
            PublishLocked();
        }
    }

    private void RemoveLocked(LinkedListNode<Entry> node)
    {
        _recency.Remove(node);
        _entries.Remove(node.Value.Key);
        _bytes -= node.Value.Size;
    }

    private void PublishLocked()
    {
        _metrics.CacheBytes.Set(_bytes);
        _metrics.CacheEntries.Set(_entries.Count);
    }

    private sealed record Entry(string Key, CachedResponse Response, long Size, DateTimeOffset ExpiresAt);
}
