using System.Buffers.Text;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace SpIstio.ProxyBench;

/// <summary>
/// The open-loop HTTP cells' client: GET one URL over at most N kept-alive HTTP/1.1 connections,
/// with a prebuilt request and a response parser that reads only the status line, Content-Length
/// and Connection. The generator shares the two cores with the proxy under test: HttpClient cost
/// ~100 CPU-µs a request there, more than the YARP passthrough it measured (bench/README.md, issue
/// 13 tail), so the cells' p99 measured how saturated the generator made the machine as much as the
/// proxy. A request waits for a free connection when all are busy; its latency still counts from
/// when it was due (OpenLoop).
/// </summary>
internal sealed class RawHttpClient : IAsyncDisposable
{
    // The largest response head the parser accepts; the bench's answers are a few hundred bytes.
    private const int MaxHeadBytes = 16 * 1024;

    private readonly string _host;
    private readonly int _port;
    private readonly byte[] _request;
    private readonly Channel<Connection> _idle;
    private readonly List<Connection> _all = [];

    public RawHttpClient(Uri uri, int connections)
    {
        if (uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new ArgumentException("only http:// URLs: " + uri, nameof(uri));
        }

        _host = uri.Host;
        _port = uri.Port;
        _request = Encoding.ASCII.GetBytes("GET " + uri.PathAndQuery + " HTTP/1.1\r\nHost: " + uri.Authority + "\r\nUser-Agent: ProxyBench\r\n\r\n");
        _idle = Channel.CreateUnbounded<Connection>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
        for (var i = 0; i < connections; i++)
        {
            var connection = new Connection(this);
            _all.Add(connection);
            _idle.Writer.TryWrite(connection);
        }
    }

    /// <summary>One GET on the next free connection; true for a 2xx answer read to its end.</summary>
    public async Task<bool> GetAsync()
    {
        var connection = await _idle.Reader.ReadAsync().ConfigureAwait(false);
        try
        {
            return await connection.RoundTripAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or InvalidDataException or ObjectDisposedException)
        {
            connection.Close();
            return false;
        }
        finally
        {
            _idle.Writer.TryWrite(connection);
        }
    }

    public ValueTask DisposeAsync()
    {
        foreach (var connection in _all)
        {
            connection.Close();
        }

        return ValueTask.CompletedTask;
    }

    private sealed class Connection(RawHttpClient client)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private Socket? _socket;

        public async Task<bool> RoundTripAsync()
        {
            if (_socket is null)
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(client._host, client._port).ConfigureAwait(false);
                _socket = socket;
            }

            await _socket.SendAsync(client._request, SocketFlags.None).ConfigureAwait(false);

            // The head: read until its blank line; what follows it is the body's start.
            var filled = 0;
            int headEnd;
            while ((headEnd = _buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
            {
                if (filled == MaxHeadBytes)
                {
                    throw new InvalidDataException("response head longer than " + MaxHeadBytes + " bytes");
                }

                filled += await ReceiveAsync(_buffer.AsMemory(filled, MaxHeadBytes - filled)).ConfigureAwait(false);
            }

            var head = _buffer.AsSpan(0, headEnd);
            var status = ParseStatus(head);
            var length = HeaderValue(head, "content-length"u8) is { IsEmpty: false } value && Utf8Parser.TryParse(value, out long parsed, out _)
                ? parsed
                : throw new InvalidDataException("the bench's answers carry Content-Length");
            var close = HeaderValue(head, "connection"u8).SequenceEqual("close"u8);

            // The body: counted, not kept.
            var left = length - (filled - (headEnd + 4));
            while (left > 0)
            {
                left -= await ReceiveAsync(_buffer.AsMemory(0, (int)Math.Min(left, _buffer.Length))).ConfigureAwait(false);
            }

            if (close)
            {
                Close();
            }

            return status is >= 200 and < 300;
        }

        public void Close()
        {
            _socket?.Dispose();
            _socket = null;
        }

        private async ValueTask<int> ReceiveAsync(Memory<byte> into)
        {
            var read = await _socket!.ReceiveAsync(into, SocketFlags.None).ConfigureAwait(false);
            return read > 0 ? read : throw new IOException("the server closed the connection");
        }

        private static int ParseStatus(ReadOnlySpan<byte> head) =>
            head.Length >= 12 && head.StartsWith("HTTP/1."u8) && Utf8Parser.TryParse(head.Slice(9, 3), out int status, out _)
                ? status
                : throw new InvalidDataException("not an HTTP/1.x status line");

        // The value of the first header named `name` (lowercase ASCII), trimmed; empty when absent.
        private static ReadOnlySpan<byte> HeaderValue(ReadOnlySpan<byte> head, ReadOnlySpan<byte> name)
        {
            while (head.IndexOf("\r\n"u8) is var end and >= 0)
            {
                head = head[(end + 2)..];
                var line = head.IndexOf("\r\n"u8) is var next and >= 0 ? head[..next] : head;
                var colon = line.IndexOf((byte)':');
                if (colon == name.Length && Ascii.EqualsIgnoreCase(line[..colon], name))
                {
                    return line[(colon + 1)..].Trim((byte)' ');
                }
            }

            return [];
        }
    }
}
