namespace SpIstio.Agent.Proxy;

/// <summary>
/// A request body that was partly (or wholly) read ahead for a cache lookup: the buffered bytes
/// first, then whatever the original stream still holds (none when the whole body was buffered).
/// </summary>
internal sealed class PrefixedStream : NonSeekableStream
{
    private readonly ReadOnlyMemory<byte> _prefix;
    private readonly Stream? _rest;
    private int _position;

    public PrefixedStream(ReadOnlyMemory<byte> prefix, Stream? rest)
    {
        _prefix = prefix;
        _rest = rest;
    }

    public override bool CanRead => true;

    public override bool CanWrite => false;

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position < _prefix.Length)
        {
            return ValueTask.FromResult(CopyPrefix(buffer.Span));
        }

        return _rest is null ? ValueTask.FromResult(0) : _rest.ReadAsync(buffer, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_position < _prefix.Length)
        {
            return CopyPrefix(buffer);
        }

        return _rest?.Read(buffer) ?? 0;
    }

    public override void Flush()
    {
    }

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int CopyPrefix(Span<byte> destination)
    {
        var count = Math.Min(destination.Length, _prefix.Length - _position);
        _prefix.Span.Slice(_position, count).CopyTo(destination);
        _position += count;
        return count;
    }
}
