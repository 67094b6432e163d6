using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Admin;
using SpIstio.Agent.Cache;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Hosting;

/// <summary>
/// What both agent modes (ext_proc service and capture proxy) are built on: metrics, the
/// started exporter, the capture pipeline, readiness and the admin port. Disposing it drains:
/// not ready first, then the admin port stops, then the exporter flushes within
/// <c>export.shutdown_flush_ms</c>.
/// </summary>
public sealed class AgentRuntime : IAsyncDisposable
{
    // Stopping Kestrel waits for open requests; admin requests are tiny.
    private static readonly TimeSpan _adminStopTimeout = TimeSpan.FromSeconds(5);

    private readonly List<WebApplication> _adminApps = [];
    private readonly Lock _lock = new();
    private bool _disposed;

    private AgentRuntime(
        AgentOptions options,
        ILoggerFactory loggerFactory,
        TimeProvider timeProvider,
        AgentMetrics metrics,
        OtlpExporter exporter,
        CapturePipeline pipeline,
        TransparentCache? cache,
        MockSetPoller? mockPoller)
    {
        Cache = cache;
        MockPoller = mockPoller;
        Options = options;
        LoggerFactory = loggerFactory;
        TimeProvider = timeProvider;
        Metrics = metrics;
        Exporter = exporter;
        Pipeline = pipeline;
        Status = new AgentStatus(exporter, metrics, cache?.Store, timeProvider);
    }

    /// <summary>The facts <c>/status</c> reports; the host sets <see cref="AgentStatus.Config"/>, an export buffer sets <see cref="AgentStatus.Buffer"/>.</summary>
    public AgentStatus Status { get; }

    /// <summary>The validated options the runtime was built from.</summary>
    public AgentOptions Options { get; }

    /// <summary>The agent's metrics (rendered at <c>/metrics</c>).</summary>
    public AgentMetrics Metrics { get; }

    /// <summary>The started exporter.</summary>
    public OtlpExporter Exporter { get; }

    /// <summary>The transparent cache built from <c>cache.rules</c>, or null when no rule caches anything (or a short-circuit was given).</summary>
    public TransparentCache? Cache { get; }

    /// <summary>The started mock-set poller when <c>cache.pull_mocks</c> is true and a cache exists, else null.</summary>
    public MockSetPoller? MockPoller { get; }

    /// <summary>The capture pipeline, feeding <see cref="Exporter"/>.</summary>
    public CapturePipeline Pipeline { get; }

    /// <summary>Readiness shown at <c>/readyz</c>: not ready until the host calls <see cref="AgentReadiness.MarkReady"/>.</summary>
    public AgentReadiness Readiness { get; } = new();

    /// <summary>The logger factory every component logs through.</summary>
    public ILoggerFactory LoggerFactory { get; }

    /// <summary>The clock every component uses.</summary>
    public TimeProvider TimeProvider { get; }

    /// <summary>
    /// Builds the runtime and starts its exporter.
    /// </summary>
    /// <param name="options">Validated options (see <c>AgentConfigLoader.LoadOrThrow</c>).</param>
    /// <param name="loggerFactory">Logging for every component.</param>
    /// <param name="timeProvider">Clock; the system clock by default.</param>
    /// <param name="shortCircuit">Recorded-response seam; by default the <see cref="TransparentCache"/> when <c>cache.rules</c> cache anything, else none.</param>
    /// <param name="exportHandler">HTTP handler for the exporter (tests); a pooled socket handler by default.</param>
    public static AgentRuntime Create(
        AgentOptions options,
        ILoggerFactory loggerFactory,
        TimeProvider? timeProvider = null,
        IResponseShortCircuit? shortCircuit = null,
        HttpMessageHandler? exportHandler = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var time = timeProvider ?? TimeProvider.System;
        var metrics = new AgentMetrics();
        var exporter = new OtlpExporter(options, metrics, loggerFactory.CreateLogger<OtlpExporter>(), time, exportHandler);
        CapturePipeline pipeline;
        TransparentCache? cache = null;
        try
        {
            if (shortCircuit is null && !CacheRuleSet.Create(options.Cache).IsEmpty)
            {
                var remote = options.Cache.Rules.Exists(r => r.RemoteLookup && !r.Exclude)
                    ? new RemoteLookup(options, exporter.Breaker, metrics, time, loggerFactory.CreateLogger<RemoteLookup>(), exportHandler)
                    : null;
                cache = new TransparentCache(options, metrics, time, loggerFactory.CreateLogger<TransparentCache>(), remote);
                shortCircuit = cache;
            }

            pipeline = new CapturePipeline(options, exporter, metrics, loggerFactory.CreateLogger<CapturePipeline>(), shortCircuit, exporter.Budget, deferWork: true);
        }
        catch
        {
            // Not started yet, so this completes at once; it releases the HTTP client.
            cache?.Dispose();
            exporter.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }

        exporter.Start();
        MockSetPoller? poller = null;
        if (cache is not null && options.Cache.PullMocks)
        {
            poller = new MockSetPoller(options, cache, exporter.Breaker, metrics, time, loggerFactory.CreateLogger<MockSetPoller>(), exportHandler);
            poller.Start();
        }

        return new AgentRuntime(options, loggerFactory, time, metrics, exporter, pipeline, cache, poller);
    }

    /// <summary>
    /// Starts the admin port (HTTP/1.1: <c>/metrics</c>, <c>/healthz</c>, <c>/readyz</c>) on
    /// <paramref name="address"/>; port 0 picks a free port, see <see cref="BoundAddress"/>.
    /// The runtime stops it on dispose.
    /// </summary>
    public async Task<WebApplication> StartAdminAsync(ListenAddress address, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(address, listen => listen.Protocols = HttpProtocols.Http1);
        });
        builder.Services.AddRoutingCore();
        builder.Services.AddSingleton(LoggerFactory);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));

        var app = builder.Build();
        app.MapAgentAdmin(Metrics.Registry, Readiness, Status);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Port in use, bad address: release what the half-started app holds.
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        lock (_lock)
        {
            _adminApps.Add(app);
        }

        return app;
    }

    /// <summary>The first address a started application listens on, with the actual port (e.g. <c>http://127.0.0.1:41234</c>).</summary>
    public static Uri BoundAddress(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
        if (addresses is null || addresses.Count == 0)
        {
            throw new InvalidOperationException("The application is not listening yet; start it first.");
        }

        return new Uri(addresses.First());
    }

    /// <summary>Drains: marks not ready, stops the admin port, lets the capture workers finish, flushes the exporter (each bounded).</summary>
    public async ValueTask DisposeAsync()
    {
        List<WebApplication> apps;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            apps = [.. _adminApps];
            _adminApps.Clear();
        }

        Readiness.MarkNotReady("draining");
        foreach (var app in apps)
        {
            using var stop = new CancellationTokenSource(_adminStopTimeout);
            await app.StopAsync(stop.Token).ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
        }

        if (MockPoller is not null)
        {
            await MockPoller.DisposeAsync().ConfigureAwait(false);
        }

        // The capture workers hand what they hold to the exporter first, so its flush sends it.
        await Pipeline.StopWorkersAsync(TimeSpan.FromMilliseconds((Options.Export ?? new ExportOptions()).ShutdownFlushMs)).ConfigureAwait(false);
        await Exporter.DisposeAsync().ConfigureAwait(false);
        Cache?.Dispose();
    }
}
