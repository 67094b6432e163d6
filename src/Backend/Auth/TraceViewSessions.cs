using System.Buffers.Text;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Auth;

/// <summary>
/// Trace View sign-in sessions. The key is checked once, at sign-in; the browser then holds only
/// an opaque random session id (HttpOnly, SameSite=Strict, Secure over HTTPS) and the store holds
/// only the SHA-256 of that id beside the SHA-256 of the key. Every request re-checks the key's
/// hash through <see cref="ApiKeyAuthenticator"/>'s cache, so revoking the key ends its sessions
/// within the key-cache delay. Sessions end after <see cref="IdleTimeout"/> without a request and at
/// sign-out; being in the store, any backend replica serves them.
/// </summary>
public sealed class TraceViewSessions
{
    /// <summary>The cookie holding the session id.</summary>
    public const string CookieName = "sp_session";

    /// <summary>The default of <see cref="IdleTimeout"/>: a working day, so a tab left open overnight signs in again.</summary>
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromHours(12);

    // 256 bits from the OS random source: guessing an id is hopeless, and the id is never stored.
    private const int IdBytes = 32;

    // Activity is written back at most this often per session, so browsing costs reads, not a write per page.
    private static readonly TimeSpan _maxTouchInterval = TimeSpan.FromMinutes(1);

    private readonly ITraceViewSessionStore _store;
    private readonly ApiKeyAuthenticator _authenticator;
    private readonly TimeProvider _time;
    private readonly TimeSpan _touchInterval;

    /// <summary>Creates the session service.</summary>
    public TraceViewSessions(ITraceViewSessionStore store, ApiKeyAuthenticator authenticator, TimeProvider time, TimeSpan idleTimeout)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(authenticator);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(idleTimeout, TimeSpan.Zero);
        _store = store;
        _authenticator = authenticator;
        _time = time;
        IdleTimeout = idleTimeout;
        _touchInterval = idleTimeout / 10 < _maxTouchInterval ? idleTimeout / 10 : _maxTouchInterval;
    }

    /// <summary>How long a session lives without a request.</summary>
    public TimeSpan IdleTimeout { get; }

    /// <summary>
    /// Checks <paramref name="key"/> for the read scope and, when it has it, opens a session and
    /// sets its cookie (ending the session this browser had). The key itself goes nowhere.
    /// </summary>
    public async Task<AuthResult> SignInAsync(HttpContext context, string? key)
    {
        ArgumentNullException.ThrowIfNull(context);
        var cancellationToken = context.RequestAborted;
        var result = await _authenticator.AuthenticateAsync(key, KeyScope.Read, cancellationToken).ConfigureAwait(false);
        if (result.Status != AuthStatus.Allowed)
        {
            return result;
        }

        var now = _time.GetUtcNow();
        // Idle sessions are swept here, where sessions are made, so the table stays as small as the set of live sessions.
        await _store.DeleteTraceViewSessionsIdleSinceAsync(now - IdleTimeout, cancellationToken).ConfigureAwait(false);
        if (IdHashOf(context) is { } previous)
        {
            await _store.DeleteTraceViewSessionAsync(previous, cancellationToken).ConfigureAwait(false);
        }

        var id = RandomNumberGenerator.GetBytes(IdBytes);
        await _store.AddTraceViewSessionAsync(
            new TraceViewSessionRecord(SHA256.HashData(id), result.TenantId, ApiKeys.Hash(key!), now, now), cancellationToken).ConfigureAwait(false);
        context.Response.Cookies.Append(CookieName, Base64Url.EncodeToString(id), CookieOptions(context));
        return result;
    }

    /// <summary>The tenant of the request's session, or why there is none.</summary>
    public async Task<(TenantContext? Tenant, AuthRefusalReason Refused)> AuthenticateAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (string.IsNullOrEmpty(context.Request.Cookies[CookieName]))
        {
            return (null, AuthRefusalReason.Missing);
        }

        if (IdHashOf(context) is not { } idHash)
        {
            return (null, AuthRefusalReason.Invalid);
        }

        var cancellationToken = context.RequestAborted;
        var session = await _store.FindTraceViewSessionAsync(idHash, cancellationToken).ConfigureAwait(false);
        if (session is null)
        {
            return (null, AuthRefusalReason.Invalid);
        }

        var now = _time.GetUtcNow();
        var key = now - session.LastSeenAt >= IdleTimeout
            ? new AuthResult(AuthStatus.Unknown, null)
            : await _authenticator.AuthenticateHashAsync(session.KeyHash, KeyScope.Read, cancellationToken).ConfigureAwait(false);
        if (key.Status != AuthStatus.Allowed || key.TenantId != session.TenantId)
        {
            // Idle too long, or the key was revoked: the session is over on every replica.
            await _store.DeleteTraceViewSessionAsync(idHash, cancellationToken).ConfigureAwait(false);
            return (null, AuthRefusalReason.Invalid);
        }

        if (now - session.LastSeenAt >= _touchInterval)
        {
            await _store.TouchTraceViewSessionAsync(idHash, now, cancellationToken).ConfigureAwait(false);
        }

        return (key.Tenant, default);
    }

    /// <summary>Ends the request's session in the store and deletes its cookie.</summary>
    public async Task SignOutAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (IdHashOf(context) is { } idHash)
        {
            await _store.DeleteTraceViewSessionAsync(idHash, context.RequestAborted).ConfigureAwait(false);
        }

        DeleteCookie(context);
    }

    /// <summary>Deletes the session cookie (signed out, or the session ended).</summary>
    public static void DeleteCookie(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.Cookies.Delete(CookieName, CookieOptions(context));
    }

    /// <summary>A local path to return to after sign-in; anything else (absolute, protocol-relative) becomes <c>/</c>.</summary>
    public static string SafeReturnUrl(string? returnUrl) =>
        !string.IsNullOrEmpty(returnUrl) && returnUrl[0] == '/' && (returnUrl.Length == 1 || (returnUrl[1] != '/' && returnUrl[1] != '\\'))
            ? returnUrl
            : "/";

    private static byte[]? IdHashOf(HttpContext context)
    {
        var value = context.Request.Cookies[CookieName];
        Span<byte> id = stackalloc byte[IdBytes];
        if (value is null || value.Length != Base64Url.GetEncodedLength(IdBytes)
            || !Base64Url.TryDecodeFromChars(value, id, out var written) || written != IdBytes)
        {
            return null;
        }

        return SHA256.HashData(id);
    }

    // No Expires/Max-Age: a browser-session cookie; the server decides when the session ends.
    private static CookieOptions CookieOptions(HttpContext context) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Strict,
        Secure = context.Request.IsHttps,
        Path = "/",
        IsEssential = true,
    };
}
