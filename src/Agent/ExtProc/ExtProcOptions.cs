using SpIstio.Agent.Hosting;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// Settings of the ext_proc server that are not part of the agent configuration file (which keeps
/// the original plugin's keys): where it listens and how long it waits.
/// </summary>
public sealed class ExtProcOptions
{
    /// <summary>
    /// TCP address of the gRPC listener (cleartext HTTP/2). Port 0 picks a free port; read it back
    /// from <c>ExtProcServer.Port</c>. Null: no TCP listener (then a Unix socket is required).
    /// </summary>
    public ListenAddress? Listen { get; set; } = new ListenAddress("127.0.0.1", 18080);

    /// <summary>Path of a Unix domain socket to listen on as well (an in-pod agent), or null.</summary>
    public string? UnixSocketPath { get; set; }

    /// <summary>
    /// A stream that receives nothing for this long is finalised (outcome timed out) and closed
    /// with OK, so Envoy goes on without the agent. Default 5 minutes: far beyond an ordinary
    /// request, short enough that a stuck stream does not hold its exchange forever.
    /// </summary>
    public TimeSpan StreamIdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Hard deadline of one <see cref="Pipeline.IResponseShortCircuit"/> consultation; on expiry
    /// the request goes to its upstream. Default 150 ms, below Envoy's default per-message
    /// <c>message_timeout</c> of 200 ms, so a slow lookup never turns into Envoy's 504. A smaller
    /// <c>fallback_timeout_ms</c> in the agent configuration wins.
    /// </summary>
    public TimeSpan ShortCircuitTimeout { get; set; } = TimeSpan.FromMilliseconds(150);

    /// <summary>
    /// Direction of an exchange when the configuration says <c>auto</c> and Envoy tells nothing
    /// (no Istio cluster name, no <c>x-sp-direction</c> metadata). Default inbound: a sidecar's
    /// inbound listener is the usual place to capture a service.
    /// </summary>
    public TrafficDirection DefaultDirection { get; set; } = TrafficDirection.Inbound;

    /// <summary>
    /// Most connections held open at once (<c>extproc.max_connections</c>); one more is closed at
    /// once. Default <see cref="ExtProcServerOptions.DefaultMaxConnections"/>.
    /// </summary>
    public int MaxConnections { get; set; } = ExtProcServerOptions.DefaultMaxConnections;

    /// <summary>
    /// Most streams served at once over all connections (<c>extproc.max_streams</c>), and each
    /// connection's HTTP/2 stream limit (Envoy multiplexes every request of a sidecar over a few
    /// connections, so one connection may carry them all; Kestrel's own default, 100, would queue
    /// requests behind each other). One more is answered UNAVAILABLE. Default
    /// <see cref="ExtProcServerOptions.DefaultMaxStreams"/>.
    /// </summary>
    public int MaxStreams { get; set; } = ExtProcServerOptions.DefaultMaxStreams;

    /// <summary>HTTP/2 keep-alive ping interval on idle connections. Default 30 s.</summary>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a ping may go unanswered before the connection is closed. Default 20 s.</summary>
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);
}
