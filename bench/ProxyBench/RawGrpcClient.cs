using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Google.Protobuf;

namespace SpIstio.ProxyBench;

/// <summary>
/// The open-loop gRPC cell's client: unary calls of one prebuilt message over one h2c connection
/// (prior knowledge), with a prebuilt request head and a response reader that looks only at the
/// trailers' <c>grpc-status</c> and the echoed message's length. The generator shares the two cores
/// with the proxy under test, and grpc-dotnet's client cost 2.5–3× the YARP passthrough's CPU a call
/// in the open-loop cell (bench/README.md, issue 18 "grpc, round 7"), so that cell measured how close
/// the generator brought the machine to saturation as much as the proxy — as `RawHttpClient` does for
/// the HTTP cells. What goes on the wire is what grpc-dotnet sends for the bench's call (the same
/// headers, a 30 s <c>grpc-timeout</c>, one DATA frame up to 16 KiB); calls past the server's
/// SETTINGS_MAX_CONCURRENT_STREAMS, or past its connection flow-control window, wait in the client,
/// as grpc-dotnet's do on its one connection.
/// </summary>
/// <remarks>
/// Only what the bench needs of HTTP/2 (RFC 9113): no TLS, no server push, no priorities, no
/// compression. The client announces SETTINGS_HEADER_TABLE_SIZE 0, so the server's HPACK encoder
/// (RFC 7541) may not use its dynamic table and <c>grpc-status</c> arrives as a literal; Kestrel never
/// Huffman-codes, and a Huffman-coded or dynamically indexed field the reader needs fails the call
/// loudly instead of being misread. Receive windows are the largest allowed and topped up as read.
/// </remarks>
internal sealed class RawGrpcClient : IAsyncDisposable
{
    private const int FrameHeaderBytes = 9;
    private const int MaxDataFrameBytes = 16 * 1024; // SETTINGS_MAX_FRAME_SIZE's initial value, which every peer accepts
    private const int MaxWindow = int.MaxValue;
    private const byte Data = 0, Headers = 1, RstStream = 3, Settings = 4, Ping = 6, GoAway = 7, WindowUpdate = 8, Continuation = 9;
    private const byte EndStreamFlag = 1, AckFlag = 1, EndHeadersFlag = 4, PaddedFlag = 8, PriorityFlag = 0x20;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    // The call's HEADERS and DATA frames, built once; the stream id is patched in under the write lock.
    private readonly byte[] _callFrames;
    private readonly int[] _streamIdOffsets;
    private readonly int _messageBytes;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _lock = new();
    private readonly Dictionary<int, Call> _calls = [];
    private readonly Queue<TaskCompletionSource> _admissions = new();
    private readonly TaskCompletionSource _settingsReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _readLoop;
    private int _nextStreamId = 1;
    private int _open;
    private int _maxStreams = int.MaxValue;
    private long _sendWindow = 65_535;
    private Exception? _failure;
    private bool _disposing;

    private RawGrpcClient(Socket socket, string authority, string path, IMessage message)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        var payload = message.ToByteArray();
        var framed = new byte[5 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(framed.AsSpan(1), payload.Length);
        payload.CopyTo(framed, 5);
        _messageBytes = framed.Length;
        (_callFrames, _streamIdOffsets) = BuildCallFrames(RequestHead(authority, path), framed);
        _readLoop = Task.Run(ReadLoopAsync);
    }

    /// <summary>Connects to <paramref name="uri"/> (http://host:port) for calls of <paramref name="message"/> to <paramref name="path"/>.</summary>
    public static async Task<RawGrpcClient> ConnectAsync(Uri uri, string path, IMessage message)
    {
        if (uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new ArgumentException("only http:// (h2c) URLs: " + uri, nameof(uri));
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(uri.Host, uri.Port).ConfigureAwait(false);
        // Preface, our SETTINGS (no dynamic table for the server's encoder, no push, the largest
        // stream window) and the largest connection window.
        var start = new List<byte>(Encoding.ASCII.GetBytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        var settings = new byte[18];
        WriteSetting(settings.AsSpan(0), 1, 0);
        WriteSetting(settings.AsSpan(6), 2, 0);
        WriteSetting(settings.AsSpan(12), 4, MaxWindow);
        start.AddRange(Frame(Settings, 0, 0, settings));
        start.AddRange(Frame(WindowUpdate, 0, 0, Increment(MaxWindow - 65_535)));
        await socket.SendAsync(start.ToArray()).ConfigureAwait(false);
        var client = new RawGrpcClient(socket, uri.Authority, path, message);
        await client._settingsReceived.Task.ConfigureAwait(false);
        return client;
    }

    /// <summary>
    /// One unary call: its <c>grpc-status</c> (−1 when none came: a reset stream, a lost connection,
    /// a wrong echo length) and <c>grpc-message</c>.
    /// </summary>
    public async Task<(int Status, string? Message)> CallAsync()
    {
        TaskCompletionSource? admission = null;
        lock (_lock)
        {
            if (_failure is not null)
            {
                return (-1, null);
            }

            if (_admissions.Count > 0 || !TryAdmit())
            {
                admission = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _admissions.Enqueue(admission);
            }
        }

        if (admission is not null)
        {
            await admission.Task.ConfigureAwait(false);
        }

        var call = new Call();
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            int id;
            lock (_lock)
            {
                if (_failure is not null)
                {
                    return (-1, null);
                }

                // Stream ids must rise in the order their HEADERS go out: taken under the write lock.
                id = _nextStreamId;
                _nextStreamId += 2;
                _calls.Add(id, call);
            }

            foreach (var offset in _streamIdOffsets)
            {
                BinaryPrimitives.WriteInt32BigEndian(_callFrames.AsSpan(offset), id);
            }

            await _stream.WriteAsync(_callFrames).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            Fail(ex);
        }
        finally
        {
            _writeLock.Release();
        }

        return await call.Done.Task.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        Volatile.Write(ref _disposing, true);
        await _stream.DisposeAsync().ConfigureAwait(false);
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or InvalidDataException)
        {
            // The read loop ends with the socket; calls still in flight were failed by Fail.
        }
    }

    // Under _lock: a stream and the message's bytes of the connection window, if both are free.
    private bool TryAdmit()
    {
        if (_open >= _maxStreams || _sendWindow < _messageBytes)
        {
            return false;
        }

        _open++;
        _sendWindow -= _messageBytes;
        return true;
    }

    // Lets waiting calls in, in order, while streams and window allow.
    private void Pump()
    {
        List<TaskCompletionSource>? admitted = null;
        lock (_lock)
        {
            while (_admissions.Count > 0 && TryAdmit())
            {
                (admitted ??= []).Add(_admissions.Dequeue());
            }
        }

        if (admitted is not null)
        {
            foreach (var admission in admitted)
            {
                admission.SetResult();
            }
        }
    }

    private void Complete(int streamId, int status, string? message = null)
    {
        Call? call;
        lock (_lock)
        {
            if (!_calls.Remove(streamId, out call))
            {
                return;
            }

            _open--;
        }

        Pump();
        call.Done.TrySetResult(status == 0 && call.ReceivedBytes != _messageBytes ? (-1, "echo of the wrong length") : (status, message));
    }

    private void Fail(Exception ex)
    {
        List<Call> calls;
        List<TaskCompletionSource> admissions;
        bool first;
        lock (_lock)
        {
            first = _failure is null;
            _failure ??= ex;
            calls = [.. _calls.Values];
            _calls.Clear();
            admissions = [.. _admissions];
            _admissions.Clear();
        }

        if (first && !Volatile.Read(ref _disposing))
        {
            Console.Error.WriteLine("raw gRPC client: connection failed: " + ex.Message);
        }

        _settingsReceived.TrySetException(ex);
        foreach (var call in calls)
        {
            call.Done.TrySetResult((-1, ex.Message));
        }

        // Their calls see _failure and answer -1.
        foreach (var admission in admissions)
        {
            admission.TrySetResult();
        }
    }

    private async Task ReadLoopAsync()
    {
        var buffer = new byte[4 * MaxDataFrameBytes + FrameHeaderBytes];
        int start = 0, end = 0;
        long unacknowledged = 0;
        // A header block split over CONTINUATION frames, and whether its HEADERS ended the stream.
        var block = new List<byte>();
        var blockEndsStream = false;
        try
        {
            while (true)
            {
                while (end - start < FrameHeaderBytes)
                {
                    (start, end) = await FillAsync(buffer, start, end).ConfigureAwait(false);
                }

                var length = (buffer[start] << 16) | (buffer[start + 1] << 8) | buffer[start + 2];
                var type = buffer[start + 3];
                var flags = buffer[start + 4];
                var streamId = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(start + 5)) & int.MaxValue;
                if (length > buffer.Length - FrameHeaderBytes)
                {
                    throw new InvalidDataException($"a {length}-byte frame: over the SETTINGS_MAX_FRAME_SIZE this client announced");
                }

                while (end - start < FrameHeaderBytes + length)
                {
                    (start, end) = await FillAsync(buffer, start, end).ConfigureAwait(false);
                }

                var payload = buffer.AsSpan(start + FrameHeaderBytes, length);
                start += FrameHeaderBytes + length;
                switch (type)
                {
                    case Data:
                        unacknowledged += length;
                        AddReceived(streamId, length - Padding(payload, flags));
                        if ((flags & EndStreamFlag) != 0)
                        {
                            Complete(streamId, -1, "no trailers"); // a gRPC response ends with trailers, not with data
                        }

                        break;
                    case Headers:
                    case Continuation:
                        if (type == Headers)
                        {
                            block.Clear();
                            blockEndsStream = (flags & EndStreamFlag) != 0;
                            var skip = (flags & PaddedFlag) != 0 ? 1 : 0;
                            skip += (flags & PriorityFlag) != 0 ? 5 : 0;
                            payload = payload[skip..(length - Padding(payload, flags))];
                        }

                        block.AddRange(payload);
                        if ((flags & EndHeadersFlag) != 0 && blockEndsStream)
                        {
                            var (status, message) = GrpcStatusOf(block.ToArray());
                            Complete(streamId, status, message);
                        }

                        break;
                    case RstStream:
                        Complete(streamId, -1, "RST_STREAM " + BinaryPrimitives.ReadUInt32BigEndian(payload));
                        break;
                    case Settings when (flags & AckFlag) == 0:
                        ApplySettings(payload);
                        await WriteFrameAsync(Settings, AckFlag, 0, []).ConfigureAwait(false);
                        _settingsReceived.TrySetResult();
                        Pump();
                        break;
                    case Ping when (flags & AckFlag) == 0:
                        await WriteFrameAsync(Ping, AckFlag, 0, payload.ToArray()).ConfigureAwait(false);
                        break;
                    case WindowUpdate when streamId == 0:
                        lock (_lock)
                        {
                            _sendWindow += BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue;
                        }

                        Pump();
                        break;
                    case GoAway:
                        throw new IOException("the server sent GOAWAY");
                }

                // Our connection window: topped up once a quarter of it has been read.
                if (unacknowledged > MaxWindow / 4)
                {
                    await WriteFrameAsync(WindowUpdate, 0, 0, Increment((int)unacknowledged)).ConfigureAwait(false);
                    unacknowledged = 0;
                }
            }
        }
        catch (Exception ex)
        {
            Fail(ex);
            throw;
        }
    }

    private async Task<(int Start, int End)> FillAsync(byte[] buffer, int start, int end)
    {
        if (start > 0)
        {
            Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
            end -= start;
            start = 0;
        }

        var read = await _stream.ReadAsync(buffer.AsMemory(end)).ConfigureAwait(false);
        if (read == 0)
        {
            throw new IOException("the server closed the connection");
        }

        return (start, end + read);
    }

    private void AddReceived(int streamId, int bytes)
    {
        lock (_lock)
        {
            if (_calls.TryGetValue(streamId, out var call))
            {
                call.ReceivedBytes += bytes;
            }
        }
    }

    private void ApplySettings(ReadOnlySpan<byte> payload)
    {
        for (var i = 0; i + 6 <= payload.Length; i += 6)
        {
            var id = BinaryPrimitives.ReadUInt16BigEndian(payload[i..]);
            var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(i + 2)..]);
            if (id == 3)
            {
                lock (_lock)
                {
                    _maxStreams = (int)Math.Min(value, int.MaxValue);
                }
            }
            else if (id == 4 && value < _messageBytes)
            {
                // One message is sent whole without waiting for its stream's window.
                throw new InvalidDataException($"the server's stream window ({value} B) is smaller than the bench's message ({_messageBytes} B)");
            }
        }
    }

    private async Task WriteFrameAsync(byte type, byte flags, int streamId, byte[] payload)
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(Frame(type, flags, streamId, payload)).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static int Padding(ReadOnlySpan<byte> payload, byte flags) => (flags & PaddedFlag) != 0 ? payload[0] + 1 : 0;

    // The grpc-status (-1 without one) and grpc-message of a response's last header block.
    private static (int Status, string? Message) GrpcStatusOf(ReadOnlySpan<byte> block)
    {
        var status = -1;
        string? message = null;
        var i = 0;
        while (i < block.Length)
        {
            var first = block[i];
            if ((first & 0x80) != 0)
            {
                // Indexed field: the static table (1-61) holds no grpc-status; the dynamic table is off.
                if (ReadInteger(block, ref i, 7) > 61)
                {
                    throw new InvalidDataException("a dynamic-table index although SETTINGS_HEADER_TABLE_SIZE is 0");
                }

                continue;
            }

            if ((first & 0xE0) == 0x20)
            {
                ReadInteger(block, ref i, 5); // dynamic table size update (to 0)
                continue;
            }

            var nameIndex = ReadInteger(block, ref i, (first & 0xC0) == 0x40 ? 6 : 4);
            var name = nameIndex == 0 && ReadString(block, ref i, out var literal) ? literal : default;
            var plain = ReadString(block, ref i, out var value);
            if (name.SequenceEqual("grpc-status"u8))
            {
                status = plain && value.Length is > 0 and <= 2 && int.TryParse(value, out var code) ? code : throw new InvalidDataException("an unreadable grpc-status");
            }
            else if (name.SequenceEqual("grpc-message"u8) && plain)
            {
                message = Encoding.UTF8.GetString(value);
            }
        }

        return (status, message);
    }

    // RFC 7541 §5.1.
    private static int ReadInteger(ReadOnlySpan<byte> block, ref int i, int prefixBits)
    {
        var max = (1 << prefixBits) - 1;
        var value = block[i++] & max;
        if (value < max)
        {
            return value;
        }

        for (var shift = 0; ; shift += 7)
        {
            var next = block[i++];
            value += (next & 0x7F) << shift;
            if ((next & 0x80) == 0)
            {
                return value;
            }
        }
    }

    // RFC 7541 §5.2; false for a Huffman-coded string, which this reader does not decode.
    private static bool ReadString(ReadOnlySpan<byte> block, ref int i, out ReadOnlySpan<byte> text)
    {
        var huffman = (block[i] & 0x80) != 0;
        var length = ReadInteger(block, ref i, 7);
        text = block.Slice(i, length);
        i += length;
        return !huffman || length == 0;
    }

    // The request head grpc-dotnet sends for the bench's call, as HPACK literals that never touch
    // the server's dynamic table (static-table names where there is one).
    private static byte[] RequestHead(string authority, string path)
    {
        var head = new List<byte> { 0x83, 0x86 }; // :method POST, :scheme http
        Literal(head, 4, null, path);
        Literal(head, 1, null, authority);
        Literal(head, 31, null, "application/grpc");
        Literal(head, 58, null, "grpc-dotnet/2 (ProxyBench raw client)");
        Literal(head, 0, "te", "trailers");
        Literal(head, 0, "grpc-accept-encoding", "identity,gzip,deflate");
        Literal(head, 0, "grpc-timeout", "30S");
        return [.. head];
    }

    // Literal header field without indexing (RFC 7541 §6.2.2), name by static index or literal.
    private static void Literal(List<byte> head, int nameIndex, string? name, string value)
    {
        WriteInteger(head, nameIndex, 4, 0x00);
        if (name is not null)
        {
            WriteInteger(head, name.Length, 7, 0x00);
            head.AddRange(Encoding.ASCII.GetBytes(name));
        }

        WriteInteger(head, value.Length, 7, 0x00);
        head.AddRange(Encoding.ASCII.GetBytes(value));
    }

    private static void WriteInteger(List<byte> output, int value, int prefixBits, byte flags)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            output.Add((byte)(flags | value));
            return;
        }

        output.Add((byte)(flags | max));
        for (value -= max; value >= 0x80; value >>= 7)
        {
            output.Add((byte)((value & 0x7F) | 0x80));
        }

        output.Add((byte)value);
    }

    // HEADERS (END_HEADERS), then the framed message in DATA frames of up to 16 KiB, the last with
    // END_STREAM; and where each frame's stream id goes.
    private static (byte[] Frames, int[] StreamIdOffsets) BuildCallFrames(byte[] head, byte[] message)
    {
        var frames = new List<byte>();
        var offsets = new List<int>();
        offsets.Add(frames.Count + 5);
        frames.AddRange(Frame(Headers, EndHeadersFlag, 0, head));
        for (var sent = 0; sent < message.Length; sent += MaxDataFrameBytes)
        {
            var chunk = Math.Min(MaxDataFrameBytes, message.Length - sent);
            offsets.Add(frames.Count + 5);
            frames.AddRange(Frame(Data, sent + chunk == message.Length ? EndStreamFlag : (byte)0, 0, message[sent..(sent + chunk)]));
        }

        return ([.. frames], [.. offsets]);
    }

    private static byte[] Frame(byte type, byte flags, int streamId, byte[] payload)
    {
        var frame = new byte[FrameHeaderBytes + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), streamId);
        payload.CopyTo(frame, FrameHeaderBytes);
        return frame;
    }

    private static void WriteSetting(Span<byte> destination, ushort id, int value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, id);
        BinaryPrimitives.WriteInt32BigEndian(destination[2..], value);
    }

    private static byte[] Increment(int increment)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, increment);
        return bytes;
    }

    private sealed class Call
    {
        public readonly TaskCompletionSource<(int Status, string? Message)> Done = new();

        public int ReceivedBytes;
    }
}
