using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// The dedicated threads that run capture's deferred work (redaction, span encode, the hand-off to
/// the exporter) for finished exchanges, at a lower OS priority than the traffic
/// (<c>capture.worker_priority</c>): the request path then meets capture's work only when a core is
/// otherwise idle. On the thread that finished the exchange (a pool thread shared with Kestrel and
/// YARP) that work competed with the requests in flight: at 64 KiB bodies it is about as much CPU as
/// forwarding the request, and the open-loop p99 was 76–164× YARP's (issue 13).
/// </summary>
/// <remarks>
/// The queue is bounded by the capture byte budget (<c>export.max_inflight_bytes</c>): each exchange
/// reserves its estimated size when it is posted and the work hands that reservation to the exporter
/// (counted once, never twice while it changes hands), so a burst is absorbed up to a quarter of the budget; past it (the cores stayed busy with
/// traffic for longer than that) the finishing thread does the work itself, as without workers, so
/// exchanges are not dropped for want of idle CPU. Nothing waits on the queue.
/// Thread-safe; <see cref="StopAsync"/> drains.
/// </remarks>
internal sealed partial class CaptureWorkers
{
    // Linux: setpriority(2) and sched_setscheduler(2) act on the one thread whose id they are given.
    private const int PrioProcess = 0;
    private const int LowNice = 19;
    private const int SchedIdle = 5;

    private readonly ConcurrentQueue<Item> _queue = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Func<Exchange, long, bool> _work;
    private readonly CaptureByteBudget _budget;
    private readonly AgentMetrics _metrics;
    private readonly ILogger _logger;
    private readonly CaptureWorkerPriority _priority;
    private readonly Thread[] _threads;
    private readonly long _maxQueuedBytes;
    private int _sleeping;
    private int _posting;
    private int _priorityLogged;
    private long _queuedBytes;
    private volatile bool _closed;
    private volatile bool _abandon;

    /// <summary>Starts <paramref name="threads"/> workers that run <paramref name="work"/> on each posted exchange.</summary>
    /// <param name="threads">Worker threads (at least 1).</param>
    /// <param name="priority">The OS priority the workers run at.</param>
    /// <param name="work">The deferred work, given the exchange and the budget bytes reserved for it, which it owns
    /// (hands to the exporter or gives back, also when it throws); false: the exchange was not handed to the exporter (its body arrays go back).</param>
    /// <param name="budget">Where a queued exchange reserves its bytes.</param>
    /// <param name="metrics">Queue gauges and drop counters.</param>
    /// <param name="logger">Logs a priority that could not be set, once.</param>
    public CaptureWorkers(int threads, CaptureWorkerPriority priority, Func<Exchange, long, bool> work, CaptureByteBudget budget, AgentMetrics metrics, ILogger logger)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        _work = work;
        _budget = budget;
        _metrics = metrics;
        _logger = logger;
        _priority = priority;

        // A quarter of the budget: the rest stays for the bodies being captured (64 connections of
        // 64 KiB bodies hold a quarter too), the batch filling and the batches being sent, so a
        // backed-up queue does not cut bodies short or get exchanges refused at the exporter. At half,
        // the capture proxy's 64 KiB open-loop cell on a loaded machine dropped 1,067 to 1,445
        // exchanges of 36,000 at the exporter (the build without workers: 7 to 237).
        _maxQueuedBytes = budget.Limit / 4;
        _metrics.Registry.OnCollect(_ => _metrics.CaptureDeferredBytes.Set(Interlocked.Read(ref _queuedBytes)));
        _threads = new Thread[threads];
        for (var i = 0; i < threads; i++)
        {
            // Background: a host that exits without draining is not kept alive by an idle worker.
            _threads[i] = new Thread(Run) { IsBackground = true, Name = "sp-capture-" + i };
            _threads[i].Start();
        }
    }

    /// <summary>
    /// Queues <paramref name="exchange"/> for the workers: true when queued (the workers own it now);
    /// false when the caller must do the work itself (counted in <c>sp_capture_deferred_inline_total</c>):
    /// the workers are stopped, their queue holds its share of the budget already, or the budget has no room.
    /// </summary>
    public bool TryPost(Exchange exchange)
    {
        Interlocked.Increment(ref _posting);
        try
        {
            if (_closed)
            {
                return false;
            }

            // Past its share the queue stops growing and the work runs on the finishing thread, as
            // without workers: when the workers cannot keep up (the cores are busy with traffic for
            // longer than the budget absorbs) the request path slows down instead of dropping exchanges.
            var reserved = OtlpExporter.EstimateBytes(exchange);
            if (Interlocked.Read(ref _queuedBytes) + reserved > _maxQueuedBytes || !_budget.TryReserve(reserved))
            {
                _metrics.CaptureDeferredInline.Inc();
                return false;
            }

            Interlocked.Add(ref _queuedBytes, reserved);
            _metrics.CaptureDeferredQueued.Inc();
            _queue.Enqueue(new Item(exchange, reserved));
        }
        finally
        {
            Interlocked.Decrement(ref _posting);
        }

        // After the enqueue (a full fence): a worker that is about to sleep either sees the
        // exchange or is counted here, so no exchange waits in the queue while every worker sleeps.
        if (Volatile.Read(ref _sleeping) > 0)
        {
            _wake.Release();
        }

        return true;
    }

    /// <summary>
    /// Stops taking exchanges (later ones run on their caller) and lets the workers finish what is
    /// queued, until <paramref name="deadline"/>; what is still queued then is dropped and counted.
    /// </summary>
    public async Task StopAsync(TimeSpan deadline)
    {
        _closed = true;

        // A post that saw the queue open finishes its enqueue before the workers are told to stop.
        var spin = default(SpinWait);
        while (Volatile.Read(ref _posting) != 0)
        {
            spin.SpinOnce();
        }

        _wake.Release(_threads.Length);
        var joined = Task.Run(JoinAll);
        if (await Task.WhenAny(joined, Task.Delay(deadline)).ConfigureAwait(false) != joined)
        {
            _abandon = true;
            await joined.ConfigureAwait(false);
        }
    }

    private void JoinAll()
    {
        foreach (var thread in _threads)
        {
            thread.Join();
        }
    }

    private void Run()
    {
        LowerPriority();
        while (true)
        {
            if (_queue.TryDequeue(out var item))
            {
                Process(item);
                continue;
            }

            if (_closed)
            {
                // Every post finished before the workers were told (StopAsync): the queue is drained.
                return;
            }

            Interlocked.Increment(ref _sleeping);
            if (_queue.IsEmpty && !_closed)
            {
                _wake.Wait();
            }

            Interlocked.Decrement(ref _sleeping);
        }
    }

    private void Process(Item item)
    {
        var exchange = item.Exchange;
        _metrics.CaptureDeferredQueued.Dec();
        var queued = false;
        try
        {
            if (_abandon)
            {
                // Shutdown's deadline passed: the exporter never sees what is left, so it is counted here.
                _budget.Release(item.Reserved);
                CountDropped(exchange);
            }
            else
            {
                queued = _work(exchange, item.Reserved);
            }
        }
        catch (Exception ex)
        {
            // A fault in one exchange's work (out of memory under the heap cap included) must not end the worker.
            CountDropped(exchange);
            try
            {
                Log.WorkFailed(_logger, ex);
            }
            catch (OutOfMemoryException)
            {
                // Counted above; the line is lost.
            }
        }
        finally
        {
            Interlocked.Add(ref _queuedBytes, -item.Reserved);
            if (!queued)
            {
                exchange.ReturnBodyArrays();
            }
        }
    }

    // As the pipeline and the exporter count an exchange the exporter refuses, plus the workers' own count.
    private void CountDropped(Exchange exchange)
    {
        _metrics.CaptureDeferredDropped.Inc();
        _metrics.ExportDropped.Inc();
        _metrics.RequestsDropped(exchange.Direction).Inc();
    }

    // Only the calling thread's priority changes: Kestrel's and the pool's threads keep theirs.
    private void LowerPriority()
    {
        if (_priority == CaptureWorkerPriority.Normal || !OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            var tid = GetTid();
            var result = _priority == CaptureWorkerPriority.Idle
                ? SchedSetScheduler(tid, SchedIdle, new SchedParam())
                : SetPriority(PrioProcess, (uint)tid, LowNice);
            if (result != 0)
            {
                LogPriorityNotSet(Marshal.GetLastPInvokeError());
            }
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            // No glibc-compatible libc: the workers run at the traffic's priority.
            LogPriorityNotSet(-1);
        }
    }

    // Once for all workers: they share the reason (EPERM under a seccomp profile, say).
    private void LogPriorityNotSet(int errno)
    {
        if (Interlocked.Exchange(ref _priorityLogged, 1) == 0)
        {
            Log.PriorityNotSet(_logger, _priority, errno);
        }
    }

    [DllImport("libc", EntryPoint = "gettid")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int GetTid();

    [DllImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SetPriority(int which, uint who, int prio);

    [DllImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SchedSetScheduler(int pid, int policy, in SchedParam param);

    // struct sched_param: its one field; SCHED_IDLE requires 0.
    [StructLayout(LayoutKind.Sequential)]
    private struct SchedParam
    {
        public int Priority;
    }

    private readonly record struct Item(Exchange Exchange, long Reserved);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "capture.worker_priority {Priority} could not be set (errno {Errno}); the capture workers run at the traffic's priority")]
        public static partial void PriorityNotSet(ILogger logger, CaptureWorkerPriority priority, int errno);

        [LoggerMessage(2, LogLevel.Error, "A capture worker failed on one exchange; it was dropped and the worker goes on")]
        public static partial void WorkFailed(ILogger logger, Exception exception);
    }
}
