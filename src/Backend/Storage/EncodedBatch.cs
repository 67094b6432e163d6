using System.Runtime.ExceptionServices;

namespace SpIstio.Backend.Storage;

/// <summary>
/// A batch of spans encoded (<see cref="EncodedSpan"/>) a chunk at a time by whoever gets to a
/// chunk first: pool workers started with the batch, the caller while it waits for the writer, and
/// the writer itself, which takes the spans in order and encodes the next chunk nobody has started
/// rather than wait for one. So one caller's batch keeps both cores busy — the writer inserts chunk
/// k while a worker encodes chunk k + 1 — where encoding the whole batch first left the second
/// core idle for the insert (bench/README.md, "Backend").
/// </summary>
/// <remarks>
/// Chunks are claimed in ascending order, so a chunk the writer needs is either unclaimed (it
/// encodes it) or being encoded by a running thread (it waits for that one): never a deadlock.
/// What is encoded ahead is the batch itself, which the caller already holds decoded.
/// </remarks>
internal sealed class EncodedBatch
{
    /// <summary>Spans a chunk holds: small enough that the writer rarely waits, large enough that claiming one costs nothing.</summary>
    internal const int ChunkSpans = 32;

    private readonly IReadOnlyList<StoredSpan> _spans;
    private readonly CodecDictionary? _dictionary;
    private readonly bool _searchText;
    private readonly bool _jsonColumns;
    private readonly EncodedSpan[] _encoded;
    private readonly bool[] _done;
    private readonly Exception?[] _errors;
    private readonly int _chunks;
    private int _claimed = -1;

    public EncodedBatch(IReadOnlyList<StoredSpan> spans, CodecDictionary? dictionary, bool searchText, bool jsonColumns)
    {
        ArgumentNullException.ThrowIfNull(spans);
        _spans = spans;
        _dictionary = dictionary;
        _searchText = searchText;
        _jsonColumns = jsonColumns;
        _encoded = new EncodedSpan[spans.Count];
        _chunks = (spans.Count + ChunkSpans - 1) / ChunkSpans;
        _done = new bool[_chunks];
        _errors = new Exception?[_chunks];
    }

    private EncodedBatch(EncodedSpan[] encoded)
    {
        _spans = [];
        _encoded = encoded;
        _chunks = (encoded.Length + ChunkSpans - 1) / ChunkSpans;
        _done = new bool[_chunks];
        Array.Fill(_done, true);
        _errors = new Exception?[_chunks];
        _claimed = _chunks;
    }

    public int Count => _encoded.Length;

    /// <summary>Spans encoded already (ahead of the writer, <see cref="PreparedSpans"/>), in order.</summary>
    public static EncodedBatch FromEncoded(EncodedSpan[] encoded) => new(encoded);

    /// <summary>
    /// Queues up to <paramref name="workers"/> pool workers (never more than the chunks after the
    /// first, which the caller encodes) that encode chunks until none is left.
    /// </summary>
    public void StartWorkers(int workers)
    {
        for (int i = Math.Min(workers, _chunks - 1); i > 0; i--)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static batch => batch.EncodeRemaining(), this, preferLocal: false);
        }
    }

    /// <summary>Encodes chunks nobody has claimed until none is left.</summary>
    public void EncodeRemaining()
    {
        while (TryEncodeNext())
        {
        }
    }

    /// <summary>Claims and encodes the next chunk nobody has started; false when every chunk is claimed.</summary>
    public bool TryEncodeNext()
    {
        int chunk = Interlocked.Increment(ref _claimed);
        if (chunk >= _chunks)
        {
            return false;
        }

        try
        {
            int end = Math.Min(_encoded.Length, (chunk + 1) * ChunkSpans);
            for (int i = chunk * ChunkSpans; i < end; i++)
            {
                _encoded[i] = EncodedSpan.Encode(_spans[i], _dictionary, _searchText, _jsonColumns);
            }
        }
        catch (Exception e)
        {
            // Raised to the writer when it reaches this chunk (a worker has no one else to tell).
            _errors[chunk] = e;
        }

        lock (_done)
        {
            _done[chunk] = true;
            Monitor.PulseAll(_done);
        }

        return true;
    }

    /// <summary>The span at <paramref name="index"/> encoded; encodes unclaimed chunks while the one it is in is being encoded elsewhere.</summary>
    public EncodedSpan this[int index]
    {
        get
        {
            int chunk = index / ChunkSpans;
            while (!Volatile.Read(ref _done[chunk]))
            {
                if (TryEncodeNext())
                {
                    continue;
                }

                lock (_done)
                {
                    while (!_done[chunk])
                    {
                        Monitor.Wait(_done);
                    }
                }
            }

            if (_errors[chunk] is { } error)
            {
                ExceptionDispatchInfo.Throw(error);
            }

            return _encoded[index];
        }
    }

    /// <summary>Every span encoded (waits for, or does, what is left).</summary>
    public EncodedSpan[] All()
    {
        for (int chunk = 0; chunk < _chunks; chunk++)
        {
            _ = this[chunk * ChunkSpans];
        }

        return _encoded;
    }
}
