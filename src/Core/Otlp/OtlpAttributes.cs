using System.Collections.Frozen;

namespace SpIstio.Core.Otlp;

/// <summary>
/// Attribute names of an exchange span. The <c>sp.*</c>, <c>url.host</c>, <c>url.path</c>,
/// <c>http.request.header.*</c>, <c>http.*.body</c> and <c>http.response.status_code</c> names are
/// the original SP-Istio agent's (so either agent and either backend understand each other); the
/// OTel semantic-convention names are added beside them; the <c>http.method</c>-style names are the
/// pre-1.23 semantic conventions older SDKs still send.
/// </summary>
public static class OtlpAttributes
{
    /// <summary>Resource attribute naming the service (OTel semconv; the original sets it too).</summary>
    public const string ResourceServiceName = "service.name";

    /// <summary>The capturing service's name.</summary>
    public const string ServiceName = "sp.service.name";

    /// <summary><c>inbound</c> or <c>outbound</c>.</summary>
    public const string TrafficDirection = "sp.traffic.direction";

    /// <summary>The business session id.</summary>
    public const string SessionId = "sp.session.id";

    /// <summary>The tenant's public key, when the exporter puts it on the span.</summary>
    public const string PublicKey = "sp.public.key";

    /// <summary>The original agent's span role: <c>extract</c> (a recording) or <c>inject</c> (a cache lookup).</summary>
    public const string SpanType = "sp.span.type";

    /// <summary>The value of <see cref="SpanType"/> for a recorded exchange.</summary>
    public const string SpanTypeExtract = "extract";

    /// <summary>The request authority exactly as seen (host and optional port).</summary>
    public const string UrlHost = "url.host";

    /// <summary>The request path without the query.</summary>
    public const string UrlPath = "url.path";

    /// <summary>The query string without <c>?</c> (OTel semconv).</summary>
    public const string UrlQuery = "url.query";

    /// <summary><c>http</c> or <c>https</c> (OTel semconv).</summary>
    public const string UrlScheme = "url.scheme";

    /// <summary>The absolute URL (OTel semconv).</summary>
    public const string UrlFull = "url.full";

    /// <summary>The HTTP method (OTel semconv).</summary>
    public const string HttpRequestMethod = "http.request.method";

    /// <summary>The host of the authority without port (OTel semconv).</summary>
    public const string ServerAddress = "server.address";

    /// <summary>The port of the authority, when it has one (OTel semconv, int).</summary>
    public const string ServerPort = "server.port";

    /// <summary>Prefix of request header attributes; the rest of the name is the lower-case header name.</summary>
    public const string RequestHeaderPrefix = "http.request.header.";

    /// <summary>Prefix of response header attributes.</summary>
    public const string ResponseHeaderPrefix = "http.response.header.";

    /// <summary>The captured request body: UTF-8 text, or base64 when marked so.</summary>
    public const string RequestBody = "http.request.body";

    /// <summary>The captured response body.</summary>
    public const string ResponseBody = "http.response.body";

    /// <summary>The response status code (int).</summary>
    public const string ResponseStatusCode = "http.response.status_code";

    /// <summary>Prefix of the request body's metadata attributes (see <see cref="BodyEncodingSuffix"/> …).</summary>
    public const string RequestBodyMetaPrefix = "sp.http.request.body.";

    /// <summary>Prefix of the response body's metadata attributes.</summary>
    public const string ResponseBodyMetaPrefix = "sp.http.response.body.";

    /// <summary><c>base64</c> when the body attribute holds base64 rather than text.</summary>
    public const string BodyEncodingSuffix = "encoding";

    /// <summary><c>text</c> on a base64 body whose bytes are text in a charset other than UTF-8.</summary>
    public const string BodyKindSuffix = "kind";

    /// <summary>The body's size on the wire in bytes (int; -1 when unknown).</summary>
    public const string BodySizeSuffix = "size";

    /// <summary>True (bool) when the captured body is shorter than the real one.</summary>
    public const string BodyTruncatedSuffix = "truncated";

    /// <summary>The content-type the body was captured with.</summary>
    public const string BodyContentTypeSuffix = "content_type";

    /// <summary>The content-encoding the body had on the wire.</summary>
    public const string BodyContentEncodingSuffix = "content_encoding";

    /// <summary>True (bool) when the captured body was decoded from its content-encoding.</summary>
    public const string BodyDecodedSuffix = "decoded";

    /// <summary>The marker value of the encoding attribute.</summary>
    public const string Base64 = "base64";

    /// <summary>
    /// The value of the encoding attribute of a gRPC body sent without its bytes: they are exactly the
    /// length-prefixed frames of the call's message list (<c>sp.grpc.request.messages</c> /
    /// <c>sp.grpc.response.messages</c>: every message listed, in order, uncompressed, none cut),
    /// so a reader rebuilds the body from the list (<see cref="ExchangeSpanMapper.FromSpan"/>)
    /// instead of the span carrying each message twice.
    /// </summary>
    public const string GrpcMessageFrames = "grpc-frames";

    /// <summary>
    /// The value of the encoding attribute of a gRPC body cut by its limit and sent without its bytes:
    /// they are the first <see cref="BodyFramesLengthSuffix"/> bytes of the frames of the call's
    /// message list, whose last listed message may be cut too (its frame declares its wire length).
    /// A distinct value, not <see cref="GrpcMessageFrames"/>: a reader that does not know it keeps
    /// the body empty (its size and truncation flag stay), where one that rebuilt whole frames from
    /// the list would show bytes the wire never carried.
    /// </summary>
    public const string GrpcMessageFramesPrefix = "grpc-frames-prefix";

    /// <summary>The captured length in bytes (int) of a body sent as <see cref="GrpcMessageFramesPrefix"/>.</summary>
    public const string BodyFramesLengthSuffix = "frames_length";

    /// <summary><c>hit</c> or <c>miss</c> when the agent's cache was consulted.</summary>
    public const string Cache = "sp.cache";

    /// <summary><c>failed</c>, <c>cancelled</c> or <c>timed_out</c> when the exchange did not complete.</summary>
    public const string Outcome = "sp.outcome";

    /// <summary>The reason an exchange did not complete.</summary>
    public const string Error = "sp.error";

    /// <summary>The class of error (OTel semconv): the outcome, or the HTTP status code as a string.</summary>
    public const string ErrorType = "error.type";

    /// <summary>Pre-1.23 semconv HTTP method.</summary>
    public const string LegacyHttpMethod = "http.method";

    /// <summary>Pre-1.23 semconv request target (path and query).</summary>
    public const string LegacyHttpTarget = "http.target";

    /// <summary>Pre-1.23 semconv absolute URL.</summary>
    public const string LegacyHttpUrl = "http.url";

    /// <summary>Pre-1.23 semconv scheme.</summary>
    public const string LegacyHttpScheme = "http.scheme";

    /// <summary>Pre-1.23 semconv Host header value.</summary>
    public const string LegacyHttpHost = "http.host";

    /// <summary>Pre-1.23 semconv response status code.</summary>
    public const string LegacyHttpStatusCode = "http.status_code";

    private static readonly FrozenSet<string> _reserved = new[]
    {
        ServiceName, TrafficDirection, SessionId, PublicKey, UrlHost, UrlPath, UrlQuery, UrlScheme, UrlFull,
        HttpRequestMethod, ServerAddress, ServerPort, RequestBody, ResponseBody, ResponseStatusCode,
        Cache, Outcome, Error, ErrorType, LegacyHttpMethod, LegacyHttpTarget, LegacyHttpUrl,
        LegacyHttpScheme, LegacyHttpHost, LegacyHttpStatusCode,
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>
    /// True for the names the exchange mapping owns: an exchange's extra attributes under these
    /// names are not exported (they would duplicate a key), and a span's attributes under these
    /// names are read into exchange fields rather than kept as extra attributes.
    /// <see cref="SpanType"/> is not reserved: it passes through unless it says <c>extract</c>.
    /// </summary>
    public static bool IsReserved(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _reserved.Contains(key)
            || key.StartsWith(RequestHeaderPrefix, StringComparison.Ordinal)
            || key.StartsWith(ResponseHeaderPrefix, StringComparison.Ordinal)
            || key.StartsWith(RequestBodyMetaPrefix, StringComparison.Ordinal)
            || key.StartsWith(ResponseBodyMetaPrefix, StringComparison.Ordinal);
    }

    /// <summary>
    /// The integer value of an extra attribute that its convention types as an integer
    /// (<c>rpc.grpc.status_code</c>, OpenTelemetry RPC conventions), or null to write it as a string.
    /// <see cref="Model.Exchange.Attributes"/> holds strings; the encoders type these on the way out.
    /// </summary>
    public static long? IntegerValue(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        return string.Equals(key, GrpcMessages.GrpcSpanAttributes.RpcStatusCode, StringComparison.Ordinal)
            && long.TryParse(value, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var number)
            ? number
            : null;
    }
}
