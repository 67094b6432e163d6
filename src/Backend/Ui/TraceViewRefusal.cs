using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>How the Trace View's routes answer a request without a usable session.</summary>
internal sealed class TraceViewRefusal : IAuthRefusal
{
    /// <summary>Pages and forms: back to sign-in, with the page to return to.</summary>
    public static readonly TraceViewRefusal SignInRedirect = new(redirect: true);

    /// <summary>Downloads (HAR): a problem+json 401/403.</summary>
    public static readonly TraceViewRefusal Problem = new(redirect: false);

    private readonly bool _redirect;

    private TraceViewRefusal(bool redirect) => _redirect = redirect;

    public Task WriteAsync(HttpContext context, AuthRefusalReason reason, KeyScope scope)
    {
        if (reason == AuthRefusalReason.MissingScope)
        {
            return Results.Problem(statusCode: 403, title: "Forbidden", detail: "the signed-in key has no " + ApiKeys.FormatScopes(scope) + " scope").ExecuteAsync(context);
        }

        if (!_redirect)
        {
            return Results.Problem(statusCode: 401, title: "Unauthorized", detail: "sign in to the Trace View first").ExecuteAsync(context);
        }

        // A form post has no page to come back to: return to where it was posted from only for GETs.
        string back = HttpMethods.IsGet(context.Request.Method) ? context.Request.Path + context.Request.QueryString : "/";
        context.Response.Redirect("/signin?returnUrl=" + Uri.EscapeDataString(back));
        return Task.CompletedTask;
    }
}
