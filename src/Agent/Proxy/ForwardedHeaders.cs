using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace SpIstio.Agent.Proxy;

/// <summary>
/// <c>x-forwarded-for/-proto/-host/-prefix</c> as a YARP route sets them by default
/// (<c>ForwardedTransformActions.Set</c>: the client's values replace any that came in, so a
/// caller cannot spoof them). <see cref="IHttpForwarder"/> alone does not add them; they are a
/// route transform in YARP, so the proxy applies the same rule itself.
/// </summary>
internal static class ForwardedHeaders
{
    public static void Apply(HttpContext context, HttpRequestMessage proxyRequest)
    {
        var headers = proxyRequest.Headers;
        var request = context.Request;
        var incoming = request.Headers;
        var remote = context.Connection.RemoteIpAddress;
        Replace(headers, incoming, "X-Forwarded-For", remote?.ToString());
        Replace(headers, incoming, "X-Forwarded-Proto", request.Scheme);
        Replace(headers, incoming, "X-Forwarded-Host", request.Host.HasValue ? request.Host.Value : null);
        Replace(headers, incoming, "X-Forwarded-Prefix", request.PathBase.HasValue ? request.PathBase.Value : null);
    }

    /// <summary>
    /// Sets <paramref name="name"/> on the forwarded request to <paramref name="value"/> alone (none
    /// when it is null or empty), whatever the client sent under that name in any case.
    /// </summary>
    /// <remarks>
    /// YARP's default head copy put the field on the forwarded request only if the client sent it,
    /// and most requests carry none of the agent's fields: <see cref="HttpHeaders.Remove(string)"/>
    /// of an absent name still parses it into a header descriptor and searches the outgoing head
    /// (~40 ns a field, seven fields an exchange), where Kestrel's lookup of the incoming head is cheaper.
    /// </remarks>
    public static void Replace(HttpRequestHeaders headers, IHeaderDictionary incoming, string name, string? value) =>
        Replace(headers, incoming.ContainsKey(name), name, value);

    /// <summary>
    /// <see cref="Replace(HttpRequestHeaders, IHeaderDictionary, string, string?)"/> for a caller that
    /// already knows whether the client sent <paramref name="name"/> (<paramref name="sent"/>).
    /// </summary>
    public static void Replace(HttpRequestHeaders headers, bool sent, string name, string? value)
    {
        if (sent)
        {
            headers.Remove(name);
        }

        if (!string.IsNullOrEmpty(value))
        {
            headers.TryAddWithoutValidation(name, value);
        }
    }
}

/// <summary>The transformer for exchanges that are not captured: YARP's default plus forwarded headers.</summary>
internal sealed class PassThroughTransformer : HttpTransformer
{
    public static readonly PassThroughTransformer Instance = new();

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        ForwardedHeaders.Apply(httpContext, proxyRequest);
    }
}
