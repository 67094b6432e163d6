using SpIstio.Core.Capture;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Agent.Export;

/// <summary>
/// What the export queue holds for one exchange. A small exchange (its span at most
/// <see cref="QueuedSpans.MaxSlabSpanBytes"/>) is encoded when it is queued, into a slab of
/// <see cref="QueuedSpans"/>, and the exchange itself is let go: its objects die young instead of
/// surviving gen0 and being copied by every collection while the batch fills (issue 13: 15 % of
/// the agent's CPU at 2 KiB). A larger one is queued as the exchange (its bodies are rented arrays,
/// the object graph is small beside them) and written when its batch is, as before.
/// </summary>
internal readonly struct QueuedSpan : IEncodedSpan
{
    private readonly QueuedSpans.Slab? _slab;
    private readonly int _offset;
    private readonly MeasuredSpan _measured;
    private readonly string? _publicKey;

    private QueuedSpan(string serviceName, QueuedSpans.Slab? slab, int offset, Exchange? exchange, string? publicKey, MeasuredSpan measured, long reserved)
    {
        ServiceName = serviceName;
        _publicKey = publicKey;
        _slab = slab;
        _offset = offset;
        Exchange = exchange;
        _measured = measured;
        Reserved = reserved;
    }

    /// <inheritdoc/>
    public string ServiceName { get; }

    /// <inheritdoc/>
    public int Length => _measured.Length;

    /// <summary>The exchange, when it is queued as itself (a large span); null once encoded into a slab.</summary>
    public Exchange? Exchange { get; }

    /// <summary>Budget bytes this entry reserved itself (an exchange's estimate); a slab's span reserves through its slab.</summary>
    public long Reserved { get; }

    internal QueuedSpans.Slab? Slab => _slab;

    /// <inheritdoc/>
    public void WriteTo(byte[] destination, int offset, DeferredBytes? deferred)
    {
        if (_slab is { } slab)
        {
            slab.Bytes.AsSpan(_offset, _measured.Length).CopyTo(destination.AsSpan(offset));
        }
        else
        {
            OtlpSpanWriter.WriteSpan(Exchange!, _publicKey, _measured, destination, offset, deferred);
        }
    }

    internal static QueuedSpan InSlab(string serviceName, QueuedSpans.Slab slab, int offset, MeasuredSpan measured) =>
        new(serviceName, slab, offset, null, null, measured, 0);

    internal static QueuedSpan AsExchange(Exchange exchange, string? publicKey, MeasuredSpan measured, long reserved) =>
        new(exchange.ServiceName, null, 0, exchange, publicKey, measured, reserved);
}

/// <summary>
/// The slabs small spans are encoded into when they are queued (see <see cref="QueuedSpan"/>).
/// A slab is a <see cref="SlabBytes"/> array, below the large-object threshold, filled in order
/// by every producer and given back once every span in it was sent (or dropped). The byte budget
/// (<c>export.max_inflight_bytes</c>) counts what is held: a whole slab from when it is opened
/// until its last span is released, so the budget is exact whatever the span sizes. Up to
/// <see cref="MaxFreeSlabs"/> free slabs are kept: reused slabs live in gen 2 and cost the
/// collector nothing, new ones would be copied out of gen 0. Thread-safe.
/// </summary>
internal sealed class QueuedSpans
{
    /// <summary>Bytes of one slab: under the 85,000 bytes from which an array goes to the large-object heap.</summary>
    internal const int SlabBytes = 64 * 1024;

    /// <summary>Spans above this are queued as their exchange: at most a quarter of a slab goes unused when it is closed.</summary>
    internal const int MaxSlabSpanBytes = SlabBytes / 4;

    /// <summary>Free slabs kept for reuse (4 MiB).</summary>
    internal const int MaxFreeSlabs = 64;

    /// <summary>
    /// Bytes of a thread's scratch a span is written into before it is copied into a slab: twice the
    /// largest span a slab takes, so a span near that size is not taken for a large one because an
    /// upper bound of a field did not fit.
    /// </summary>
    private const int ScratchBytes = 2 * MaxSlabSpanBytes;

    [ThreadStatic]
    private static byte[]? _scratch;

    private readonly CaptureByteBudget _budget;
    private readonly string? _publicKey;
    private readonly Lock _lock = new();
    private readonly Stack<Slab> _free = new();
    private Slab? _current;

    /// <summary>Creates an empty store whose slabs reserve from <paramref name="budget"/>.</summary>
    public QueuedSpans(CaptureByteBudget budget, string? publicKey)
    {
        _budget = budget ?? throw new ArgumentNullException(nameof(budget));
        _publicKey = string.IsNullOrEmpty(publicKey) ? null : publicKey;
    }

    /// <summary>Free slabs kept now (tests).</summary>
    internal int FreeSlabs
    {
        get
        {
            lock (_lock)
            {
                return _free.Count;
            }
        }
    }

    /// <summary>
    /// Encodes <paramref name="exchange"/> into a slab, or reserves its estimate and queues it as
    /// itself when its span is large; false (nothing held) when the budget has no room.
    /// </summary>
    public bool TryAdd(Exchange exchange, out QueuedSpan span) => TryAdd(exchange, 0, out span);

    /// <summary>
    /// Like <see cref="TryAdd(Exchange, out QueuedSpan)"/> for an exchange whose caller holds
    /// <paramref name="reserved"/> bytes of this store's budget for it: they are taken over, as the
    /// large span's reservation (only the difference from its estimate is reserved or given back) or
    /// given back before a slab reserves, and given back on failure.
    /// </summary>
    public bool TryAdd(Exchange exchange, long reserved, out QueuedSpan span)
    {
        // Written once into this thread's scratch and copied into the slab once its length is known:
        // a copy of a few KiB costs less than the measuring pass it replaces (issue 13: ~4 % of the
        // agent's CPU at 2 KiB), and producers need not hold the slab's lock while they encode.
        // Bodies longer than a slab's largest span nearly always make a span too large for a slab,
        // so they are measured straight away rather than written into the scratch first.
        byte[] scratch;
        MeasuredSpan measured = default;
        bool written;
        try
        {
            scratch = _scratch ??= new byte[ScratchBytes];
            written = exchange.RequestBody.Content.Length + (long)exchange.ResponseBody.Content.Length <= MaxSlabSpanBytes
                && OtlpSpanWriter.TryWriteSpan(exchange, _publicKey, scratch, 0, ScratchBytes, out measured);
            if (!written)
            {
                measured = OtlpSpanWriter.MeasureSpan(exchange, _publicKey);
            }
        }
        catch
        {
            // Out of memory under the heap cap: the caller's bytes are this store's to give back.
            _budget.Release(reserved);
            throw;
        }

        if (measured.Length > MaxSlabSpanBytes)
        {
            var estimate = OtlpExporter.EstimateBytes(exchange);
            span = QueuedSpan.AsExchange(exchange, _publicKey, measured, estimate);
            if (estimate <= reserved)
            {
                _budget.Release(reserved - estimate);
                return true;
            }

            if (_budget.TryReserve(estimate - reserved))
            {
                return true;
            }

            _budget.Release(reserved);
            return false;
        }

        // Its span is copied into a slab, which reserves for itself: the caller's bytes go back first,
        // so the slab may take their room. Inline callers hold none and skip the add on the budget's
        // counter, which every thread shares.
        if (reserved > 0)
        {
            _budget.Release(reserved);
        }

        if (!written)
        {
            // Measured small after all (bodies that are not carried as they are, such as gRPC frames).
            OtlpSpanWriter.WriteSpan(exchange, _publicKey, measured, scratch, 0);
        }

        Slab slab;
        int offset;
        lock (_lock)
        {
            slab = _current!;
            if (slab is null || slab.Used + measured.Length > SlabBytes)
            {
                // The full slab stays until its spans are sent; it has some (an empty one is never current).
                _current = null;
                if (!_budget.TryReserve(SlabBytes))
                {
                    span = default;
                    return false;
                }

                slab = _free.Count > 0 ? _free.Pop() : new Slab();
                slab.Used = 0;
                _current = slab;
            }

            offset = slab.Used;
            slab.Used += measured.Length;
            slab.Pending++;
        }

        // Outside the lock: producers fill their own ranges of the slab at once.
        scratch.AsSpan(0, measured.Length).CopyTo(slab.Bytes.AsSpan(offset));

        span = QueuedSpan.InSlab(exchange.ServiceName, slab, offset, measured);
        return true;
    }

    /// <summary>
    /// Lets go of <paramref name="span"/> once its batch is done with (sent, buffered or dropped):
    /// its slab's last span gives the slab back, an exchange's rented body arrays go back to their pool.
    /// </summary>
    public void Release(in QueuedSpan span)
    {
        if (span.Slab is { } slab)
        {
            Release(slab);
        }
        else
        {
            // The reservation first: the body arrays going back are kept for reuse only while the budget has room (CaptureArrayPool).
            _budget.Release(span.Reserved);
            span.Exchange?.ReturnBodyArrays();
        }
    }

    private void Release(Slab slab)
    {
        lock (_lock)
        {
            if (--slab.Pending > 0)
            {
                return;
            }

            // Empty: also when it is the current one, so an idle exporter holds no budget.
            if (ReferenceEquals(_current, slab))
            {
                _current = null;
            }

            _budget.Release(SlabBytes);
            if (_free.Count < MaxFreeSlabs)
            {
                _free.Push(slab);
            }
        }
    }

    /// <summary>One slab: its bytes, how far it is filled, and how many of its spans are not released yet.</summary>
    internal sealed class Slab
    {
        public byte[] Bytes { get; } = new byte[SlabBytes];

        public int Used { get; set; }

        public int Pending { get; set; }
    }
}
