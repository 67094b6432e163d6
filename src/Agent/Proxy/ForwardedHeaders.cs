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
        var remote = context.Connection.RemoteIpAddress;
        Set(headers, "X-Forwarded-For", remote?.ToString());
        Set(headers, "X-Forwarded-Proto", request.Scheme);
        Set(headers, "X-Forwarded-Host", request.Host.HasValue ? request.Host.Value : null);
        Set(headers, "X-Forwarded-Prefix", request.PathBase.HasValue ? request.PathBase.Value : null);
    }

    private static void Set(HttpRequestHeaders headers, string name, string? value)
    {
        headers.Remove(name);
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
