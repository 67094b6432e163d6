using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Auth;

/// <summary>
/// The API-key scheme: the key from <c>x-public-key</c> or <c>Authorization: Bearer</c> (gRPC
/// metadata arrive as the same HTTP/2 headers), checked by <see cref="ApiKeyAuthenticator"/> and
/// its cache. The request's body is never touched, so a refused gRPC call is answered before its
/// message is parsed.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeyAuthenticator authenticator)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var key = ApiKeyAuthenticator.ExtractKey(Request.Headers["x-public-key"], Request.Headers.Authorization);
        var result = await authenticator.AuthenticateAsync(key, KeyScope.None, Context.RequestAborted).ConfigureAwait(false);
        switch (result.Status)
        {
            case AuthStatus.Missing:
                AuthRefusalResultHandler.SetReason(Context, AuthRefusalReason.Missing);
                return AuthenticateResult.NoResult();
            case AuthStatus.Unknown:
                AuthRefusalResultHandler.SetReason(Context, AuthRefusalReason.Invalid);
                return AuthenticateResult.Fail("unknown or revoked API key");
            default:
                return AuthenticateResult.Success(new AuthenticationTicket(result.Tenant!.ToPrincipal(Scheme.Name), Scheme.Name));
        }
    }
}
