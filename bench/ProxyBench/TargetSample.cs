using System.Diagnostics;
using System.Globalization;

namespace SpIstio.ProxyBench;

/// <summary>
/// The target proxy's counters at one moment, read from its Prometheus page (the agent's admin
/// <c>/metrics</c>): what the open-loop timeline lines up with its slow calls, to say whether they
/// waited for a collection, an export batch or just for CPU.
/// </summary>
internal sealed record TargetSample(double Collections, double Gen1Collections, double Gen2Collections, double PausedMs, double Batches, double CpuMs, double PoolThreads, double PoolQueue)
{
    private static readonly long s_bucketTicks = Stopwatch.Frequency / 10;

    /// <summary>What happened between <paramref name="earlier"/> and this sample (the thread pool's threads and queue: as at this one).</summary>
    public TargetSample Less(TargetSample earlier) => new(
        Collections - earlier.Collections,
        Gen1Collections - earlier.Gen1Collections,
        Gen2Collections - earlier.Gen2Collections,
        PausedMs - earlier.PausedMs,
        Batches - earlier.Batches,
        CpuMs - earlier.CpuMs,
        PoolThreads,
        PoolQueue);

    /// <summary>
    /// Reads <paramref name="metrics"/> at <paramref name="firstDue"/> + k × 100 ms for k = 0 ..
    /// <paramref name="count"/> − 1 (at once when that moment has passed), until
    /// <paramref name="stop"/>; a page that cannot be read in time ends the sampling (the timeline
    /// then has no target columns past it).
    /// </summary>
    public static async Task<List<TargetSample>> CollectAsync(Uri metrics, long firstDue, int count, CancellationToken stop)
    {
        var samples = new List<TargetSample>(count);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            for (var k = 0; k < count; k++)
            {
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), firstDue + (k * s_bucketTicks));
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, stop).ConfigureAwait(false);
                }

                samples.Add(Parse(await http.GetStringAsync(metrics, stop).ConfigureAwait(false)));
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The generator is done: what was read is the timeline's.
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
            // Unreachable or slower than the client's timeout (a stalled target): the run still prints its line.
            Console.Error.WriteLine("metrics: " + ex.Message + "; the timeline's target columns end there");
        }

        return samples;
    }

    // Prometheus text: gen0 collections count every collection (a gen1 one collects gen0 too).
    private static TargetSample Parse(string page)
    {
        double gcs = 0, gen1 = 0, gen2 = 0, poolThreads = 0, poolQueue = 0, paused = 0, batches = 0, cpu = 0;
        foreach (var line in page.AsSpan().EnumerateLines())
        {
            var space = line.LastIndexOf(' ');
            if (space < 0 || line.StartsWith("#"))
            {
                continue;
            }

            var name = line[..space];
            if (!double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                continue;
            }

            if (name.SequenceEqual("dotnet_gc_collections_total{generation=\"0\"}"))
            {
                gcs = value;
            }
            else if (name.SequenceEqual("dotnet_gc_collections_total{generation=\"1\"}"))
            {
                gen1 = value;
            }
            else if (name.SequenceEqual("dotnet_gc_collections_total{generation=\"2\"}"))
            {
                gen2 = value;
            }
            else if (name.SequenceEqual("dotnet_threadpool_threads"))
            {
                poolThreads = value;
            }
            else if (name.SequenceEqual("dotnet_threadpool_queue_length"))
            {
                poolQueue = value;
            }
            else if (name.SequenceEqual("dotnet_gc_pause_seconds_total"))
            {
                paused = value * 1000;
            }
            else if (name.StartsWith("sp_export_batch_duration_seconds_count"))
            {
                batches += value;
            }
            else if (name.SequenceEqual("process_cpu_seconds_total"))
            {
                cpu = value * 1000;
            }
        }

        return new TargetSample(gcs, gen1, gen2, paused, batches, cpu, poolThreads, poolQueue);
    }

    /// <summary>
    /// One line: how the calls of p99 or longer are spread over the 100 ms buckets (a few bursts or
    /// everywhere), the target's collections, pauses, export batches and CPU a second, and the same
    /// per bucket where slow calls were due against the other buckets.
    /// </summary>
    public static string Attribution(List<(int Slow, TargetSample? Work)> buckets, double p99)
    {
        var withWork = buckets.Where(b => b.Work is not null).ToList();
        var slow = buckets.Sum(b => b.Slow);
        var hit = withWork.Where(b => b.Slow > 0).Select(b => b.Work!).ToList();
        var clear = withWork.Where(b => b.Slow == 0).Select(b => b.Work!).ToList();
        var worst5 = buckets.Select(b => b.Slow).OrderDescending().Take(5).Sum();
        var seconds = Math.Max(withWork.Count / 10.0, 1e-9);
        var collections = withWork.Sum(b => b.Work!.Collections);
        var paused = withWork.Sum(b => b.Work!.PausedMs);
        return string.Create(
            CultureInfo.InvariantCulture,
            $"tail: {slow} calls >= p99 {p99:F2} ms, due in {buckets.Count(b => b.Slow > 0)} of {buckets.Count} 100 ms buckets (the 5 worst hold {100.0 * worst5 / Math.Max(slow, 1):F0} %); " +
            $"target: {collections / seconds:F1} GC/s ({withWork.Sum(b => b.Work!.Gen1Collections) / seconds:F1} gen1+, {withWork.Sum(b => b.Work!.Gen2Collections) / seconds:F2} gen2), paused {paused / seconds:F1} ms/s ({paused / Math.Max(collections, 1):F3} ms a GC), {withWork.Sum(b => b.Work!.Batches) / seconds:F1} export batches/s, CPU {withWork.Sum(b => b.Work!.CpuMs) / seconds:F0} ms/s; " +
            $"a bucket with slow calls ({hit.Count}): {Mean(hit, w => w.Collections):F2} GC, {Mean(hit, w => w.Gen1Collections):F2} gen1+, {Mean(hit, w => w.Gen2Collections):F2} gen2, {Mean(hit, w => w.PausedMs):F2} ms paused, {Mean(hit, w => w.Batches):F2} batches, CPU {Mean(hit, w => w.CpuMs):F1} ms; " +
            $"without ({clear.Count}): {Mean(clear, w => w.Collections):F2} GC, {Mean(clear, w => w.Gen1Collections):F2} gen1+, {Mean(clear, w => w.Gen2Collections):F2} gen2, {Mean(clear, w => w.PausedMs):F2} ms paused, {Mean(clear, w => w.Batches):F2} batches, CPU {Mean(clear, w => w.CpuMs):F1} ms");
    }

    private static double Mean(List<TargetSample> work, Func<TargetSample, double> value) => work.Count == 0 ? double.NaN : work.Average(value);
}
