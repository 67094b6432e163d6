using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// The one rule both front ends (ext_proc and the capture proxy) follow when they ask the
/// <see cref="IResponseShortCircuit"/> for a recorded answer:
/// <list type="bullet">
/// <item><b>Deadline</b>: <c>fallback_timeout_ms</c> when set, else <c>async_timeout_ms</c>, never
/// longer than the front end's own cap (ext_proc: 150 ms by default, below Envoy's 200 ms
/// per-message timeout, so a slow lookup is a miss rather than an Envoy timeout; the proxy has no
/// cap). Past it the lookup is a miss.</item>
/// <item><b>Fault</b>: a short-circuit that throws is a miss too: the request goes to its upstream,
/// the exchange is still captured (marked <see cref="CacheOutcome.Miss"/>), and the fault is counted
/// in <c>sp_agent_faults_total{kind="short_circuit"}</c>. An agent fault never costs traffic or capture.
/// The one exception is a request the short-circuit must not let through (<see cref="IFailClosed"/>:
/// <c>cache.mode: replay_only</c>): a timeout or fault gets its refusal instead.</item>
/// <item><b>Answer</b>: the exchange records the answer and its <c>x-sp-cache</c> value (<c>hit</c>
/// unless the answer says otherwise), exactly as the client sees it, in both front ends.</item>
/// </list>
/// </summary>
public static class ShortCircuitPolicy
{
    /// <summary>The header marking a response given by the agent instead of the upstream.</summary>
    public const string CacheHeader = "x-sp-cache";

    /// <summary>The <see cref="CacheHeader"/> value of an answered request.</summary>
    public const string CacheHitValue = "hit";

    /// <summary>
    /// The <see cref="CacheHeader"/> value of a request refused in <c>cache.mode: replay_only</c>
    /// because nothing recorded answers it (the agent's 5xx, never the upstream's).
    /// </summary>
    public const string CacheMissStrictValue = "miss-strict";

    /// <summary>The <see cref="CacheHeader"/> value of a remote lookup that failed with <c>fallback_enabled: false</c>.</summary>
    public const string CacheLookupFailedValue = "lookup-failed";

    /// <summary>The <c>sp_agent_faults_total</c> kind of a throwing short-circuit.</summary>
    public const string FaultKind = "short_circuit";

    /// <summary>The deadline of one consultation: <c>fallback_timeout_ms</c>, else <c>async_timeout_ms</c>, capped at <paramref name="frontEndCap"/>.</summary>
    public static TimeSpan Deadline(AgentOptions options, TimeSpan? frontEndCap = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var deadline = TimeSpan.FromMilliseconds(options.FallbackTimeoutMs is int ms && ms > 0 ? ms : Math.Max(1, options.AsyncTimeoutMs));
        return frontEndCap is { } cap && cap < deadline ? cap : deadline;
    }

    /// <summary>
    /// Asks <paramref name="pipeline"/>'s short-circuit for an answer within <paramref name="deadline"/>.
    /// Null is a miss (none, too late, or a fault, which is counted and passed to <paramref name="onFault"/>
    /// for logging). Cancellation of <paramref name="cancellationToken"/> (the client or stream went away) propagates.
    /// </summary>
    public static async ValueTask<ShortCircuitResponse?> AskAsync(
        CapturePipeline pipeline,
        Exchange exchange,
        TimeSpan deadline,
        Action<Exception> onFault,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentNullException.ThrowIfNull(onFault);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        linked.CancelAfter(deadline);
        try
        {
            // The short-circuit marks a consulted miss itself; a request no cache rule covers stays None.
            return await pipeline.ShortCircuit.TryAnswerAsync(exchange, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The deadline passed.
            exchange.Cache = CacheOutcome.Miss;
            return Refusal(pipeline, exchange);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            pipeline.Metrics.Faults(FaultKind).Inc();
            onFault(ex);
            exchange.Cache = CacheOutcome.Miss;
            return Refusal(pipeline, exchange);
        }
    }

    // A fail-closed short-circuit (replay_only) refuses instead of letting the request go upstream.
    private static ShortCircuitResponse? Refusal(CapturePipeline pipeline, Exchange exchange) =>
        pipeline.ShortCircuit is IFailClosed failClosed ? failClosed.RefuseOnFault(exchange) : null;

    /// <summary>
    /// Records an answer given by the agent on the exchange: its cache outcome (<see cref="ShortCircuitResponse.Outcome"/>),
    /// status, the answer's headers, and <c>x-sp-cache: hit</c> unless the answer carries its own
    /// <see cref="CacheHeader"/> (<c>miss-strict</c>, <c>lookup-failed</c>) — exactly what the client gets,
    /// since both front ends send <see cref="ShortCircuitResponse.ClientHeaders"/>.
    /// </summary>
    public static void RecordAnswer(Exchange exchange, ShortCircuitResponse answer)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentNullException.ThrowIfNull(answer);
        exchange.Cache = answer.Outcome;
        exchange.StatusCode = answer.StatusCode;
        var headers = answer.ClientHeaders;
        for (var i = 0; i < headers.Count; i++)
        {
            exchange.ResponseHeaders.Add(headers[i].Key, headers[i].Value);
        }
    }
}
