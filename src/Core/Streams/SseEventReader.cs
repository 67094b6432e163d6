using System.Text;

namespace SpIstio.Core.Streams;

/// <summary>
/// Splits a <c>text/event-stream</c> response body into its events as the chunks stream past,
/// keeping each event (id, event type, data, when it started) up to the limits and counting the
/// rest. Not thread-safe; one per response.
/// </summary>
/// <remarks>
/// <para>The parsing follows the HTML Living Standard, "Server-sent events" §9.2.6: lines end in
/// CRLF, LF or CR (a chunk may cut a CRLF, or a line, anywhere); a leading BOM is skipped; a line
/// starting with <c>:</c> is a comment; <c>field:value</c> drops one space after the colon; a field
/// without a colon has an empty value; <c>data</c> lines join with LF; a blank line dispatches the
/// event; an event without data is not dispatched; an <c>id</c> containing NUL is ignored; unknown
/// fields are ignored.</para>
/// <para>Nothing grows with the stream: a line is never buffered whole (field names are matched
/// as they pass, values go straight to the event being kept), an event keeps at most
/// <see cref="StreamCaptureLimits.MaxEventBytes"/> of its data and what is left of
/// <see cref="StreamCaptureLimits.MaxStreamBytes"/>, its id and type at most 1 KiB each, and past
/// <see cref="StreamCaptureLimits.MaxEvents"/> events are counted, not kept.</para>
/// </remarks>
public sealed class SseEventReader : IDisposable
{
    /// <summary>Bytes kept of an event's <c>id</c> or <c>event</c> value.</summary>
    public const int MaxNameBytes = 1024;

    private static ReadOnlySpan<byte> Bom => [0xEF, 0xBB, 0xBF];

    private readonly StreamCaptureLimits _limits;
    private readonly List<SseEvent> _events = [];
    private readonly GrowableBuffer _data = new();
    private readonly GrowableBuffer _value = new();
    private readonly byte[] _name = new byte[5];

    // The line being read.
    private int _nameLength;
    private bool _nameTooLong;
    private bool _lineStarted;
    private bool _comment;
    private bool _inValue;
    private bool _skipSpace;
    private bool _afterCarriageReturn;
    private Field _field;
    private int _bomSeen;
    private bool _bomDone;

    // The event being read.
    private bool _eventStarted;
    private TimeSpan _eventOffset;
    private bool _dataSeen;
    private long _dataSize;
    private bool _eventTruncated;
    private int _keepLimit;
    private string? _eventId;
    private string? _eventType;

    private TimeSpan _chunkOffset;
    private int _count;
    private long _keptBytes;

    /// <summary>Creates a reader for one response body.</summary>
    public SseEventReader(StreamCaptureLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _limits = limits;
    }

    private enum Field
    {
        None,
        Data,
        Event,
        Id,
        Ignored,
    }

    /// <summary>The events kept so far, in stream order.</summary>
    public IReadOnlyList<SseEvent> Events => _events;

    /// <summary>Every event dispatched, kept or not.</summary>
    public int EventCount => _count;

    /// <summary>True when something was not kept: data cut, an event dropped, or the stream cut inside an event.</summary>
    public bool Truncated { get; private set; }

    /// <summary>Every body byte seen.</summary>
    public long TotalBytes { get; private set; }

    /// <summary>Feeds the next chunk of the body.</summary>
    /// <param name="chunk">The bytes, in order.</param>
    /// <param name="offset">When the chunk arrived, from the start of the exchange.</param>
    public void Append(ReadOnlySpan<byte> chunk, TimeSpan offset)
    {
        TotalBytes += chunk.Length;
        _chunkOffset = offset;
        while (!chunk.IsEmpty)
        {
            if (!_bomDone)
            {
                // The stream may start with a UTF-8 BOM, which is not part of the first line.
                if (chunk[0] == Bom[_bomSeen])
                {
                    chunk = chunk[1..];
                    _bomDone = ++_bomSeen == Bom.Length;
                    continue;
                }

                _bomDone = true;
            }

            if (_afterCarriageReturn)
            {
                // CR LF is one line end, even when a chunk boundary falls between them.
                _afterCarriageReturn = false;
                if (chunk[0] == (byte)'\n')
                {
                    chunk = chunk[1..];
                    continue;
                }
            }

            var end = chunk.IndexOfAny((byte)'\r', (byte)'\n');
            ReadLinePart(end < 0 ? chunk : chunk[..end]);
            if (end < 0)
            {
                return;
            }

            _afterCarriageReturn = chunk[end] == (byte)'\r';
            EndLine();
            chunk = chunk[(end + 1)..];
        }
    }

    /// <summary>
    /// Ends the stream (its end, or the end of the capture): an event that was not dispatched yet
    /// is kept as truncated, since the capture stopped inside it.
    /// </summary>
    public void Complete()
    {
        if (_lineStarted)
        {
            EndLine();
        }

        if (_eventStarted && _dataSeen)
        {
            _eventTruncated = true;
            Dispatch();
        }

        ResetEvent();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _data.Dispose();
        _value.Dispose();
    }

    private void ReadLinePart(ReadOnlySpan<byte> part)
    {
        if (part.IsEmpty)
        {
            return;
        }

        if (!_lineStarted)
        {
            _lineStarted = true;
            _comment = part[0] == (byte)':';
        }

        if (_comment)
        {
            return;
        }

        if (!_inValue)
        {
            var colon = part.IndexOf((byte)':');
            AppendName(colon < 0 ? part : part[..colon]);
            if (colon < 0)
            {
                return;
            }

            _inValue = true;
            _skipSpace = true;
            StartField();
            part = part[(colon + 1)..];
        }

        if (_skipSpace && !part.IsEmpty)
        {
            _skipSpace = false;
            if (part[0] == (byte)' ')
            {
                part = part[1..];
            }
        }

        switch (_field)
        {
            case Field.Data:
                _dataSize += part.Length;
                if (_data.Append(part, _keepLimit) > 0)
                {
                    _eventTruncated = true;
                }

                break;
            case Field.Event or Field.Id:
                _value.Append(part, MaxNameBytes);
                break;
        }
    }

    private void AppendName(ReadOnlySpan<byte> part)
    {
        if (_nameTooLong || part.IsEmpty)
        {
            return;
        }

        if (_nameLength + part.Length > _name.Length)
        {
            // No field we read is longer than five bytes ("event", "retry").
            _nameTooLong = true;
            return;
        }

        part.CopyTo(_name.AsSpan(_nameLength));
        _nameLength += part.Length;
    }

    private void StartField()
    {
        var name = _name.AsSpan(0, _nameLength);
        _field = _nameTooLong ? Field.Ignored
            : name.SequenceEqual("data"u8) ? Field.Data
            : name.SequenceEqual("event"u8) ? Field.Event
            : name.SequenceEqual("id"u8) ? Field.Id
            : Field.Ignored;
        if (_field == Field.Ignored)
        {
            return;
        }

        if (!_eventStarted)
        {
            _eventStarted = true;
            _eventOffset = _chunkOffset;
            _keepLimit = _limits.KeepLimit(_count, _keptBytes);
        }

        _value.Clear();
        if (_field == Field.Data)
        {
            if (_dataSeen)
            {
                // Data lines join with LF (the standard appends LF after each and drops the last).
                _dataSize++;
                if (_data.Append("\n"u8, _keepLimit) > 0)
                {
                    _eventTruncated = true;
                }
            }

            _dataSeen = true;
        }
    }

    private void EndLine()
    {
        if (!_lineStarted)
        {
            Dispatch();
        }
        else if (!_comment)
        {
            if (!_inValue)
            {
                // A field name without a colon: the whole line is the name, the value is empty.
                StartField();
            }

            if (_field == Field.Event)
            {
                _eventType = Encoding.UTF8.GetString(_value.Span);
            }
            else if (_field == Field.Id && _value.Span.IndexOf((byte)0) < 0)
            {
                _eventId = Encoding.UTF8.GetString(_value.Span);
            }
        }

        _lineStarted = false;
        _comment = false;
        _inValue = false;
        _skipSpace = false;
        _nameLength = 0;
        _nameTooLong = false;
        _field = Field.None;
    }

    private void Dispatch()
    {
        if (!_eventStarted)
        {
            return;
        }

        if (_dataSeen)
        {
            var index = _count++;
            if (_events.Count < _limits.MaxEvents)
            {
                _events.Add(new SseEvent(index, _eventOffset, _eventId, _eventType, Encoding.UTF8.GetString(_data.Span), _dataSize, _eventTruncated));
                _keptBytes += _data.Length;
                Truncated |= _eventTruncated;
            }
            else
            {
                Truncated = true;
            }
        }

        ResetEvent();
    }

    private void ResetEvent()
    {
        _eventStarted = false;
        _dataSeen = false;
        _dataSize = 0;
        _eventTruncated = false;
        _eventId = null;
        _eventType = null;
        _data.Clear();
    }
}

/// <summary>One server-sent event as captured.</summary>
/// <param name="Index">Position in the stream, from 0; counts events that were not kept too.</param>
/// <param name="Offset">When the event's first field arrived, from the start of the exchange.</param>
/// <param name="Id">The <c>id</c> the event set, if any.</param>
/// <param name="Event">The <c>event</c> type the event set, if any (a client reads none as <c>message</c>).</param>
/// <param name="Data">The data lines joined with LF, as far as kept.</param>
/// <param name="Size">The data's size in bytes (UTF-8), kept or not.</param>
/// <param name="Truncated">True when <see cref="Data"/> is not the whole data, or the stream stopped inside the event.</param>
public sealed record SseEvent(int Index, TimeSpan Offset, string? Id, string? Event, string Data, long Size, bool Truncated);
