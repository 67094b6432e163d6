namespace SpIstio.Backend.Storage;

/// <summary>
/// Trace View sign-in sessions in the store, so that any backend replica serves any session and
/// sign-out anywhere ends it everywhere. Rows hold hashes only: of the cookie's random id and of
/// the key the session was opened with. The forms' antiforgery keys live here too, for the same reason.
/// </summary>
public interface ITraceViewSessionStore
{
    /// <summary>Stores a new session.</summary>
    Task AddTraceViewSessionAsync(TraceViewSessionRecord session, CancellationToken cancellationToken);

    /// <summary>The session whose id hashes to <paramref name="idHash"/>, or null.</summary>
    Task<TraceViewSessionRecord?> FindTraceViewSessionAsync(byte[] idHash, CancellationToken cancellationToken);

    /// <summary>Records activity on a session (the idle period restarts from <paramref name="seenAt"/>).</summary>
    Task TouchTraceViewSessionAsync(byte[] idHash, DateTimeOffset seenAt, CancellationToken cancellationToken);

    /// <summary>Ends a session; false when there was none.</summary>
    Task<bool> DeleteTraceViewSessionAsync(byte[] idHash, CancellationToken cancellationToken);

    /// <summary>Deletes sessions idle since before <paramref name="cutoff"/>; returns how many.</summary>
    Task<long> DeleteTraceViewSessionsIdleSinceAsync(DateTimeOffset cutoff, CancellationToken cancellationToken);

    /// <summary>The ASP.NET Core data-protection keys (XML documents) every replica shares, oldest first.</summary>
    Task<IReadOnlyList<string>> ListDataProtectionKeysAsync(CancellationToken cancellationToken);

    /// <summary>Stores a data-protection key under its unique <paramref name="name"/>; a name stored already is kept as it is.</summary>
    Task AddDataProtectionKeyAsync(string name, string xml, CancellationToken cancellationToken);
}

/// <summary>A stored Trace View session.</summary>
/// <param name="IdHash">SHA-256 of the session id the cookie carries.</param>
/// <param name="TenantId">The tenant of the key signed in with.</param>
/// <param name="KeyHash">SHA-256 of the key signed in with (as in <c>api_keys</c>): each request re-checks it, so revoking the key ends the session.</param>
/// <param name="CreatedAt">When the session was opened.</param>
/// <param name="LastSeenAt">When it was last used (coarsely: see <c>TraceViewSessions</c>).</param>
public sealed record TraceViewSessionRecord(byte[] IdHash, long TenantId, byte[] KeyHash, DateTimeOffset CreatedAt, DateTimeOffset LastSeenAt);
