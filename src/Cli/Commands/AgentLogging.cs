using Microsoft.Extensions.Logging;

namespace SpIstio.Cli.Commands;

/// <summary>Console logging for the agent commands: one line per entry, on stderr, so stdout stays machine-readable.</summary>
internal static class AgentLogging
{
    /// <summary>The logger factory and the gate holding start-up lines until <see cref="StartupLogGate.Open"/>.</summary>
    public static (ILoggerFactory Factory, StartupLogGate Gate) Create(bool detailed) => StartupLogGate.Create(
        builder => builder
            .AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace)
            .AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                console.UseUtcTimestamp = true;
            }),
        detailed ? LogLevel.Debug : LogLevel.Information,
        filters => filters
            .AddFilter("Microsoft.AspNetCore", LogLevel.Warning)
            // While this category is enabled at any level, ASP.NET Core's hosting starts an Activity
            // and pushes a log scope for every request: for ext_proc that is every exchange (one gRPC
            // stream each), ~3 % of the agent's CPU at 2 KiB (issue 13). It logs request start and
            // finish (Information) and the startup exception, which the command reports itself.
            .AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None)
            .AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning)
            .AddFilter("Grpc", LogLevel.Warning)
            // YARP logs every forwarded request at Information.
            .AddFilter("Yarp", LogLevel.Warning));
}

/// <summary>Log messages of the agent commands.</summary>
internal static partial class AgentLog
{
    [LoggerMessage(1, LogLevel.Information, "Stopping: draining open streams, then flushing the exporter")]
    public static partial void Draining(ILogger logger);
}
