using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace SpIstio.Backend.Auth;

/// <summary>The Trace View session scheme: the session cookie, looked up by <see cref="TraceViewSessions"/>.</summary>
internal sealed class TraceViewSessionHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, TraceViewSessions sessions)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var (tenant, refused) = await sessions.AuthenticateAsync(Context).ConfigureAwait(false);
        if (tenant is not null)
        {
            return AuthenticateResult.Success(new AuthenticationTicket(tenant.ToPrincipal(Scheme.Name), Scheme.Name));
        }

        AuthRefusalResultHandler.SetReason(Context, refused);
        if (refused == AuthRefusalReason.Missing)
        {
            return AuthenticateResult.NoResult();
        }

        // The browser holds an id that no longer opens anything: take it away.
        TraceViewSessions.DeleteCookie(Context);
        return AuthenticateResult.Fail("the Trace View session is unknown or has ended");
    }
}
