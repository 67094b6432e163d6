using System.Security.Cryptography;
using SpIstio.Core.Model;

namespace SpIstio.Core.Tracing;

/// <summary>
/// Business session ids: found on a request (set by the front end or by an earlier hop) or
/// generated, and carried hop to hop in tracestate.
/// </summary>
public static class SessionIds
{
    /// <summary>The agent's own session header, and the key of its tracestate entry.</summary>
    public const string HeaderName = "x-sp-session-id";

    /// <summary>The tracestate key the agent writes the session id under.</summary>
    public const string TraceStateKey = "x-sp-session-id";

    /// <summary>
    /// The original plugin's alternative spelling. '_' is legal in an HTTP/1.1 field name
    /// (RFC 9110 §5.1 token), though some proxies (nginx by default) drop such headers.
    /// </summary>
    public const string UnderscoreHeaderName = "sp_session_id";

    /// <summary>A common application-level session header, honoured so existing front ends need no change.</summary>
    public const string GenericHeaderName = "x-session-id";

    /// <summary>Length of a generated id.</summary>
    public const int GeneratedLength = 32;

    /// <summary>
    /// The session id of a request, or null: the first non-blank value of the headers
    /// <c>x-sp-session-id</c>, <c>sp_session_id</c>, <c>x-session-id</c>, then the
    /// <c>x-sp-session-id</c> entry of tracestate (where an earlier hop put it). Headers win
    /// because they are what a front end sets on purpose; tracestate is the agent's own relay.
    /// Only headers are read, not cookies.
    /// </summary>
    public static string? Find(HeaderList headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        return Find(headers, TraceState.Combined(headers));
    }

    /// <summary>
    /// <see cref="Find(HeaderList)"/> with the request's tracestate already combined
    /// (<see cref="TraceState.Combined"/>), by a caller that read it for the trace context: the head
    /// is not searched for it, nor its values joined, a second time.
    /// </summary>
    internal static string? Find(HeaderList headers, string? combinedTraceState)
    {
        var found = NonBlank(headers.Get(HeaderName))
            ?? NonBlank(headers.Get(UnderscoreHeaderName))
            ?? NonBlank(headers.Get(GenericHeaderName));
        if (found is not null)
        {
            return found;
        }

        var fromTraceState = TraceState.GetValue(combinedTraceState, TraceStateKey);
        return fromTraceState is null ? null : FromTraceStateValue(fromTraceState);
    }

    // Bytes of one generated id.
    private const int IdBytes = GeneratedLength / 2;

    // Random bytes fetched from the operating system's generator at once, for this many ids: one
    // call per id cost ~2.5 % of the capture proxy's CPU at 1 KiB (issue 13), most of it the
    // generator's fixed cost per call, not the bytes.
    private const int IdsPerFetch = 32;

    [ThreadStatic]
    private static byte[]? _randomBytes;

    [ThreadStatic]
    private static int _randomUsed;

    /// <summary>
    /// A new id: 32 lower-case hex characters (128 bits) from the operating system's
    /// cryptographic generator, so ids cannot be guessed from one another and are valid as they
    /// are in headers, tracestate and URLs. The generator is asked for the bytes of
    /// several ids at once, per thread; an id's bytes are cleared once it is made.
    /// </summary>
    public static string New()
    {
        var random = _randomBytes;
        var used = _randomUsed;
        if (random is null || used == random.Length)
        {
            random = _randomBytes ??= new byte[IdsPerFetch * IdBytes];
            RandomNumberGenerator.Fill(random);
            used = 0;
        }

        var bytes = random.AsSpan(used, IdBytes);
        _randomUsed = used + IdBytes;
        var id = Convert.ToHexStringLower(bytes);
        bytes.Clear();
        return id;
    }

    /// <summary>
    /// The id as a tracestate value. An id that already is a valid value without '%' (every
    /// generated id, every UUID) is used unchanged; any other is percent-encoded (RFC 3986
    /// §2.1, UTF-8) so ',' '=' spaces and non-ASCII cannot break the list. Null when even the
    /// encoded form exceeds the 256-character value limit: such an id is not relayed.
    /// </summary>
    public static string? ToTraceStateValue(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        if (TraceState.IsValidValue(sessionId) && !sessionId.Contains('%', StringComparison.Ordinal))
        {
            return sessionId;
        }

        if (sessionId.Length > 256)
        {
            return null;
        }

        var encoded = Uri.EscapeDataString(sessionId);
        return TraceState.IsValidValue(encoded) ? encoded : null;
    }

    /// <summary>Reverses <see cref="ToTraceStateValue"/>.</summary>
    public static string FromTraceStateValue(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Contains('%', StringComparison.Ordinal) ? Uri.UnescapeDataString(value) : value;
    }

    private static string? NonBlank(string? value)
    {
        if (value is null)
        {
            return null;
        }

        var trimmed = value.AsSpan().Trim();
        if (trimmed.IsEmpty)
        {
            return null;
        }

        return trimmed.Length == value.Length ? value : trimmed.ToString();
    }
}
