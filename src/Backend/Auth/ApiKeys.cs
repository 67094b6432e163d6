using System.Security.Cryptography;
using System.Text;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Auth;

/// <summary>
/// API keys: <c>sp_&lt;keyid&gt;_&lt;secret&gt;</c>, a 12-character base32 id (shown in lists, used to
/// revoke) and a 32-character base62 secret (190 bits from the OS random source). Only the
/// SHA-256 of the whole key is stored.
/// </summary>
public static class ApiKeys
{
    /// <summary>Every key starts with this.</summary>
    public const string Prefix = "sp_";

    /// <summary>
    /// The fixed key of demo mode (<c>sp backend --demo</c>): ingest and read on the <c>default</c>
    /// tenant. It is never stored; the server accepts it only while demo mode is on.
    /// </summary>
    public const string DemoKey = "sp_demo_00000000000000000000000000000000";

    /// <summary>The key id of <see cref="DemoKey"/>.</summary>
    public const string DemoKeyId = "demo";

    private const int KeyIdLength = 12;
    private const int SecretLength = 32;
    private const string Base32Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
    private const string Base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>A new random key and the record to store for it (hash only).</summary>
    public static (string Key, ApiKeyRecord Record) Generate(long tenantId, KeyScope scopes, string? description, DateTimeOffset now)
    {
        var keyId = RandomNumberGenerator.GetString(Base32Alphabet, KeyIdLength);
        var secret = RandomNumberGenerator.GetString(Base62Alphabet, SecretLength);
        var key = string.Concat(Prefix, keyId, "_", secret);
        return (key, new ApiKeyRecord(keyId, tenantId, Hash(key), scopes, description, now, null));
    }

    /// <summary>SHA-256 of the key's UTF-8 bytes.</summary>
    public static byte[] Hash(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return SHA256.HashData(Encoding.UTF8.GetBytes(key));
    }

    /// <summary>
    /// True when <paramref name="key"/> has the shape of a key (<c>sp_</c>, an id, <c>_</c>, a
    /// secret, ASCII letters and digits only), so that garbage is refused without a store lookup.
    /// </summary>
    public static bool IsWellFormed(ReadOnlySpan<char> key)
    {
        if (key.Length < Prefix.Length + 3 || key.Length > 128 || !key.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = key[Prefix.Length..];
        var sep = rest.IndexOf('_');
        if (sep <= 0 || sep == rest.Length - 1)
        {
            return false;
        }

        foreach (var c in rest)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Parses <c>ingest</c>, <c>read</c>, <c>admin</c> (several joined by <c>,</c> or <c>|</c>).</summary>
    public static bool TryParseScopes(string? text, out KeyScope scopes)
    {
        scopes = KeyScope.None;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        foreach (var part in text.Split([',', '|'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part.Equals("ingest", StringComparison.OrdinalIgnoreCase))
            {
                scopes |= KeyScope.Ingest;
            }
            else if (part.Equals("read", StringComparison.OrdinalIgnoreCase))
            {
                scopes |= KeyScope.Read;
            }
            else if (part.Equals("admin", StringComparison.OrdinalIgnoreCase))
            {
                scopes |= KeyScope.Admin;
            }
            else
            {
                scopes = KeyScope.None;
                return false;
            }
        }

        return scopes != KeyScope.None;
    }

    /// <summary><c>ingest,read</c>-style text of a scope set.</summary>
    public static string FormatScopes(KeyScope scopes)
    {
        var parts = new List<string>(3);
        if ((scopes & KeyScope.Ingest) != 0)
        {
            parts.Add("ingest");
        }

        if ((scopes & KeyScope.Read) != 0)
        {
            parts.Add("read");
        }

        if ((scopes & KeyScope.Admin) != 0)
        {
            parts.Add("admin");
        }

        return parts.Count == 0 ? "none" : string.Join(',', parts);
    }

    /// <summary>True when <paramref name="granted"/> allows <paramref name="required"/>; admin allows everything.</summary>
    public static bool Allows(KeyScope granted, KeyScope required) =>
        (granted & KeyScope.Admin) != 0 || (granted & required) == required;

    /// <summary>True for a usable tenant name: 1–63 lower-case letters, digits, <c>-</c> or <c>_</c>.</summary>
    public static bool IsValidTenantName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 63)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterLower(c) && !char.IsAsciiDigit(c) && c != '-' && c != '_')
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>Creating keys on a store: what <c>sp keys create</c> and the first-start bootstrap do.</summary>
public static class KeyAdministration
{
    /// <summary>The tenant every single-tenant installation uses.</summary>
    public const string DefaultTenant = "default";

    /// <summary>Ensures the tenant exists, creates a key for it and returns the key (shown once; only its hash is kept).</summary>
    public static async Task<CreatedKey> CreateKeyAsync(
        ITenantKeyStore store, string tenantName, KeyScope scopes, string? description, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(timeProvider);
        if (!ApiKeys.IsValidTenantName(tenantName))
        {
            throw new ArgumentException("Tenant name '" + tenantName + "' is not 1–63 lower-case letters, digits, '-' or '_'.", nameof(tenantName));
        }

        if (scopes == KeyScope.None)
        {
            throw new ArgumentException("A key needs at least one scope.", nameof(scopes));
        }

        var tenant = await store.EnsureTenantAsync(tenantName, cancellationToken).ConfigureAwait(false);
        var (key, record) = ApiKeys.Generate(tenant.Id, scopes, description, timeProvider.GetUtcNow());
        await store.AddApiKeyAsync(record, cancellationToken).ConfigureAwait(false);
        return new CreatedKey(key, record, tenant);
    }
}

/// <summary>A key just created: the secret key (shown once), its stored record and its tenant.</summary>
public sealed record CreatedKey(string Key, ApiKeyRecord Record, Tenant Tenant);
