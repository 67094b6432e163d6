using System.Buffers;
using System.Buffers.Binary;
using SpIstio.Core.Capture;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// Splits one direction of a gRPC stream into its length-prefixed messages as the body chunks
/// stream past (a 1-byte compressed flag, a 4-byte big-endian length, the message), keeping each
/// message up to the limits and counting the rest. Not thread-safe; one per stream direction.
/// </summary>
/// <remarks>
/// The framing is in the gRPC over HTTP/2 spec ("Length-Prefixed-Message"). Chunks may cut a frame
/// header or a message anywhere. Past <see cref="GrpcCaptureLimits.MaxMessages"/> or
/// <see cref="GrpcCaptureLimits.MaxStreamBytes"/> the reader still walks the frames, so the count
/// of messages stays right, but keeps no bytes: a stream that never ends costs a bounded amount.
/// </remarks>
public sealed class GrpcFrameReader : IDisposable
{
    private const int HeaderSize = 5;

    private readonly GrpcCaptureLimits _limits;
    private readonly ContentCoding _coding;
    private readonly List<GrpcMessage> _messages = [];
    private readonly byte[] _header = new byte[HeaderSize];
    private int _headerFilled;

    // The message being read: its frame header, where it started, and the bytes kept of it so far.
    private bool _inMessage;
    private bool _compressed;
    private long _length;
    private long _remaining;
    private TimeSpan _offset;
    private byte[]? _payload;
    private bool _pooled;
    private int _payloadLength;
    private int _keepLimit;

    private int _count;
    private long _keptBytes;

    /// <summary>Creates a reader for one stream direction.</summary>
    /// <param name="limits">What may be kept.</param>
    /// <param name="messageEncoding">The stream's <c>grpc-encoding</c> header: compressed messages in gzip or deflate are decompressed for the capture.</param>
    public GrpcFrameReader(GrpcCaptureLimits limits, string? messageEncoding)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _limits = limits;
        _coding = ContentDecoder.Parse(messageEncoding);
    }

    /// <summary>The messages kept so far, in stream order.</summary>
    public IReadOnlyList<GrpcMessage> Messages => _messages;

    /// <summary>Every message seen, kept or not (a message cut by the end of the stream counts).</summary>
    public int MessageCount => _count + (_inMessage ? 1 : 0);

    /// <summary>True when something was not kept: a message cut, a message dropped, or the stream ended inside a frame.</summary>
    public bool Truncated { get; private set; }

    /// <summary>Every body byte seen.</summary>
    public long TotalBytes { get; private set; }

    /// <summary>Feeds the next chunk of the stream body.</summary>
    /// <param name="chunk">The bytes, in order.</param>
    /// <param name="offset">When the chunk arrived, from the start of the exchange.</param>
    public void Append(ReadOnlySpan<byte> chunk, TimeSpan offset)
    {
        TotalBytes += chunk.Length;
        while (!chunk.IsEmpty)
        {
            if (!_inMessage)
            {
                var take = Math.Min(HeaderSize - _headerFilled, chunk.Length);
                if (_headerFilled == 0)
                {
                    _offset = offset;
                }

                chunk[..take].CopyTo(_header.AsSpan(_headerFilled));
                _headerFilled += take;
                chunk = chunk[take..];
                if (_headerFilled == HeaderSize)
                {
                    StartMessage();
                }

                continue;
            }

            var part = (int)Math.Min(_remaining, chunk.Length);
            Keep(chunk[..part]);
            _remaining -= part;
            chunk = chunk[part..];
            if (_remaining == 0)
            {
                EndMessage(cut: false);
            }
        }
    }

    /// <summary>Ends the stream: a message it cut is kept as truncated.</summary>
    public void Complete()
    {
        if (_inMessage)
        {
            EndMessage(cut: true);
        }
        else if (_headerFilled > 0)
        {
            // A frame header cut short: there is no message to keep, only the fact.
            Truncated = true;
            _headerFilled = 0;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        ReturnPayload();
    }

    private void StartMessage()
    {
        _headerFilled = 0;
        _inMessage = true;
        _compressed = _header[0] != 0;
        _length = BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(1));
        _remaining = _length;
        _payloadLength = 0;

        // A message is kept when the stream still has room for one more message; its bytes are
        // bounded by the per-message limit and by what is left of the stream budget.
        var room = _count < _limits.MaxMessages ? _limits.MaxStreamBytes - _keptBytes : 0;
        _keepLimit = (int)Math.Max(0, Math.Min(Math.Min(room, _limits.MaxMessageBytes), _length));
        if (_count >= _limits.MaxMessages)
        {
            Truncated = true;
        }

        if (_remaining == 0)
        {
            EndMessage(cut: false);
        }
    }

    private void Keep(ReadOnlySpan<byte> bytes)
    {
        var room = _keepLimit - _payloadLength;
        if (room <= 0 || bytes.IsEmpty)
        {
            return;
        }

        var take = Math.Min(room, bytes.Length);
        if (_payload is null)
        {
            // A message kept as it is on the wire becomes the captured payload itself: an array of the
            // exact size, handed over without a copy. One that will be inflated is read into a pooled one.
            _pooled = Inflates;
            _payload = _pooled ? ArrayPool<byte>.Shared.Rent(_keepLimit) : new byte[_keepLimit];
        }

        bytes[..take].CopyTo(_payload.AsSpan(_payloadLength));
        _payloadLength += take;
    }

    private void EndMessage(bool cut)
    {
        var index = _count++;
        _inMessage = false;
        var kept = _count <= _limits.MaxMessages;
        var truncated = cut || _payloadLength < _length;
        if (kept)
        {
            var raw = _payload is null ? ReadOnlyMemory<byte>.Empty : _payload.AsMemory(0, _payloadLength);
            var (payload, decoded, decodedTruncated) = Decode(raw, truncated);
            truncated |= decodedTruncated;
            _keptBytes += payload.Length;
            _messages.Add(new GrpcMessage(index, _offset, _compressed, _length, payload, truncated, decoded));
        }

        Truncated |= truncated || !kept;
        ReturnPayload();
    }

    // True when the message being read is compressed in a coding the capture inflates.
    private bool Inflates => _compressed && (_coding is ContentCoding.Gzip or ContentCoding.Deflate);

    private (ReadOnlyMemory<byte> Payload, bool Decoded, bool Truncated) Decode(ReadOnlyMemory<byte> raw, bool inputTruncated)
    {
        if (raw.IsEmpty)
        {
            return (ReadOnlyMemory<byte>.Empty, false, false);
        }

        if (!_pooled)
        {
            // The exact-size array Keep filled: it is the payload now (ReturnPayload only forgets it).
            return (raw, false, false);
        }

        if (!Inflates)
        {
            return (raw.ToArray(), false, false);
        }

        // The decoded message is bounded by the same per-message limit, so a small compressed
        // frame that inflates to gigabytes costs no more than an uncompressed one.
        using var output = ContentDecoder.TryDecode(raw, inputTruncated, _coding, _limits.MaxMessageBytes, out var outputTruncated);
        return output is null ? (raw.ToArray(), false, false) : (output.Captured.ToArray(), true, outputTruncated);
    }

    private void ReturnPayload()
    {
        if (_payload is not null && _pooled)
        {
            ArrayPool<byte>.Shared.Return(_payload);
        }

        _payload = null;
    }
}
