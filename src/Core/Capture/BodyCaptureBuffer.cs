using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using SpIstio.Core.Model;

namespace SpIstio.Core.Capture;

/// <summary>
/// Collects the first <see cref="Limit"/> bytes of a body as its chunks stream past, and counts
/// every byte, so a body of any size costs at most the limit in memory. One per body direction
/// per exchange; not thread-safe.
/// </summary>
/// <remarks>
/// The buffer is rented from the budget's <see cref="CaptureByteBudget.Arrays"/> (without a budget,
/// <see cref="ArrayPool{T}.Shared"/>) and grows geometrically, so a
/// 200-byte body does not hold a 64 KiB array. The pool rounds sizes up to a power of two: with a
/// power-of-two limit (the default 64 KiB) the array never exceeds the limit; otherwise it stays
/// below twice the limit. Either way no more than <see cref="Limit"/> bytes are ever kept.
/// With a <see cref="CaptureByteBudget"/>, every array is reserved from it before it is used and
/// released when it goes back to the pool: when the budget has no room for a larger array, the
/// body keeps what it has and the rest is counted, not kept (<see cref="BudgetExceeded"/>), so the
/// sum over all concurrent captures stays within the budget.
/// </remarks>
public sealed class BodyCaptureBuffer : IDisposable
{
    // Big enough that typical small JSON bodies need one rent, small enough to be cheap when idle.
    private const int InitialSize = 4096;

    private readonly int _limit;
    private readonly CaptureByteBudget? _budget;
    private readonly ArrayPool<byte> _pool;
    private readonly int _expectedLength;
    private byte[]? _buffer;
    private long _reserved;
    private int _length;
    private long _total;
    private bool _closed;

    /// <summary>Creates a buffer that keeps at most <paramref name="limit"/> bytes.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is negative.</exception>
    public BodyCaptureBuffer(int limit)
        : this(limit, null)
    {
    }

    /// <summary>
    /// Creates a buffer that keeps at most <paramref name="limit"/> bytes, and only as many as
    /// <paramref name="budget"/> (shared by every capture of the process) has room for.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is negative.</exception>
    public BodyCaptureBuffer(int limit, CaptureByteBudget? budget)
        : this(limit, budget, expectedLength: -1)
    {
    }

    /// <summary>
    /// Like <see cref="BodyCaptureBuffer(int, CaptureByteBudget?)"/> for a body whose length is
    /// announced (<c>content-length</c>): the first array is sized for it (up to the limit) instead
    /// of growing from 4 KiB by doubling, which for a 64 KiB body rented five arrays and copied 60 KiB
    /// along the way. A wrong announcement costs nothing more than a growth step; negative: unknown.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is negative.</exception>
    public BodyCaptureBuffer(int limit, CaptureByteBudget? budget, long expectedLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        _limit = limit;
        _budget = budget;
        _pool = budget?.Arrays ?? ArrayPool<byte>.Shared;
        _expectedLength = expectedLength > 0 ? (int)Math.Min(expectedLength, limit) : 0;
    }

    /// <summary>Most bytes kept.</summary>
    public int Limit => _limit;

    /// <summary>Every byte appended, kept or not: the body's size on the wire as far as it was seen.</summary>
    public long TotalBytes => _total;

    /// <summary>Bytes kept so far.</summary>
    public int Length => _length;

    /// <summary>True when more bytes were seen than kept.</summary>
    public bool Truncated => _total > _length;

    /// <summary>True when bytes below <see cref="Limit"/> were not kept because the byte budget was full.</summary>
    public bool BudgetExceeded { get; private set; }

    /// <summary>The bytes kept so far; valid until the next call that changes the buffer.</summary>
    public ReadOnlySpan<byte> Captured => _buffer is null ? default : _buffer.AsSpan(0, _length);

    /// <summary>Length of the array currently rented (for tests of the memory bound).</summary>
    internal int Capacity => _buffer?.Length ?? 0;

    /// <summary>Counts <paramref name="chunk"/> and keeps as much of it as the limit allows.</summary>
    /// <exception cref="ObjectDisposedException">The buffer was completed or disposed.</exception>
    public void Append(ReadOnlySpan<byte> chunk)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        _total += chunk.Length;
        var take = Math.Min(_limit - _length, chunk.Length);
        if (take <= 0 || BudgetExceeded)
        {
            return;
        }

        if (!EnsureCapacity(_length + take))
        {
            // The budget had no room for a larger array: keep what fits in the one held.
            take = Math.Min(take, (_buffer?.Length ?? 0) - _length);
            if (take <= 0)
            {
                return;
            }
        }

        chunk[..take].CopyTo(_buffer.AsSpan(_length));
        _length += take;
    }

    /// <summary>
    /// Turns what was kept into a <see cref="CapturedBody"/> (decoded, classified, charset
    /// normalised; see <see cref="BodyCapture.Create"/>) and returns the rented array. The buffer
    /// cannot be appended to afterwards.
    /// </summary>
    public CapturedBody Complete(string? contentType, string? contentEncoding, int maxDecodedBytes)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        var body = BodyCapture.Create(
            _buffer is null ? ReadOnlyMemory<byte>.Empty : new ReadOnlyMemory<byte>(_buffer, 0, _length),
            _total,
            Truncated,
            contentType,
            contentEncoding,
            maxDecodedBytes);
        Dispose();
        return body;
    }

    /// <summary>
    /// Like <see cref="Complete(string?, string?, int)"/>, but when the body is kept as captured (no
    /// content coding, UTF-8 text or binary, all of it kept) and fills most of the rented array, the
    /// array is handed over instead of copied: the body refers to it and <paramref name="lease"/>
    /// owns it (the caller passes it to <see cref="Exchange.HoldBodyArray"/>, whose owner returns it once
    /// nothing reads the body). Otherwise <paramref name="lease"/> is null and the array went back
    /// to the pool. The byte budget's reservation is released either way, as by <see cref="Complete(string?, string?, int)"/>:
    /// a finished exchange is accounted by the exporter's reservation.
    /// </summary>
    public CapturedBody Complete(string? contentType, string? contentEncoding, int maxDecodedBytes, out BodyLease? lease)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        lease = null;

        // A mostly empty array is not worth holding while the exchange waits for export: the
        // exporter's reservation counts the body's length, not the array's (at most an eighth more
        // here). The first array (at most 4 KiB) is held whatever its fill: a small exchange is
        // encoded when it is queued and its arrays go back to the pool at once, and a large one's
        // estimate counts the unused part (Exchange.BodyArraySlack), so the copy (a 1 KiB gRPC
        // message's body, two a call) would only add garbage.
        var buffer = _buffer;
        if (buffer is null || ((long)_length * 8 < (long)buffer.Length * 7 && buffer.Length > InitialSize))
        {
            return Complete(contentType, contentEncoding, maxDecodedBytes);
        }

        var body = BodyCapture.CreateOwned(new ReadOnlyMemory<byte>(buffer, 0, _length), _total, Truncated, contentType, contentEncoding, maxDecodedBytes);
        if (MemoryMarshal.TryGetArray(body.Content, out var segment) && ReferenceEquals(segment.Array, buffer))
        {
            // Kept by reference: the array is the body's now, not the pool's.
            _buffer = null;
            lease = new BodyLease(buffer, _pool);
        }

        Dispose();
        return body;
    }

    /// <summary>Returns the rented array to the pool.</summary>
    public void Dispose()
    {
        _closed = true;
        var buffer = _buffer;
        _buffer = null;

        // The reservation first: the pool keeps the array for reuse only while the budget has room.
        _budget?.Release(_reserved);
        _reserved = 0;
        if (buffer is not null)
        {
            _pool.Return(buffer);
        }
    }

    /// <summary>
    /// Free space to write into directly (growing the array when full and below the limit);
    /// empty when the limit is reached. Used by the decoder to inflate without a second copy.
    /// </summary>
    internal Span<byte> GetFreeSpan()
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        if (_length >= _limit)
        {
            return default;
        }

        if ((_buffer is null || _length == _buffer.Length) && !EnsureCapacity(_length + 1))
        {
            return default;
        }

        return _buffer.AsSpan(_length, Math.Min(_buffer!.Length, _limit) - _length);
    }

    /// <summary>Records <paramref name="count"/> bytes written into <see cref="GetFreeSpan"/>.</summary>
    internal void Advance(int count)
    {
        _length += count;
        _total += count;
    }

    /// <summary>Counts bytes that were seen but not kept (the decoder's probe past the limit).</summary>
    internal void CountDropped(long count) => _total += count;

    // False when the budget refused the larger array (BudgetExceeded is then set; the current one stays).
    [MemberNotNullWhen(true, nameof(_buffer))]
    private bool EnsureCapacity(int needed)
    {
        if (_buffer is not null && _buffer.Length >= needed)
        {
            return true;
        }

        var current = _buffer?.Length ?? 0;
        var size = Math.Max(needed, Math.Max(_buffer is null && _expectedLength > 0 ? _expectedLength : InitialSize, current * 2));
        size = Math.Min(size, _limit);
        var next = _pool.Rent(size);

        // While growing, the old and the new array are both held: reserve the new one in full.
        if (_budget is not null && !_budget.TryReserve(next.Length))
        {
            _pool.Return(next);
            BudgetExceeded = true;
            return false;
        }

        if (_budget is not null)
        {
            _budget.Release(_reserved);
            _reserved = next.Length;
        }

        if (_buffer is not null)
        {
            _buffer.AsSpan(0, _length).CopyTo(next);
            _pool.Return(_buffer);
        }

        _buffer = next;
        return true;
    }
}
