using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;

namespace SpIstio.Cli.Commands;

/// <summary><c>sp backend</c>: the OTLP ingest, store and query API server.</summary>
internal static class BackendCommands
{
    public static Command Create()
    {
        var listen = new Option<string>("--listen")
        {
            HelpName = "host:port",
            Description = "Where OTLP/HTTP, the query API, /metrics and health listen. Port 0 picks a free port.",
            DefaultValueFactory = _ => "127.0.0.1:8090",
        };
        var grpcListen = new Option<string?>("--grpc-listen")
        {
            HelpName = "host:port|off",
            Description = "Where OTLP/gRPC listens (HTTP/2 cleartext; a port of its own). Default: the --listen host on 4317. 'off' disables gRPC.",
        };
        var store = StoreOption.Create();
        var demo = new Option<bool>("--demo")
        {
            Description = "Demo mode: also accept the fixed key " + ApiKeys.DemoKey + " for tenant 'default'. Never on a shared network.",
        };
        var maxBody = new Option<int>("--max-body-bytes")
        {
            Description = "Largest export body, counted after decompression (413 above it).",
            DefaultValueFactory = _ => BackendOptions.DefaultMaxBodyBytes,
        };
        var maxAttribute = new Option<int>("--max-attribute-bytes")
        {
            Description = "Most bytes one attribute value (body, header, any attribute) may hold; longer values are truncated and flagged. A span holds at most 4x this.",
            DefaultValueFactory = _ => SpIstio.Backend.Ingest.ConversionLimits.DefaultMaxAttributeBytes,
        };
        var ingestBudget = new Option<long>("--ingest-budget-bytes")
        {
            Description = "Bytes all export requests in flight may make the backend hold together (their bodies x" + SpIstio.Backend.Ingest.IngestBudget.Amplification.ToString(CultureInfo.InvariantCulture) + " while read and parsed, x" + SpIstio.Backend.Ingest.IngestBudget.QueuedAmplification.ToString(CultureInfo.InvariantCulture) + " while queued); a request that does not fit is refused with 503 + Retry-After (gRPC: UNAVAILABLE), which exporters retry.",
            DefaultValueFactory = _ => SpIstio.Backend.Ingest.IngestBudget.DefaultTotalBytes,
        };
        var queueCapacity = new Option<int>("--queue-capacity")
        {
            Description = "Spans that may wait for a commit before exporters are told to retry (503 + Retry-After).",
            DefaultValueFactory = _ => new BackendOptions().QueueCapacity,
        };
        var retention = new Option<string>("--retention")
        {
            HelpName = "duration",
            Description = "How long spans are kept for tenants without their own setting: 7d, 12h, 90m.",
            DefaultValueFactory = _ => "7d",
        };
        var sessionIdle = new Option<string>("--session-idle")
        {
            HelpName = "duration",
            Description = "How long a Trace View sign-in session lives without a request: 12h, 30m. Sign-out and revoking the key end it sooner.",
            DefaultValueFactory = _ => "12h",
        };
        var maxStoreBytes = new Option<long?>("--max-store-bytes")
        {
            Description = "When set, the oldest spans are deleted while the store is larger than this.",
        };

        var tlsCert = new Option<string?>("--tls-cert")
        {
            HelpName = "FILE",
            Description = "PEM certificate (chain) for TLS on both listeners, with --tls-key. Reloaded when the file changes (cert-manager rotation). Not needed inside the mesh: Istio's mTLS covers it.",
        };
        var tlsKey = new Option<string?>("--tls-key")
        {
            HelpName = "FILE",
            Description = "PEM private key of --tls-cert.",
        };

        var grpcDescriptorSets = new Option<string?>("--grpc-descriptor-sets")
        {
            HelpName = "FILE|FOLDER,…",
            Description = "Descriptor sets (protoc --descriptor_set_out=FILE --include_imports), or folders of *.pb/*.desc/*.protoset/*.binpb files, comma-separated: captured gRPC messages of the methods they describe are shown as JSON with field names. Default: $" + SpIstio.Backend.GrpcCalls.GrpcDescriptorFiles.EnvironmentVariable + ", else none (messages are shown schema-less).",
        };

        var command = new Command("backend", "Run the backend: OTLP ingest (HTTP and gRPC), tenants and keys, the store and the query API. Ctrl+C or SIGTERM drains the write queue and exits.");
        command.Options.Add(listen);
        command.Options.Add(grpcListen);
        command.Options.Add(store);
        command.Options.Add(demo);
        command.Options.Add(maxBody);
        command.Options.Add(maxAttribute);
        command.Options.Add(ingestBudget);
        command.Options.Add(queueCapacity);
        command.Options.Add(retention);
        command.Options.Add(maxStoreBytes);
        command.Options.Add(sessionIdle);
        command.Options.Add(tlsCert);
        command.Options.Add(tlsKey);
        command.Options.Add(grpcDescriptorSets);
        command.Subcommands.Add(BackendMigrateCommand.Create());
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            // System.CommandLine hooks SIGTERM/Ctrl+C only once the action returned its first
            // unfinished task; start-up can run synchronously for long (SQLite, Kestrel), and a
            // signal in that window would be lost.
            await Task.Yield();
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var retentionText = parseResult.GetValue(retention)!;
            var sessionIdleText = parseResult.GetValue(sessionIdle)!;
            var durationProblems = new List<string>();
            if (!TryParseDuration(retentionText, out var retentionValue))
            {
                durationProblems.Add("retention: '" + retentionText + "' is not a duration such as 7d, 12h or 90m");
            }

            if (!TryParseDuration(sessionIdleText, out var sessionIdleValue))
            {
                durationProblems.Add("session-idle: '" + sessionIdleText + "' is not a duration such as 12h or 30m");
            }

            if (durationProblems.Count > 0)
            {
                foreach (var problem in durationProblems)
                {
                    error.WriteLine("error: " + problem);
                }

                return ExitCodes.InvalidInput;
            }

            var options = new BackendOptions
            {
                Listen = parseResult.GetValue(listen)!,
                GrpcListen = GrpcListenOf(parseResult.GetValue(grpcListen), parseResult.GetValue(listen)!),
                Store = StoreOption.Resolve(parseResult.GetValue(store)).Spec,
                Demo = parseResult.GetValue(demo),
                MaxBodyBytes = parseResult.GetValue(maxBody),
                MaxAttributeBytes = parseResult.GetValue(maxAttribute),
                IngestBudgetBytes = parseResult.GetValue(ingestBudget),
                QueueCapacity = parseResult.GetValue(queueCapacity),
                Retention = retentionValue,
                SessionIdleTimeout = sessionIdleValue,
                MaxStoreBytes = parseResult.GetValue(maxStoreBytes),
                TlsCertificatePath = parseResult.GetValue(tlsCert),
                TlsKeyPath = parseResult.GetValue(tlsKey),
                GrpcDescriptorSets = SpIstio.Backend.GrpcCalls.GrpcDescriptorFiles.Split(
                    parseResult.GetValue(grpcDescriptorSets) ?? Environment.GetEnvironmentVariable(SpIstio.Backend.GrpcCalls.GrpcDescriptorFiles.EnvironmentVariable)),
            };
            var problems = options.Validate();
            if (problems.Count > 0)
            {
                foreach (var problem in problems)
                {
                    error.WriteLine("error: " + problem);
                }

                return ExitCodes.InvalidInput;
            }

            StoreOption.EnsureSqliteFolder(options.Store);
            // Logs go to stderr: stdout carries the address and the one-time key, for people and scripts.
            // They are held until the server started, so a failed start is the one-line error alone.
            var (loggerFactory, logGate) = CreateLogging();
            using var loggerLifetime = loggerFactory;

            BackendServer server;
            try
            {
                server = await BackendServer.StartAsync(options, loggerFactory, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return ExitCodes.Success;
            }

            await using (server.ConfigureAwait(false))
            {
                output.WriteLine("sp backend listening on " + server.Address + " (store: " + server.Store.Kind + ")");
                if (server.GrpcAddress is not null)
                {
                    output.WriteLine("OTLP/gRPC on " + server.GrpcAddress);
                }

                if (server.BootstrapKey is not null)
                {
                    output.WriteLine("First start: created tenant 'default'. Its API key (ingest, read) is shown only this once:");
                    output.WriteLine("  " + server.BootstrapKey);
                }

                if (options.Demo)
                {
                    output.WriteLine("Demo mode: the fixed key " + ApiKeys.DemoKey + " is accepted for tenant 'default'.");
                }

                output.Flush();
                logGate.Open();
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Ctrl+C or SIGTERM: fall through to the drain.
                }

                output.WriteLine("stopping: committing queued spans");
                await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
                output.WriteLine("stopped");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Console logging on stderr, one line per entry, held until <see cref="StartupLogGate.Open"/>.</summary>
    internal static (ILoggerFactory Factory, StartupLogGate Gate) CreateLogging() => StartupLogGate.Create(
        logging => logging
            .AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace)
            .AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.TimestampFormat = "HH:mm:ss ";
            }),
        LogLevel.Information,
        filters => filters
            .AddFilter("Microsoft", LogLevel.Warning)
            .AddFilter("Grpc", LogLevel.Warning));

    /// <summary>The gRPC address: as given, none for <c>off</c>, else the listen host on the OTLP/gRPC port 4317.</summary>
    private static string? GrpcListenOf(string? grpcListen, string listen)
    {
        if (grpcListen is not null)
        {
            return grpcListen.Equals("off", StringComparison.OrdinalIgnoreCase) ? null : grpcListen;
        }

        var colon = listen.LastIndexOf(':');
        return colon < 0 ? listen : string.Concat(listen.AsSpan(0, colon), ":4317");
    }

    /// <summary>Parses <c>7d</c>, <c>12h</c>, <c>90m</c>, <c>30s</c>, or a .NET time span (<c>1.00:00:00</c>).</summary>
    internal static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        var unit = text[^1];
        if (char.IsAsciiLetter(unit) && double.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= 0)
        {
            switch (char.ToLowerInvariant(unit))
            {
                case 'd': duration = TimeSpan.FromDays(n); return true;
                case 'h': duration = TimeSpan.FromHours(n); return true;
                case 'm': duration = TimeSpan.FromMinutes(n); return true;
                case 's': duration = TimeSpan.FromSeconds(n); return true;
                default: return false;
            }
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out duration);
    }
}
