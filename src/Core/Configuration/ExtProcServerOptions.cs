namespace SpIstio.Core.Configuration;

/// <summary>
/// <c>extproc</c>: limits of the ext_proc server (<c>sp agent extproc</c>). Its callers are the Envoys
/// of the pods it serves, but anything that reaches its port can open connections and streams, and
/// what they hold is outside the capture budget: both are bounded, and counted in the agent's heap
/// cap (<c>2 × export.max_inflight_bytes + 16 MiB + max_connections × 256 KiB + max_streams × 64 KiB</c>).
/// </summary>
public sealed class ExtProcServerOptions
{
    /// <summary>
    /// 64 connections: Envoy opens about one per worker thread to the agent, so a shared agent serves
    /// some 30 two-worker sidecars within it; at <see cref="ConnectionAllowanceBytes"/> each, 16 MiB.
    /// </summary>
    public const int DefaultMaxConnections = 64;

    /// <summary>
    /// 256 streams, one per HTTP request in flight through the sidecars (2,560 requests/s of 100 ms
    /// each); at <see cref="StreamAllowanceBytes"/> each, 16 MiB, so with the connections' 16 MiB and
    /// the agent's own 16 MiB the heap cap keeps the 48 MiB of headroom over twice the capture budget
    /// (80 MiB by default) it had before these bounds, under which the bench's peaks were measured.
    /// </summary>
    public const int DefaultMaxStreams = 256;

    /// <summary>Largest <c>max_connections</c> accepted: 16,384 connections, a 4 GiB heap allowance.</summary>
    public const int MaxConnectionsLimit = 16_384;

    /// <summary>Largest <c>max_streams</c> accepted: 65,536 streams, a 4 GiB heap allowance.</summary>
    public const int MaxStreamsLimit = 65_536;

    /// <summary>
    /// What one open HTTP/2 connection of the ext_proc server may hold outside the capture budget,
    /// counted in the heap cap: the bytes Kestrel reads ahead of its frame loop (bounded by the
    /// server to 64 KiB), its response pipe, HPACK tables, frame buffers and the connection's
    /// objects. Measured (JIT agent, dotnet-gcdump): ~31 KiB an idle connection, ~85 KiB one carrying
    /// a stream of 64 KiB bodies.
    /// </summary>
    public const int ConnectionAllowanceBytes = 256 * 1024;

    /// <summary>
    /// What one open ext_proc stream may hold outside the capture budget, counted in the heap cap:
    /// Kestrel's stream and its request context, the gRPC call, the stream's capture state without its
    /// bodies (those are in the budget) and the last message received. Measured (JIT agent,
    /// dotnet-gcdump, 1,000 streams held open): ~15 KiB a stream after its request headers, ~19 KiB
    /// after a 2 KiB body message, ~58 KiB beyond the capture budget after a 64 KiB one. A stream
    /// whose message is larger holds more: one message is bounded only by the gRPC receive limit.
    /// </summary>
    public const int StreamAllowanceBytes = 64 * 1024;

    [ConfigKey("max_connections", "Most HTTP/2 connections the ext_proc server holds open at once (TCP and Unix socket together). One more is closed at once (gRPC clients report UNAVAILABLE, some INTERNAL; Envoy passes the request on with failure_mode_allow: true) and counted in sp_extproc_connections_refused_total. Envoy opens about one connection per worker thread. sp agent extproc counts 256 KiB for each in its heap cap. 1 to 16384. Default 64.")]
    public int MaxConnections { get; set; } = DefaultMaxConnections;

    [ConfigKey("max_streams", "Most ext_proc streams (gRPC calls, health checks included) the server serves at once over all its connections; Envoy opens one per HTTP request in flight. It is also each connection's SETTINGS_MAX_CONCURRENT_STREAMS (a client over it gets RST_STREAM REFUSED_STREAM). One more over all connections is answered at once with gRPC UNAVAILABLE (with failure_mode_allow: true Envoy passes the request on uncaptured, without it Envoy answers 500) and counted in sp_extproc_streams_refused_total. sp agent extproc counts 64 KiB for each in its heap cap. 1 to 65536. Default 256.")]
    public int MaxStreams { get; set; } = DefaultMaxStreams;
}
