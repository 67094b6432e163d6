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
/// <para>The framing is in the gRPC over HTTP/2 spec ("Length-Prefixed-Message"). Chunks may cut a frame
/// header or a message anywhere. Past <see cref="GrpcCaptureLimits.MaxMessages"/> or
/// <see cref="GrpcCaptureLimits.MaxStreamBytes"/> the reader still walks the frames, so the count
/// of messages stays right, but keeps no bytes: a stream that never ends costs a bounded amount.</para>
/// <para>A caller that keeps the stream's bytes itself (the capture's body buffer) creates the reader
/// with <c>callerKeepsStream</c>: an uncompressed message that lies in the caller's copy is then not
/// copied a second time, only located, and <see cref="ResolveFrom"/> makes it a slice of the caller's
/// final copy (or <see cref="Detach"/> copies it out, when that copy will not hold the bytes as they
/// were). Before, every message of a captured call was held twice: in the body and in its own array.</para>
/// </remarks>
public sealed class GrpcFrameReader : IDisposable
{
    private const int HeaderSize = 5;

    private readonly GrpcCaptureLimits _limits;
    private readonly ContentCoding _coding;
    // Stands in the list for a message kept by reference until ResolveFrom / Detach gives it its bytes.
    private static readonly GrpcMessage Unresolved = new(-1, TimeSpan.Zero, false, 0, ReadOnlyMemory<byte>.Empty, true, false);

    private readonly List<GrpcMessage> _messages = [];
    private int _headerFilled;
    private bool _headerCompressed;
    private uint _headerLength;

    // True while the caller keeps the stream's bytes (callerKeepsStream, until ResolveFrom / Detach);
    // _position is the stream position of the byte being read.
    private bool _callerKeeps;
    private long _position;

    // Messages located and not resolved yet: the first inline (a unary call's only one), the rest in a list.
    private PendingMessage _firstPending;
    private bool _hasFirstPending;
    private List<PendingMessage>? _pending;

    // The message being read: its frame header, where it started, and the bytes kept of it so far.
    private bool _inMessage;
    private bool _compressed;
    private long _length;
    private long _remaining;
    private TimeSpan _offset;
    private byte[]? _payload;
    private bool _pooled;

    // The payload array is rented for a message copied out of the caller's copy (CopyOutOfReference):
    // it becomes a lease the caller hands to the exchange (TakeLeases), not garbage.
    private bool _leased;
    private List<BodyLease>? _leases;

    // Where leased payload arrays come from and go back to: the capture's pool (a 64 KiB message cut
    // by a 64 KiB body is one such array a direction, which the shared pool keeps only 32 of a core),
    // or the shared pool.
    private readonly ArrayPool<byte> _leasePool;
    private int _payloadLength;
    private int _keepLimit;

    // The message being read is kept by reference: its kept bytes are the caller's, from _payloadStart.
    private bool _byReference;
    private long _payloadStart;

    private int _count;
    private long _keptBytes;

    /// <summary>
    /// The length of the frame (prefix and message) that <paramref name="streamStart"/>, the first
    /// bytes of a gRPC body, starts with; -1 when they do not hold its 5-byte prefix.
    /// </summary>
    public static long FirstFrameLength(ReadOnlySpan<byte> streamStart) =>
        streamStart.Length < HeaderSize ? -1 : HeaderSize + (long)BinaryPrimitives.ReadUInt32BigEndian(streamStart[1..HeaderSize]);

    /// <summary>Creates a reader for one stream direction.</summary>
    /// <param name="limits">What may be kept.</param>
    /// <param name="messageEncoding">The stream's <c>grpc-encoding</c> header: compressed messages in gzip or deflate are decompressed for the capture.</param>
    public GrpcFrameReader(GrpcCaptureLimits limits, string? messageEncoding)
        : this(limits, messageEncoding, callerKeepsStream: false)
    {
    }

    /// <summary>Creates a reader for one stream direction.</summary>
    /// <param name="limits">What may be kept.</param>
    /// <param name="messageEncoding">The stream's <c>grpc-encoding</c> header: compressed messages in gzip or deflate are decompressed for the capture.</param>
    /// <param name="callerKeepsStream">
    /// True when the caller keeps a prefix of the stream from its first byte and passes it to every
    /// <see cref="Append(ReadOnlySpan{byte}, TimeSpan, ReadOnlySpan{byte})"/>: messages within it are
    /// not copied, and the caller calls <see cref="ResolveFrom"/> or <see cref="Detach"/> before its
    /// copy goes away and before <see cref="Messages"/> is read.
    /// </param>
    /// <param name="leasePool">
    /// Where the arrays of messages copied out of the caller's copy are rented, and where their
    /// leases (<see cref="TakeLeases"/>) return them: the capture budget's
    /// <see cref="Capture.CaptureByteBudget.Arrays"/>, so a busy proxy reuses them instead of
    /// allocating one a cut message; null for the shared pool.
    /// </param>
    public GrpcFrameReader(GrpcCaptureLimits limits, string? messageEncoding, bool callerKeepsStream, ArrayPool<byte>? leasePool = null)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _limits = limits;
        _coding = ContentDecoder.Parse(messageEncoding);
        _callerKeeps = callerKeepsStream;
        _leasePool = leasePool ?? ArrayPool<byte>.Shared;
    }

    /// <summary>The messages kept so far, in stream order.</summary>
    /// <exception cref="InvalidOperationException">A message kept by reference was not resolved yet.</exception>
    public IReadOnlyList<GrpcMessage> Messages => _hasFirstPending
        ? throw new InvalidOperationException("Messages kept by reference to the caller's copy of the stream are not resolved yet (ResolveFrom or Detach).")
        : _messages;

    /// <summary>Every message seen, kept or not (a message cut by the end of the stream counts).</summary>
    public int MessageCount => _count + (_inMessage ? 1 : 0);

    /// <summary>True when something was not kept: a message cut, a message dropped, or the stream ended inside a frame.</summary>
    public bool Truncated { get; private set; }

    /// <summary>Every body byte seen.</summary>
    public long TotalBytes { get; private set; }

    /// <summary>Feeds the next chunk of the stream body.</summary>
    /// <param name="chunk">The bytes, in order.</param>
    /// <param name="offset">When the chunk arrived, from the start of the exchange.</param>
    public void Append(ReadOnlySpan<byte> chunk, TimeSpan offset) => Append(chunk, offset, default);

    /// <summary>Feeds the next chunk of the stream body, which the caller keeps too.</summary>
    /// <param name="chunk">The bytes, in order.</param>
    /// <param name="offset">When the chunk arrived, from the start of the exchange.</param>
    /// <param name="kept">
    /// The caller's copy of the stream from its first byte, this chunk included as far as the caller
    /// kept it (a prefix: once the caller stops keeping bytes it keeps none later). Ignored unless the
    /// reader was created with <c>callerKeepsStream</c>.
    /// </param>
    public void Append(ReadOnlySpan<byte> chunk, TimeSpan offset, ReadOnlySpan<byte> kept)
    {
        TotalBytes += chunk.Length;
        while (!chunk.IsEmpty)
        {
            if (!_inMessage)
            {
                if (_headerFilled == 0)
                {
                    _offset = offset;
                }

                // The frame header (flag, 4-byte big-endian length) is read a byte at a time: a chunk may cut it anywhere.
                var take = Math.Min(HeaderSize - _headerFilled, chunk.Length);
                for (var i = 0; i < take; i++)
                {
                    if (_headerFilled++ == 0)
                    {
                        _headerCompressed = chunk[i] != 0;
                        _headerLength = 0;
                    }
                    else
                    {
                        _headerLength = (_headerLength << 8) | chunk[i];
                    }
                }

                chunk = chunk[take..];
                _position += take;
                if (_headerFilled == HeaderSize)
                {
                    StartMessage();
                }

                continue;
            }

            var part = (int)Math.Min(_remaining, chunk.Length);
            Keep(chunk[..part], kept);
            _remaining -= part;
            chunk = chunk[part..];
            _position += part;
            if (_remaining == 0)
            {
                EndMessage(cut: false);
            }
        }
    }

    /// <summary>
    /// The caller's final copy of the stream (the captured body, holding the bytes exactly as they
    /// were passed, from the first): each message kept by reference becomes a slice of it, and the
    /// reader copies whatever it reads from now on.
    /// </summary>
    public void ResolveFrom(ReadOnlyMemory<byte> stream)
    {
        if (_hasFirstPending)
        {
            Resolve(_firstPending, stream);
            if (_pending is { } rest)
            {
                foreach (var message in rest)
                {
                    Resolve(message, stream);
                }
            }

            ClearPending();
        }

        StopKeepingByReference(stream.Span);
    }

    // The caller's copy holds every byte it was passed; were it shorter, what it holds is kept, marked truncated.
    private void Resolve(in PendingMessage message, ReadOnlyMemory<byte> stream)
    {
        var available = (int)Math.Clamp(stream.Length - message.Start, 0, message.Length);
        _messages[message.Slot] = new GrpcMessage(
            message.Index,
            message.Offset,
            false,
            message.WireLength,
            stream.Slice((int)Math.Min(message.Start, stream.Length), available),
            message.Truncated || available < message.Length,
            false);
    }

    /// <summary>
    /// The caller's copy of the stream is about to go, or will not hold the bytes as they were: each
    /// message kept by reference is copied out of <paramref name="stream"/> (that copy, from the first
    /// byte) into an array of its own, and the reader copies whatever it reads from now on.
    /// </summary>
    public void Detach(ReadOnlySpan<byte> stream)
    {
        if (_hasFirstPending)
        {
            CopyOut(_firstPending, stream);
            if (_pending is { } rest)
            {
                foreach (var message in rest)
                {
                    CopyOut(message, stream);
                }
            }

            ClearPending();
        }

        StopKeepingByReference(stream);
    }

    private void CopyOut(in PendingMessage message, ReadOnlySpan<byte> stream)
    {
        var available = (int)Math.Clamp(stream.Length - message.Start, 0, message.Length);
        var payload = available == 0 ? ReadOnlyMemory<byte>.Empty : stream.Slice((int)message.Start, available).ToArray();
        _messages[message.Slot] = new GrpcMessage(
            message.Index,
            message.Offset,
            false,
            message.WireLength,
            payload,
            message.Truncated || available < message.Length,
            false);
    }

    private void ClearPending()
    {
        _hasFirstPending = false;
        _firstPending = default;
        _pending?.Clear();
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

    /// <summary>
    /// The rented arrays that hold messages copied out of the caller's copy of the stream (a message
    /// the caller's limit cut, which the reader keeps more of): the caller makes their owner the
    /// exchange the messages are read for (<see cref="Model.Exchange.HoldBodyArray"/>), which returns
    /// them once nothing reads the messages. A 64 KiB message cut by a 64 KiB body limit was a
    /// 64 KiB array of garbage a direction, surviving until its export. Empty when there are none;
    /// the reader forgets them (its <see cref="Dispose"/> returns those not taken).
    /// </summary>
    public IReadOnlyList<BodyLease> TakeLeases()
    {
        var leases = _leases;
        _leases = null;
        return leases ?? (IReadOnlyList<BodyLease>)[];
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        ReturnPayload();
        if (_leases is { } leases)
        {
            _leases = null;
            foreach (var lease in leases)
            {
                lease.Return();
            }
        }
    }

    private void StartMessage()
    {
        _headerFilled = 0;
        _inMessage = true;
        _compressed = _headerCompressed;
        _length = _headerLength;
        _remaining = _length;
        _payloadLength = 0;
        _payloadStart = _position;

        // A message is kept when the stream still has room for one more message; its bytes are
        // bounded by the per-message limit and by what is left of the stream budget.
        var room = _count < _limits.MaxMessages ? _limits.MaxStreamBytes - _keptBytes : 0;
        _keepLimit = (int)Math.Max(0, Math.Min(Math.Min(room, _limits.MaxMessageBytes), _length));
        if (_count >= _limits.MaxMessages)
        {
            Truncated = true;
        }

        // A message read as it is on the wire can stay in the caller's copy of the stream.
        _byReference = _callerKeeps && _keepLimit > 0 && !Inflates;

        if (_remaining == 0)
        {
            EndMessage(cut: false);
        }
    }

    private void Keep(ReadOnlySpan<byte> bytes, ReadOnlySpan<byte> kept)
    {
        var room = _keepLimit - _payloadLength;
        if (room <= 0 || bytes.IsEmpty)
        {
            return;
        }

        var take = Math.Min(room, bytes.Length);
        if (_byReference)
        {
            if (_position + take <= kept.Length)
            {
                _payloadLength += take;
                return;
            }

            // The caller stopped keeping the stream inside this message: copy what it holds of it so far.
            CopyOutOfReference(kept);
        }

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
        if (kept && _byReference)
        {
            // Its bytes are the caller's: located now, handed over by ResolveFrom or Detach.
            _byReference = false;
            _keptBytes += _payloadLength;
            var pending = new PendingMessage(_messages.Count, index, _offset, _length, _payloadStart, _payloadLength, truncated);
            if (!_hasFirstPending)
            {
                _firstPending = pending;
                _hasFirstPending = true;
            }
            else
            {
                (_pending ??= []).Add(pending);
            }

            _messages.Add(Unresolved);
        }
        else if (kept)
        {
            var raw = _payload is null ? ReadOnlyMemory<byte>.Empty : _payload.AsMemory(0, _payloadLength);
            if (_leased)
            {
                // The rented array is the payload now: the caller's exchange returns it.
                (_leases ??= []).Add(new BodyLease(_payload!, _payloadLength, _leasePool));
                _leased = false;
            }

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

    // Ends keeping by reference: a message being read so gets an array of its own, filled from the caller's copy.
    private void StopKeepingByReference(ReadOnlySpan<byte> stream)
    {
        _callerKeeps = false;
        if (_byReference)
        {
            CopyOutOfReference(stream);
        }
    }

    private void CopyOutOfReference(ReadOnlySpan<byte> stream)
    {
        _byReference = false;
        _pooled = false;
        _leased = true;
        _payload = _leasePool.Rent(_keepLimit);
        var available = (int)Math.Clamp(stream.Length - _payloadStart, 0, _payloadLength);
        if (available > 0)
        {
            stream.Slice((int)_payloadStart, available).CopyTo(_payload);
        }

        // Bytes the caller no longer held are gone: the message is kept as far as they went (no
        // later byte, which would leave a gap), and ends truncated.
        if (available < _payloadLength)
        {
            _keepLimit = available;
        }

        _payloadLength = available;
    }

    private void ReturnPayload()
    {
        if (_payload is not null && _leased)
        {
            _leasePool.Return(_payload);
        }
        else if (_payload is not null && _pooled)
        {
            ArrayPool<byte>.Shared.Return(_payload);
        }

        _payload = null;
        _leased = false;
    }

    // A message kept by reference to the caller's copy of the stream, until it is resolved.
    private readonly record struct PendingMessage(int Slot, int Index, TimeSpan Offset, long WireLength, long Start, int Length, bool Truncated);
}
