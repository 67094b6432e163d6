using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>What every state-changing form of the Trace View checks first.</summary>
internal static class UiActions
{
    /// <summary>
    /// The one check at the top of each form handler (its route group already needs a signed-in
    /// Trace View session): the form's antiforgery token (the session rides in a cookie, so a
    /// cross-site form could post), then the admin scope. Returns the tenant, or the answer to send
    /// instead: 400 without a valid token, and <paramref name="page"/> with <c>?problem=needs-admin</c>
    /// for a key that may only read (a page that says why, rather than a bare 403).
    /// </summary>
    public static async Task<(long Tenant, IResult? Refusal)> RequireAdminAsync(HttpContext context, IAntiforgery antiforgery, string page)
    {
        if (await UiEndpoints.RefuseWithoutTokenAsync(context, antiforgery).ConfigureAwait(false) is { } refused)
        {
            return (0, refused);
        }

        var tenant = TenantContext.Of(context);
        return tenant.Allows(KeyScope.Admin) ? (tenant.TenantId, null) : (0, Results.Redirect(WithProblem(page, UiProblem.NeedsAdmin)));
    }

    /// <summary><paramref name="page"/> with <c>problem=<paramref name="code"/></c> added to its query.</summary>
    public static string WithProblem(string page, string code) => page + (page.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "problem=" + code;

    /// <summary>A form field, trimmed; null when absent or blank.</summary>
    public static string? Field(IFormCollection form, string name) =>
        form.TryGetValue(name, out var value) && value.ToString().Trim() is { Length: > 0 } text ? text : null;
}

/// <summary>
/// Outcome codes form handlers return to pages in <c>?problem=</c>; pages turn them into sentences
/// (never free text in a URL, so a crafted link cannot make a page say something else).
/// </summary>
internal static class UiProblem
{
    public const string NeedsAdmin = "needs-admin";
    public const string Path = "path";
    public const string Status = "status";
    public const string Headers = "headers";
    public const string Expires = "expires";
    public const string Method = "method";
    public const string NotFound = "not-found";
    public const string HarFile = "har-file";
    public const string HarInvalid = "har-invalid";
    public const string HarEntries = "har-entries";
    public const string Target = "target";
    public const string Session = "session";
    public const string Ignore = "ignore";
    public const string JobsOff = "jobs-off";

    /// <summary>The sentence for a code, or null for an unknown one.</summary>
    public static string? Describe(string? code, string tenantName) => code switch
    {
        NeedsAdmin => "This needs an admin key: sp keys create --tenant " + tenantName + " --scope admin, then sign in with that key. Your key may only read.",
        Path => "The request path must start with '/'.",
        Status => "The response status must be a number from 200 to 599.",
        Headers => "Each header line must be 'name: value'.",
        Expires => "'Expires' must be a UTC date and time such as 2026-12-31T18:00.",
        Method => "The method must be a word of letters (GET, POST, …).",
        NotFound => "That mock is not stored (it was deleted, or it belongs to another tenant).",
        HarFile => "Choose a HAR file to import (at most 32 MiB).",
        HarInvalid => "The file is not a HAR 1.2 document (JSON with log.entries).",
        HarEntries => "An entry of the HAR file has no absolute request URL or no response status from 200 to 599, or a base64 body that is not base64; nothing was imported.",
        Target => "The target must be an http or https URL without query, fragment or credentials, such as http://web.staging:8080.",
        Session => "That session is not stored for this tenant.",
        Ignore => "The ignore list is too long (at most 4096 characters).",
        JobsOff => "This backend's store keeps no replay jobs.",
        _ => null,
    };
}
