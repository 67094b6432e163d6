using SpIstio.Agent.Pipeline;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Cache;

/// <summary>
/// A recorded response as the agent replays it: status, the end-to-end headers (no hop-by-hop
/// fields, no framing: the replaying side frames the body itself) and the whole body.
/// </summary>
/// <param name="StatusCode">HTTP status.</param>
/// <param name="Headers">Response headers, lower-case names.</param>
/// <param name="Body">The complete (decoded) body.</param>
public sealed record CachedResponse(int StatusCode, HeaderList Headers, ReadOnlyMemory<byte> Body)
{
    // Names that describe one connection or one framing of the body, not the response itself
    // (RFC 9110 §7.6.1), plus the agent's own marker.
    private static readonly string[] _dropped =
    [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "content-length", "x-sp-cache",
    ];

    /// <summary>Bytes this entry is charged in the cache: body, headers, plus a fixed overhead per entry.</summary>
    public long Size
    {
        get
        {
            long size = Body.Length + 128;
            foreach (var header in Headers)
            {
                size += header.Key.Length + header.Value.Length + 16;
            }

            return size;
        }
    }

    /// <summary>The answer handed to the ext_proc service or the proxy.</summary>
    public ShortCircuitResponse ToAnswer() => GrpcAnswers.Shape(StatusCode, Headers, Body);

    /// <summary>
    /// The replayable copy of a completed exchange's response. A decoded body is replayed as it
    /// is, so its content-encoding goes; trailers (listed in <paramref name="trailerNames"/>) go, except a gRPC call's status fields, which the answer sends as trailers again (<see cref="GrpcAnswers"/>).
    /// </summary>
    public static CachedResponse From(Exchange exchange, string? trailerNames)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        var headers = new HeaderList();
        var decoded = exchange.ResponseBody.Decoded;
        var grpc = SpIstio.Core.GrpcMessages.GrpcSpanAttributes.IsGrpc(exchange.ResponseHeaders.Get("content-type"));
        foreach (var (name, value) in exchange.ResponseHeaders)
        {
            if (IsDropped(name) || (decoded && string.Equals(name, "content-encoding", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            // A gRPC call's status travels in its trailers: kept, so the answer can send them again.
            if (trailerNames is not null && ContainsName(trailerNames, name) && !(grpc && GrpcAnswers.IsStatusField(name)))
            {
                continue;
            }

            headers.Add(name, value);
        }

        return new CachedResponse(exchange.StatusCode ?? 200, headers, exchange.ResponseBody.Content.ToArray());
    }

    private static bool IsDropped(string name)
    {
        foreach (var dropped in _dropped)
        {
            if (string.Equals(dropped, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private static bool ContainsName(string list, string name)
    {
        foreach (var range in list.AsSpan().Split(','))
        {
            if (list.AsSpan()[range].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
