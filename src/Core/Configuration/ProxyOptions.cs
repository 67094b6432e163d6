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

    /// <summary>
    /// 128 connections: with <see cref="ConnectionAllowanceBytes"/> each, 32 MiB, which with the agent's
    /// own 16 MiB is the 48 MiB of headroom the heap cap has had over twice the capture budget since
    /// issue 13, so the default cap (80 MiB) and the measured peak RSS stay what they were.
    /// </summary>
    public const int DefaultMaxConnections = 128;

    /// <summary>
    /// 100 gRPC streams over all the gRPC listener's connections (Kestrel's and most gRPC servers'
    /// per-connection default, above the 64 calls in flight of bench/proxy's gRPC cells): at
    /// <see cref="ConnectionAllowanceBytes"/> each (a proxied stream holds what an HTTP/1.1
    /// connection's one request does: its request and response pipes, the forwarder's copy
    /// buffers, the upstream stream's buffers), 25 MiB, counted in the heap cap only when the gRPC
    /// listener is on.
    /// </summary>
    public const int DefaultMaxGrpcStreams = 100;

    /// <summary>Largest <c>max_connections</c> accepted: 65536 connections, a 16 GiB heap allowance.</summary>
    public const int MaxConnectionsLimit = 65_536;

    /// <summary>
    /// What one open connection of the proxy may hold outside the capture budget, counted in the
    /// agent's heap cap: Kestrel's request and response pipes (64 KiB each, the request pipe bounded
    /// by the proxy to that), the forwarder's copy buffer (64 KiB), the upstream connection's
    /// buffers and the exchange's own objects. About 150 KiB was measured at 64 KiB bodies; 256 KiB
    /// leaves room for a request and a response streaming at once.
    /// </summary>
    public const int ConnectionAllowanceBytes = 256 * 1024;

    [ConfigKey("max_request_headers_kb", "Largest request header block in KiB; the request line (URL) gets the same budget, as Envoy counts :path within it. Larger requests get 431 (headers) or 414 (URL). Default 60, Envoy's max_request_headers_kb default.")]
    public int MaxRequestHeadersKb { get; set; } = DefaultMaxRequestHeadersKb;

    [ConfigKey("max_request_headers_count", "Most request headers; more get 431. Default 100, Envoy's max_headers_count default.")]
    public int MaxRequestHeadersCount { get; set; } = DefaultMaxRequestHeadersCount;

    [ConfigKey("max_request_body_bytes", "Largest request body passed to the upstream; larger get 413. Default 0: no limit, as Envoy streams bodies of any size (capture keeps only capture.max_request_body_bytes of it).")]
    public long MaxRequestBodyBytes { get; set; }

    [ConfigKey("max_connections", "Most client connections the proxy holds open at once, its HTTP and gRPC listeners together (CONNECT tunnels included; the admin port is not counted). One more is refused at once: an HTTP/1.1 client gets 503 with Retry-After and Connection: close, an HTTP/2 client a closed connection (gRPC: UNAVAILABLE); both are counted in sp_proxy_connections_refused_total. What open connections hold is outside the capture budget, so sp agent proxy counts 256 KiB for each in its heap cap (2 x export.max_inflight_bytes + 16 MiB + max_connections x 256 KiB): raise it with the pod's memory. 1 to 65536. Default 128.")]
    public int MaxConnections { get; set; } = DefaultMaxConnections;

    [ConfigKey("max_grpc_streams", "Most gRPC calls (HTTP/2 streams) the proxy's gRPC listener (--grpc-listen) serves at once over all its connections; also each connection's SETTINGS_MAX_CONCURRENT_STREAMS, so a client queues or opens another connection before it gets there (a client over it on one connection gets RST_STREAM REFUSED_STREAM). One more over all connections is answered at once, unread: a gRPC call with status UNAVAILABLE naming this key (what gRPC clients retry), any other HTTP/2 request with 503 and Retry-After; both are counted in sp_proxy_grpc_streams_refused_total. Each stream holds what an HTTP/1.1 connection's request does, so with --grpc-listen sp agent proxy adds max_grpc_streams x 256 KiB to its heap cap. 1 to 65536. Default 100.")]
    public int MaxGrpcStreams { get; set; } = DefaultMaxGrpcStreams;

    [ConfigKey("upstream_timeout_ms", "How long the upstream may send nothing (no response headers, no body bytes) before the proxy gives up and answers 504 naming the upstream. Default 60000 ms.")]
    public int UpstreamTimeoutMs { get; set; } = 60_000;
}
