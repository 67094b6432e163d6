using System.Buffers.Binary;
using System.Text;

namespace SpIstio.Core.Streams;

/// <summary>
/// Follows both directions of a WebSocket connection (RFC 6455 §5) as its bytes pass and turns
/// the frames into messages: a text or binary message is one entry however many frames it was
/// fragmented into; close, ping and pong frames are entries of their own (they may arrive in the
/// middle of a fragmented message, §5.4). Payloads are unmasked (§5.3) and kept up to the limits;
/// past them messages are counted, not kept. Not thread-safe; one per connection.
/// </summary>
/// <remarks>
/// A direction that breaks the framing rules (a reserved opcode, a fragmented or oversized control
/// frame, a continuation with nothing to continue, a 64-bit length with its top bit set) is no
/// longer followed: the capture is marked truncated and the bytes still pass untouched. Messages
/// compressed by <c>permessage-deflate</c> (RFC 7692; RSV1 set on the first frame) are kept as
/// their compressed bytes and flagged, not inflated.
/// </remarks>
public sealed class WebSocketFrameReader : IDisposable
{
    private readonly StreamCaptureLimits _limits;
    private readonly List<WebSocketMessage> _messages = [];
    private readonly DirectionReader _send;
    private readonly DirectionReader _receive;
    private int _count;
    private long _keptBytes;

    /// <summary>Creates a reader for one connection.</summary>
    public WebSocketFrameReader(StreamCaptureLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _limits = limits;
        _send = new DirectionReader(this, WebSocketDirection.Send);
        _receive = new DirectionReader(this, WebSocketDirection.Receive);
    }

    /// <summary>The messages kept so far, in the order they completed.</summary>
    public IReadOnlyList<WebSocketMessage> Messages => _messages;

    /// <summary>Every message and control frame seen, kept or not.</summary>
    public int MessageCount => _count;

    /// <summary>True when something was not kept, a direction broke the framing, or the capture stopped inside a message.</summary>
    public bool Truncated { get; private set; }

    /// <summary>Every byte seen, both directions.</summary>
    public long TotalBytes { get; private set; }

    /// <summary>True once both sides sent their close frame: the closing handshake is done (§7.1.2).</summary>
    public bool Closed => _send.CloseSeen && _receive.CloseSeen;

    /// <summary>Feeds the next bytes of one direction.</summary>
    /// <param name="direction"><see cref="WebSocketDirection.Send"/> for what the client sends.</param>
    /// <param name="bytes">The bytes, in order.</param>
    /// <param name="offset">When they passed, from the start of the exchange.</param>
    public void Append(WebSocketDirection direction, ReadOnlySpan<byte> bytes, TimeSpan offset)
    {
        TotalBytes += bytes.Length;
        (direction == WebSocketDirection.Send ? _send : _receive).Append(bytes, offset);
    }

    /// <summary>Ends the capture: a message still being read is kept as truncated.</summary>
    public void Complete()
    {
        _send.Complete();
        _receive.Complete();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _send.Dispose();
        _receive.Dispose();
    }

    private void Add(WebSocketDirection direction, WebSocketOpcode opcode, TimeSpan offset, long size, ReadOnlySpan<byte> payload, bool truncated, bool compressed)
    {
        var index = _count++;
        if (_messages.Count >= _limits.MaxEvents)
        {
            Truncated = true;
            return;
        }

        // Both directions draw on one stream budget: a message started while the other direction's
        // message was still open may have been allowed more than is left.
        var room = (int)Math.Max(0, Math.Min(payload.Length, _limits.MaxStreamBytes - _keptBytes));
        if (room < payload.Length)
        {
            payload = payload[..room];
            truncated = true;
        }

        _keptBytes += payload.Length;
        Truncated |= truncated;
        _messages.Add(new WebSocketMessage(index, offset, direction, opcode, size, payload.ToArray(), truncated, compressed));
    }

    private void MarkTruncated() => Truncated = true;

    private int KeepLimit() => _limits.KeepLimit(_messages.Count, _keptBytes);

    /// <summary>The frame parser of one direction.</summary>
    private sealed class DirectionReader : IDisposable
    {
        private const int MaxControlPayload = 125;

        private readonly WebSocketFrameReader _owner;
        private readonly WebSocketDirection _direction;
        private readonly byte[] _header = new byte[14];
        private readonly byte[] _mask = new byte[4];
        private readonly byte[] _control = new byte[MaxControlPayload];
        private readonly GrowableBuffer _message = new();

        // The frame being read.
        private int _headerFilled;
        private int _headerNeeded = 2;
        private bool _inPayload;
        private long _remaining;
        private long _payloadPosition;
        private bool _masked;
        private bool _final;
        private int _opcode;
        private TimeSpan _frameOffset;
        private int _controlLength;
        private long _controlSize;

        // The data message being assembled (it may span frames).
        private bool _inMessage;
        private WebSocketOpcode _messageOpcode;
        private TimeSpan _messageOffset;
        private long _messageSize;
        private int _messageKeep;
        private bool _messageTruncated;
        private bool _messageCompressed;

        private bool _failed;

        public DirectionReader(WebSocketFrameReader owner, WebSocketDirection direction)
        {
            _owner = owner;
            _direction = direction;
        }

        public bool CloseSeen { get; private set; }

        public void Append(ReadOnlySpan<byte> bytes, TimeSpan offset)
        {
            while (!bytes.IsEmpty && !_failed && !CloseSeen)
            {
                if (!_inPayload)
                {
                    if (_headerFilled == 0)
                    {
                        _frameOffset = offset;
                    }

                    var take = Math.Min(_headerNeeded - _headerFilled, bytes.Length);
                    bytes[..take].CopyTo(_header.AsSpan(_headerFilled));
                    _headerFilled += take;
                    bytes = bytes[take..];
                    if (_headerFilled == 2)
                    {
                        var length7 = _header[1] & 0x7F;
                        _headerNeeded = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((_header[1] & 0x80) != 0 ? 4 : 0);
                    }

                    if (_headerFilled == _headerNeeded)
                    {
                        StartFrame();
                    }

                    continue;
                }

                var part = (int)Math.Min(_remaining, bytes.Length);
                Keep(bytes[..part]);
                _remaining -= part;
                _payloadPosition += part;
                bytes = bytes[part..];
                if (_remaining == 0)
                {
                    EndFrame();
                }
            }
        }

        public void Complete()
        {
            if (_inPayload && IsControl(_opcode))
            {
                // Cut inside a control frame: there is nothing whole to keep, only the fact.
                _owner.MarkTruncated();
            }

            if (_inMessage)
            {
                _messageTruncated = true;
                EmitMessage();
            }
            else if (_headerFilled > 0 && !_inPayload)
            {
                _owner.MarkTruncated();
            }

            _inPayload = false;
            _headerFilled = 0;
            _headerNeeded = 2;
        }

        public void Dispose() => _message.Dispose();

        private static bool IsControl(int opcode) => opcode >= 8;

        private void StartFrame()
        {
            _headerFilled = 0;
            _headerNeeded = 2;
            _final = (_header[0] & 0x80) != 0;
            var compressed = (_header[0] & 0x40) != 0;
            _opcode = _header[0] & 0x0F;
            _masked = (_header[1] & 0x80) != 0;
            var length7 = _header[1] & 0x7F;
            var at = 2;
            long length = length7;
            if (length7 == 126)
            {
                length = BinaryPrimitives.ReadUInt16BigEndian(_header.AsSpan(2));
                at = 4;
            }
            else if (length7 == 127)
            {
                var length64 = BinaryPrimitives.ReadUInt64BigEndian(_header.AsSpan(2));
                if (length64 > long.MaxValue)
                {
                    Fail();
                    return;
                }

                length = (long)length64;
                at = 10;
            }

            if (_masked)
            {
                _header.AsSpan(at, 4).CopyTo(_mask);
            }

            var valid = _opcode switch
            {
                0 => _inMessage,
                1 or 2 => !_inMessage,
                8 or 9 or 10 => _final && length <= MaxControlPayload,
                _ => false,
            };
            if (!valid)
            {
                Fail();
                return;
            }

            _remaining = length;
            _payloadPosition = 0;
            _inPayload = true;
            if (IsControl(_opcode))
            {
                _controlLength = 0;
                _controlSize = length;
            }
            else if (_opcode != 0)
            {
                _inMessage = true;
                _messageOpcode = (WebSocketOpcode)_opcode;
                _messageOffset = _frameOffset;
                _messageSize = 0;
                _messageKeep = _owner.KeepLimit();
                _messageTruncated = false;
                _messageCompressed = compressed;
                _message.Clear();
            }

            if (_remaining == 0)
            {
                EndFrame();
            }
        }

        private void Keep(ReadOnlySpan<byte> bytes)
        {
            if (IsControl(_opcode))
            {
                var start = _controlLength;
                bytes.CopyTo(_control.AsSpan(start));
                _controlLength += bytes.Length;
                Unmask(_control.AsSpan(start, bytes.Length), _payloadPosition);
                return;
            }

            _messageSize += bytes.Length;
            var before = _message.Length;
            if (_message.Append(bytes, _messageKeep) > 0)
            {
                _messageTruncated = true;
            }

            // Only the kept bytes are unmasked: the rest is never looked at.
            Unmask(_message.Span[before..], _payloadPosition);
        }

        private void Unmask(Span<byte> bytes, long position)
        {
            if (!_masked)
            {
                return;
            }

            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] ^= _mask[(int)((position + i) & 3)];
            }
        }

        private void EndFrame()
        {
            _inPayload = false;
            if (IsControl(_opcode))
            {
                var opcode = (WebSocketOpcode)_opcode;
                var keep = Math.Min(_controlLength, _owner.KeepLimit());
                _owner.Add(_direction, opcode, _frameOffset, _controlSize, _control.AsSpan(0, keep), keep < _controlLength, compressed: false);
                if (opcode == WebSocketOpcode.Close)
                {
                    CloseSeen = true;
                }

                return;
            }

            if (_final)
            {
                EmitMessage();
            }
        }

        private void EmitMessage()
        {
            _inMessage = false;
            _owner.Add(_direction, _messageOpcode, _messageOffset, _messageSize, _message.Span, _messageTruncated, _messageCompressed);
            _message.Clear();
        }

        private void Fail()
        {
            _failed = true;
            _inPayload = false;
            _inMessage = false;
            _owner.MarkTruncated();
        }
    }
}

/// <summary>Which way a WebSocket message went.</summary>
public enum WebSocketDirection
{
    /// <summary>From the client to the server.</summary>
    Send,

    /// <summary>From the server to the client.</summary>
    Receive,
}

/// <summary>The frame opcodes of RFC 6455 §5.2 that a message can have.</summary>
public enum WebSocketOpcode
{
    /// <summary>A UTF-8 text message (0x1).</summary>
    Text = 1,

    /// <summary>A binary message (0x2).</summary>
    Binary = 2,

    /// <summary>A close frame (0x8): an optional status code and reason.</summary>
    Close = 8,

    /// <summary>A ping (0x9).</summary>
    Ping = 9,

    /// <summary>A pong (0xA).</summary>
    Pong = 10,
}

/// <summary>One WebSocket message or control frame as captured.</summary>
/// <param name="Index">Position over both directions, from 0; counts messages that were not kept too.</param>
/// <param name="Offset">When its first frame started, from the start of the exchange (the upgrade request).</param>
/// <param name="Direction">Which way it went.</param>
/// <param name="Opcode">Text, binary, close, ping or pong.</param>
/// <param name="Size">Its payload size over all its frames, kept or not.</param>
/// <param name="Payload">The unmasked payload bytes kept.</param>
/// <param name="Truncated">True when <see cref="Payload"/> is not the whole payload.</param>
/// <param name="Compressed">True when the message was compressed (<c>permessage-deflate</c>): the payload is as on the wire.</param>
public sealed record WebSocketMessage(
    int Index,
    TimeSpan Offset,
    WebSocketDirection Direction,
    WebSocketOpcode Opcode,
    long Size,
    ReadOnlyMemory<byte> Payload,
    bool Truncated,
    bool Compressed)
{
    /// <summary>The close frame's status code (RFC 6455 §7.4), or null.</summary>
    public int? CloseCode => Opcode == WebSocketOpcode.Close && Payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(Payload.Span) : null;

    /// <summary>The text a text message or a close frame's reason carries; null for other opcodes and compressed messages.</summary>
    public string? Text => Compressed ? null : Opcode switch
    {
        WebSocketOpcode.Text => Encoding.UTF8.GetString(Payload.Span),
        WebSocketOpcode.Close => Payload.Length > 2 ? Encoding.UTF8.GetString(Payload.Span[2..]) : "",
        _ => null,
    };
}
