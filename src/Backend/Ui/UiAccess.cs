using Microsoft.AspNetCore.Components.Endpoints;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>
/// Who is looking at the Trace View: the read key lives in an HttpOnly, SameSite=Strict cookie
/// (never in a URL), checked on every page and HAR request by the same authenticator as the API.
/// </summary>
internal static class UiAccess
{
    /// <summary>The cookie holding the read key.</summary>
    public const string CookieName = "sp_ui_key";

    private const string TenantItem = "sp.ui.tenant";

    /// <summary>Checks the cookie's key for the read scope; the tenant id, or null when signed out or refused.</summary>
    public static async Task<long?> AuthenticateAsync(HttpContext context, ApiKeyAuthenticator authenticator)
    {
        var key = context.Request.Cookies[CookieName];
        var result = await authenticator.AuthenticateAsync(key, KeyScope.Read, context.RequestAborted).ConfigureAwait(false);
        return result.Status == AuthStatus.Allowed ? result.TenantId : null;
    }

    /// <summary>Checks the cookie's key for <paramref name="scope"/> (the admin actions of the UI).</summary>
    public static ValueTask<AuthResult> AuthenticateAsync(HttpContext context, ApiKeyAuthenticator authenticator, KeyScope scope) =>
        authenticator.AuthenticateAsync(context.Request.Cookies[CookieName], scope, context.RequestAborted);

    /// <summary>The tenant the middleware authenticated for this request.</summary>
    public static long Tenant(HttpContext context) =>
        context.Items.TryGetValue(TenantItem, out var value) && value is long tenant
            ? tenant
            : throw new InvalidOperationException("The UI page was reached without the sign-in check.");

    /// <summary>True when the request was authenticated (the layout shows navigation and sign-out then).</summary>
    public static bool IsSignedIn(HttpContext context) => context.Items.ContainsKey(TenantItem);

    /// <summary>Writes the key cookie.</summary>
    public static void SignIn(HttpContext context, string key) =>
        context.Response.Cookies.Append(CookieName, key, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = context.Request.IsHttps,
            Path = "/",
            IsEssential = true,
            MaxAge = TimeSpan.FromDays(30),
        });

    /// <summary>Deletes the key cookie.</summary>
    public static void SignOut(HttpContext context) =>
        context.Response.Cookies.Delete(CookieName, new CookieOptions { Path = "/", SameSite = SameSiteMode.Strict, HttpOnly = true, Secure = context.Request.IsHttps });

    /// <summary>A local path to return to after sign-in; anything else (absolute, protocol-relative) becomes <c>/</c>.</summary>
    public static string SafeReturnUrl(string? returnUrl) =>
        !string.IsNullOrEmpty(returnUrl) && returnUrl[0] == '/' && (returnUrl.Length == 1 || (returnUrl[1] != '/' && returnUrl[1] != '\\'))
            ? returnUrl
            : "/";

    /// <summary>
    /// Middleware: every Razor page but sign-in needs a signed-in reader; others are redirected to
    /// sign-in with the page to return to. Runs after routing, so it sees which component answers.
    /// </summary>
    public static async Task GuardPagesAsync(HttpContext context, Func<Task> next)
    {
        var component = context.GetEndpoint()?.Metadata.GetMetadata<ComponentTypeMetadata>();
        if (component is not null)
        {
            var authenticator = (ApiKeyAuthenticator)context.RequestServices.GetService(typeof(ApiKeyAuthenticator))!;
            var tenant = await AuthenticateAsync(context, authenticator).ConfigureAwait(false);
            if (tenant is { } id)
            {
                context.Items[TenantItem] = id;
            }
            else if (component.Type != typeof(Pages.SignIn))
            {
                var back = context.Request.Path + context.Request.QueryString;
                context.Response.Redirect("/signin?returnUrl=" + Uri.EscapeDataString(back));
                return;
            }
        }

        await next().ConfigureAwait(false);
    }
}

/// <summary>UI settings the backend passes down.</summary>
/// <param name="Demo">Demo mode: the sign-in page shows the demo key.</param>
internal sealed record UiOptions(bool Demo);
