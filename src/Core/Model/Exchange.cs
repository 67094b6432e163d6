using System.Buffers.Binary;
using System.Diagnostics;
using SpIstio.Core.Capture;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Tracing;

namespace SpIstio.Core.Model;

/// <summary>
/// One captured HTTP exchange: the request a service received or sent, the response to it, and
/// where it sits in a trace and a business session. Agents fill it in while traffic flows; it is
/// redacted, mapped to an OTLP span and exported; the backend maps spans back into it.
/// </summary>
/// <remarks>
/// Mutable on purpose: the ext_proc service and the capture proxy fill it in piece by piece
/// (headers, then body chunks, then the response) from different callbacks of one stream.
/// It is not shared between threads while it is being filled.
/// </remarks>
public sealed class Exchange
{
    /// <summary>Inbound (this service is the server) or outbound (this service is the client).</summary>
    public TrafficDirection Direction { get; set; }

    /// <summary>The service that owns the sidecar or proxy that saw the exchange.</summary>
    public string ServiceName { get; set; } = ServiceNames.Default;

    /// <summary>HTTP method, upper case as sent (<c>GET</c>, <c>POST</c>, …).</summary>
    public string Method { get; set; } = "GET";

    /// <summary><c>http</c> or <c>https</c>.</summary>
    public string Scheme { get; set; } = "http";

    /// <summary>Host and optional port the request was addressed to (<c>:authority</c> / <c>Host</c>).</summary>
    public string Authority { get; set; } = "";

    /// <summary>Path without the query string, always starting with <c>/</c>.</summary>
    public string Path { get; set; } = "/";

    /// <summary>The query string without the leading <c>?</c>, or null when the target had none.</summary>
    public string? Query { get; set; }

    /// <summary>Request headers in arrival order, names lower-case. Pseudo-headers are not kept here.</summary>
    public HeaderList RequestHeaders { get; } = new();

    /// <summary>The captured (possibly truncated, possibly decoded) request body.</summary>
    public CapturedBody RequestBody { get; set; } = CapturedBody.Empty;

    /// <summary>The response status code, or null when no response was seen (upstream failure, cancellation).</summary>
    public int? StatusCode { get; set; }

    /// <summary>Response headers in arrival order, names lower-case.</summary>
    public HeaderList ResponseHeaders { get; } = new();

    /// <summary>The captured (possibly truncated, possibly decoded) response body.</summary>
    public CapturedBody ResponseBody { get; set; } = CapturedBody.Empty;

    /// <summary>When the first request byte (or headers message) was seen.</summary>
    public DateTimeOffset StartTime { get; set; }

    /// <summary>When the last response byte was seen, or when the exchange was finalised otherwise.</summary>
    public DateTimeOffset EndTime { get; set; }

    // The ids as the capture made them (SetTraceIds), zero when not set that way; the Activity forms
    // below are then made from them when first read. Only the span encoder and the trace's readers
    // want them, so a captured exchange usually never makes the hex strings (issue 13). Two threads
    // reading an id first at once each make the same string, and the field takes one reference: harmless.
    private UInt128 _binaryTraceId;
    private ulong _binarySpanId;
    private ulong _binaryParentSpanId;
    private ActivityTraceId _traceId;
    private ActivitySpanId _spanId;
    private ActivitySpanId _parentSpanId;

    /// <summary>The W3C trace this exchange belongs to.</summary>
    public ActivityTraceId TraceId
    {
        get => _traceId == default && _binaryTraceId != UInt128.Zero ? _traceId = BinaryIds.ToTraceId(_binaryTraceId) : _traceId;
        set
        {
            _traceId = value;
            _binaryTraceId = UInt128.Zero;
        }
    }

    /// <summary>This exchange's own span id.</summary>
    public ActivitySpanId SpanId
    {
        get => _spanId == default && _binarySpanId != 0 ? _spanId = BinaryIds.ToSpanId(_binarySpanId) : _spanId;
        set
        {
            _spanId = value;
            _binarySpanId = 0;
        }
    }

    /// <summary>The caller's span id, or <c>default</c> for a root span.</summary>
    public ActivitySpanId ParentSpanId
    {
        get => _parentSpanId == default && _binaryParentSpanId != 0 ? _parentSpanId = BinaryIds.ToSpanId(_binaryParentSpanId) : _parentSpanId;
        set
        {
            _parentSpanId = value;
            _binaryParentSpanId = 0;
        }
    }

    /// <summary>
    /// Sets <see cref="TraceId"/>, <see cref="SpanId"/> and <see cref="ParentSpanId"/> from binary ids
    /// (<see cref="BinaryIds"/>; 0 for none), without making their hex strings.
    /// </summary>
    public void SetTraceIds(UInt128 traceId, ulong spanId, ulong parentSpanId)
    {
        _traceId = default;
        _spanId = default;
        _parentSpanId = default;
        _binaryTraceId = traceId;
        _binarySpanId = spanId;
        _binaryParentSpanId = parentSpanId;
    }

    /// <summary>
    /// Gives this exchange <paramref name="source"/>'s trace, span and parent span ids in the form it
    /// holds them (binary or hex), so a copy does not make the hex strings the capture avoided.
    /// </summary>
    public void CopyTraceIdsFrom(Exchange source)
    {
        ArgumentNullException.ThrowIfNull(source);
        _binaryTraceId = source._binaryTraceId;
        _binarySpanId = source._binarySpanId;
        _binaryParentSpanId = source._binaryParentSpanId;
        _traceId = source._traceId;
        _spanId = source._spanId;
        _parentSpanId = source._parentSpanId;
    }

    /// <summary>The trace id's 16 bytes (zeros when none), for the span encoder.</summary>
    internal void CopyTraceIdTo(Span<byte> destination)
    {
        if (_binaryTraceId != UInt128.Zero)
        {
            BinaryPrimitives.WriteUInt128BigEndian(destination, _binaryTraceId);
        }
        else if (_traceId != default)
        {
            _traceId.CopyTo(destination);
        }
        else
        {
            destination[..16].Clear();
        }
    }

    /// <summary>The span id's 8 bytes (zeros when none), for the span encoder.</summary>
    internal void CopySpanIdTo(Span<byte> destination) => CopySpanId(_binarySpanId, _spanId, destination);

    /// <summary>True when the exchange has a parent span id.</summary>
    internal bool HasParentSpanId => _binaryParentSpanId != 0 || _parentSpanId != default;

    /// <summary>The parent span id's 8 bytes (zeros when none), for the span encoder.</summary>
    internal void CopyParentSpanIdTo(Span<byte> destination) => CopySpanId(_binaryParentSpanId, _parentSpanId, destination);

    private static void CopySpanId(ulong binary, ActivitySpanId text, Span<byte> destination)
    {
        if (binary != 0)
        {
            BinaryPrimitives.WriteUInt64BigEndian(destination, binary);
        }
        else if (text != default)
        {
            text.CopyTo(destination);
        }
        else
        {
            destination[..8].Clear();
        }
    }

    /// <summary>The business session id, when one was found or generated.</summary>
    public string? SessionId { get; set; }

    /// <summary>Whether the agent's cache answered, was consulted and missed, or was not consulted.</summary>
    public CacheOutcome Cache { get; set; }

    /// <summary>How the exchange ended.</summary>
    public ExchangeOutcome Outcome { get; set; } = ExchangeOutcome.Completed;

    /// <summary>A short reason when <see cref="Outcome"/> is not <see cref="ExchangeOutcome.Completed"/>.</summary>
    public string? Error { get; set; }

    // Most exchanges have no extra attribute: the dictionary is made when first asked for.
    private Dictionary<string, string>? _attributes;

    /// <summary>
    /// Extra attributes carried on the span as they are (Envoy attributes, the original agent's
    /// attributes this model has no field for, the generic attributes of a non-exchange span).
    /// Created when first read; hot readers check <see cref="HasAttributes"/> first.
    /// </summary>
    public Dictionary<string, string> Attributes => _attributes ??= new(StringComparer.Ordinal);

    /// <summary>True when <see cref="Attributes"/> holds at least one entry (reading it does not create it).</summary>
    public bool HasAttributes => _attributes is { Count: > 0 };

    /// <summary>
    /// A captured gRPC call's messages on their way to the span, kept as bytes until the exchange is
    /// redacted (one pass over each message, shared with its framed body) and sealed
    /// (<see cref="GrpcCallMessages.Seal"/>), then written once, from the bytes, as the message-list
    /// attributes by the span encoders; null for any other exchange.
    /// </summary>
    public GrpcCallMessages? GrpcCall { get; set; }

    // Rented arrays the bodies refer to (BodyCaptureBuffer hands them over instead of copying).
    private BodyLease? _bodyLeases;

    /// <summary>
    /// Makes this exchange the owner of <paramref name="lease"/>: the rented array one of its bodies
    /// (or an earlier version of it, before redaction) refers to, returned by <see cref="ReturnBodyArrays"/>.
    /// </summary>
    public void HoldBodyArray(BodyLease lease)
    {
        ArgumentNullException.ThrowIfNull(lease);
        lease.Next = _bodyLeases;
        _bodyLeases = lease;
    }

    /// <summary>
    /// Returns the rented arrays the bodies refer to, once nothing reads the bodies any more (the
    /// exporter after the exchange's batch is done with, the pipeline when it is not exported, the
    /// capture when it was abandoned). The bodies must not be read afterwards. Later calls do nothing.
    /// </summary>
    public void ReturnBodyArrays()
    {
        var lease = Interlocked.Exchange(ref _bodyLeases, null);
        while (lease is not null)
        {
            lease.Return();
            lease = lease.Next;
        }
    }

    /// <summary>
    /// Bytes of the rented arrays the bodies refer to that the bodies do not fill (a small body held
    /// in its capture buffer's first array): what the exporter's estimate of a queued exchange adds
    /// to the bodies' lengths, so the byte budget counts the arrays it holds.
    /// </summary>
    public long BodyArraySlack
    {
        get
        {
            long held = 0;
            for (var lease = Volatile.Read(ref _bodyLeases); lease is not null; lease = lease.Next)
            {
                held += lease.Returned ? 0 : lease.Length - lease.Counted;
            }

            return held == 0 ? 0 : Math.Max(0, held - RequestBody.Content.Length - ResponseBody.Content.Length);
        }
    }

    /// <summary>How many rented arrays the bodies refer to that were not returned yet (tests of their ownership).</summary>
    public int BodyArraysHeld
    {
        get
        {
            var held = 0;
            for (var lease = Volatile.Read(ref _bodyLeases); lease is not null; lease = lease.Next)
            {
                held += lease.Returned ? 0 : 1;
            }

            return held;
        }
    }

    /// <summary>The request target as it appeared on the wire: path plus <c>?query</c> when present.</summary>
    public string Target => Query is null ? Path : string.Concat(Path, "?", Query);

    /// <summary>The absolute URL of the request.</summary>
    public string Url => string.Concat(Scheme, "://", Authority, Target);

    /// <summary>Time from the first request byte to the end of the response.</summary>
    public TimeSpan Duration => EndTime >= StartTime ? EndTime - StartTime : TimeSpan.Zero;

    /// <summary>Splits a request target (<c>/a/b?x=1</c>) into <see cref="Path"/> and <see cref="Query"/>.</summary>
    public void SetTarget(string target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var q = target.IndexOf('?', StringComparison.Ordinal);
        var path = q < 0 ? target : target[..q];
        Path = path.Length == 0 ? "/" : path;
        Query = q < 0 ? null : target[(q + 1)..];
    }
}

/// <summary>Which side of the exchange the capturing service was on.</summary>
public enum TrafficDirection
{
    /// <summary>The service received the request (span kind SERVER).</summary>
    Inbound,

    /// <summary>The service sent the request (span kind CLIENT).</summary>
    Outbound,
}

/// <summary>What the agent's response cache did for an exchange.</summary>
public enum CacheOutcome
{
    /// <summary>No cache rule matched; the cache was not consulted.</summary>
    None,

    /// <summary>The agent answered from a recorded response ("agent hit").</summary>
    Hit,

    /// <summary>The cache was consulted and the request went to its upstream.</summary>
    Miss,
}

/// <summary>How an exchange ended.</summary>
public enum ExchangeOutcome
{
    /// <summary>A response was received in full.</summary>
    Completed,

    /// <summary>The upstream failed (unreachable, reset mid-body).</summary>
    Failed,

    /// <summary>The client or the proxy cancelled it before the response completed.</summary>
    Cancelled,

    /// <summary>Finalised by the idle deadline before it completed.</summary>
    TimedOut,
}
