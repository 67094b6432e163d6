using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Api;
using SpIstio.Backend.Telemetry;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Har;
using SpIstio.Backend.GrpcCalls;
using SpIstio.Backend.Ingest;
using SpIstio.Backend.Mocks;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Replay.Jobs;
using SpIstio.Backend.Storage.Retention;
using SpIstio.Backend.Ui;
using SpIstio.Core.Metrics;
using SpIstio.Core.Startup;

namespace SpIstio.Backend.Hosting;

/// <summary>
/// The backend server: opens and migrates the store, creates the <c>default</c> tenant on first
/// start, and serves OTLP ingest (HTTP and gRPC), the query API, the Trace View UI at <c>/</c>, OpenAPI, metrics and health.
/// </summary>
public sealed class BackendServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IngestQueue _queue;
    private readonly ISpanStore _store;
    private readonly bool _ownsStore;
    private readonly ILogger _logger;
    private int _stopped;

    private BackendServer(
        WebApplication app, IngestQueue queue, ISpanStore store, bool ownsStore, ILogger logger,
        Uri address, Uri? grpcAddress, string? bootstrapKey, BackendMetrics metrics)
    {
        _app = app;
        _queue = queue;
        _store = store;
        _ownsStore = ownsStore;
        _logger = logger;
        Address = address;
        GrpcAddress = grpcAddress;
        BootstrapKey = bootstrapKey;
        Metrics = metrics;
    }

    /// <summary>The bound address of the main port (OTLP/HTTP, query API, OpenAPI, metrics, health), e.g. <c>http://127.0.0.1:41234</c>.</summary>
    public Uri Address { get; }

    /// <summary>The bound address of the OTLP/gRPC port (HTTP/2 cleartext), or null when gRPC is off.</summary>
    public Uri? GrpcAddress { get; }

    /// <summary>
    /// On the very first start of a store (no <c>default</c> tenant yet): the key created for the
    /// <c>default</c> tenant, to be shown to the operator once. Null on every later start.
    /// </summary>
    public string? BootstrapKey { get; }

    /// <summary>The store the server writes to.</summary>
    public ISpanStore Store => _store;

    /// <summary>The web app's services (tests read the routes it maps from its <c>EndpointDataSource</c>).</summary>
    internal IServiceProvider Services => _app.Services;

    /// <summary>The server's metrics.</summary>
    public BackendMetrics Metrics { get; }

    /// <summary>Validates the options, opens the store (unless one is given) and starts listening.</summary>
    /// <param name="options">What to serve and where.</param>
    /// <param name="loggerFactory">Logging; none when null.</param>
    /// <param name="timeProvider">The clock; the system clock when null.</param>
    /// <param name="store">A store to use instead of opening <see cref="BackendOptions.Store"/>; the caller keeps ownership.</param>
    /// <param name="cancellationToken">Cancels start-up.</param>
    /// <exception cref="BackendOptionsException">The options are invalid.</exception>
    public static async Task<BackendServer> StartAsync(
        BackendOptions options,
        ILoggerFactory? loggerFactory = null,
        TimeProvider? timeProvider = null,
        ISpanStore? store = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var descriptors = options.ValidateAndLoad();
        loggerFactory ??= NullLoggerFactory.Instance;
        timeProvider ??= TimeProvider.System;
        var logger = loggerFactory.CreateLogger("SpIstio.Backend");

        var ownsStore = store is null;
        store ??= OpenStore(options.Store, loggerFactory, timeProvider);
        try
        {
            try
            {
                await store.MigrateAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (StoreErrors.Describe(ex, options.Store) is { } described)
            {
                throw described;
            }

            // Decided before demo mode creates the tenant; the key itself only once both listeners are
            // bound, so a busy port never leaves behind a key nobody was shown.
            var firstStart = await store.FindTenantAsync(KeyAdministration.DefaultTenant, cancellationToken).ConfigureAwait(false) is null;
            long? demoTenant = null;
            if (options.Demo)
            {
                demoTenant = (await store.EnsureTenantAsync(KeyAdministration.DefaultTenant, cancellationToken).ConfigureAwait(false)).Id;
                BackendLog.DemoMode(logger);
            }

            var metrics = new BackendMetrics(new MetricRegistry());
            if (store is ISearchIndexProgress searchIndex)
            {
                metrics.TrackSearchIndex(searchIndex);
            }

            var queue = new IngestQueue(store, options.QueueCapacity, options.MaxBatchSpans, metrics, loggerFactory.CreateLogger<IngestQueue>(), timeProvider);
            var authenticator = new ApiKeyAuthenticator(store, options.KeyCacheTtl, timeProvider, demoTenant);
            var ingest = new IngestService(queue, metrics, timeProvider, options.MaxAttributeBytes);
            var bound = new BoundEndpoints();
            var tls = options.TlsCertificatePath is null
                ? null
                : TlsCertificateSource.Load(options.TlsCertificatePath, options.TlsKeyPath!, timeProvider, logger);
            var app = Build(bound, options, tls, store, loggerFactory, timeProvider, metrics, queue, authenticator, ingest, new GrpcCallDecoder(descriptors));
            string? bootstrapKey;
            try
            {
                await app.StartAsync(cancellationToken).ConfigureAwait(false);
                bootstrapKey = firstStart ? await BootstrapAsync(store, timeProvider, logger, cancellationToken).ConfigureAwait(false) : null;
            }
            catch (Exception ex)
            {
                await queue.DrainAsync().ConfigureAwait(false);
                await app.DisposeAsync().ConfigureAwait(false);
                if (DescribeBindFailure(ex, options) is { } described)
                {
                    throw described;
                }

                throw;
            }

            var address = bound.Main.Address!;
            var grpcAddress = bound.Grpc.Address;
            BackendLog.Listening(logger, address, store.Kind);
            return new BackendServer(app, queue, store, ownsStore, logger, address, grpcAddress, bootstrapKey, metrics);
        }
        catch
        {
            if (ownsStore)
            {
                await store.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    private static ISpanStore OpenStore(string spec, ILoggerFactory loggerFactory, TimeProvider timeProvider)
    {
        try
        {
            return SpanStoreFactory.Open(spec, loggerFactory, timeProvider);
        }
        catch (Exception ex) when (StoreErrors.Describe(ex, spec) is { } described)
        {
            throw described;
        }
    }

    /// <summary>Which listener failed to bind, named by its option: Kestrel's message carries the address it tried.</summary>
    private static StartupException? DescribeBindFailure(Exception exception, BackendOptions options)
    {
        var listener = "--listen";
        var address = options.Listen;
        var kind = "HTTP listener";
        if (options.GrpcListen is not null && ListenAddress.TryParse(options.GrpcListen, out var grpc)
            && exception.Message.Contains(":" + grpc.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            && !(ListenAddress.TryParse(options.Listen, out var main) && main.Port == grpc.Port))
        {
            listener = "--grpc-listen";
            address = options.GrpcListen;
            kind = "OTLP/gRPC listener";
        }

        return ListenerErrors.Describe(exception, listener, address, kind);
    }

    /// <summary>
    /// Stops accepting requests, lets the ones in flight finish, commits everything queued and
    /// closes the store (when the server opened it).
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        BackendLog.Stopping(_logger, _queue.Depth);
        await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        await _queue.DrainAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        if (_ownsStore)
        {
            await _store.DisposeAsync().ConfigureAwait(false);
        }

        BackendLog.Stopped(_logger);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private static async Task<string?> BootstrapAsync(ISpanStore store, TimeProvider timeProvider, ILogger logger, CancellationToken cancellationToken)
    {
        // Ingest and read: what an agent and the UI need. Admin stays with the CLI, which works on the store directly.
        var created = await KeyAdministration.CreateKeyAsync(
            store, KeyAdministration.DefaultTenant, KeyScope.Ingest | KeyScope.Read, "created on first start", timeProvider, cancellationToken).ConfigureAwait(false);
        BackendLog.DefaultTenantCreated(logger, created.Record.KeyId);
        return created.Key;
    }

    private static WebApplication Build(
        BoundEndpoints bound,
        BackendOptions options, TlsCertificateSource? tls, ISpanStore store, ILoggerFactory loggerFactory, TimeProvider timeProvider,
        BackendMetrics metrics, IngestQueue queue, ApiKeyAuthenticator authenticator, IngestService ingest, GrpcCallDecoder grpcCalls)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggerFactory);
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // The ingest handler enforces the limit itself (after decompression); this bounds every other route.
            kestrel.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            // Kestrel answers an h2c preface on a cleartext HTTP/1.1+2 endpoint with HTTP_1_1_REQUIRED,
            // so gRPC (HTTP/2 with prior knowledge) gets its own HTTP/2-only port.
            Listen(kestrel, ListenAddressOf(options.Listen), HttpProtocols.Http1, bound.Main, tls);
            if (options.GrpcListen is not null)
            {
                Listen(kestrel, ListenAddressOf(options.GrpcListen), HttpProtocols.Http2, bound.Grpc, tls);
            }
        });

        var services = builder.Services;
        services.AddSingleton(store);

        // Each endpoint takes the interface of its concern (issue 16 §6); all resolve to the one store.
        services.AddSingleton<ISpanQueryStore>(store);
        services.AddSingleton<IRetentionStore>(store);
        services.AddSingleton<ITenantKeyStore>(store);
        services.AddSingleton<IMockStore>(store);
        services.AddSingleton<ITraceViewSessionStore>(store);
        services.AddSingleton(timeProvider);
        services.AddSingleton(metrics);
        services.AddSingleton(queue);
        services.AddSingleton(authenticator);
        services.AddSingleton(new TraceViewSessions(store, authenticator, timeProvider, options.SessionIdleTimeout));
        services.AddSpAuthentication();
        services.AddSingleton(ingest);
        services.AddSingleton(new ReadBudget(options.ReadBudgetBytes, metrics, timeProvider));
        var ingestBudget = new IngestBudget(options.IngestBudgetBytes, metrics, timeProvider);
        services.AddSingleton(grpcCalls);
        services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = options.MaxBodyBytes;
            grpc.EnableDetailedErrors = false;
            // gzip and deflate inflated against the export call's share of the ingest budget, not whole first.
            grpc.CompressionProviders = [.. BudgetedCompressionProvider.All];
        });
        services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<OtlpGrpcService>, OtlpGrpcMethodProvider>();
        services.AddOpenApi();
        services.AddTraceView(options.Demo);
        var retention = new RetentionOptions
        {
            DefaultRetention = options.Retention,
            MaxStoreBytes = options.MaxStoreBytes,
            Interval = options.RetentionInterval,
        };
        // Started and stopped with the web host.
        services.AddHostedService(sp => new RetentionService(store, retention, timeProvider, sp.GetRequiredService<ILogger<RetentionService>>()));
        services.AddReplayJobs(store, new ReplayJobOptions());
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, BackendJsonContext.Default));

        var app = builder.Build();

        // Request duration by route template: the routing middleware (added first, implicitly) has
        // chosen the endpoint by the time the request comes back out; unmatched paths share one label.
        app.Use(async (context, next) =>
        {
            var started = timeProvider.GetTimestamp();
            try
            {
                await next(context).ConfigureAwait(false);
            }
            finally
            {
                var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
                metrics.HttpRequestDuration(route, context.Response.StatusCode).Observe(timeProvider.GetElapsedTime(started).TotalSeconds);
            }
        });
        app.UseSecurityHeaders();
        // The one authentication layer (SpAuth): each route's policy names its scheme and scope.
        app.UseAuthorization();
        // After the authentication layer: a call without a valid key reserves nothing.
        app.Use(OtlpGrpcBudgetGate.InvokeAsync);
        var endpoint = new OtlpHttpEndpoint(ingest, ingestBudget, metrics, loggerFactory.CreateLogger<OtlpHttpEndpoint>(), options.MaxBodyBytes);
        // A Delegate (not a RequestDelegate) so that the route appears in the OpenAPI document. No Accepts():
        // it would make routing answer other content types itself, and the OTLP answer must be a 415 with a Status body.
        Delegate ingestHandler = endpoint.HandleAsync;
        string[] otlp = [OtlpHttpEndpoint.ProtobufContentType, OtlpHttpEndpoint.JsonContentType];
        app.MapPost(OtlpHttpEndpoint.Path, ingestHandler)
            .RequireScope(KeyScope.Ingest)
            .WithAuthRefusal(endpoint)
            .WithRequestBody("An OTLP ExportTraceServiceRequest; Content-Encoding: gzip allowed.", true, null, otlp)
            .WithResponse(StatusCodes.Status200OK, "Committed: an ExportTraceServiceResponse (partial_success names rejected spans), in the request's encoding.", null, otlp)
            .WithResponse(StatusCodes.Status400BadRequest, "Not a valid export request: a google.rpc.Status.", null, otlp)
            .WithResponse(StatusCodes.Status401Unauthorized, "No key, or an unknown or revoked one.", null, otlp)
            .WithResponse(StatusCodes.Status403Forbidden, "The key has no ingest scope.", null, otlp)
            .WithResponse(StatusCodes.Status413PayloadTooLarge, "The body is over --max-body-bytes.", null, otlp)
            .WithResponse(StatusCodes.Status415UnsupportedMediaType, "Neither protobuf nor JSON.", null, otlp)
            .WithResponse(StatusCodes.Status503ServiceUnavailable, "The write queue is full, the ingest budget is spent or the store failed to commit; retry after Retry-After.", null, otlp)
            .WithTags("ingest")
            .WithSummary("OTLP/HTTP trace export (ExportTraceServiceRequest as protobuf or JSON, optional gzip).");
        var grpcRefusalLogger = loggerFactory.CreateLogger<OtlpGrpcService>();
        app.MapGrpcService<OtlpGrpcService>()
            .RequireScope(KeyScope.Ingest)
            .WithMetadata(new OtlpGrpcBudgetGate(ingestBudget, options.MaxBodyBytes, metrics, grpcRefusalLogger))
            .WithAuthRefusal(new OtlpGrpcRefusal(metrics, grpcRefusalLogger));
        app.MapQueryApi();
        app.MapMocksApi();
        app.MapReplayJobsApi();
        app.MapHarApi();
        app.MapOpenApi();
        app.MapTraceView();
        var readiness = new StoreReadiness(store);
        app.MapGet("/metrics", async context =>
        {
            await RefreshStoreBytesAsync(store, metrics, context.RequestAborted).ConfigureAwait(false);
            context.Response.ContentType = MetricRegistry.ContentType;
            await context.Response.WriteAsync(metrics.Registry.Render(), context.RequestAborted).ConfigureAwait(false);
        }).ExcludeFromDescription();
        app.MapGet("/healthz", () => Results.Text("ok\n")).ExcludeFromDescription();
        app.MapGet("/readyz", async (HttpContext context) =>
        {
            var problem = await readiness.CheckAsync(context.RequestAborted).ConfigureAwait(false);
            return problem is null
                ? Results.Text("ready\n")
                : Results.Text("not ready: " + problem + "\n", statusCode: StatusCodes.Status503ServiceUnavailable);
        }).ExcludeFromDescription();
        return app;
    }

    private static async Task RefreshStoreBytesAsync(ISpanStore store, BackendMetrics metrics, CancellationToken cancellationToken)
    {
        try
        {
            metrics.StoreBytes.Set(await store.GetStoredBytesAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A scrape still answers with the last known size; /readyz reports the store.
        }
    }

    private static ListenAddress ListenAddressOf(string text)
    {
        ListenAddress.TryParse(text, out var address);
        return address;
    }

    private static void Listen(KestrelServerOptions kestrel, ListenAddress address, HttpProtocols protocols, BoundEndpoint bound, TlsCertificateSource? tls)
    {
        bound.Scheme = tls is null ? "http" : "https";
        void Configure(ListenOptions o)
        {
            o.Protocols = protocols;
            if (tls is not null)
            {
                // Asked on every handshake, so a rotated certificate is served without a restart.
                o.UseHttps(new HttpsConnectionAdapterOptions { ServerCertificateSelector = (_, _) => tls.Current });
            }
        }

        if (address.Localhost)
        {
            kestrel.ListenLocalhost(address.Port, Configure);
            bound.Address = new Uri(bound.Scheme + "://localhost:" + address.Port.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            kestrel.Listen(address.Address!, address.Port, o =>
            {
                Configure(o);
                bound.Options = o;
            });
        }
    }

    /// <summary>The listen options of the two endpoints; their bound ports are known once Kestrel started.</summary>
    private sealed class BoundEndpoints
    {
        public BoundEndpoint Main { get; } = new();

        public BoundEndpoint Grpc { get; } = new();
    }

    private sealed class BoundEndpoint
    {
        private Uri? _address;

        public ListenOptions? Options { get; set; }

        public string Scheme { get; set; } = "http";

        /// <summary>A reachable URL of the endpoint: an any-address bind is reached on loopback.</summary>
        public Uri? Address
        {
            get
            {
                if (_address is not null || Options?.IPEndPoint is not { } endpoint)
                {
                    return _address;
                }

                var ip = endpoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
                    : endpoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
                    : endpoint.Address;
                return new Uri(Scheme + "://" + new IPEndPoint(ip, endpoint.Port).ToString());
            }

            set => _address = value;
        }
    }

    /// <summary>/readyz: the store answers and its schema was migrated at start.</summary>
    private sealed class StoreReadiness(ISpanStore store)
    {
        public async Task<string?> CheckAsync(CancellationToken cancellationToken)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            try
            {
                await store.ListTenantsAsync(timeout.Token).ConfigureAwait(false);
                return null;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                return "store unreachable: " + ex.GetType().Name;
            }
        }
    }
}

/// <summary>Log messages of the server (event ids 1–99).</summary>
internal static partial class BackendLog
{
    [LoggerMessage(1, LogLevel.Information, "Backend listening on {Address} (store: {StoreKind})")]
    public static partial void Listening(ILogger logger, Uri address, string storeKind);

    [LoggerMessage(2, LogLevel.Information, "Stopping: committing {QueuedSpans} queued span(s)")]
    public static partial void Stopping(ILogger logger, long queuedSpans);

    [LoggerMessage(3, LogLevel.Information, "Backend stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(4, LogLevel.Information, "First start: created tenant 'default' and key {KeyId}")]
    public static partial void DefaultTenantCreated(ILogger logger, string keyId);

    [LoggerMessage(5, LogLevel.Warning, "Demo mode: the fixed demo key is accepted for tenant 'default'; do not expose this server")]
    public static partial void DemoMode(ILogger logger);
}
