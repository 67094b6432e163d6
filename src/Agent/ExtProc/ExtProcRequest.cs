using System.Buffers;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// One <c>envoy.service.ext_proc.v3.ProcessingRequest</c> as the agent uses it, read straight from
/// its bytes by <see cref="ProcessingRequestReader"/>: header fields as the strings the exchange
/// keeps, the body as one rented array, the filter's attributes as text. What the agent never reads
/// (<c>metadata_context</c>, other attribute namespaces, unknown fields) is skipped, not kept.
/// </summary>
internal sealed class ExtProcRequest
{
    /// <summary>No <c>request</c> field was set (Envoy never sends this).</summary>
    public const int NoType = -1;

    private static readonly KeyValuePair<string, string>[] _noHeaders = [];

    private KeyValuePair<string, string>[] _headers = _noHeaders;
    private int _headerCount;
    private byte[]? _bodyArray;

    /// <summary>
    /// Which <c>request</c> field was set, as an index of <see cref="Metrics.AgentMetrics.MessageTypes"/>
    /// (its field number less 2), or <see cref="NoType"/>.
    /// </summary>
    public int Type { get; private set; } = NoType;

    /// <summary><c>end_of_stream</c> of the headers or body message.</summary>
    public bool EndOfStream { get; set; }

    /// <summary><c>observability_mode</c>: Envoy does not wait for an answer.</summary>
    public bool ObservabilityMode { get; set; }

    /// <summary>True when <c>protocol_config</c> was sent (Envoy 1.31 on, first message of a stream).</summary>
    public bool HasProtocolConfig { get; set; }

    /// <summary><c>protocol_config.request_body_mode</c>.</summary>
    public BodySendMode RequestBodyMode { get; set; }

    /// <summary><c>protocol_config.response_body_mode</c>.</summary>
    public BodySendMode ResponseBodyMode { get; set; }

    /// <summary>True when the headers or trailers message carried a header map (possibly empty).</summary>
    public bool HasHeaderMap { get; set; }

    /// <summary>The header (or trailer) fields in arrival order, pseudo-headers included.</summary>
    public ReadOnlySpan<KeyValuePair<string, string>> Headers => _headers.AsSpan(0, _headerCount);

    /// <summary>
    /// The body bytes of a body message (empty otherwise), in an array rented from
    /// <see cref="ArrayPool{T}.Shared"/> for this message: whoever handles the message either takes
    /// the array (<see cref="TakeBodyArray"/>: a capture keeps the body by reference) or returns it
    /// (<see cref="ReturnBodyArray"/>); an array neither taken nor returned is left to the GC.
    /// </summary>
    public ReadOnlyMemory<byte> Body { get; private set; }

    /// <summary>Sets <see cref="Body"/> to a copy of <paramref name="bytes"/> (the transport reuses its buffer), replacing an earlier one.</summary>
    public void SetBody(ReadOnlySpan<byte> bytes)
    {
        ReturnBodyArray();
        if (bytes.IsEmpty)
        {
            return;
        }

        var array = ArrayPool<byte>.Shared.Rent(bytes.Length);
        bytes.CopyTo(array);
        _bodyArray = array;
        Body = array.AsMemory(0, bytes.Length);
    }

    /// <summary>The rented array under <see cref="Body"/>, now the caller's to return (null when there is none or it was taken).</summary>
    public byte[]? TakeBodyArray()
    {
        var array = _bodyArray;
        _bodyArray = null;
        return array;
    }

    /// <summary>Returns the rented array under <see cref="Body"/> to the pool unless it was taken; <see cref="Body"/> is empty afterwards.</summary>
    public void ReturnBodyArray()
    {
        Body = default;
        if (_bodyArray is { } array)
        {
            _bodyArray = null;
            ArrayPool<byte>.Shared.Return(array);
        }
    }

    /// <summary>
    /// The scalar fields of <c>attributes["envoy.filters.http.ext_proc"]</c> as text, null text for
    /// other kinds (they replace an earlier field of the same name, as in the map), or null when none.
    /// </summary>
    public List<KeyValuePair<string, string?>>? Attributes { get; set; }

    /// <summary>The same, from the deprecated <c>HttpHeaders.attributes</c> (Envoys before 1.31).</summary>
    public List<KeyValuePair<string, string?>>? HeaderAttributes { get; set; }

    /// <summary>
    /// Clears every field for the next message read into this object: the header slots stay (emptied),
    /// a body array neither taken nor returned goes back to the pool.
    /// </summary>
    public void Reset()
    {
        Type = NoType;
        EndOfStream = false;
        ObservabilityMode = false;
        HasProtocolConfig = false;
        RequestBodyMode = default;
        ResponseBodyMode = default;
        HasHeaderMap = false;
        _headers.AsSpan(0, _headerCount).Clear();
        _headerCount = 0;
        ReturnBodyArray();
        Attributes = null;
        HeaderAttributes = null;
    }

    /// <summary>
    /// Starts (or, for a repeat of the same field, continues) the <c>request</c> oneof: a different
    /// field replaces what an earlier one set, a repeat merges into it, as protobuf parsers do.
    /// </summary>
    public void Select(int type)
    {
        if (type == Type)
        {
            return;
        }

        Type = type;
        EndOfStream = false;
        HasHeaderMap = false;
        _headerCount = 0;
        ReturnBodyArray();
        HeaderAttributes = null;
    }

    /// <summary>Appends a header field; fails past <paramref name="limit"/> fields.</summary>
    public bool TryAddHeader(string name, string value, int limit)
    {
        if (_headerCount == _headers.Length)
        {
            if (_headerCount >= limit)
            {
                return false;
            }

            // 16 covers a typical Envoy request head; a larger one doubles a few times.
            Array.Resize(ref _headers, Math.Min(limit, Math.Max(16, _headerCount * 2)));
        }

        _headers[_headerCount++] = new(name, value);
        return true;
    }
}
