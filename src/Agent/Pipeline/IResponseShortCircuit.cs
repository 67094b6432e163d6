using SpIstio.Core.Model;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// The seam through which a recorded response can answer a request instead of its upstream
/// (the cache / replay issue plugs in here). The ext_proc service turns an answer into an
/// ImmediateResponse; the capture proxy writes it instead of forwarding.
/// </summary>
public interface IResponseShortCircuit
{
    /// <summary>
    /// Called once the request is known: its headers, and its captured body when the agent
    /// buffers request bodies. Returns the response to send, or null to let the request go to
    /// its upstream. Must honour <paramref name="cancellationToken"/>, and must not throw for a
    /// miss; a fault is treated as a miss by the caller (fail open).
    /// </summary>
    ValueTask<ShortCircuitResponse?> TryAnswerAsync(Exchange request, CancellationToken cancellationToken);
}

/// <summary>A response given by the agent itself.</summary>
/// <param name="StatusCode">HTTP status, 200–599.</param>
/// <param name="Headers">Response headers, names lower-case, no pseudo-headers.</param>
/// <param name="Body">The response body.</param>
public sealed record ShortCircuitResponse(int StatusCode, HeaderList Headers, ReadOnlyMemory<byte> Body)
{
    private HeaderList? _clientHeaders;

    /// <summary>
    /// What the exchange records as its cache outcome: <see cref="CacheOutcome.Hit"/> for a recorded
    /// answer; <see cref="CacheOutcome.Miss"/> for the agent's own error answers (strict miss, failed lookup).
    /// </summary>
    public CacheOutcome Outcome { get; init; } = CacheOutcome.Hit;

    /// <summary>
    /// Trailers sent after the body (a gRPC answer's <c>grpc-status</c> and <c>grpc-message</c>, see
    /// <c>GrpcAnswers</c>); null for none. A front end that cannot send trailers sends them as headers.
    /// </summary>
    public HeaderList? Trailers { get; init; }

    /// <summary>
    /// The headers both front ends send to the client: <see cref="Headers"/>, plus
    /// <c>x-sp-cache: hit</c> when the answer does not carry its own <c>x-sp-cache</c>.
    /// </summary>
    public HeaderList ClientHeaders => _clientHeaders ??= WithCacheHeader(Headers);

    private static HeaderList WithCacheHeader(HeaderList headers)
    {
        if (headers.Contains(ShortCircuitPolicy.CacheHeader))
        {
            return headers;
        }

        var all = new HeaderList();
        for (var i = 0; i < headers.Count; i++)
        {
            all.Add(headers[i].Key, headers[i].Value);
        }

        all.Add(ShortCircuitPolicy.CacheHeader, ShortCircuitPolicy.CacheHitValue);
        return all;
    }
}

/// <summary>The default: never answers, every request goes to its upstream.</summary>
public sealed class NoShortCircuit : IResponseShortCircuit
{
    /// <summary>The shared instance.</summary>
    public static readonly NoShortCircuit Instance = new();

    private NoShortCircuit()
    {
    }

    /// <inheritdoc/>
    public ValueTask<ShortCircuitResponse?> TryAnswerAsync(Exchange request, CancellationToken cancellationToken) =>
        ValueTask.FromResult<ShortCircuitResponse?>(null);
}
