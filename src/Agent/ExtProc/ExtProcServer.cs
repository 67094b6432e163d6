using Grpc.AspNetCore.Server.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Pipeline;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// The gRPC server Envoy talks to: <see cref="ExtProcService"/> and <c>grpc.health.v1.Health</c>
/// on cleartext HTTP/2 over TCP and, optionally, a Unix socket, with Kestrel tuned for Envoy
/// (many streams per connection, keep-alive pings, messages larger than any body).
/// </summary>
/// <remarks>
/// What connections and streams hold is outside the capture budget, and the agent caps its heap
/// (<c>src/Cli/Commands/AgentHeapLimit.cs</c>), so both are bounded and counted in the cap:
/// <see cref="ExtProcOptions.MaxConnections"/> (one more is closed at once, <see cref="ConnectionLimit"/>)
/// and <see cref="ExtProcOptions.MaxStreams"/> over all connections (one more is answered
/// UNAVAILABLE, <see cref="StreamLimit"/>; it is each connection's HTTP/2 stream limit too).
/// </remarks>
public sealed class ExtProcServer : IAsyncDisposable
{
    // gRPC's default receive limit is 4 MB. A BUFFERED body arrives in one message up to Envoy's
    // buffer limit (1 MiB by default, often raised), whatever the capture limit is; a message
    // over the limit would fail the stream, so the limit sits well above both.
    private const int MinReceiveMessageSize = 16 * 1024 * 1024;

    // Bytes Kestrel reads from a connection ahead of its HTTP/2 frame loop (its default is 1 MiB):
    // what a connection holds must stay within ExtProcServerOptions.ConnectionAllowanceBytes. The
    // frame loop hands DATA to the streams at once, so this throttles only a client that outruns it.
    private const long MaxRequestBufferBytes = 64 * 1024;

    private readonly WebApplication _app;

    private ExtProcServer(WebApplication app, ExtProcService service, int port, string? unixSocketPath)
    {
        _app = app;
        Service = service;
        Port = port;
        UnixSocketPath = unixSocketPath;
    }

    /// <summary>The bound TCP port (the real one when 0 was asked for), or 0 without a TCP listener.</summary>
    public int Port { get; }

    /// <summary>The Unix socket listened on, or null.</summary>
    public string? UnixSocketPath { get; }

    /// <summary>The service instance answering the streams.</summary>
    public ExtProcService Service { get; }

    /// <summary>Builds the server and starts listening.</summary>
    /// <exception cref="ArgumentException">Neither a TCP address nor a Unix socket was given.</exception>
    public static async Task<ExtProcServer> StartAsync(
        CapturePipeline pipeline,
        ExtProcOptions options,
        ILoggerFactory loggerFactory,
        TimeProvider? timeProvider = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if (options.Listen is null && string.IsNullOrEmpty(options.UnixSocketPath))
        {
            throw new ArgumentException("The ext_proc server needs a TCP address or a Unix socket path.", nameof(options));
        }

        var receiveLimit = Math.Max(MinReceiveMessageSize, 4 * Math.Max(pipeline.MaxRequestBodyBytes, pipeline.MaxResponseBodyBytes));
        var service = new ExtProcService(pipeline, options, loggerFactory.CreateLogger<ExtProcService>(), timeProvider)
        {
            // The service reads the messages off the HTTP/2 stream itself (ExtProcFrames), with gRPC's limit.
            MaxReceiveMessageBytes = receiveLimit,
        };
        var limitLogger = loggerFactory.CreateLogger<ExtProcServer>();
        var metrics = pipeline.Metrics;
        var connectionLimit = new ConnectionLimit(
            options.MaxConnections, "sp agent extproc", "extproc.max_connections", metrics.ExtProcConnectionsOpen, metrics.ExtProcConnectionsRefused,
            "sp_extproc_connections_refused_total", timeProvider ?? TimeProvider.System, limitLogger);
        var streamLimit = new StreamLimit(
            options.MaxStreams, "sp agent extproc", "extproc.max_streams", metrics.ExtProcStreamsOpen, metrics.ExtProcStreamsRefused, "sp_extproc_streams_refused_total", limitLogger);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(ExtProcServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggerFactory);

        // The caller owns shutdown (drain, then flush the exporter): no Ctrl+C / SIGTERM handling here.
        builder.Services.AddSingleton<IHostLifetime, CallerOwnedLifetime>();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.Http2.MaxStreamsPerConnection = options.MaxStreams;
            kestrel.Limits.MaxRequestBufferSize = MaxRequestBufferBytes;
            kestrel.Limits.Http2.KeepAlivePingDelay = options.KeepAlivePingDelay;
            kestrel.Limits.Http2.KeepAlivePingTimeout = options.KeepAlivePingTimeout;
            if (options.Listen is { } endpoint)
            {
                kestrel.Listen(endpoint, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    listen.Use(connectionLimit.For(http1: false));
                });
            }

            if (!string.IsNullOrEmpty(options.UnixSocketPath))
            {
                // A stale socket file from a previous run would make the bind fail.
                File.Delete(options.UnixSocketPath);
                kestrel.ListenUnixSocket(options.UnixSocketPath, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    listen.Use(connectionLimit.For(http1: false));
                });
            }
        });

        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = receiveLimit;
            grpc.EnableDetailedErrors = false;
        });
        // grpc.health.v1 reports UNKNOWN while no check is registered; this one says the service is up.
        builder.Services.AddGrpcHealthChecks().AddCheck("extproc", static () => HealthCheckResult.Healthy("ext_proc service listening"));
        builder.Services.AddSingleton(service);

        // Process is bound with the agent's own request reader (ExtProcMethod), not the generated parser.
        builder.Services.AddSingleton<IServiceMethodProvider<ExtProcService>, ExtProcMethod.Provider>();

        var app = builder.Build();
        app.Use(next => context => streamLimit.InvokeAsync(context, next));
        app.MapGrpcService<ExtProcService>();
        app.MapGrpcHealthChecksService();
        await app.StartAsync(cancellationToken).ConfigureAwait(false);

        var port = 0;
        if (options.Listen is not null)
        {
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
            if (addresses is not null)
            {
                foreach (var address in addresses)
                {
                    if (!address.Contains("unix:", StringComparison.Ordinal)
                        && Uri.TryCreate(address, UriKind.Absolute, out var uri))
                    {
                        port = uri.Port;
                        break;
                    }
                }
            }
        }

        return new ExtProcServer(app, service, port, options.UnixSocketPath);
    }

    /// <summary>
    /// Stops accepting streams and waits (bounded by <paramref name="cancellationToken"/>) for open
    /// ones to end, so their exchanges are finalised before the exporter flushes.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false);
        if (!string.IsNullOrEmpty(UnixSocketPath))
        {
            File.Delete(UnixSocketPath);
        }
    }

    private sealed class CallerOwnedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
