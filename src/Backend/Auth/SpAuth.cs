using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Auth;

/// <summary>
/// The one authentication layer: two ASP.NET Core schemes (API keys for the API, ingest and the
/// agent; the Trace View session for the UI), one authorization policy per scheme and scope, and
/// the route-group extensions that apply them. See docs/ARCHITECTURE.md "Authentication".
/// </summary>
public static class SpAuth
{
    /// <summary>The API-key scheme: <c>x-public-key</c> or <c>Authorization: Bearer</c> (HTTP headers and gRPC metadata).</summary>
    public const string ApiKeyScheme = "sp-api-key";

    /// <summary>The Trace View session scheme: an opaque session id in a cookie.</summary>
    public const string SessionScheme = "sp-trace-view";

    /// <summary>Claim: the tenant id.</summary>
    public const string TenantIdClaim = "sp:tenant_id";

    /// <summary>Claim: the tenant name.</summary>
    public const string TenantNameClaim = "sp:tenant";

    /// <summary>Claim (one per scope): <c>ingest</c>, <c>read</c> or <c>admin</c>.</summary>
    public const string ScopeClaim = "sp:scope";

    /// <summary>Claim: the key's public id.</summary>
    public const string KeyIdClaim = "sp:key_id";

    /// <summary>The policy that authenticates a Trace View session when there is one and lets every request through (the sign-in page).</summary>
    internal const string OptionalSessionPolicy = "session:optional";

    private static readonly KeyScope[] _scopes = [KeyScope.Ingest, KeyScope.Read, KeyScope.Admin];

    /// <summary>Registers the schemes, the per-scope policies and the refusal writer.</summary>
    public static IServiceCollection AddSpAuthentication(this IServiceCollection services)
    {
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyScheme, null)
            .AddScheme<AuthenticationSchemeOptions, TraceViewSessionHandler>(SessionScheme, null);
        services.AddAuthorization(options =>
        {
            foreach (var scope in _scopes)
            {
                options.AddPolicy(ApiPolicy(scope), p => p.AddAuthenticationSchemes(ApiKeyScheme).RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(scope)));
                options.AddPolicy(SessionPolicy(scope), p => p.AddAuthenticationSchemes(SessionScheme).RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(scope)));
            }

            options.AddPolicy(OptionalSessionPolicy, p => p.AddAuthenticationSchemes(SessionScheme).RequireAssertion(_ => true));
        });
        services.AddSingleton<IAuthorizationHandler, ScopeAuthorizationHandler>();
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, AuthRefusalResultHandler>();
        return services;
    }

    /// <summary>Requires an API key with <paramref name="scope"/> (401 without a valid key, 403 without the scope).</summary>
    public static TBuilder RequireScope<TBuilder>(this TBuilder builder, KeyScope scope)
        where TBuilder : IEndpointConventionBuilder => builder.RequireAuthorization(ApiPolicy(scope));

    /// <summary>Requires a signed-in Trace View session whose key has <paramref name="scope"/>.</summary>
    public static TBuilder RequireTraceViewSession<TBuilder>(this TBuilder builder, KeyScope scope = KeyScope.Read)
        where TBuilder : IEndpointConventionBuilder => builder.RequireAuthorization(SessionPolicy(scope));

    /// <summary>How this route answers a refused request (default: a problem+json 401/403).</summary>
    public static TBuilder WithAuthRefusal<TBuilder>(this TBuilder builder, IAuthRefusal refusal)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(refusal);

    internal static string ApiPolicy(KeyScope scope) => "key:" + ApiKeys.FormatScopes(scope);

    internal static string SessionPolicy(KeyScope scope) => "session:" + ApiKeys.FormatScopes(scope);
}

/// <summary>Why a request was refused.</summary>
public enum AuthRefusalReason
{
    /// <summary>No key (or no session cookie) was sent: 401.</summary>
    Missing,

    /// <summary>The key is unknown, malformed or revoked, or the session ended: 401.</summary>
    Invalid,

    /// <summary>The key is valid but lacks the route's scope: 403.</summary>
    MissingScope,
}

/// <summary>
/// Writes a refusal the way a route's protocol expects (problem+json, an OTLP <c>Status</c>, a gRPC
/// status, a redirect to sign-in); attach with <see cref="SpAuth.WithAuthRefusal"/>.
/// </summary>
public interface IAuthRefusal
{
    /// <summary>Writes the answer to a refused request.</summary>
    /// <param name="context">The request.</param>
    /// <param name="reason">Why it was refused.</param>
    /// <param name="scope">The scope the route needs.</param>
    Task WriteAsync(HttpContext context, AuthRefusalReason reason, KeyScope scope);
}

/// <summary>The API's refusals: problem+json, 401 naming what was wrong with the key or 403 naming the scope.</summary>
internal sealed class ProblemRefusal : IAuthRefusal
{
    public static readonly ProblemRefusal Instance = new();

    public Task WriteAsync(HttpContext context, AuthRefusalReason reason, KeyScope scope) => (reason switch
    {
        AuthRefusalReason.Missing => Results.Problem(statusCode: 401, title: "Unauthorized", detail: "no API key: send it in x-public-key or Authorization: Bearer"),
        AuthRefusalReason.Invalid => Results.Problem(statusCode: 401, title: "Unauthorized", detail: "unknown or revoked API key"),
        _ => Results.Problem(statusCode: 403, title: "Forbidden", detail: "the API key has no " + ApiKeys.FormatScopes(scope) + " scope"),
    }).ExecuteAsync(context);
}

/// <summary>The scope a policy needs.</summary>
internal sealed record ScopeRequirement(KeyScope Scope) : IAuthorizationRequirement;

/// <summary>Grants a <see cref="ScopeRequirement"/> when the authenticated key allows the scope.</summary>
internal sealed class ScopeAuthorizationHandler : AuthorizationHandler<ScopeRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, ScopeRequirement requirement)
    {
        if (TenantContext.FromPrincipal(context.User) is { } tenant && tenant.Allows(requirement.Scope))
        {
            context.Succeed(requirement);
        }

        return Task.CompletedTask;
    }
}

/// <summary>
/// Turns a failed authorization into the route's own refusal (see <see cref="IAuthRefusal"/>)
/// instead of the schemes' challenge: the wire answers stay what each protocol specifies.
/// </summary>
internal sealed class AuthRefusalResultHandler : IAuthorizationMiddlewareResultHandler
{
    private static readonly object _reasonKey = new();

    /// <summary>Called by the schemes: why authentication failed, for the refusal to say.</summary>
    public static void SetReason(HttpContext context, AuthRefusalReason reason) => context.Items[_reasonKey] = reason;

    public Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Succeeded)
        {
            return next(context);
        }

        var scope = KeyScope.None;
        foreach (var requirement in policy.Requirements)
        {
            if (requirement is ScopeRequirement s)
            {
                scope |= s.Scope;
            }
        }

        var reason = authorizeResult.Forbidden
            ? AuthRefusalReason.MissingScope
            : context.Items.TryGetValue(_reasonKey, out var why) && why is AuthRefusalReason r ? r : AuthRefusalReason.Missing;
        var refusal = context.GetEndpoint()?.Metadata.GetMetadata<IAuthRefusal>() ?? ProblemRefusal.Instance;
        return refusal.WriteAsync(context, reason, scope);
    }
}
