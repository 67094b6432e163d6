using System.Globalization;
using System.Text;
using SpIstio.Core.Capture;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;
using SpIstio.Core.Streams;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// The stream an exchange turned into once its response head was known: a server-sent event
/// response (its body split into events) or a WebSocket upgrade (the bytes after the 101 split
/// into messages, both directions). <see cref="ExchangeCapture"/> hands it the bytes instead of its
/// body buffers and lets it write the span attributes at the finish; it holds no lock of its own
/// (the capture's lock covers it).
/// </summary>
internal sealed class StreamCapture : IDisposable
{
    private readonly SseEventReader? _sse;
    private readonly WebSocketFrameReader? _webSocket;
    private CaptureByteBudget? _budget;
    private long _reserved;

    private StreamCapture(SseEventReader? sse, WebSocketFrameReader? webSocket)
    {
        _sse = sse;
        _webSocket = webSocket;
    }

    /// <summary>True for a server-sent event stream, false for a WebSocket.</summary>
    public bool IsEventStream => _sse is not null;

    /// <summary>True once a WebSocket's closing handshake is done.</summary>
    public bool Closed => _webSocket?.Closed == true;

    /// <summary>Counts the stream in <c>sp_stream_messages_total</c> / <c>sp_stream_bytes_total</c> (once, when it finishes).</summary>
    public void Count(Metrics.AgentMetrics metrics)
    {
        if (_webSocket is not null)
        {
            metrics.CountStream(Metrics.StreamKinds.WebSocket, _webSocket.MessageCount, _webSocket.TotalBytes);
        }
        else
        {
            metrics.CountStream(Metrics.StreamKinds.Sse, _sse!.EventCount, _sse.TotalBytes);
        }
    }

    /// <summary>
    /// The stream of a response whose head was just recorded, or null when it is an ordinary response.
    /// An event stream in a content-encoding (gzip SSE is rare) is left to the body capture: its bytes
    /// are not events until decoded.
    /// </summary>
    /// <remarks>
    /// A followed stream keeps up to <see cref="StreamCaptureLimits.MaxStreamBytes"/> (an event stream,
    /// whose data is kept as strings, twice that) for as long as it lives, so it reserves that much from <paramref name="budget"/> (the capture byte budget the body
    /// buffers and the export queue share) when it starts and gives it back when it is disposed. When
    /// the budget has no room the stream is not followed: <paramref name="overBudget"/> is set and its
    /// bytes go to the ordinary body capture, which is bounded by the same budget. So any number of
    /// concurrent streams stays within the budget (and the agent's heap cap), and the traffic itself is
    /// never touched.
    /// </remarks>
    public static StreamCapture? Begin(Exchange exchange, StreamCaptureLimits limits, CaptureByteBudget? budget, out bool overBudget)
    {
        overBudget = false;
        var headers = exchange.ResponseHeaders;
        StreamCapture? stream = null;
        if (StreamSpanAttributes.IsWebSocketUpgrade(exchange.StatusCode, headers.Get("upgrade")))
        {
            stream = new StreamCapture(null, new WebSocketFrameReader(limits));
        }
        else
        {
            var coding = headers.Get("content-encoding");
            if (StreamSpanAttributes.IsEventStream(headers.Get("content-type"))
                && (string.IsNullOrEmpty(coding) || coding.Equals("identity", StringComparison.OrdinalIgnoreCase)))
            {
                stream = new StreamCapture(new SseEventReader(limits), null);
            }
        }

        if (stream is null || budget is null)
        {
            return stream;
        }

        // Event data is kept as .NET strings (two bytes a character): an event stream may hold twice its limit.
        var reserve = stream.IsEventStream ? 2 * limits.MaxStreamBytes : limits.MaxStreamBytes;
        if (!budget.TryReserve(reserve))
        {
            stream.Dispose();
            overBudget = true;
            return null;
        }

        stream._budget = budget;
        stream._reserved = reserve;
        return stream;
    }

    /// <summary>Bytes from the client: a WebSocket's sent frames. False when they are an ordinary request body.</summary>
    public bool AppendRequest(ReadOnlySpan<byte> bytes, TimeSpan offset)
    {
        if (_webSocket is null)
        {
            return false;
        }

        _webSocket.Append(WebSocketDirection.Send, bytes, offset);
        return true;
    }

    /// <summary>Bytes to the client: events, or a WebSocket's received frames. Always taken (not kept as a body).</summary>
    public void AppendResponse(ReadOnlySpan<byte> bytes, TimeSpan offset)
    {
        if (_webSocket is not null)
        {
            _webSocket.Append(WebSocketDirection.Receive, bytes, offset);
        }
        else
        {
            _sse!.Append(bytes, offset);
        }
    }

    /// <summary>
    /// Writes the stream's attribute (redacted when <paramref name="redactor"/> is given, counted in
    /// <see cref="Redactor.CountAttribute"/>, which the exchange's own redaction adds to). An event
    /// stream's response body becomes its events written back as <c>text/event-stream</c>, so the body
    /// shows what the attribute holds, redacted the same way (comments and <c>retry</c> are not kept),
    /// within the response body limit.
    /// </summary>
    public void Finish(Exchange exchange, ExchangeOutcome outcome, Redactor? redactor, int maxBodyBytes, int maxDecodedBytes)
    {
        int redacted;
        if (_webSocket is not null)
        {
            _webSocket.Complete();

            // No bytes after the 101 were seen (ext_proc, which stops at the handshake; an idle socket): no message list.
            if (_webSocket.TotalBytes == 0)
            {
                return;
            }

            exchange.Attributes[StreamSpanAttributes.WebSocketMessages] =
                StreamSpanAttributes.EncodeWebSocket(_webSocket, StreamEnd.Of(outcome, _webSocket.Closed), redactor, out redacted);
        }
        else
        {
            _sse!.Complete();
            var json = StreamSpanAttributes.EncodeSse(_sse, StreamEnd.Of(outcome, closed: false), redactor, out redacted);
            exchange.Attributes[StreamSpanAttributes.SseEvents] = json;
            exchange.ResponseBody = EventStreamBody(json, _sse, exchange.ResponseHeaders.Get("content-type"), maxBodyBytes, maxDecodedBytes);
        }

        if (redacted > 0)
        {
            exchange.Attributes[Redactor.CountAttribute] = redacted.ToString(CultureInfo.InvariantCulture);
        }
    }

    public void Dispose()
    {
        _sse?.Dispose();
        _webSocket?.Dispose();
        _budget?.Release(_reserved);
        _budget = null;
        _reserved = 0;
    }

    private static CapturedBody EventStreamBody(string json, SseEventReader reader, string? contentType, int maxBodyBytes, int maxDecodedBytes)
    {
        // Written from the encoded (redacted) events, not the reader's, so no secret gets back in.
        var events = StreamSpanAttributes.DecodeSse(json)!.Events;
        var text = new StringBuilder();
        foreach (var item in events)
        {
            if (item.Id is not null)
            {
                text.Append("id: ").Append(item.Id).Append('\n');
            }

            if (item.Event is not null)
            {
                text.Append("event: ").Append(item.Event).Append('\n');
            }

            foreach (var line in item.Data.Split('\n'))
            {
                text.Append("data: ").Append(line).Append('\n');
            }

            text.Append('\n');
        }

        var bytes = Encoding.UTF8.GetBytes(text.ToString());
        var cut = bytes.Length > maxBodyBytes;
        var kept = cut ? bytes.AsMemory(0, maxBodyBytes) : bytes;
        return BodyCapture.Create(kept, reader.TotalBytes, cut || reader.Truncated, contentType, null, maxDecodedBytes);
    }
}
