using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Rules;

namespace SpIstio.Agent.Tests.Pipeline;

/// <summary>
/// The capture workers (<c>capture.worker_threads</c>): capture's deferred work runs on them at a
/// lower priority, their queue is bounded by the byte budget (past its share the finishing thread does
/// the work), and shutdown drains them.
/// </summary>
public sealed class CaptureWorkersTests
{
    private const string WorkerPrefix = "sp-capture-";
    private const int SchedOther = 0;
    private const int SchedIdle = 5;

    [Theory]
    [InlineData(CaptureWorkerPriority.Idle)]
    [InlineData(CaptureWorkerPriority.Low)]
    public async Task Complete_WithWorkers_RedactsAndQueuesOnAWorkerAtLowerPriority(CaptureWorkerPriority priority)
    {
        var options = Options(priority);
        var metrics = new AgentMetrics();
        var exporter = new GatedExporter(open: true);
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance, deferWork: true);
        var exchange = TestExchanges.Get();
        exchange.RequestHeaders.Add("authorization", "Bearer secret-token");

        Assert.True(pipeline.Complete(exchange, sampled: true));
        var handled = await exporter.NextAsync();
        await pipeline.StopWorkersAsync(TimeSpan.FromMinutes(1));

        Assert.Same(exchange, handled.Exchange);
        Assert.StartsWith(WorkerPrefix, handled.Thread, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-token", exchange.RequestHeaders.Get("authorization"), StringComparison.Ordinal);
        Assert.Equal(1, metrics.Requests(TrafficDirection.Inbound, CaptureDecision.Capture).Value);
        if (OperatingSystem.IsLinux())
        {
            // Read by the worker itself from /proc/thread-self: the policy and nice value the kernel schedules it with.
            Assert.Equal(priority == CaptureWorkerPriority.Idle ? SchedIdle : SchedOther, handled.Policy);
            Assert.Equal(priority == CaptureWorkerPriority.Low ? 19 : 0, handled.Nice);
        }
    }

    [Fact]
    public async Task Complete_QueueAtItsShareOfTheBudget_RunsOnTheFinishingThreadAndDropsNothing()
    {
        var options = Options(CaptureWorkerPriority.Normal);
        var metrics = new AgentMetrics();
        var budget = new CaptureByteBudget(64 * 1024);
        var exporter = new GatedExporter(open: false);
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance, budget: budget, deferWork: true);

        // The worker holds the first exchange at the gate; the rest queue until the queue holds its share.
        var posted = 0;
        while (metrics.CaptureDeferredInline.Value == 0 && posted < 10_000)
        {
            Assert.True(pipeline.Complete(TestExchanges.Get("/" + posted.ToString(CultureInfo.InvariantCulture)), sampled: true));
            posted++;
        }

        var inline = await exporter.NextAsync();
        Assert.Equal(1, metrics.CaptureDeferredInline.Value);
        Assert.Equal("/" + (posted - 1).ToString(CultureInfo.InvariantCulture), inline.Exchange.Path);
        Assert.False(inline.Thread.StartsWith(WorkerPrefix, StringComparison.Ordinal));
        Assert.True(metrics.CaptureDeferredQueued.Value > 0);
        Assert.True(budget.Held > 0);

        exporter.Open();
        await pipeline.StopWorkersAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(posted, exporter.Count);
        Assert.Equal(0, metrics.ExportDropped.Value);
        Assert.Equal(0, metrics.CaptureDeferredDropped.Value);
        Assert.Equal(0, metrics.CaptureDeferredQueued.Value);
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public async Task StopWorkers_DrainsTheQueue_ThenLaterExchangesRunOnTheirThread()
    {
        var options = Options(CaptureWorkerPriority.Normal);
        var metrics = new AgentMetrics();
        var budget = new CaptureByteBudget(16 * 1024 * 1024);
        var exporter = new GatedExporter(open: false);
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance, budget: budget, deferWork: true);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(pipeline.Complete(TestExchanges.Get(), sampled: true));
        }

        await exporter.WorkerAtGateAsync();
        var stop = pipeline.StopWorkersAsync(TimeSpan.FromMinutes(1));
        Assert.False(stop.IsCompleted);
        exporter.Open();
        await stop;

        Assert.Equal(5, exporter.Count);
        Assert.Equal(0, budget.Held);

        Assert.True(pipeline.Complete(TestExchanges.Get("/after-stop"), sampled: true));
        Assert.Equal(6, exporter.Count);
        Assert.Equal(Environment.CurrentManagedThreadId, exporter.LastManagedThreadId);
        Assert.Equal(0, metrics.ExportDropped.Value);
    }

    [Fact]
    public async Task StopWorkers_PastTheDeadline_DropsWhatIsLeftAndCountsIt()
    {
        var options = Options(CaptureWorkerPriority.Normal);
        var metrics = new AgentMetrics();
        var budget = new CaptureByteBudget(16 * 1024 * 1024);
        var exporter = new GatedExporter(open: false);
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance, budget: budget, deferWork: true);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(pipeline.Complete(TestExchanges.Get(), sampled: true));
        }

        // The worker is held at the gate with the first exchange: the deadline (zero) passes before the queue drains.
        await exporter.WorkerAtGateAsync();
        var stop = pipeline.StopWorkersAsync(TimeSpan.Zero);
        exporter.Open();
        await stop;

        Assert.Equal(1, exporter.Count);
        Assert.Equal(2, metrics.CaptureDeferredDropped.Value);
        Assert.Equal(2, metrics.ExportDropped.Value);
        Assert.Equal(2, metrics.RequestsDropped(TrafficDirection.Inbound).Value);
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public async Task Complete_WithWorkers_TheQueuedReservationIsHandedToTheExporter_NotCountedTwice()
    {
        var options = Options(CaptureWorkerPriority.Normal);
        options.Export.MaxInflightBytes = 1024 * 1024;
        var metrics = new AgentMetrics();
        var exporter = new OtlpExporter(options, metrics, NullLogger<OtlpExporter>.Instance);
        await using var _ = exporter;
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance, budget: exporter.Budget, deferWork: true);
        var exchange = TestExchanges.Get(responseBody: "{\"data\":\"" + new string('a', 64 * 1024) + "\"}");
        var estimate = OtlpExporter.EstimateBytes(exchange);

        // Other holders (bodies being captured) leave room for the exchange once and a half: the
        // worker's queue reserves it once; had the exporter reserved it again before the worker
        // let go, the budget would have refused it.
        var others = options.Export.MaxInflightBytes - estimate - (estimate / 2);
        Assert.True(exporter.Budget.TryReserve(others));

        Assert.True(pipeline.Complete(exchange, sampled: true));
        await pipeline.StopWorkersAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(0, metrics.CaptureDeferredInline.Value);
        Assert.Equal(0, metrics.ExportDropped.Value);
        Assert.Equal(1, metrics.Requests(TrafficDirection.Inbound, CaptureDecision.Capture).Value);
        Assert.Equal(1, metrics.ExportQueueDepth.Value);

        // Held once: by the exporter's queue, for the exchange's estimate.
        Assert.Equal(others + estimate, exporter.Budget.Held);
    }

    private static AgentOptions Options(CaptureWorkerPriority priority)
    {
        var options = TestExchanges.Options(new Uri("http://127.0.0.1:9"));
        options.Capture.WorkerThreads = 1;
        options.Capture.WorkerPriority = priority;
        return options;
    }

    private sealed record Handled(Exchange Exchange, string Thread, int Policy, int Nice);

    /// <summary>
    /// Records each exchange with the thread that queued it (and that thread's scheduling, read from
    /// /proc/thread-self/stat); a capture worker waits at the gate until it is opened, other threads pass.
    /// </summary>
    private sealed class GatedExporter(bool open) : IExchangeExporter
    {
        private readonly ManualResetEventSlim _gate = new(open);
        private readonly TaskCompletionSource _workerAtGate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly System.Threading.Channels.Channel<Handled> _handled = System.Threading.Channels.Channel.CreateUnbounded<Handled>();
        private int _count;
        private int _lastThread;

        public int Count => Volatile.Read(ref _count);

        public int LastManagedThreadId => Volatile.Read(ref _lastThread);

        public bool TryEnqueue(Exchange exchange)
        {
            var name = Thread.CurrentThread.Name ?? "";
            if (name.StartsWith(WorkerPrefix, StringComparison.Ordinal))
            {
                _workerAtGate.TrySetResult();
                _gate.Wait();
            }

            var (policy, nice) = OperatingSystem.IsLinux() ? Scheduling() : (-1, -1);
            Volatile.Write(ref _lastThread, Environment.CurrentManagedThreadId);
            Interlocked.Increment(ref _count);
            _handled.Writer.TryWrite(new Handled(exchange, name, policy, nice));
            return true;
        }

        public Task WorkerAtGateAsync() => _workerAtGate.Task;

        public void Open() => _gate.Set();

        public async Task<Handled> NextAsync() => await _handled.Reader.ReadAsync();

        // proc(5): after the parenthesised name, field 19 is nice and field 41 the scheduling policy.
        private static (int Policy, int Nice) Scheduling()
        {
            var stat = File.ReadAllText("/proc/thread-self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (int.Parse(fields[41 - 3], CultureInfo.InvariantCulture), int.Parse(fields[19 - 3], CultureInfo.InvariantCulture));
        }
    }
}
