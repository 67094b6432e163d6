using System.Buffers;

namespace SpIstio.Core.Streams;

/// <summary>
/// A pooled byte buffer that grows up to a cap and is reused from one event to the next, so a
/// stream of small events rents one small array and a long stream holds no more than the cap.
/// </summary>
internal sealed class GrowableBuffer : IDisposable
{
    private byte[]? _array;

    public int Length { get; private set; }

    public Span<byte> Span => _array is null ? default : _array.AsSpan(0, Length);

    /// <summary>Appends what fits under <paramref name="cap"/>; returns how many bytes were dropped.</summary>
    public int Append(ReadOnlySpan<byte> bytes, int cap)
    {
        var take = Math.Max(0, Math.Min(bytes.Length, cap - Length));
        if (take > 0)
        {
            Ensure(Length + take);
            bytes[..take].CopyTo(_array.AsSpan(Length));
            Length += take;
        }

        return bytes.Length - take;
    }

    public void Clear() => Length = 0;

    public void Dispose()
    {
        if (_array is not null)
        {
            ArrayPool<byte>.Shared.Return(_array);
            _array = null;
        }

        Length = 0;
    }

    private void Ensure(int size)
    {
        if (_array is not null && _array.Length >= size)
        {
            return;
        }

        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(size, Math.Min(Math.Max(256, (_array?.Length ?? 0) * 2), int.MaxValue / 2)));
        if (_array is not null)
        {
            _array.AsSpan(0, Length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_array);
        }

        _array = larger;
    }
}
