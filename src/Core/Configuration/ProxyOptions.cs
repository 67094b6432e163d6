namespace SpIstio.Core.Configuration;

/// <summary>
/// <c>proxy</c>: limits of the standalone capture proxy (<c>sp agent proxy</c>). The defaults are
/// Envoy's, so an app that works behind the Istio sidecar works behind the proxy unchanged.
/// </summary>
public sealed class ProxyOptions
{
    /// <summary>Envoy's <c>max_request_headers_kb</c> default (HttpConnectionManager): 60 KiB.</summary>
    public const int DefaultMaxRequestHeadersKb = 60;

    /// <summary>Envoy's <c>max_headers_count</c> default (HttpProtocolOptions): 100.</summary>
    public const int DefaultMaxRequestHeadersCount = 100;

    /// <summary>The upper bound Envoy accepts for <c>max_request_headers_kb</c>: 8192 KiB.</summary>
    public const int MaxRequestHeadersKbLimit = 8192;

    [ConfigKey("max_request_headers_kb", "Largest request header block in KiB; the request line (URL) gets the same budget, as Envoy counts :path within it. Larger requests get 431 (headers) or 414 (URL). Default 60, Envoy's max_request_headers_kb default.")]
    public int MaxRequestHeadersKb { get; set; } = DefaultMaxRequestHeadersKb;

    [ConfigKey("max_request_headers_count", "Most request headers; more get 431. Default 100, Envoy's max_headers_count default.")]
    public int MaxRequestHeadersCount { get; set; } = DefaultMaxRequestHeadersCount;

    [ConfigKey("max_request_body_bytes", "Largest request body passed to the upstream; larger get 413. Default 0: no limit, as Envoy streams bodies of any size (capture keeps only capture.max_request_body_bytes of it).")]
    public long MaxRequestBodyBytes { get; set; }

    [ConfigKey("upstream_timeout_ms", "How long the upstream may send nothing (no response headers, no body bytes) before the proxy gives up and answers 504 naming the upstream. Default 60000 ms.")]
    public int UpstreamTimeoutMs { get; set; } = 60_000;
}
