using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Pipeline;
using Yarp.ReverseProxy.Forwarder;

namespace SpIstio.Agent.Proxy;

/// <summary>
/// The standalone capture proxy: a Kestrel listener whose only handler forwards through YARP's
/// <see cref="IHttpForwarder"/> and tees a bounded copy of each captured exchange into the
/// <see cref="CapturePipeline"/>. Reverse mode in front of an app, forward mode as its HTTP proxy.
/// </summary>
public sealed class CaptureProxyServer : IAsyncDisposable
{
    // Request bytes Kestrel reads ahead of the forwarder on one connection (its default is 1 MiB):
    // what a connection holds must stay within the heap cap's per-connection allowance
    // (ProxyOptions.ConnectionAllowanceBytes); the forwarder copies in 64 KiB reads anyway.
    private const long MaxRequestBufferBytes = 64 * 1024;

    private readonly WebApplication _app;
    private readonly HttpMessageInvoker _client;

    private CaptureProxyServer(WebApplication app, HttpMessageInvoker client, Uri address, Uri? grpcAddress)
    {
        _app = app;
        _client = client;
        Address = address;
        GrpcAddress = grpcAddress;
    }

    /// <summary>
    /// <c>http://host:port</c> of the gRPC (h2c) listener with the real port, or null without
    /// <see cref="CaptureProxyOptions.GrpcListen"/>.
    /// </summary>
    public Uri? GrpcAddress { get; }

    /// <summary>
    /// <c>http://host:port</c> of the listener with the real port (when started on port 0), for
    /// clients and <c>http_proxy</c>.
    /// </summary>
    public Uri Address { get; }

    /// <summary>
    /// Builds and starts the proxy on <paramref name="listen"/>.
    /// </summary>
    /// <param name="listen">Where to listen; port 0 picks a free port (read it from <see cref="Address"/>).</param>
    /// <param name="options">Mode and upstream; validated here.</param>
    /// <param name="pipeline">Where captured exchanges go; its metrics are the proxy's. Required even with capture off, for the metrics.</param>
    /// <param name="loggerFactory">Logging for the proxy and Kestrel.</param>
    /// <param name="timeProvider">Clock for exchange times and stream deadlines; the system clock by default.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="ArgumentException"><paramref name="options"/> is inconsistent.</exception>
    public static async Task<CaptureProxyServer> StartAsync(
        ListenAddress listen,
        CaptureProxyOptions options,
        CapturePipeline pipeline,
        ILoggerFactory loggerFactory,
        TimeProvider? timeProvider = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", problems), nameof(options));
        }

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddLogging();
        builder.Services.AddSingleton(loggerFactory);
        builder.Services.AddHttpForwarder();
        var logger = loggerFactory.CreateLogger("SpIstio.Agent.Proxy");
        ListenOptions? grpcEndpoint = null;
        timeProvider ??= TimeProvider.System;
        var connectionLimit = new ConnectionLimit(
            options.MaxConnections, "sp agent proxy", "proxy.max_connections", pipeline.Metrics.ProxyConnectionsOpen, pipeline.Metrics.ProxyConnectionsRefused,
            "sp_proxy_connections_refused_total", timeProvider, logger);
        var grpcStreamLimit = new StreamLimit(
            options.MaxGrpcStreams, "sp agent proxy", "proxy.max_grpc_streams", pipeline.Metrics.ProxyGrpcStreamsOpen, pipeline.Metrics.ProxyGrpcStreamsRefused,
            "sp_proxy_grpc_streams_refused_total", logger);
        // Kestrel's core only: UseKestrel would add HTTPS configuration and the QUIC transport,
        // which the proxy never listens with and which load System.Net.Quic, System.Net.Security
        // and the OpenSSL libraries (megabytes of idle RSS per pod; issue 13).
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(listen, endpoint =>
            {
                endpoint.Protocols = HttpProtocols.Http1;
                endpoint.Use(connectionLimit.For(http1: true));
                if (options.Forward)
                {
                    endpoint.Use(next => new ConnectTunnel(next, pipeline.Metrics, options.ConnectTimeout, logger).OnConnectionAsync);
                }
            });

            if (options.GrpcListen is { } grpcListen)
            {
                // h2c with prior knowledge: the gRPC clients of a mesh speak it without TLS or upgrade.
                kestrel.Listen(grpcListen, endpoint =>
                {
                    endpoint.Protocols = HttpProtocols.Http2;
                    endpoint.Use(connectionLimit.For(http1: false));
                    grpcEndpoint = endpoint;
                });

                // One connection may carry every stream the bound admits (Envoy multiplexes calls
                // over few connections); a well-behaved client queues, or opens another connection,
                // past this SETTINGS_MAX_CONCURRENT_STREAMS, and the StreamLimit bounds them all.
                kestrel.Limits.Http2.MaxStreamsPerConnection = options.MaxGrpcStreams;
            }

            // A proxy passes what the mesh passes: Envoy's limits, not Kestrel's (see
            // CaptureProxyOptions), and must not stamp its own Server header on the upstream's responses.
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            kestrel.Limits.MaxRequestHeadersTotalSize = options.MaxRequestHeadersBytes;
            kestrel.Limits.MaxRequestLineSize = options.MaxRequestHeadersBytes;
            kestrel.Limits.MaxRequestHeaderCount = options.MaxRequestHeaderCount;
            kestrel.Limits.MaxRequestBufferSize = Math.Max(MaxRequestBufferBytes, options.MaxRequestHeadersBytes);
            kestrel.AddServerHeader = false;
        });

        var client = CreateClient(options);
        var app = builder.Build();
        var handler = new CaptureProxyHandler(
            app.Services.GetRequiredService<IHttpForwarder>(),
            client,
            options,
            pipeline,
            pipeline.Metrics,
            timeProvider,
            logger);
        // Only the gRPC listener speaks HTTP/2; an HTTP/1.1 connection carries one request at a
        // time and is bounded by the connection limit alone.
        app.Use(next => context => HttpProtocol.IsHttp2(context.Request.Protocol) ? grpcStreamLimit.InvokeAsync(context, next) : next(context));
        app.Run(handler.InvokeAsync);

        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            client.Dispose();
            throw;
        }

        var grpcAddress = grpcEndpoint?.IPEndPoint is { } bound
            ? new Uri("http://" + new IPEndPoint(bound.Address.Equals(IPAddress.Any) ? IPAddress.Loopback : bound.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : bound.Address, bound.Port))
            : null;
        return new CaptureProxyServer(app, client, AgentRuntime.BoundAddress(app), grpcAddress);
    }

    /// <summary>Stops accepting, lets requests in flight finish (until <paramref name="cancellationToken"/>), then stops.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false);
        _client.Dispose();
    }

    /// <summary>
    /// The one upstream client, configured as YARP recommends for a forwarder: no proxy, no
    /// redirects, no decompression, no cookies, no activity headers (the agent writes its own
    /// trace headers), and a connect timeout.
    /// </summary>
    private static HttpMessageInvoker CreateClient(CaptureProxyOptions options) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ActivityHeadersPropagator = null,
        ConnectTimeout = options.ConnectTimeout,
        EnableMultipleHttp2Connections = true,
    });
}
