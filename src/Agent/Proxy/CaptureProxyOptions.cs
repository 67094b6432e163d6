using SpIstio.Agent.Hosting;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Proxy;

/// <summary>How the capture proxy forwards: to one upstream (reverse) or to each request's own origin (forward).</summary>
public sealed class CaptureProxyOptions
{
    /// <summary>
    /// Reverse mode: the origin every request goes to (<c>http://127.0.0.1:8080</c>; a path is
    /// ignored, requests keep their own). Must be null in forward mode.
    /// </summary>
    public Uri? Upstream { get; init; }

    /// <summary>
    /// Forward mode (the application's <c>http_proxy</c>): absolute-form targets go to their own
    /// origin and are captured; <c>CONNECT</c> tunnels pass through uncaptured.
    /// </summary>
    public bool Forward { get; init; }

    /// <summary>Direction recorded on every exchange: inbound in front of an app, outbound as its proxy.</summary>
    public TrafficDirection Direction { get; init; } = TrafficDirection.Inbound;

    /// <summary>Speak HTTP/2 to the upstream (h2c with prior knowledge for <c>http://</c>). Default HTTP/1.1.</summary>
    public bool Http2Upstream { get; init; }

    /// <summary>
    /// Reverse mode: a second listener for gRPC, cleartext HTTP/2 with prior knowledge (h2c), whose
    /// requests go to the upstream over HTTP/2 (h2c for <c>http://</c>). Null: none. Kestrel cannot
    /// serve HTTP/1.1 and h2c prior knowledge on one cleartext port, hence a port of its own.
    /// </summary>
    public ListenAddress? GrpcListen { get; init; }

    /// <summary>Capture exchanges. Off, the proxy is a plain YARP forwarder (the benchmark's baseline).</summary>
    public bool Capture { get; init; } = true;

    /// <summary>TCP connect timeout to an upstream or a CONNECT target. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long the upstream may send nothing (no response headers, no body bytes) before the
    /// forwarder gives up and answers 504 naming the upstream (<c>proxy.upstream_timeout_ms</c>).
    /// Default 60 s, not YARP's 100 s: a hung upstream should fail before most clients give up.
    /// </summary>
    public TimeSpan ActivityTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Largest request header block, and largest request line (<c>proxy.max_request_headers_kb</c>).
    /// Default 60 KiB, Envoy's <c>max_request_headers_kb</c>: Envoy counts <c>:path</c> within that
    /// budget, so a URL the sidecar passes must pass here too (Kestrel's own 8 KiB line and 32 KiB
    /// header defaults would answer 414 and 431 to requests the mesh accepts).
    /// </summary>
    public int MaxRequestHeadersBytes { get; init; } = ProxyOptions.DefaultMaxRequestHeadersKb * 1024;

    /// <summary>Most request headers (<c>proxy.max_request_headers_count</c>). Default 100, Envoy's <c>max_headers_count</c>.</summary>
    public int MaxRequestHeaderCount { get; init; } = ProxyOptions.DefaultMaxRequestHeadersCount;

    /// <summary>Largest request body (<c>proxy.max_request_body_bytes</c>), null for none: Envoy streams bodies of any size by default.</summary>
    public long? MaxRequestBodyBytes { get; init; }

    /// <summary>
    /// Most client connections open at once, all listeners together (<c>proxy.max_connections</c>);
    /// more are refused (see <see cref="ConnectionLimit"/>). Default 128.
    /// </summary>
    public int MaxConnections { get; init; } = ProxyOptions.DefaultMaxConnections;

    /// <summary>
    /// Most gRPC (HTTP/2) streams the gRPC listener serves at once over all its connections, and each
    /// connection's stream limit (<c>proxy.max_grpc_streams</c>); more are answered UNAVAILABLE (see
    /// <see cref="SpIstio.Agent.Hosting.StreamLimit"/>). Default 100.
    /// </summary>
    public int MaxGrpcStreams { get; init; } = ProxyOptions.DefaultMaxGrpcStreams;

    /// <summary>The limits of the <c>proxy</c> configuration section applied to these options.</summary>
    public CaptureProxyOptions WithLimits(ProxyOptions limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        return new CaptureProxyOptions
        {
            Upstream = Upstream,
            Forward = Forward,
            Direction = Direction,
            Http2Upstream = Http2Upstream,
            GrpcListen = GrpcListen,
            Capture = Capture,
            ConnectTimeout = ConnectTimeout,
            ActivityTimeout = TimeSpan.FromMilliseconds(limits.UpstreamTimeoutMs),
            MaxRequestHeadersBytes = limits.MaxRequestHeadersKb * 1024,
            MaxRequestHeaderCount = limits.MaxRequestHeadersCount,
            MaxRequestBodyBytes = limits.MaxRequestBodyBytes > 0 ? limits.MaxRequestBodyBytes : null,
            MaxConnections = limits.MaxConnections,
            MaxGrpcStreams = limits.MaxGrpcStreams,
        };
    }

    /// <summary>Checks the combination; returns the problems found (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (Forward && Upstream is not null)
        {
            problems.Add("--forward and --upstream exclude each other: a forward proxy sends each request to its own origin");
        }
        else if (!Forward && Upstream is null)
        {
            problems.Add("an upstream is required in reverse mode (--upstream http://host:port), or use --forward");
        }

        if (GrpcListen is not null && Forward)
        {
            problems.Add("--grpc-listen needs reverse mode (--upstream): HTTP/2 has no absolute-form targets to forward by");
        }

        if (Upstream is not null
            && (!Upstream.IsAbsoluteUri
                || !(Upstream.Scheme == Uri.UriSchemeHttp || Upstream.Scheme == Uri.UriSchemeHttps)))
        {
            problems.Add("--upstream must be an absolute http:// or https:// URL, got '" + Upstream.OriginalString + "'");
        }

        if (ActivityTimeout <= TimeSpan.Zero)
        {
            problems.Add("the upstream timeout must be positive");
        }

        if (MaxRequestHeadersBytes < 1024 || MaxRequestHeaderCount < 1 || MaxRequestBodyBytes is < 1)
        {
            problems.Add("the request limits must be positive (headers at least 1 KiB)");
        }

        if (ConnectTimeout <= TimeSpan.Zero)
        {
            problems.Add("the connect timeout must be positive");
        }

        return problems;
    }
}
