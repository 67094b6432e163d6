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
/// <param name="Tenant">The key's tenant, name, id and scopes when <see cref="Status"/> is <see cref="AuthStatus.Allowed"/> or <see cref="AuthStatus.Forbidden"/>.</param>
public readonly record struct AuthResult(AuthStatus Status, TenantContext? Tenant)
{
    /// <summary>The key's tenant id (0 when the key was refused).</summary>
    public long TenantId => Tenant?.TenantId ?? 0;

    /// <summary>The key's scopes (none when the key was refused).</summary>
    public KeyScope Scopes => Tenant?.Scopes ?? KeyScope.None;
}

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

    private readonly ITenantKeyStore _store;
    private readonly TimeProvider _timeProvider;
    private readonly ConcurrentDictionary<string, Entry> _cache = new(StringComparer.Ordinal);
    private readonly long? _demoTenantId;
    private readonly byte[] _demoKeyHash = ApiKeys.Hash(ApiKeys.DemoKey);

    /// <summary>Creates an authenticator.</summary>
    /// <param name="store">Where keys are looked up.</param>
    /// <param name="cacheTtl">How long an answer is remembered.</param>
    /// <param name="timeProvider">The clock of the cache.</param>
    /// <param name="demoTenantId">In demo mode, the tenant <see cref="ApiKeys.DemoKey"/> belongs to; null otherwise.</param>
    public ApiKeyAuthenticator(ITenantKeyStore store, TimeSpan cacheTtl, TimeProvider timeProvider, long? demoTenantId = null)
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
            return ValueTask.FromResult(new AuthResult(AuthStatus.Missing, null));
        }

        if (_demoTenantId is { } demoTenant && string.Equals(key, ApiKeys.DemoKey, StringComparison.Ordinal))
        {
            return ValueTask.FromResult(Decide(DemoEntry(demoTenant), required));
        }

        if (!ApiKeys.IsWellFormed(key))
        {
            return ValueTask.FromResult(new AuthResult(AuthStatus.Unknown, null));
        }

        var now = _timeProvider.GetUtcNow();
        if (_cache.TryGetValue(key, out var cached) && cached.ExpiresAt > now)
        {
            return ValueTask.FromResult(Decide(cached, required));
        }

        return LookUpAsync(key, ApiKeys.Hash(key), required, now, cancellationToken);
    }

    /// <summary>
    /// Checks the key whose SHA-256 is <paramref name="keyHash"/> (what a Trace View session
    /// remembers instead of the key), through the same cache: a revoked key's sessions end within
    /// <see cref="CacheTtl"/>.
    /// </summary>
    public ValueTask<AuthResult> AuthenticateHashAsync(byte[] keyHash, KeyScope required, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keyHash);
        if (_demoTenantId is { } demoTenant && keyHash.AsSpan().SequenceEqual(_demoKeyHash))
        {
            return ValueTask.FromResult(Decide(DemoEntry(demoTenant), required));
        }

        // '#' never starts a well-formed key, so hashes and keys share the cache without colliding.
        var cacheKey = "#" + Convert.ToBase64String(keyHash);
        var now = _timeProvider.GetUtcNow();
        if (_cache.TryGetValue(cacheKey, out var cached) && cached.ExpiresAt > now)
        {
            return ValueTask.FromResult(Decide(cached, required));
        }

        return LookUpAsync(cacheKey, keyHash, required, now, cancellationToken);
    }

    /// <summary>Forgets every remembered answer (after a revocation in this process).</summary>
    public void Clear() => _cache.Clear();

    private async ValueTask<AuthResult> LookUpAsync(string cacheKey, byte[] keyHash, KeyScope required, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var record = await _store.FindApiKeyAsync(keyHash, cancellationToken).ConfigureAwait(false);
        Entry entry;
        if (record is null || record.RevokedAt is not null)
        {
            entry = new Entry(null, now + CacheTtl);
        }
        else
        {
            // The name rides along so that pages and logs can say which tenant; looked up once per cache period.
            var tenants = await _store.ListTenantsAsync(cancellationToken).ConfigureAwait(false);
            var name = tenants.FirstOrDefault(t => t.Id == record.TenantId)?.Name ?? record.TenantId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            entry = new Entry(new TenantContext(record.TenantId, name, record.Scopes, record.KeyId), now + CacheTtl);
        }

        if (_cache.Count >= MaxEntries)
        {
            _cache.Clear();
        }

        _cache[cacheKey] = entry;
        return Decide(entry, required);
    }

    private static Entry DemoEntry(long demoTenant) =>
        new(new TenantContext(demoTenant, KeyAdministration.DefaultTenant, KeyScope.Ingest | KeyScope.Read, ApiKeys.DemoKeyId), DateTimeOffset.MaxValue);

    private static AuthResult Decide(Entry entry, KeyScope required)
    {
        if (entry.Tenant is not { } tenant)
        {
            return new AuthResult(AuthStatus.Unknown, null);
        }

        return new AuthResult(ApiKeys.Allows(tenant.Scopes, required) ? AuthStatus.Allowed : AuthStatus.Forbidden, tenant);
    }

    /// <summary>A remembered answer: the key's tenant, or null for a refused key.</summary>
    private sealed record Entry(TenantContext? Tenant, DateTimeOffset ExpiresAt);
}
