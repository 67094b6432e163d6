using System.Globalization;
using System.Security.Claims;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Auth;

/// <summary>
/// The tenant a request acts for, resolved once by the authentication layer (API key or Trace
/// View session) and read by every endpoint and page from here: a handler parameter of this type
/// (<see cref="BindAsync"/>) or <see cref="Of"/>. Nothing else looks at keys or cookies.
/// </summary>
/// <param name="TenantId">The tenant's id: every store call is scoped by it.</param>
/// <param name="TenantName">The tenant's name.</param>
/// <param name="Scopes">What the key allows.</param>
/// <param name="KeyId">The key's public id (never the key).</param>
public sealed record TenantContext(long TenantId, string TenantName, KeyScope Scopes, string KeyId)
{
    private static readonly object _itemKey = new();

    /// <summary>True when the key allows <paramref name="scope"/> (admin allows everything).</summary>
    public bool Allows(KeyScope scope) => ApiKeys.Allows(Scopes, scope);

    /// <summary>The authenticated tenant of the request, or null when the request was not authenticated.</summary>
    public static TenantContext? Find(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Items.TryGetValue(_itemKey, out var cached) && cached is TenantContext known)
        {
            return known;
        }

        var tenant = FromPrincipal(context.User);
        if (tenant is not null)
        {
            context.Items[_itemKey] = tenant;
        }

        return tenant;
    }

    /// <summary>The authenticated tenant of the request; an endpoint without a scope policy throws.</summary>
    public static TenantContext Of(HttpContext context) =>
        Find(context) ?? throw new InvalidOperationException(
            "No authenticated tenant on " + context.Request.Path + ": the route is missing its RequireScope / RequireTraceViewSession policy.");

    /// <summary>Minimal-API binding: a handler parameter of this type receives the request's tenant.</summary>
    public static ValueTask<TenantContext?> BindAsync(HttpContext context) => ValueTask.FromResult<TenantContext?>(Of(context));

    /// <summary>The claims the authentication schemes issue for this tenant.</summary>
    internal ClaimsPrincipal ToPrincipal(string scheme, params Claim[] extra)
    {
        var claims = new List<Claim>(6 + extra.Length)
        {
            new(SpAuth.TenantIdClaim, TenantId.ToString(CultureInfo.InvariantCulture), ClaimValueTypes.Integer64),
            new(SpAuth.TenantNameClaim, TenantName),
            new(SpAuth.KeyIdClaim, KeyId),
        };
        foreach (var scope in (ReadOnlySpan<KeyScope>)[KeyScope.Ingest, KeyScope.Read, KeyScope.Admin])
        {
            if ((Scopes & scope) != 0)
            {
                claims.Add(new Claim(SpAuth.ScopeClaim, ApiKeys.FormatScopes(scope)));
            }
        }

        claims.AddRange(extra);
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme, SpAuth.TenantNameClaim, null));
    }

    internal static TenantContext? FromPrincipal(ClaimsPrincipal? principal)
    {
        if (principal?.Identity?.IsAuthenticated != true
            || !long.TryParse(principal.FindFirstValue(SpAuth.TenantIdClaim), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return null;
        }

        var scopes = KeyScope.None;
        foreach (var claim in principal.FindAll(SpAuth.ScopeClaim))
        {
            if (ApiKeys.TryParseScopes(claim.Value, out var scope))
            {
                scopes |= scope;
            }
        }

        return new TenantContext(id, principal.FindFirstValue(SpAuth.TenantNameClaim) ?? "", scopes, principal.FindFirstValue(SpAuth.KeyIdClaim) ?? "");
    }
}
