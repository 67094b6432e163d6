using SpIstio.Core.Model;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// Implemented by an <see cref="IResponseShortCircuit"/> that records responses (the cache): the
/// pipeline hands it every finished exchange first, before sampling and redaction, from both
/// agent modes, so a recorded response is exactly what the upstream sent.
/// </summary>
public interface IExchangeRecorder
{
    /// <summary>Called once per finished exchange (answered by the agent or not). Must be quick and must not throw.</summary>
    void Record(Exchange exchange);
}

/// <summary>
/// Implemented by an <see cref="IResponseShortCircuit"/> whose answer may depend on the request
/// body: the capture proxy then buffers the body (up to the capture limit) before asking it.
/// </summary>
public interface IRequestBodyKeyed
{
    /// <summary>True when the answer to <paramref name="request"/> (its head only, so far) depends on its body.</summary>
    bool NeedsRequestBody(Exchange request);
}

/// <summary>
/// Implemented by an <see cref="IResponseShortCircuit"/> that must not fail open for some requests
/// (the cache in <c>replay_only</c>): when the consultation throws or passes its deadline,
/// <see cref="ShortCircuitPolicy"/> sends its refusal instead of letting the request go upstream.
/// </summary>
public interface IFailClosed
{
    /// <summary>The answer for <paramref name="request"/> when the consultation failed, or null to fail open as usual. Must not throw.</summary>
    ShortCircuitResponse? RefuseOnFault(Exchange request);
}
