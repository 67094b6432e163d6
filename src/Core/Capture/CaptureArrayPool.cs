using System.Buffers;
using System.Numerics;

namespace SpIstio.Core.Capture;

/// <summary>
/// Where the body buffers of one <see cref="CaptureByteBudget"/> are rented and returned: large
/// arrays (<see cref="MinKeptLength"/> and up) coming back are kept for the next body while the
/// budget has room for them, everything else goes to and comes from <see cref="ArrayPool{T}.Shared"/>.
/// Thread-safe.
/// </summary>
/// <remarks>
/// A captured exchange holds its body's array until its export batch is sent (issue 13: the body
/// is sent from it), so at 64 KiB bodies a busy proxy has one to two hundred of them out at once,
/// more than the shared pool keeps of one size (32 a core, and YARP's 64 KiB copy buffers share
/// that size). Every array past that was allocated anew and dropped on return, after it had lived
/// long enough to be promoted: ~23 KB allocated per 64 KiB request in wrk's 32-connection cell and a
/// gen-2 collection every ~800 requests. The budget bounds how many are out at once, so keeping
/// what comes back within the budget's free room (never more than its limit) covers them.
/// </remarks>
public sealed class CaptureArrayPool : ArrayPool<byte>
{
    /// <summary>Arrays shorter than this go back to the shared pool: a small body's array is rarely out for long.</summary>
    public const int MinKeptLength = 16 * 1024;

    private readonly CaptureByteBudget _budget;
    private readonly Lock _lock = new();

    // Kept arrays by size (index: log2 of the length, which the shared pool makes a power of two).
    private readonly Stack<byte[]>?[] _kept = new Stack<byte[]>?[32];
    private long _keptBytes;

    /// <summary>A pool that keeps arrays only while <paramref name="budget"/> has room for them.</summary>
    public CaptureArrayPool(CaptureByteBudget budget)
    {
        ArgumentNullException.ThrowIfNull(budget);
        _budget = budget;
    }

    /// <summary>Bytes of the arrays kept for reuse now.</summary>
    public long KeptBytes => Volatile.Read(ref _keptBytes);

    /// <summary>An array of at least <paramref name="minimumLength"/> bytes: a kept one of the size the shared pool would give, or the shared pool's.</summary>
    public override byte[] Rent(int minimumLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(minimumLength);
        if (minimumLength >= MinKeptLength && minimumLength <= 1 << 30)
        {
            var index = BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)minimumLength));
            lock (_lock)
            {
                if (_kept[index] is { Count: > 0 } stack)
                {
                    var array = stack.Pop();
                    _keptBytes -= array.Length;
                    return array;
                }
            }
        }

        return Shared.Rent(minimumLength);
    }

    /// <summary>
    /// Keeps <paramref name="array"/> when it is large, its length a power of two, and the budget's
    /// reservations and the arrays kept leave room for it under the budget's limit; otherwise hands it to the shared pool.
    /// </summary>
    public override void Return(byte[] array, bool clearArray = false)
    {
        ArgumentNullException.ThrowIfNull(array);
        var length = array.Length;
        if (length >= MinKeptLength && BitOperations.IsPow2(length))
        {
            if (clearArray)
            {
                Array.Clear(array);
            }

            lock (_lock)
            {
                if (_budget.Held + _keptBytes + length <= _budget.Limit)
                {
                    (_kept[BitOperations.Log2((uint)length)] ??= new Stack<byte[]>()).Push(array);
                    _keptBytes += length;
                    return;
                }
            }

            Shared.Return(array);
            return;
        }

        Shared.Return(array, clearArray);
    }

    /// <summary>Lets every kept array go to the GC (not to the shared pool, which would keep it); returns their bytes.</summary>
    public long Trim()
    {
        lock (_lock)
        {
            var trimmed = _keptBytes;
            Array.Clear(_kept);
            _keptBytes = 0;
            return trimmed;
        }
    }
}
