using System.CommandLine;
using SpIstio.Agent.Admin;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.Hosting;
using SpIstio.Core.Configuration;

namespace SpIstio.Cli.Commands;

/// <summary>
/// <c>sp agent extproc</c>: the Envoy ext_proc gRPC service, its admin port and the exporter, until
/// Ctrl+C / SIGTERM; then it drains (streams finish, exchanges are finalised) and flushes.
/// </summary>
internal static class ExtProcCommand
{
    // Open streams get this long to finish on shutdown before they are cut (and finalised as cancelled).
    private static readonly TimeSpan _drainTimeout = TimeSpan.FromSeconds(10);

    public static Command Create()
    {
        var listen = new Option<string>("--listen")
        {
            HelpName = "host:port",
            Description = "gRPC listen address (cleartext HTTP/2) for Envoy. Port 0 picks a free port.",
            DefaultValueFactory = _ => "127.0.0.1:18080",
        };
        var uds = new Option<string?>("--uds")
        {
            HelpName = "PATH",
            Description = "Also listen on this Unix domain socket (an in-pod agent).",
        };
        var admin = new Option<string>("--admin")
        {
            HelpName = "host:port",
            Description = "Admin address: /metrics, /healthz, /readyz (HTTP/1.1).",
            DefaultValueFactory = _ => "127.0.0.1:15020",
        };
        var config = new Option<string?>("--config")
        {
            HelpName = "FILE",
            Description = "Agent configuration, YAML or JSON. Without it, defaults plus SP_* variables and --set apply.",
        };
        var set = new Option<string[]>("--set")
        {
            HelpName = "key.path=value",
            Description = "Override one configuration key (e.g. sampling.ratio=0.5). Repeatable.",
        };
        var ignoreEnvironment = new Option<bool>("--ignore-env")
        {
            Description = "Do not apply SP_* environment variables.",
        };
        var allowUnknownKeys = AgentStartup.CreateAllowUnknownKeysOption();

        var command = new Command("extproc", "Serve Envoy's ext_proc protocol: capture every exchange Envoy sends and export it to the backend.");
        command.Options.Add(listen);
        command.Options.Add(uds);
        command.Options.Add(admin);
        command.Options.Add(config);
        command.Options.Add(set);
        command.Options.Add(ignoreEnvironment);
        command.Options.Add(allowUnknownKeys);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            // System.CommandLine hooks SIGTERM/Ctrl+C only once the action returned its first
            // unfinished task; start-up can run synchronously for long (SQLite, Kestrel), and a
            // signal in that window would be lost.
            await Task.Yield();
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;

            var problems = new List<string>();
            if (!ListenAddress.TryParse(parseResult.GetValue(listen), out var listenAddress, out var listenError))
            {
                problems.Add("--listen: " + listenError);
            }

            if (!ListenAddress.TryParse(parseResult.GetValue(admin), out var adminAddress, out var adminError))
            {
                problems.Add("--admin: " + adminError);
            }

            var path = parseResult.GetValue(config);
            var environment = parseResult.GetValue(ignoreEnvironment)
                ? new Dictionary<string, string?>()
                : AgentConfigLoader.ProcessEnvironment();
            var loaded = AgentConfigLoader.Load(path, environment, parseResult.GetValue(set) ?? []);
            var allowUnknown = parseResult.GetValue(allowUnknownKeys);
            problems.AddRange(AgentStartup.Errors(loaded, allowUnknown));
            if (problems.Count > 0)
            {
                return AgentStartup.ReportProblems(error, problems, RootCommand.ExecutableName + " agent extproc");
            }

            var warnings = AgentStartup.Warnings(loaded, allowUnknown).Select(w => "warning: " + w).ToList();
            var identity = AgentStartup.IdentityOf(path, environment, parseResult.GetValue(set) ?? []);
            return await RunAsync(loaded.Options, identity, listenAddress, parseResult.GetValue(uds), adminAddress, output, error, warnings, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<int> RunAsync(
        AgentOptions options,
        ConfigIdentity identity,
        ListenAddress listen,
        string? unixSocket,
        ListenAddress admin,
        TextWriter output,
        TextWriter error,
        IReadOnlyList<string> warnings,
        CancellationToken stopping)
    {
        var (loggerFactory, logGate) = AgentLogging.Create(options.EnableDetailedLogging);
        using var loggerLifetime = loggerFactory;
        foreach (var warning in warnings)
        {
            logGate.Defer(() => error.WriteLine(warning));
        }

        if (AgentHeapLimit.Apply(options, AgentHeapLimit.FrontEnd.ExtProc) is { } heapWarning)
        {
            logGate.Defer(() => error.WriteLine(heapWarning));
        }

        var logger = loggerFactory.CreateLogger("SpIstio.Cli.ExtProc");
        await using var runtime = AgentRuntime.Create(options, loggerFactory);
        runtime.Status.Config = identity;
        var adminApp = await AgentStartup.BindAsync(() => runtime.StartAdminAsync(admin, stopping), "--admin", admin.ToString(), "admin listener").ConfigureAwait(false);
        var serverOptions = new ExtProcOptions
        {
            Listen = listen,
            UnixSocketPath = unixSocket,
            MaxConnections = options.ExtProc.MaxConnections,
            MaxStreams = options.ExtProc.MaxStreams,
        };
        var server = await AgentStartup.BindAsync(
            () => ExtProcServer.StartAsync(runtime.Pipeline, serverOptions, loggerFactory, runtime.TimeProvider, stopping),
            unixSocket is null ? "--listen" : "--listen/--uds", unixSocket is null ? listen.ToString() : listen + " / unix:" + unixSocket, "ext_proc gRPC listener").ConfigureAwait(false);
        try
        {
            runtime.Readiness.MarkReady();

            // Machine-readable lines (tests and scripts read the bound ports from them); logs go to stderr.
            output.WriteLine($"extproc listening on {new ListenAddress(listen.Host, server.Port)}");
            if (unixSocket is not null)
            {
                output.WriteLine("extproc listening on unix:" + unixSocket);
            }

            output.WriteLine("admin listening on " + AgentRuntime.BoundAddress(adminApp));
            output.Flush();
            logGate.Open();

            try
            {
                await Task.Delay(Timeout.Infinite, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C or SIGTERM: drain below.
            }

            AgentLog.Draining(logger);
            runtime.Readiness.MarkNotReady("draining");
            using var drain = new CancellationTokenSource(_drainTimeout);
            await server.StopAsync(drain.Token).ConfigureAwait(false);
        }
        finally
        {
            await server.DisposeAsync().ConfigureAwait(false);
        }

        // Disposing the runtime stops the admin port and flushes the exporter, bounded by export.shutdown_flush_ms.
        await runtime.DisposeAsync().ConfigureAwait(false);
        output.WriteLine(AgentStartup.ShutdownLine("extproc", runtime.Status));
        return ExitCodes.Success;
    }
}
