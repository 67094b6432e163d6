using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace SpIstio.Backend.Tests.Infrastructure;

/// <summary>Keeps every log entry of every category (level, category, message, exception) for assertions.</summary>
internal sealed class RecordingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<LogEntry> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    internal sealed record LogEntry(LogLevel Level, string Category, string Message, Exception? Exception);

    private sealed class Logger(RecordingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue(new LogEntry(logLevel, category, formatter(state, exception), exception));
    }
}
