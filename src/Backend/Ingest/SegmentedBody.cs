using System.Buffers;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ingest;

/// <summary>
/// A request body read into pooled segments of one size and parsed as a <see cref="ReadOnlySequence{T}"/>.
/// One array the size of the body, grown by doubling, came from the shared array pool in sizes up to
/// the 16 MiB body limit, and the pool keeps a returned array until a gen-2 collection finds it a
/// minute unused — which an idle backend never runs: each burst of large requests left arrays of up
/// to 16 MiB resident for good, as many as came at once. The pool keeps at most 32 arrays of one
/// size a core (and one a thread), so segments bound that to about 8 MiB a core.
/// </summary>
internal sealed class SegmentedBody : IDisposable
{
    /// <summary>
    /// Bytes a segment: large-object sized, so a request's segments are never copied by a
    /// collection (64 KiB ones, small objects, were garbage the pool could not hold when eight
    /// 2.4 MB requests came at once, and raised the bench's peak RSS by ~17 MiB).
    /// </summary>
    internal const int SegmentBytes = 256 * 1024;

    private readonly List<byte[]> _segments = [];
    private int _lastUsed;

    /// <summary>Bytes written so far.</summary>
    public int Length { get; private set; }

    /// <summary>Room for up to <paramref name="atMost"/> more bytes (at least one), in the last segment or a new one.</summary>
    public Memory<byte> GetMemory(int atMost)
    {
        if (_segments.Count == 0 || _lastUsed == _segments[^1].Length)
        {
            _segments.Add(ScratchArray<byte>.Rent(SegmentBytes));
            _lastUsed = 0;
        }

        var last = _segments[^1];
        return last.AsMemory(_lastUsed, Math.Max(1, Math.Min(atMost, last.Length - _lastUsed)));
    }

    /// <summary>Counts <paramref name="count"/> bytes written into the memory of <see cref="GetMemory"/>.</summary>
    public void Advance(int count)
    {
        _lastUsed += count;
        Length += count;
    }

    /// <summary>The bytes written, valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySequence<byte> AsSequence()
    {
        if (_segments.Count <= 1)
        {
            return _segments.Count == 0 ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(_segments[0], 0, _lastUsed);
        }

        var first = new Segment(_segments[0], _segments[0].Length, 0);
        var last = first;
        for (int i = 1; i < _segments.Count; i++)
        {
            last = last.Append(_segments[i], i == _segments.Count - 1 ? _lastUsed : _segments[i].Length);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    public void Dispose()
    {
        foreach (var segment in _segments)
        {
            ScratchArray<byte>.Return(segment);
        }

        _segments.Clear();
        _lastUsed = 0;
        Length = 0;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] array, int length, long runningIndex)
        {
            Memory = array.AsMemory(0, length);
            RunningIndex = runningIndex;
        }

        public Segment Append(byte[] array, int length)
        {
            var next = new Segment(array, length, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
