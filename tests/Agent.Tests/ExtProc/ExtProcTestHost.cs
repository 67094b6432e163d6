using System.Collections.Concurrent;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>
/// A real ext_proc server on 127.0.0.1 (port 0) with a collecting exporter, a recording logger and
/// a gRPC client on one HTTP/2 connection.
/// </summary>
internal sealed class ExtProcTestHost : IAsyncDisposable
{
    private ExtProcTestHost(ExtProcServer server, CollectingExporter exporter, RecordingLoggerProvider logs, AgentMetrics metrics, GrpcChannel channel)
    {
        Server = server;
        Exporter = exporter;
        Logs = logs;
        Metrics = metrics;
        Channel = channel;
        Client = new ExternalProcessor.ExternalProcessorClient(channel);
    }

    public ExtProcServer Server { get; }

    public CollectingExporter Exporter { get; }

    public RecordingLoggerProvider Logs { get; }

    public AgentMetrics Metrics { get; }

    public GrpcChannel Channel { get; }

    public ExternalProcessor.ExternalProcessorClient Client { get; }

    public static async Task<ExtProcTestHost> StartAsync(
        AgentOptions? options = null,
        IResponseShortCircuit? shortCircuit = null,
        Action<ExtProcOptions>? configure = null,
        TimeProvider? time = null)
    {
        options ??= new AgentOptions();
        var logs = new RecordingLoggerProvider();
        var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        var exporter = new CollectingExporter();
        var metrics = new AgentMetrics();
        var pipeline = new CapturePipeline(options, exporter, metrics, loggerFactory.CreateLogger<CapturePipeline>(), shortCircuit);
        var serverOptions = new ExtProcOptions { Listen = new ListenAddress("127.0.0.1", 0) };
        configure?.Invoke(serverOptions);
        var server = await ExtProcServer.StartAsync(pipeline, serverOptions, loggerFactory, time);
        var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{server.Port}", new GrpcChannelOptions
        {
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
        });
        return new ExtProcTestHost(server, exporter, logs, metrics, channel);
    }

    public EnvoyStream Open(Grpc.Core.Metadata? metadata = null, CancellationToken cancellationToken = default) =>
        new(Client.Process(metadata, cancellationToken: cancellationToken));

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>The exporter double: keeps every exchange and lets a test wait for them.</summary>
internal sealed class CollectingExporter : IExchangeExporter
{
    private readonly ConcurrentQueue<Exchange> _exchanges = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private readonly ManualResetEventSlim _open = new(initialState: true);

    public IReadOnlyCollection<Exchange> Exchanges => _exchanges;

    /// <summary>Makes every <see cref="TryEnqueue"/> block until <see cref="Release"/>: capture work that cannot end.</summary>
    public void Hold() => _open.Reset();

    /// <summary>Lets held and later <see cref="TryEnqueue"/> calls through.</summary>
    public void Release() => _open.Set();

    public bool TryEnqueue(Exchange exchange)
    {
        _open.Wait();
        _exchanges.Enqueue(exchange);
        _arrived.Release();
        return true;
    }

    /// <summary>Waits for the next exported exchange; fails the test after <paramref name="seconds"/>.</summary>
    public async Task<Exchange> NextAsync(int seconds = 10)
    {
        Assert.True(await _arrived.WaitAsync(TimeSpan.FromSeconds(seconds)), "no exchange was exported");
        return _exchanges.ToArray()[^1];
    }

    /// <summary>Waits until <paramref name="count"/> exchanges were exported in total.</summary>
    public async Task WaitForAsync(int count, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (_exchanges.Count < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {_exchanges.Count} of {count} exchanges were exported");
            await Task.Delay(10);
        }
    }
}

/// <summary>Records every log entry so tests can assert that nothing was logged as an error.</summary>
internal sealed class RecordingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, string Category, string Message, Exception? Exception)> Entries { get; } = new();

    public IEnumerable<string> AtLeast(LogLevel level) =>
        Entries.Where(e => e.Level >= level).Select(e => $"{e.Level} {e.Category}: {e.Message} {e.Exception}");

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(RecordingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue((logLevel, category, formatter(state, exception), exception));
    }
}
