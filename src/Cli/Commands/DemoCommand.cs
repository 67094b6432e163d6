using System.CommandLine;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Proxy;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Examples.Travel;
using SpIstio.Examples.Travel.Flights;
using SpIstio.Examples.Travel.Notifications;
using SpIstio.Examples.Travel.Payments;
using SpIstio.Examples.Travel.Traffic;
using SpIstio.Examples.Travel.Web;
using AgentListenAddress = SpIstio.Agent.Hosting.ListenAddress;

namespace SpIstio.Cli.Commands;

/// <summary>
/// <c>sp demo</c>: everything in one process, so Ctrl+C stops it all — the backend on the
/// embedded SQLite store in demo mode, one agent exporting to it with the demo key, the travel
/// services each behind an inbound capture proxy and calling out through an outbound one, and
/// the traffic generator playing user journeys.
/// </summary>
internal static class DemoCommand
{
    // Every part but the backend listens on a free loopback port; they find each other in-process.
    private static readonly AgentListenAddress _freeLoopbackPort = new("127.0.0.1", 0);
    private static readonly TimeSpan _stopTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan _progressInterval = TimeSpan.FromSeconds(10);

    public static Command Create()
    {
        var port = new Option<int>("--port")
        {
            Description = "Backend port (OTLP ingest, query API, Trace View) on 127.0.0.1. 0 picks a free port.",
            DefaultValueFactory = _ => 8090,
        };
        var journeys = new Option<int>("--journeys")
        {
            HelpName = "N",
            Description = "User journeys to play (search, hold, pay, confirm); 0 plays until stopped.",
            DefaultValueFactory = _ => 0,
        };
        var rate = new Option<double>("--rate")
        {
            HelpName = "per-second",
            Description = "Journeys started per second.",
            DefaultValueFactory = _ => 1,
        };
        var duration = new Option<string?>("--duration")
        {
            HelpName = "duration",
            Description = "Stop by itself this long after everything has started (30s, 5m, 1h), as Ctrl+C would. Default: run until Ctrl+C.",
        };
        var data = new Option<string>("--data")
        {
            HelpName = "DIR",
            Description = "Folder of the demo's SQLite store (demo.db), kept after the demo stops.",
            DefaultValueFactory = _ => "./data",
        };

        var command = new Command("demo", "Run the local demo: backend, capture proxies, the travel example services and a traffic generator in one process; prints the Trace View URL and the demo key. Ctrl+C stops everything.");
        command.Options.Add(port);
        command.Options.Add(journeys);
        command.Options.Add(rate);
        command.Options.Add(duration);
        command.Options.Add(data);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            // System.CommandLine hooks SIGTERM/Ctrl+C only once the action returned its first
            // unfinished task; start-up can run synchronously for long (SQLite, Kestrel), and a
            // signal in that window would be lost.
            await Task.Yield();
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var problems = new List<string>();
            var portValue = parseResult.GetValue(port);
            if (portValue is < 0 or > 65535)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"--port: {portValue} is not a port number (0 to 65535)"));
            }

            var journeyCount = parseResult.GetValue(journeys);
            if (journeyCount < 0)
            {
                problems.Add("--journeys: must be 0 (until stopped) or more");
            }

            var rateValue = parseResult.GetValue(rate);
            if (!(rateValue > 0) || rateValue > 1000)
            {
                problems.Add("--rate: journeys per second must be more than 0 and at most 1000");
            }

            TimeSpan? stopAfter = null;
            if (parseResult.GetValue(duration) is { } durationText)
            {
                if (BackendCommands.TryParseDuration(durationText, out var parsed) && parsed > TimeSpan.Zero)
                {
                    stopAfter = parsed;
                }
                else
                {
                    problems.Add("--duration: '" + durationText + "' is not a duration such as 30s, 5m or 1h");
                }
            }

            if (problems.Count > 0)
            {
                foreach (var problem in problems)
                {
                    error.WriteLine("error: " + problem);
                }

                return ExitCodes.InvalidInput;
            }

            var settings = new DemoSettings(
                portValue,
                journeyCount,
                rateValue,
                stopAfter,
                Path.GetFullPath(parseResult.GetValue(data)!));

            // Only warnings and errors are logged (to stderr): stdout is the progress display. They
            // are held until the banner is complete, so it stays one clean block with logs below it.
            var (loggerFactory, logGate) = StartupLogGate.Create(
                logging => logging
                    .AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace)
                    .AddSimpleConsole(console =>
                    {
                        console.SingleLine = true;
                        console.TimestampFormat = "HH:mm:ss ";
                    }),
                LogLevel.Warning,
                static _ => { });
            using var loggerLifetime = loggerFactory;
            return await RunAsync(settings, loggerFactory, logGate, output, error, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<int> RunAsync(DemoSettings settings, ILoggerFactory loggerFactory, StartupLogGate logGate, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await using var parts = new DemoParts();
        output.WriteLine("sp demo: starting (Ctrl+C stops everything)");
        var part = "";
        try
        {
            part = "backend";
            Begin(output, part);
            var store = "sqlite:" + Path.Combine(settings.DataDirectory, "demo.db");
            StoreOption.EnsureSqliteFolder(store);
            parts.Backend = await BackendServer.StartAsync(
                new BackendOptions { Demo = true, Store = store, Listen = string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{settings.Port}") },
                loggerFactory,
                cancellationToken: stop.Token).ConfigureAwait(false);
            var backendUrl = parts.Backend.Address;
            Done(output, "ok  " + backendUrl + "  (" + store + ", demo mode)");

            part = "agent";
            Begin(output, part);
            var runtime = parts.Agent = AgentRuntime.Create(AgentOptionsFor("sp-demo", backendUrl), loggerFactory);
            var admin = await runtime.StartAdminAsync(_freeLoopbackPort, stop.Token).ConfigureAwait(false);
            Done(output, "ok  exporting to " + backendUrl + " with the demo key; metrics " + new Uri(AgentRuntime.BoundAddress(admin), "/metrics"));

            // Back to front, so every caller knows the inbound proxy of what it calls.
            part = NotificationsService.Name;
            Begin(output, part);
            var notifications = await StartServiceAsync(parts, runtime, part, false, proxy => NotificationsService.Build(new TravelServiceOptions { OutboundProxy = proxy }), loggerFactory, stop.Token).ConfigureAwait(false);
            Done(output, notifications.Describe());

            part = FlightsService.Name;
            Begin(output, part);
            var flights = await StartServiceAsync(parts, runtime, part, false, proxy => FlightsService.Build(new TravelServiceOptions { OutboundProxy = proxy }), loggerFactory, stop.Token).ConfigureAwait(false);
            Done(output, flights.Describe());

            part = PaymentsService.Name;
            Begin(output, part);
            var payments = await StartServiceAsync(parts, runtime, part, true, proxy => PaymentsService.Build(new TravelServiceOptions
            {
                NotificationsUrl = notifications.Inbound,
                OutboundProxy = proxy,
            }), loggerFactory, stop.Token).ConfigureAwait(false);
            Done(output, payments.Describe());

            part = WebService.Name;
            Begin(output, part);
            var web = await StartServiceAsync(parts, runtime, part, true, proxy => WebService.Build(new TravelServiceOptions
            {
                FlightsUrl = flights.Inbound,
                PaymentsUrl = payments.Inbound,
                NotificationsUrl = notifications.Inbound,
                OutboundProxy = proxy,
            }), loggerFactory, stop.Token).ConfigureAwait(false);
            Done(output, web.Describe());

            runtime.Readiness.MarkReady();
            part = "traffic";
            Begin(output, part);
            var generator = parts.Traffic = new TrafficGenerator(new TrafficOptions { WebUrl = web.Inbound, Journeys = settings.Journeys, Rate = settings.Rate });
            var counts = new JourneyCounts();
            var traffic = generator.RunAsync(counts.Add, stop.Token);
            Done(output, string.Create(CultureInfo.InvariantCulture, $"ok  {settings.Rate:0.##} journeys/s{(settings.Journeys > 0 ? $", {settings.Journeys} in all" : "")} into {web.Inbound} (the browser's session id in tracestate)"));

            output.WriteLine();
            output.WriteLine("Trace View: " + backendUrl);
            output.WriteLine("Demo key:   " + ApiKeys.DemoKey);
            if (parts.Backend.BootstrapKey is { } bootstrap)
            {
                // A new --data folder: the backend made tenant 'default' a real key, as `sp backend` does on a first start.
                output.WriteLine("Tenant key: " + bootstrap + "  (new store: a real key for tenant 'default', shown only now)");
            }

            output.WriteLine("Query API:  curl -H 'x-public-key: " + ApiKeys.DemoKey + "' " + new Uri(backendUrl, "/api/sessions"));
            if (settings.StopAfter is { } limit)
            {
                // Counted from here, so a slow start does not eat into the time the traffic runs.
                stop.CancelAfter(limit);
                output.WriteLine("Running for " + limit.ToString("c", CultureInfo.InvariantCulture) + " (or until Ctrl+C).");
            }
            else
            {
                output.WriteLine("Running until Ctrl+C.");
            }

            output.WriteLine();
            output.Flush();
            logGate.Open();

            await ReportProgressAsync(traffic, counts, output, stop.Token).ConfigureAwait(false);
            var summary = await traffic.ConfigureAwait(false);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"stopping: {summary.Journeys} journeys played ({summary.Confirmed} confirmed, {summary.CardDeclined} card declined, {summary.SoldOut} sold out, {summary.Unexpected} unexpected)"));
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            output.WriteLine();
            output.WriteLine("stopping: interrupted while starting " + part);
        }
        catch (Core.Startup.StartupException ex)
        {
            output.WriteLine("failed");
            output.Flush();
            error.WriteLine("error: " + part + " did not start: " + ex.Message);
            await parts.DisposeAsync().ConfigureAwait(false);
            return ex.Failure == Core.Startup.StartupFailure.InvalidInput ? ExitCodes.InvalidInput : ExitCodes.Unavailable;
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ArgumentException or BackendOptionsException or ConfigurationException or System.Net.Sockets.SocketException)
        {
            output.WriteLine("failed");
            output.Flush();
            error.WriteLine("error: " + part + " did not start: " + ex.Message.ReplaceLineEndings(" "));
            await parts.DisposeAsync().ConfigureAwait(false);
            return ExitCodes.UsageError;
        }

        await parts.DisposeAsync().ConfigureAwait(false);
        var totals = parts.Agent is { } agent ? AgentStartup.ShutdownLine("demo", agent.Status) + "; " : "stopped; ";
        output.WriteLine(totals + "data kept in " + settings.DataDirectory);
        return ExitCodes.Success;
    }

    /// <summary>
    /// One travel service with its capture proxies: an outbound (forward) proxy it calls through,
    /// when it calls anything, and an inbound (reverse) proxy in front of it. Both capture under
    /// the service's own name, through one pipeline that shares the agent's exporter.
    /// </summary>
    private static async Task<ServiceEndpoints> StartServiceAsync(
        DemoParts parts,
        AgentRuntime runtime,
        string name,
        bool callsOut,
        Func<Uri?, WebApplication> build,
        ILoggerFactory loggerFactory,
        CancellationToken cancellationToken)
    {
        var pipeline = new CapturePipeline(
            AgentOptionsFor(name, runtime.Options.SpBackendUrl),
            runtime.Exporter,
            runtime.Metrics,
            loggerFactory.CreateLogger<CapturePipeline>());
        CaptureProxyServer? outbound = null;
        if (callsOut)
        {
            outbound = await CaptureProxyServer.StartAsync(
                _freeLoopbackPort,
                new CaptureProxyOptions { Forward = true, Direction = TrafficDirection.Outbound },
                pipeline,
                loggerFactory,
                runtime.TimeProvider,
                cancellationToken).ConfigureAwait(false);
            parts.Proxies.Add(outbound);
        }

        var app = build(outbound?.Address);
        parts.Services.Add(app);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var appAddress = TravelHost.AddressOf(app);
        var inbound = await CaptureProxyServer.StartAsync(
            _freeLoopbackPort,
            new CaptureProxyOptions { Upstream = appAddress, Direction = TrafficDirection.Inbound },
            pipeline,
            loggerFactory,
            runtime.TimeProvider,
            cancellationToken).ConfigureAwait(false);
        parts.Proxies.Add(inbound);
        return new ServiceEndpoints(appAddress, inbound.Address, outbound?.Address);
    }

    /// <summary>The demo agent's options: the defaults, the demo backend and key, and the service name.</summary>
    private static AgentOptions AgentOptionsFor(string serviceName, Uri backendUrl) => AgentConfigLoader.LoadOrThrow(
        null,
        new Dictionary<string, string?>(),
        [
            "sp_backend_url=" + backendUrl.GetLeftPart(UriPartial.Authority),
            "public_key=" + ApiKeys.DemoKey,
            "service_name=" + serviceName,
        ]);

    /// <summary>A line every ten seconds while journeys keep finishing, until the traffic ends or the demo stops.</summary>
    private static async Task ReportProgressAsync(Task traffic, JourneyCounts counts, TextWriter output, CancellationToken cancellationToken)
    {
        var reported = 0;
        while (!traffic.IsCompleted)
        {
            try
            {
                await Task.WhenAny(traffic, Task.Delay(_progressInterval, cancellationToken)).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            var now = counts.Snapshot();
            if (now.Total != reported)
            {
                reported = now.Total;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"journeys: {now.Total} ({now.Confirmed} confirmed, {now.Declined} card declined, {now.SoldOut} sold out)"));
                output.Flush();
            }
        }

        // Every journey played: keep serving (the Trace View stays up) until stopped.
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C, SIGTERM or --duration.
        }
    }

    private static void Begin(TextWriter output, string part)
    {
        output.Write("  " + part.PadRight(14, '.') + " ");
        output.Flush();
    }

    private static void Done(TextWriter output, string text)
    {
        output.WriteLine(text);
        output.Flush();
    }

    private sealed record DemoSettings(int Port, int Journeys, double Rate, TimeSpan? StopAfter, string DataDirectory);

    private sealed record ServiceEndpoints(Uri App, Uri Inbound, Uri? Outbound)
    {
        public string Describe() => "ok  app " + App + "  inbound proxy " + Inbound
            + (Outbound is null ? "  (calls no one: no outbound proxy)" : "  outbound proxy " + Outbound);
    }

    /// <summary>Journey outcomes so far; updated from the generator's journeys as they end.</summary>
    private sealed class JourneyCounts
    {
        private int _confirmed;
        private int _declined;
        private int _soldOut;
        private int _total;

        public void Add(JourneyResult result)
        {
            Interlocked.Increment(ref _total);
            switch (result.Outcome)
            {
                case "confirmed": Interlocked.Increment(ref _confirmed); break;
                case "card_declined": Interlocked.Increment(ref _declined); break;
                case "sold_out": Interlocked.Increment(ref _soldOut); break;
                default: break;
            }
        }

        public (int Total, int Confirmed, int Declined, int SoldOut) Snapshot() =>
            (Volatile.Read(ref _total), Volatile.Read(ref _confirmed), Volatile.Read(ref _declined), Volatile.Read(ref _soldOut));
    }

    /// <summary>Everything started, stopped front to back: traffic, services and their proxies (callers first), then the agent's flush, then the backend.</summary>
    private sealed class DemoParts : IAsyncDisposable
    {
        private bool _disposed;

        public BackendServer? Backend { get; set; }

        public AgentRuntime? Agent { get; set; }

        public TrafficGenerator? Traffic { get; set; }

        public List<WebApplication> Services { get; } = [];

        public List<CaptureProxyServer> Proxies { get; } = [];

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            Traffic?.Dispose();
            using var deadline = new CancellationTokenSource(_stopTimeout);
            for (var i = Proxies.Count - 1; i >= 0; i--)
            {
                await Proxies[i].StopAsync(deadline.Token).ConfigureAwait(false);
                await Proxies[i].DisposeAsync().ConfigureAwait(false);
            }

            for (var i = Services.Count - 1; i >= 0; i--)
            {
                await Services[i].StopAsync(deadline.Token).ConfigureAwait(false);
                await Services[i].DisposeAsync().ConfigureAwait(false);
            }

            // Flushes every captured exchange to the backend, which is still up.
            if (Agent is not null)
            {
                await Agent.DisposeAsync().ConfigureAwait(false);
            }

            if (Backend is not null)
            {
                await Backend.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
