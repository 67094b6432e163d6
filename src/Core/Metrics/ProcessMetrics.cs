using System.Diagnostics;

namespace SpIstio.Core.Metrics;

/// <summary>
/// The standard process gauges (<c>process_resident_memory_bytes</c>, <c>process_cpu_seconds_total</c>,
/// GC heap) every server exposes, refreshed at each scrape.
/// </summary>
public static class ProcessMetrics
{
    /// <summary>Registers the process gauges on <paramref name="registry"/>.</summary>
    public static void Register(MetricRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        var rss = registry.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.").WithLabels();
        var cpu = registry.SampledCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.").WithLabels();
        var heap = registry.Gauge("dotnet_gc_heap_bytes", "Bytes in the managed heap: its size after the last collection, or the bytes allocated before the first one.").WithLabels();
        var threads = registry.Gauge("process_threads", "Threads in the process.").WithLabels();
        // Collections per generation and bytes allocated: what a benchmark divides by the work done
        // to see GC cost per request on a machine too loaded for throughput to mean anything.
        var collections = registry.SampledCounter("dotnet_gc_collections_total", "Garbage collections of each generation since the process started.", "generation");
        var gen0 = collections.WithLabels("0");
        var gen1 = collections.WithLabels("1");
        var gen2 = collections.WithLabels("2");
        var allocated = registry.SampledCounter("dotnet_gc_allocated_bytes_total", "Bytes allocated on the managed heap since the process started.").WithLabels();
        // Time the process was stopped for collections: what a request arriving meanwhile waited
        // (a non-concurrent GC stops every thread), the first suspect of a latency tail.
        var paused = registry.SampledCounter("dotnet_gc_pause_seconds_total", "Time the managed threads were paused for garbage collections since the process started, in seconds.").WithLabels();
        // The thread pool beside the GC: a latency stall with no collection in it is either the
        // process descheduled or the pool's threads all busy (or blocked) while work items wait.
        var poolThreads = registry.Gauge("dotnet_threadpool_threads", "Thread-pool threads now.").WithLabels();
        var poolQueue = registry.Gauge("dotnet_threadpool_queue_length", "Work items queued to the thread pool and not yet started, now.").WithLabels();
        var poolCompleted = registry.SampledCounter("dotnet_threadpool_completed_items_total", "Work items the thread pool has run since the process started.").WithLabels();
        registry.OnCollect(_ =>
        {
            using var process = Process.GetCurrentProcess();
            rss.Set(process.WorkingSet64);
            cpu.Set(process.TotalProcessorTime.TotalSeconds);
            threads.Set(process.Threads.Count);
            gen0.Set(GC.CollectionCount(0));
            gen1.Set(GC.CollectionCount(1));
            gen2.Set(GC.CollectionCount(2));
            allocated.Set(GC.GetTotalAllocatedBytes());
            paused.Set(GC.GetTotalPauseDuration().TotalSeconds);
            poolThreads.Set(ThreadPool.ThreadCount);
            poolQueue.Set(ThreadPool.PendingWorkItemCount);
            poolCompleted.Set(ThreadPool.CompletedWorkItemCount);
            // HeapSizeBytes stays 0 until the first collection, and a quiet backend may not have had one.
            var heapBytes = GC.GetGCMemoryInfo().HeapSizeBytes;
            heap.Set(heapBytes > 0 ? heapBytes : GC.GetTotalMemory(forceFullCollection: false));
        });
    }
}
