namespace SpIstio.Agent.Proxy;

/// <summary>
/// Base of the proxy's pass-through streams: they wrap a network body, which has no length or
/// position, so every seeking member refuses the same way.
/// </summary>
internal abstract class NonSeekableStream : Stream
{
    public sealed override bool CanSeek => false;

    public sealed override long Length => throw new NotSupportedException();

    public sealed override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public sealed override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public sealed override void SetLength(long value) => throw new NotSupportedException();
}
