using Microsoft.AspNetCore.Builder;

namespace SpIstio.Backend.Hosting;

/// <summary>
/// Headers every HTTP answer carries: a strict Content-Security-Policy (scripts and styles only
/// from the server's own files, nothing inline, no framing), no MIME sniffing, no referrer, frame
/// denial, and <c>Cache-Control: no-store</c> unless a route says otherwise (the UI's hashed assets
/// do): pages and API answers carry captured data, which must not linger in caches.
/// </summary>
internal static class SecurityHeaders
{
    /// <summary>The policy of every page. <c>img-src data:</c> for inline SVG icons; <c>connect-src</c> for the auto-refresh fetch.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

    public static IApplicationBuilder UseSecurityHeaders(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        // gRPC answers are not documents; their headers are the call's metadata.
        if (context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) != true)
        {
            var headers = context.Response.Headers;
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
            headers.CacheControl = "no-store";
        }

        return next(context);
    });
}
