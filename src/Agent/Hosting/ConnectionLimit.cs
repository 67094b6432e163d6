using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using SpIstio.Core.Metrics;

namespace SpIstio.Agent.Hosting;

/// <summary>
/// The most client connections an agent's listeners hold open together (<c>proxy.max_connections</c>,
/// <c>extproc.max_connections</c>); one more is refused at once instead of being served. Kestrel
/// connection middleware, outermost on every listener, so CONNECT tunnels and gRPC connections
/// count too.
/// </summary>
/// <remarks>
/// Why a bound at all: what an open connection holds (Kestrel's pipes, the forwarder's copy
/// buffer, the upstream connection's buffers) is outside the capture byte budget, and the agent
/// caps its managed heap; past that cap any allocation throws OutOfMemoryException, Kestrel's
/// accept loop can die and the runtime can abort the process (issue 13, bench/proxy/overload.sh).
/// The cap counts an allowance for each connection this bound admits
/// (<see cref="SpIstio.Core.Configuration.ProxyOptions.ConnectionAllowanceBytes"/>,
/// <see cref="SpIstio.Core.Configuration.ExtProcServerOptions.ConnectionAllowanceBytes"/>), so the two agree.
/// <para>
/// Why refuse rather than wait: the socket is already accepted when connection middleware runs,
/// and Kestrel's transport reads from it into the connection's pipe whether or not anyone
/// consumes it, so a waiting connection would hold memory the bound does not count, and waiting
/// connections themselves would be unbounded. Kestrel's own <c>MaxConcurrentConnections</c> only
/// closes the socket, which a client cannot tell from a crash; here an HTTP/1.1 client gets a
/// <c>503</c> it can act on (<c>Retry-After</c>), and only HTTP/2 (whose first server frame must be
/// its SETTINGS) gets a plain close, which gRPC clients report as UNAVAILABLE and retry.
/// </para>
/// </remarks>
internal sealed partial class ConnectionLimit
{
    // A refused HTTP/1.1 client may still be sending its request (a body, say) when the 503 is
    // written; closing the socket on unread bytes makes the kernel send a reset, and a client that
    // gets it before reading the 503 reports a network error instead. So, as nginx's lingering
    // close does, the refusal reads and discards what the client sends until it closes, at most
    // this long (nginx's lingering_timeout) and this much, and at most this many refusals at once
    // (beyond that the socket is closed at once). Each holds one pipe block (4 KiB) and the
    // connection's objects, ~10 KiB: 2.5 MiB at most, within the heap cap's own 16 MiB.
    private static readonly TimeSpan LingerTime = TimeSpan.FromSeconds(5);
    private const long LingerBytes = 1024 * 1024;
    private const int MaxLingering = 256;

    private readonly ConcurrencyBound _bound;
    private readonly string _key;
    private readonly byte[] _serviceUnavailable;
    private readonly string _refusedMetric;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private int _lingering;

    /// <param name="max">The bound, at least 1.</param>
    /// <param name="who">The command named in an HTTP/1.1 refusal (<c>sp agent proxy</c>).</param>
    /// <param name="key">The configuration key of the bound, named in the refusal and the log.</param>
    /// <param name="open">Gauge of the connections held now.</param>
    /// <param name="refused">Counter of the connections refused.</param>
    /// <param name="refusedMetric">The name <paramref name="refused"/> is published under, for the log.</param>
    /// <param name="timeProvider">Clock of the refusal's lingering read.</param>
    /// <param name="logger">Where the first refusal of an episode is logged.</param>
    public ConnectionLimit(int max, string who, string key, Gauge open, Counter refused, string refusedMetric, TimeProvider timeProvider, ILogger logger)
    {
        _bound = new ConcurrencyBound(max, open, refused);
        _key = key;
        var text = $"{who}: too many open connections ({key}), retry\n";
        _serviceUnavailable = Encoding.ASCII.GetBytes(string.Create(
            CultureInfo.InvariantCulture,
            $"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {text.Length}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{text}"));
        _refusedMetric = refusedMetric;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>The middleware for one listener; <paramref name="http1"/> says how a refusal is told.</summary>
    public Func<ConnectionDelegate, ConnectionDelegate> For(bool http1) =>
        next => connection => OnConnectionAsync(connection, next, http1);

    private async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next, bool http1)
    {
        if (!_bound.TryEnter(out var firstRefusal))
        {
            if (firstRefusal)
            {
                Log.Refusing(_logger, _bound.Max, _key, _refusedMetric);
            }

            if (http1)
            {
                await RefuseAsync(connection).ConfigureAwait(false);
            }

            return;
        }

        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            _bound.Exit();
        }
    }

    // Sent before the request is read: the answer is the same whatever it is.
    private async Task RefuseAsync(ConnectionContext connection)
    {
        await connection.Transport.Output.WriteAsync(_serviceUnavailable).ConfigureAwait(false);
        if (Interlocked.Increment(ref _lingering) > MaxLingering)
        {
            Interlocked.Decrement(ref _lingering);
            return;
        }

        try
        {
            using var linger = new CancellationTokenSource(LingerTime, _timeProvider);
            var input = connection.Transport.Input;
            long discarded = 0;
            while (discarded < LingerBytes)
            {
                var read = await input.ReadAsync(linger.Token).ConfigureAwait(false);
                discarded += read.Buffer.Length;
                input.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted || read.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException)
        {
            // The client took too long, or went away: either way the refusal is over.
        }
        finally
        {
            Interlocked.Decrement(ref _lingering);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Warning, "{Max} client connections are open ({Key}): new ones are refused until one closes, counted in {Metric}")]
        public static partial void Refusing(ILogger logger, int max, string key, string metric);
    }
}
