using Microsoft.Extensions.Logging;

namespace SpIstio.Cli.Commands;

/// <summary>Console logging for the agent commands: one line per entry, on stderr, so stdout stays machine-readable.</summary>
internal static class AgentLogging
{
    public static ILoggerFactory Create(bool detailed) =>
        LoggerFactory.Create(builder => builder
            .AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace)
            .AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                console.UseUtcTimestamp = true;
            })
            .AddFilter("Microsoft.AspNetCore", LogLevel.Warning)
            .AddFilter("Grpc", LogLevel.Warning)
            .SetMinimumLevel(detailed ? LogLevel.Debug : LogLevel.Information));
}

/// <summary>Log messages of the agent commands.</summary>
internal static partial class AgentLog
{
    [LoggerMessage(1, LogLevel.Information, "Stopping: draining open streams, then flushing the exporter")]
    public static partial void Draining(ILogger logger);
}
