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
        registry.OnCollect(_ =>
        {
            using var process = Process.GetCurrentProcess();
            rss.Set(process.WorkingSet64);
            cpu.Set(process.TotalProcessorTime.TotalSeconds);
            threads.Set(process.Threads.Count);
            // HeapSizeBytes stays 0 until the first collection, and a quiet backend may not have had one.
            var heapBytes = GC.GetGCMemoryInfo().HeapSizeBytes;
            heap.Set(heapBytes > 0 ? heapBytes : GC.GetTotalMemory(forceFullCollection: false));
        });
    }
}
