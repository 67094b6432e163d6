namespace SpIstio.Agent.Proxy;

/// <summary>
/// The request body as the forwarder reads it: every read is passed through unchanged and its
/// bytes are copied into the exchange's bounded capture buffer on the way.
/// </summary>
internal sealed class RequestTeeStream : NonSeekableStream
{
    private readonly Stream _inner;
    private readonly ProxyExchange _exchange;

    public RequestTeeStream(Stream inner, ProxyExchange exchange)
    {
        _inner = inner;
        _exchange = exchange;
    }

    public override bool CanRead => true;

    public override bool CanWrite => false;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (read > 0)
        {
            _exchange.AppendRequest(buffer.Span[..read]);
        }

        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = _inner.Read(buffer);
        if (read > 0)
        {
            _exchange.AppendRequest(buffer[..read]);
        }

        return read;
    }

    public override void Flush()
    {
    }

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>
/// The response body as the forwarder writes it to the client: every write (and flush) goes to
/// the real response stream at once, so streamed responses are not delayed, and the bytes are
/// copied into the exchange's bounded capture buffer after the write succeeded.
/// </summary>
internal sealed class ResponseTeeStream : NonSeekableStream
{
    private readonly Stream _inner;
    private readonly ProxyExchange _exchange;

    public ResponseTeeStream(Stream inner, ProxyExchange exchange)
    {
        _inner = inner;
        _exchange = exchange;
    }

    public override bool CanRead => false;

    public override bool CanWrite => true;

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        _exchange.AppendResponse(buffer.Span);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _inner.Write(buffer);
        _exchange.AppendResponse(buffer);
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);

    public override void Flush() => _inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>
/// The client side of an upgraded connection (WebSocket and other HTTP/1.1 upgrades): bytes the
/// client sends are captured as the request body, bytes sent to it as the response body, both up
/// to their limits, while the tunnel carries everything unchanged.
/// </summary>
internal sealed class UpgradedTeeStream : NonSeekableStream
{
    private readonly Stream _inner;
    private readonly ProxyExchange _exchange;

    public UpgradedTeeStream(Stream inner, ProxyExchange exchange)
    {
        _inner = inner;
        _exchange = exchange;
    }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (read > 0)
        {
            _exchange.AppendRequest(buffer.Span[..read]);
        }

        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count)
    {
        var read = _inner.Read(buffer, offset, count);
        if (read > 0)
        {
            _exchange.AppendRequest(buffer.AsSpan(offset, read));
        }

        return read;
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        _exchange.AppendResponse(buffer.Span);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count)
    {
        _inner.Write(buffer, offset, count);
        _exchange.AppendResponse(buffer.AsSpan(offset, count));
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);

    public override void Flush() => _inner.Flush();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync() => _inner.DisposeAsync();
}
