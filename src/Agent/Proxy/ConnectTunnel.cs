using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Metrics;

namespace SpIstio.Agent.Proxy;

/// <summary>
/// <c>CONNECT host:port</c> in forward mode: opens a TCP connection to the target and splices
/// bytes both ways without looking at them (usually TLS the proxy cannot read). Counted in
/// <c>sp_proxy_connect_tunnels_total</c>, never captured.
/// </summary>
/// <remarks>
/// Kestrel (.NET 10) does not offer an HTTP/1.1 CONNECT as an upgradable request
/// (<c>IHttpUpgradeFeature.IsUpgradableRequest</c> is false for it), so the tunnel is handled
/// one layer down, as Kestrel connection middleware: it peeks at the first bytes of each new
/// connection and, when they are a CONNECT request head, answers <c>200</c> itself and splices
/// the connection's pipes to the target socket; any other connection is handed to HTTP
/// untouched (nothing is consumed). Clients open a fresh connection for each tunnel (RFC 9110
/// §9.3.6: the connection becomes the tunnel), which is what this relies on.
/// </remarks>
internal sealed partial class ConnectTunnel
{
    // Request heads larger than this are not a plausible CONNECT; Kestrel's own default limit
    // for a whole request head is 32 KiB.
    private const int MaxHeadBytes = 16 * 1024;
    private const int BufferSize = 16 * 1024;

    private static ReadOnlySpan<byte> ConnectPrefix => "CONNECT "u8;

    private static ReadOnlySpan<byte> HeadEnd => "\r\n\r\n"u8;

    private readonly ConnectionDelegate _next;
    private readonly AgentMetrics _metrics;
    private readonly TimeSpan _connectTimeout;
    private readonly ILogger _logger;

    public ConnectTunnel(ConnectionDelegate next, AgentMetrics metrics, TimeSpan connectTimeout, ILogger logger)
    {
        _next = next;
        _metrics = metrics;
        _connectTimeout = connectTimeout;
        _logger = logger;
    }

    public async Task OnConnectionAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        if (!await StartsWithConnectAsync(input, connection.ConnectionClosed).ConfigureAwait(false))
        {
            await _next(connection).ConfigureAwait(false);
            return;
        }

        var target = await ReadTargetAsync(input, connection.ConnectionClosed).ConfigureAwait(false);
        var output = connection.Transport.Output;
        if (target is null || !TrySplitAuthority(target, out var host, out var port))
        {
            await WriteErrorAsync(output, "400 Bad Request", "sp agent proxy: CONNECT needs an authority-form target (CONNECT host:port)\n").ConfigureAwait(false);
            return;
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
            connect.CancelAfter(_connectTimeout);
            await socket.ConnectAsync(host, port, connect.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            _metrics.ProxyUpstreamErrors.Inc();
            Log.ConnectFailed(_logger, target, ex);
            await WriteErrorAsync(
                output,
                "502 Bad Gateway",
                string.Create(CultureInfo.InvariantCulture, $"sp agent proxy: CONNECT target {target} unreachable ({ex.Message})\n")).ConfigureAwait(false);
            return;
        }

        _metrics.ProxyConnectTunnels.Inc();
        await using var upstream = new NetworkStream(socket, ownsSocket: true);
        await output.WriteAsync("HTTP/1.1 200 Connection Established\r\n\r\n"u8.ToArray(), connection.ConnectionClosed).ConfigureAwait(false);

        var toUpstream = PumpToSocketAsync(input, upstream, socket);
        var toClient = PumpToClientAsync(upstream, output);

        // The client closing its side is relayed as a TCP half-close so the target can still
        // answer; the target closing ends the tunnel for both.
        var first = await Task.WhenAny(toUpstream, toClient).ConfigureAwait(false);
        if (first == toUpstream)
        {
            await toClient.ConfigureAwait(false);
        }

        await input.CompleteAsync().ConfigureAwait(false);
        await output.CompleteAsync().ConfigureAwait(false);
    }

    private static async ValueTask<bool> StartsWithConnectAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return false;
            }

            var buffer = result.Buffer;
            var decided = buffer.Length >= ConnectPrefix.Length || result.IsCompleted || result.IsCanceled;
            var isConnect = decided && buffer.Length >= ConnectPrefix.Length && StartsWith(buffer, ConnectPrefix);

            // Consume nothing: HTTP reads the same bytes next. Mark them examined only when more
            // are needed to decide, so the next read waits for new data instead of spinning.
            if (decided)
            {
                input.AdvanceTo(buffer.Start);
                return isConnect;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static async ValueTask<string?> ReadTargetAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            if (reader.TryReadTo(out ReadOnlySequence<byte> head, HeadEnd, advancePastDelimiter: true))
            {
                var target = ParseTarget(head);
                input.AdvanceTo(reader.Position);
                return target;
            }

            if (buffer.Length > MaxHeadBytes || result.IsCompleted)
            {
                input.AdvanceTo(buffer.End);
                return null;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>The authority of <c>CONNECT authority HTTP/1.1</c>, or null.</summary>
    private static string? ParseTarget(ReadOnlySequence<byte> head)
    {
        var reader = new SequenceReader<byte>(head);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
        {
            line = head;
        }

        var text = Encoding.ASCII.GetString(line).TrimEnd('\r');
        var parts = text.Split(' ');
        return parts.Length == 3 && parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal) ? parts[1] : null;
    }

    private static async Task PumpToSocketAsync(PipeReader input, NetworkStream upstream, Socket socket)
    {
        try
        {
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                foreach (var segment in result.Buffer)
                {
                    await upstream.WriteAsync(segment).ConfigureAwait(false);
                }

                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (IsDisconnect(ex))
        {
            // Either side resetting ends the tunnel; there is nobody left to tell.
        }
    }

    private static async Task PumpToClientAsync(NetworkStream upstream, PipeWriter output)
    {
        try
        {
            while (true)
            {
                var memory = output.GetMemory(BufferSize);
                var read = await upstream.ReadAsync(memory).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                output.Advance(read);
                var flush = await output.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (IsDisconnect(ex))
        {
            // As above: a reset on either side ends the tunnel.
        }
    }

    private static bool IsDisconnect(Exception ex) =>
        ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException or ConnectionResetException or InvalidOperationException;

    private static bool StartsWith(ReadOnlySequence<byte> buffer, ReadOnlySpan<byte> prefix)
    {
        Span<byte> first = stackalloc byte[prefix.Length];
        buffer.Slice(0, prefix.Length).CopyTo(first);
        return first.SequenceEqual(prefix);
    }

    private static bool TrySplitAuthority(string authority, out string host, out int port)
    {
        host = "";
        port = 0;
        var colon = authority.LastIndexOf(':');
        if (colon <= 0
            || !int.TryParse(authority.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port)
            || port is 0 or > 65535)
        {
            return false;
        }

        host = authority[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        return host.Length > 0;
    }

    private static async Task WriteErrorAsync(PipeWriter output, string status, string text)
    {
        var body = Encoding.UTF8.GetBytes(text);
        var head = string.Create(
            CultureInfo.InvariantCulture,
            $"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n");
        await output.WriteAsync(Encoding.ASCII.GetBytes(head)).ConfigureAwait(false);
        await output.WriteAsync(body).ConfigureAwait(false);
        await output.CompleteAsync().ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(10, LogLevel.Warning, "CONNECT to {Target} failed")]
        public static partial void ConnectFailed(ILogger logger, string target, Exception exception);
    }
}
