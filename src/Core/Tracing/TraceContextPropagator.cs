using System.Diagnostics;
using SpIstio.Core.Model;

namespace SpIstio.Core.Tracing;

/// <summary>
/// Places one exchange seen by the agent in its trace and session, and computes the trace
/// headers to forward with the request so the next hop continues both.
/// </summary>
public static class TraceContextPropagator
{
    /// <summary>The agent's tracestate key holding the traceparent it forwarded.</summary>
    /// <remarks>
    /// A valid tracestate key (lcalpha first, then lcalpha / digit / <c>_-*/</c>), and a
    /// traceparent value (lower hex and '-') is a valid tracestate value as it is. The entry
    /// survives an application whose tracer replaces traceparent but relays tracestate
    /// unchanged, as OTel SDKs do.
    /// </remarks>
    public const string TraceParentKey = "x-sp-traceparent";

    /// <summary>
    /// The context of one exchange from its request headers: trace id and parent from the
    /// incoming <c>traceparent</c>, else from tracestate's <c>x-sp-traceparent</c> entry, else a
    /// new random trace; a new span id; the session id found (see <see cref="SessionIds.Find(HeaderList)"/>)
    /// or a new one; the hop count; and the forwarded header values.
    /// </summary>
    /// <param name="requestHeaders">The request's headers as received; not modified.</param>
    /// <param name="samplingRatio">
    /// Sets the <c>sampled</c> flag of a trace this hop starts (<see cref="TraceSampler"/>); a
    /// continued trace keeps the flag it came with.
    /// </param>
    /// <param name="sampleBySession">
    /// True (<c>sampling.by: session</c>): the <c>sampled</c> flag of a trace this hop starts is the
    /// session's decision (<see cref="SessionSampler"/>), the one the agent captures by.
    /// </param>
    public static PropagationResult Propagate(HeaderList requestHeaders, double samplingRatio = 1.0, bool sampleBySession = false)
    {
        ArgumentNullException.ThrowIfNull(requestHeaders);

        var incomingTraceState = TraceState.Combined(requestHeaders);
        TraceContextSource source;
        TraceParent parent;
        if (TraceParent.TryParse(requestHeaders.Get(TraceParent.HeaderName), out parent))
        {
            source = TraceContextSource.TraceParent;
        }
        else if (TraceParent.TryParse(TraceState.GetValue(incomingTraceState, TraceParentKey), out parent))
        {
            source = TraceContextSource.TraceState;
        }
        else
        {
            source = TraceContextSource.New;
        }

        var sessionId = SessionIds.Find(requestHeaders, incomingTraceState);
        var generated = sessionId is null;
        sessionId ??= SessionIds.New();

        UInt128 traceId;
        ulong parentSpanId;
        byte flags;
        if (source == TraceContextSource.New)
        {
            traceId = BinaryIds.NewTraceId();
            parentSpanId = 0;

            // NewTraceId fills all 16 bytes at random, which is what the level-2 random flag promises.
            var sampled = sampleBySession
                ? SessionSampler.ShouldSample(sessionId, samplingRatio)
                : TraceSampler.ShouldSample(traceId, samplingRatio);
            flags = (byte)(TraceParent.RandomFlag | (sampled ? TraceParent.SampledFlag : 0));
        }
        else
        {
            traceId = parent.BinaryTraceId;
            parentSpanId = parent.BinarySpanId;

            // Only the flags version 00 defines are forwarded; the spec has vendors zero the rest.
            flags = (byte)(parent.Flags & (TraceParent.SampledFlag | TraceParent.RandomFlag));
        }

        var spanId = BinaryIds.NewSpanId();

        var hopCount = HopCounter.Next(requestHeaders.Get(HopCounter.HeaderName));
        var traceParentValue = new TraceParent(traceId, spanId, flags).ToString();
        // A generated id is lower-case hex, a valid tracestate value as it is: only a found one is checked.
        var sessionValue = generated ? sessionId : SessionIds.ToTraceStateValue(sessionId);

        // An id too long for a tracestate value is not relayed; the exchange still carries it.
        var traceStateValue = incomingTraceState is null
            ? OwnTraceState(traceParentValue, sessionValue)
            : TraceState.SetEntries(
                incomingTraceState,
                sessionValue is null
                    ? [new(TraceParentKey, traceParentValue)]
                    : [new(TraceParentKey, traceParentValue), new(SessionIds.TraceStateKey, sessionValue)]);

        return new PropagationResult(
            traceId,
            parentSpanId,
            spanId,
            flags,
            source,
            sessionId,
            generated,
            hopCount,
            traceParentValue,
            traceStateValue);
    }

    // The tracestate of a request that came without one (most requests at the edge): only the agent's
    // own entries, which are valid as they are (constant keys, the traceparent just formatted, a
    // session value generated as hex or checked by ToTraceStateValue, both far under the length
    // limits), so they are joined in one allocation, without SetEntries' validation and member
    // scan (~0.75 % of the capture proxy's CPU at 1 KiB, issue 13). The same string SetEntries makes.
    private static string OwnTraceState(string traceParent, string? sessionValue) =>
        sessionValue is null
            ? string.Concat(TraceParentKey + "=", traceParent)
            : string.Concat(TraceParentKey + "=", traceParent, "," + SessionIds.TraceStateKey + "=", sessionValue);
}

/// <summary>Where an exchange's trace id came from.</summary>
public enum TraceContextSource
{
    /// <summary>The incoming <c>traceparent</c> header.</summary>
    TraceParent,

    /// <summary>The <c>x-sp-traceparent</c> entry of the incoming tracestate (traceparent missing or invalid).</summary>
    TraceState,

    /// <summary>Nothing usable came in: this hop started a trace.</summary>
    New,
}

/// <summary>The trace and session context of one exchange, and the headers to forward.</summary>
public readonly struct PropagationResult
{
    internal PropagationResult(
        UInt128 traceId,
        ulong parentSpanId,
        ulong spanId,
        byte flags,
        TraceContextSource source,
        string sessionId,
        bool sessionIdGenerated,
        int hopCount,
        string traceParent,
        string traceState)
    {
        BinaryTraceId = traceId;
        BinaryParentSpanId = parentSpanId;
        BinarySpanId = spanId;
        Flags = flags;
        Source = source;
        SessionId = sessionId;
        SessionIdGenerated = sessionIdGenerated;
        HopCount = hopCount;
        TraceParent = traceParent;
        TraceState = traceState;
    }

    /// <summary>The trace the exchange belongs to, as a number (<see cref="BinaryIds"/>).</summary>
    public UInt128 BinaryTraceId { get; }

    /// <summary>The caller's span id as a number, or 0 when this hop started the trace.</summary>
    public ulong BinaryParentSpanId { get; }

    /// <summary>The exchange's own span id as a number, also the parent id in the forwarded traceparent.</summary>
    public ulong BinarySpanId { get; }

    /// <summary>The trace the exchange belongs to (its hex string made at each read).</summary>
    public ActivityTraceId TraceId => BinaryIds.ToTraceId(BinaryTraceId);

    /// <summary>The caller's span id, or <c>default</c> when this hop started the trace (its hex string made at each read).</summary>
    public ActivitySpanId ParentSpanId => BinaryIds.ToSpanId(BinaryParentSpanId);

    /// <summary>The exchange's own span id (its hex string made at each read).</summary>
    public ActivitySpanId SpanId => BinaryIds.ToSpanId(BinarySpanId);

    /// <summary>The trace flags forwarded.</summary>
    public byte Flags { get; }

    /// <summary>
    /// The W3C <c>sampled</c> flag forwarded. Not the capture decision: that is
    /// <see cref="TraceSampler.ShouldSample(UInt128, double)"/> on <see cref="BinaryTraceId"/>.
    /// </summary>
    public bool Sampled => (Flags & Tracing.TraceParent.SampledFlag) != 0;

    /// <summary>Where <see cref="BinaryTraceId"/> came from.</summary>
    public TraceContextSource Source { get; }

    /// <summary>The business session id (found or generated).</summary>
    public string SessionId { get; }

    /// <summary>True when no session id came in and <see cref="SessionId"/> was generated here.</summary>
    public bool SessionIdGenerated { get; }

    /// <summary>The hop number of this exchange (incoming <c>x-sp-num</c> + 1), forwarded as <c>x-sp-num</c>.</summary>
    public int HopCount { get; }

    /// <summary>The <c>traceparent</c> value to forward.</summary>
    public string TraceParent { get; }

    /// <summary>The <c>tracestate</c> value to forward: the agent's entries first, other vendors' kept.</summary>
    public string TraceState { get; }

    /// <summary>Writes <c>traceparent</c>, <c>tracestate</c> and <c>x-sp-num</c> into the forwarded request's headers, replacing any present.</summary>
    public void Apply(HeaderList headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        headers.Set(Tracing.TraceParent.HeaderName, TraceParent);
        headers.Set(Tracing.TraceState.HeaderName, TraceState);
        headers.Set(HopCounter.HeaderName, HopCounter.Format(HopCount));
    }
}
