using Microsoft.Extensions.Logging;

namespace SpIstio.Cli.Commands;

/// <summary>
/// Holds the log lines written while a long-running command starts. Once it has started (and
/// printed its own lines, such as the demo banner) <see cref="Open"/> writes them out in order and
/// lets later lines through. When start-up fails they are never written: the operator sees the
/// one-line error alone, not "store opened" followed by a failure.
/// </summary>
internal sealed class StartupLogGate : ILoggerProvider
{
    // Bounds what a start-up that logs in a loop can make the process hold.
    private const int MaxHeld = 1000;

    private readonly ILoggerFactory _inner;
    private readonly Lock _lock = new();
    private List<Held>? _held = [];
    private List<Action>? _deferred = [];

    private StartupLogGate(ILoggerFactory inner) => _inner = inner;

    /// <summary>A logger factory writing through <paramref name="configure"/>'s providers, gated until <see cref="Open"/>.</summary>
    public static (ILoggerFactory Factory, StartupLogGate Gate) Create(Action<ILoggingBuilder> configure, LogLevel minimum, Action<ILoggingBuilder> filters)
    {
        var inner = LoggerFactory.Create(builder =>
        {
            configure(builder);
            builder.SetMinimumLevel(LogLevel.Trace);
        });
        var gate = new StartupLogGate(inner);
        var outer = LoggerFactory.Create(builder =>
        {
            builder.AddProvider(gate);
            builder.SetMinimumLevel(minimum);
            filters(builder);
        });
        return (outer, gate);
    }

    /// <summary>
    /// Runs <paramref name="write"/> when the gate opens (at once if it is open): for lines the
    /// command writes itself, such as configuration warnings, that must not come before a start-up error.
    /// </summary>
    public void Defer(Action write)
    {
        ArgumentNullException.ThrowIfNull(write);
        lock (_lock)
        {
            if (_deferred is not null)
            {
                _deferred.Add(write);
                return;
            }
        }

        write();
    }

    /// <summary>Writes the deferred and held lines and passes every later one straight through.</summary>
    public void Open()
    {
        List<Held>? held;
        lock (_lock)
        {
            held = _held;
            _held = null;
            var deferred = _deferred;
            _deferred = null;
            foreach (var write in deferred ?? [])
            {
                write();
            }

            // Replayed under the lock so a line logged meanwhile cannot overtake the held ones.
            if (held is not null)
            {
                foreach (var entry in held)
                {
                    _inner.CreateLogger(entry.Category).Log(entry.Level, entry.EventId, entry.Message, entry.Exception, static (message, _) => message);
                }
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new GatedLogger(this, categoryName, _inner.CreateLogger(categoryName));

    public void Dispose() => _inner.Dispose();

    private bool TryHold(string category, LogLevel level, EventId eventId, string message, Exception? exception)
    {
        lock (_lock)
        {
            if (_held is null)
            {
                return false;
            }

            if (_held.Count < MaxHeld)
            {
                _held.Add(new Held(category, level, eventId, message, exception));
            }

            return true;
        }
    }

    private sealed record Held(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception);

    private sealed class GatedLogger(StartupLogGate gate, string category, ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!gate.TryHold(category, logLevel, eventId, formatter(state, exception), exception))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
