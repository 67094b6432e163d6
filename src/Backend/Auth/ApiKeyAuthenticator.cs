using System.Collections.Concurrent;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Auth;

/// <summary>The outcome of checking a request's key.</summary>
public enum AuthStatus
{
    /// <summary>The key is valid and allows what was asked.</summary>
    Allowed,

    /// <summary>No key was sent (401).</summary>
    Missing,

    /// <summary>The key is unknown, malformed or revoked (401).</summary>
    Unknown,

    /// <summary>The key is valid but lacks the scope (403).</summary>
    Forbidden,
}

/// <summary>Who a request is: its tenant and what its key allows.</summary>
/// <param name="Status">The outcome.</param>
/// <param name="TenantId">The key's tenant when <see cref="Status"/> is <see cref="AuthStatus.Allowed"/> or <see cref="AuthStatus.Forbidden"/>.</param>
/// <param name="Scopes">The key's scopes.</param>
public readonly record struct AuthResult(AuthStatus Status, long TenantId, KeyScope Scopes);

/// <summary>
/// Checks API keys against the store, remembering each answer (valid or not) for a short time so
/// that ingest does not query the store per request. A revoked key therefore stops working
/// within <see cref="CacheTtl"/>, not instantly (revocation usually comes from another process,
/// <c>sp keys revoke</c>, which cannot reach this cache).
/// </summary>
public sealed class ApiKeyAuthenticator
{
    // Bounded so that a flood of random keys cannot grow memory; cleared whole when full
    // (an entry costs one store lookup to rebuild).
    private const int MaxEntries = 10_000;

    private readonly ISpanStore _store;
    private readonly TimeProvider _timeProvider;
    private readonly ConcurrentDictionary<string, Entry> _cache = new(StringComparer.Ordinal);
    private readonly long? _demoTenantId;

    /// <summary>Creates an authenticator.</summary>
    /// <param name="store">Where keys are looked up.</param>
    /// <param name="cacheTtl">How long an answer is remembered.</param>
    /// <param name="timeProvider">The clock of the cache.</param>
    /// <param name="demoTenantId">In demo mode, the tenant <see cref="ApiKeys.DemoKey"/> belongs to; null otherwise.</param>
    public ApiKeyAuthenticator(ISpanStore store, TimeSpan cacheTtl, TimeProvider timeProvider, long? demoTenantId = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _store = store;
        CacheTtl = cacheTtl;
        _timeProvider = timeProvider;
        _demoTenantId = demoTenantId;
    }

    /// <summary>How long a validated (or refused) key is remembered.</summary>
    public TimeSpan CacheTtl { get; }

    /// <summary>
    /// The key of a request: <c>x-public-key</c> (what the original agent sends) or
    /// <c>Authorization: Bearer …</c>; null when neither is present.
    /// </summary>
    public static string? ExtractKey(string? publicKeyHeader, string? authorizationHeader)
    {
        if (!string.IsNullOrWhiteSpace(publicKeyHeader))
        {
            return publicKeyHeader.Trim();
        }

        if (authorizationHeader is not null
            && authorizationHeader.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            && authorizationHeader.Length > 7)
        {
            return authorizationHeader.AsSpan(7).Trim().ToString();
        }

        return null;
    }

    /// <summary>Checks <paramref name="key"/> for <paramref name="required"/>.</summary>
    public ValueTask<AuthResult> AuthenticateAsync(string? key, KeyScope required, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(key))
        {
            return ValueTask.FromResult(new AuthResult(AuthStatus.Missing, 0, KeyScope.None));
        }

        if (_demoTenantId is { } demoTenant && string.Equals(key, ApiKeys.DemoKey, StringComparison.Ordinal))
        {
            return ValueTask.FromResult(Decide(new Entry(true, demoTenant, KeyScope.Ingest | KeyScope.Read, DateTimeOffset.MaxValue), required));
        }

        if (!ApiKeys.IsWellFormed(key))
        {
            return ValueTask.FromResult(new AuthResult(AuthStatus.Unknown, 0, KeyScope.None));
        }

        var now = _timeProvider.GetUtcNow();
        if (_cache.TryGetValue(key, out var cached) && cached.ExpiresAt > now)
        {
            return ValueTask.FromResult(Decide(cached, required));
        }

        return LookUpAsync(key, required, now, cancellationToken);
    }

    /// <summary>Forgets every remembered answer (after a revocation in this process).</summary>
    public void Clear() => _cache.Clear();

    private async ValueTask<AuthResult> LookUpAsync(string key, KeyScope required, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var record = await _store.FindApiKeyAsync(ApiKeys.Hash(key), cancellationToken).ConfigureAwait(false);
        var entry = record is null || record.RevokedAt is not null
            ? new Entry(false, 0, KeyScope.None, now + CacheTtl)
            : new Entry(true, record.TenantId, record.Scopes, now + CacheTtl);
        if (_cache.Count >= MaxEntries)
        {
            _cache.Clear();
        }

        _cache[key] = entry;
        return Decide(entry, required);
    }

    private static AuthResult Decide(Entry entry, KeyScope required)
    {
        if (!entry.Valid)
        {
            return new AuthResult(AuthStatus.Unknown, 0, KeyScope.None);
        }

        return ApiKeys.Allows(entry.Scopes, required)
            ? new AuthResult(AuthStatus.Allowed, entry.TenantId, entry.Scopes)
            : new AuthResult(AuthStatus.Forbidden, entry.TenantId, entry.Scopes);
    }

    private sealed record Entry(bool Valid, long TenantId, KeyScope Scopes, DateTimeOffset ExpiresAt);
}
