using System.Globalization;
using System.CommandLine;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Admin;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Proxy;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Startup;

namespace SpIstio.Cli.Commands;

/// <summary>
/// <c>sp agent proxy</c>: the standalone capture proxy, in front of an app (<c>--upstream</c>) or
/// as its HTTP proxy (<c>--forward</c>), with the same pipeline, export, metrics and admin port
/// as the ext_proc agent.
/// </summary>
internal static class ProxyCommand
{
    // Long enough for ordinary requests in flight to finish; streams still open are cut.
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    public static Command Create()
    {
        var listen = new Option<string>("--listen")
        {
            HelpName = "host:port",
            Description = "Where the proxy listens. Port 0 picks a free port (printed at start).",
            DefaultValueFactory = _ => "127.0.0.1:15006",
        };
        var grpcListen = new Option<string?>("--grpc-listen")
        {
            HelpName = "host:port",
            Description = "Reverse mode: also listen for gRPC (cleartext HTTP/2, prior knowledge) here; calls go to the upstream over HTTP/2 and are captured as gRPC. Off unless given.",
        };
        var upstream = new Option<string?>("--upstream")
        {
            HelpName = "URL",
            Description = "Reverse mode: the application every request goes to, e.g. http://127.0.0.1:8080.",
        };
        var forward = new Option<bool>("--forward")
        {
            Description = "Forward mode: act as the application's HTTP proxy (http_proxy); absolute-form requests are captured, CONNECT tunnels pass through.",
        };
        var direction = new Option<string?>("--direction")
        {
            HelpName = "inbound|outbound",
            Description = "Direction recorded on exchanges. Default: traffic_direction from the configuration when not auto, else inbound with --upstream and outbound with --forward.",
        };
        direction.AcceptOnlyFromAmong("inbound", "outbound", "server", "client");
        var admin = new Option<string?>("--admin")
        {
            HelpName = "host:port",
            Description = "Admin port serving /metrics, /healthz and /readyz. Off unless given.",
        };
        var config = new Option<string?>("--config")
        {
            HelpName = "FILE",
            Description = "The agent configuration, YAML or JSON (the original plugin's keys). Defaults apply without it.",
        };
        var set = new Option<string[]>("--set")
        {
            HelpName = "key.path=value",
            Description = "Override one configuration key (e.g. capture.max_response_body_bytes=1024). Repeatable.",
        };
        var ignoreEnvironment = new Option<bool>("--ignore-env")
        {
            Description = "Do not apply SP_* environment variables.",
        };
        var http2 = new Option<bool>("--http2-upstream")
        {
            Description = "Speak HTTP/2 to the upstream (h2c prior knowledge for http://).",
        };
        var noCapture = new Option<bool>("--no-capture")
        {
            Description = "Forward only, capture nothing (a plain YARP proxy; the benchmark baseline).",
        };
        var allowUnknownKeys = AgentStartup.CreateAllowUnknownKeysOption();

        var command = new Command("proxy", "Run the standalone capture proxy. Ctrl+C drains requests in flight and flushes captured exchanges.");
        command.Options.Add(listen);
        command.Options.Add(grpcListen);
        command.Options.Add(upstream);
        command.Options.Add(forward);
        command.Options.Add(direction);
        command.Options.Add(admin);
        command.Options.Add(config);
        command.Options.Add(set);
        command.Options.Add(ignoreEnvironment);
        command.Options.Add(http2);
        command.Options.Add(noCapture);
        command.Options.Add(allowUnknownKeys);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            // System.CommandLine hooks SIGTERM/Ctrl+C only once the action returned its first
            // unfinished task; start-up can run synchronously for long (SQLite, Kestrel), and a
            // signal in that window would be lost.
            await Task.Yield();
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var configPath = parseResult.GetValue(config);
            var environment = parseResult.GetValue(ignoreEnvironment)
                ? new Dictionary<string, string?>()
                : AgentConfigLoader.ProcessEnvironment();
            var loaded = AgentConfigLoader.Load(configPath, environment, parseResult.GetValue(set) ?? []);

            // Every problem, configuration and command line alike, is reported in one go.
            var allowUnknown = parseResult.GetValue(allowUnknownKeys);
            var problems = AgentStartup.Errors(loaded, allowUnknown);
            if (!ListenAddress.TryParse(parseResult.GetValue(listen), out var listenAddress, out var listenError))
            {
                problems.Add("--listen: " + listenError);
            }

            var adminAddress = OptionalListen(parseResult.GetValue(admin), "--admin", problems);
            var grpcAddress = OptionalListen(parseResult.GetValue(grpcListen), "--grpc-listen", problems);

            Uri? upstreamUri = null;
            var upstreamText = parseResult.GetValue(upstream);
            if (upstreamText is not null && !Uri.TryCreate(upstreamText, UriKind.Absolute, out upstreamUri))
            {
                problems.Add("--upstream: '" + upstreamText + "' is not an absolute URL (http://host:port)");
            }

            var isForward = parseResult.GetValue(forward);
            var proxyOptions = new CaptureProxyOptions
            {
                Upstream = upstreamUri,
                Forward = isForward,
                Direction = ResolveDirection(parseResult.GetValue(direction), loaded.Options.TrafficDirection, isForward),
                Http2Upstream = parseResult.GetValue(http2),
                GrpcListen = grpcAddress,
                Capture = !parseResult.GetValue(noCapture),
            }.WithLimits(loaded.Options.Proxy);
            if (upstreamText is null || upstreamUri is not null)
            {
                problems.AddRange(proxyOptions.Validate());
            }

            if (problems.Count > 0)
            {
                return AgentStartup.ReportProblems(error, problems, RootCommand.ExecutableName + " agent proxy");
            }

            // Logs go to stderr, one line each, held until the proxy listens (stdout carries the bound addresses).
            var (loggerFactory, logGate) = AgentLogging.Create(loaded.Options.EnableDetailedLogging);
            using var loggerLifetime = loggerFactory;
            foreach (var warning in AgentStartup.Warnings(loaded, allowUnknown))
            {
                logGate.Defer(() => error.WriteLine("warning: " + warning));
            }
            var identity = AgentStartup.IdentityOf(configPath, environment, parseResult.GetValue(set) ?? []);
            if (AgentHeapLimit.Apply(loaded.Options, grpcAddress is null ? AgentHeapLimit.FrontEnd.Proxy : AgentHeapLimit.FrontEnd.GrpcProxy) is { } heapWarning)
            {
                logGate.Defer(() => error.WriteLine(heapWarning));
            }

            return await RunAsync(loaded.Options, identity, proxyOptions, listenAddress, adminAddress, loggerFactory, logGate, output, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<int> RunAsync(
        AgentOptions options,
        ConfigIdentity identity,
        CaptureProxyOptions proxyOptions,
        ListenAddress listen,
        ListenAddress? admin,
        ILoggerFactory loggerFactory,
        StartupLogGate logGate,
        TextWriter output,
        CancellationToken cancellationToken)
    {
        await using var runtime = AgentRuntime.Create(options, loggerFactory);
        runtime.Status.Config = identity;
        if (admin is { } adminAddress)
        {
            var adminApp = await AgentStartup.BindAsync(() => runtime.StartAdminAsync(adminAddress, cancellationToken), "--admin", adminAddress.ToString(), "admin listener").ConfigureAwait(false);
            output.WriteLine("admin listening on " + AgentRuntime.BoundAddress(adminApp));
        }

        // Two listeners start together; Kestrel's bind error names the address, so the one that
        // failed is told by its port (as the backend tells --listen from --grpc-listen).
        var grpcListen = proxyOptions.GrpcListen;
        var grpcPort = grpcListen is { Port: > 0 } g && g.Port != listen.Port ? ":" + g.Port.ToString(CultureInfo.InvariantCulture) : null;
        CaptureProxyServer proxy;
        try
        {
            proxy = await CaptureProxyServer.StartAsync(listen, proxyOptions, runtime.Pipeline, loggerFactory, runtime.TimeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (grpcPort is not null
            && ExceptionText(ex).Contains(grpcPort, StringComparison.Ordinal)
            && ListenerErrors.Describe(ex, "--grpc-listen", grpcListen!.Value.ToString(), "gRPC listener") is { } described)
        {
            throw described;
        }
        catch (Exception ex) when (ListenerErrors.Describe(ex, "--listen", listen.ToString(), "proxy listener") is { } described)
        {
            throw described;
        }
        await using (proxy.ConfigureAwait(false))
        {
            runtime.Readiness.MarkReady();
            var mode = proxyOptions.Forward ? "forward proxy" : "reverse proxy to " + proxyOptions.Upstream;
            var capture = proxyOptions.Capture ? "capturing " + AgentMetrics.DirectionLabel(proxyOptions.Direction) : "capture off";
            output.WriteLine("proxy listening on " + proxy.Address + " (" + mode + ", " + capture + ")");
            if (proxy.GrpcAddress is { } grpcAddress)
            {
                output.WriteLine("proxy listening for gRPC (h2c) on " + grpcAddress);
            }

            output.Flush();
            logGate.Open();

            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C or SIGTERM: drain below.
            }

            runtime.Readiness.MarkNotReady("draining");
            using var drain = new CancellationTokenSource(DrainTimeout);
            await proxy.StopAsync(drain.Token).ConfigureAwait(false);
        }

        // Disposing the runtime flushes the export queue within export.shutdown_flush_ms.
        await runtime.DisposeAsync().ConfigureAwait(false);
        output.WriteLine(AgentStartup.ShutdownLine("proxy", runtime.Status));
        return ExitCodes.Success;
    }

    // An optional host:port option: null when not given; a malformed one is a problem named after the option.
    private static ListenAddress? OptionalListen(string? text, string option, List<string> problems)
    {
        if (text is null)
        {
            return null;
        }

        if (ListenAddress.TryParse(text, out var address, out var error))
        {
            return address;
        }

        problems.Add(option + ": " + error);
        return null;
    }

    private static string ExceptionText(Exception exception)
    {
        var text = new System.Text.StringBuilder();
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            text.Append(e.Message).Append('\n');
        }

        return text.ToString();
    }

    private static TrafficDirection ResolveDirection(string? flag, DirectionSetting configured, bool forward) => flag switch
    {
        "inbound" or "server" => TrafficDirection.Inbound,
        "outbound" or "client" => TrafficDirection.Outbound,
        _ => configured switch
        {
            DirectionSetting.Inbound => TrafficDirection.Inbound,
            DirectionSetting.Outbound => TrafficDirection.Outbound,
            _ => forward ? TrafficDirection.Outbound : TrafficDirection.Inbound,
        },
    };
}
