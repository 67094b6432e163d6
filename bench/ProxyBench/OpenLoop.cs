using System.Diagnostics;
using System.Globalization;

namespace SpIstio.ProxyBench;

/// <summary>
/// The open-loop generator shared by the HTTP and gRPC equal-load cells (wrk2 is not packaged):
/// request i is due at start + i / rate whatever happened to earlier ones, and its latency counts
/// from when it was due, so a slow server cannot slow the generator down and hide its own queueing
/// ("coordinated omission").
/// </summary>
internal static class OpenLoop
{
    // Beyond this many requests in flight the target is not keeping up at all; further due
    // requests are counted as errors instead of piling up without bound in the generator.
    private const int MaxInFlight = 8192;

    /// <summary>
    /// Sends <paramref name="send"/> (true: answered successfully; false: an error, which the
    /// delegate catches itself) at <paramref name="rate"/> a second for <paramref name="warmupSeconds"/>
    /// + <paramref name="seconds"/>, then prints one line for the measured part:
    /// offered/s achieved/s p50 p90 p99 p99.9 max (ms) errors, and the generator's own CPU-µs per
    /// request (it shares the cores with the proxy: what it takes is part of how loaded they are).
    /// </summary>
    public static async Task<int> RunAsync(Func<Task<bool>> send, double rate, double seconds, double warmupSeconds)
    {
        var warmup = (long)(rate * warmupSeconds);
        var total = warmup + (long)(rate * seconds);
        var latencies = new double[total - warmup];
        // OPEN_LOOP_TIMELINE=FILE: when each measured request was sent and answered, for
        // WriteTimeline (where the latency was spent: in the generator, or in flight).
        var timelinePath = Environment.GetEnvironmentVariable("OPEN_LOOP_TIMELINE");
        var sentAt = timelinePath is null ? null : new long[total - warmup];
        var answeredAt = timelinePath is null ? null : new long[total - warmup];
        var inFlightAtSend = timelinePath is null ? null : new int[total - warmup];
        // OPEN_LOOP_METRICS=URL (with OPEN_LOOP_TIMELINE): the target's Prometheus page, read at each
        // 100 ms bucket's edge, so the timeline says what the target did while the slow calls waited.
        var metricsUrl = timelinePath is null ? null : Environment.GetEnvironmentVariable("OPEN_LOOP_METRICS");
        var errors = 0L;
        var skipped = 0L;
        var warmupErrors = 0L;
        // Requests sent and not answered, plus one for the dispatch loop until it has sent the last:
        // the last to finish completes `done`. A count, not a list of every request's task: those
        // would all survive the generator's own collections (its pauses count as latency too).
        var inFlight = 1;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ticksPerRequest = Stopwatch.Frequency / rate;
        var start = Stopwatch.GetTimestamp();
        var firstDue = start + (long)(warmup * ticksPerRequest);
        using var stopSampling = new CancellationTokenSource();
        var sampling = metricsUrl is null
            ? Task.FromResult(new List<TargetSample>())
            : TargetSample.CollectAsync(new Uri(metricsUrl), firstDue, (int)Math.Ceiling(seconds * 10) + 1, stopSampling.Token);
        // The generator's CPU from the first measured request on: the warm-up's share holds its JIT work.
        TimeSpan? cpuAtMeasureStart = warmup == 0 ? Environment.CpuUsage.TotalTime : null;
        // And its own collections over the same part: they stop its dispatch, which the calls pay as lateness.
        var (gcsAtMeasureStart, pausedAtMeasureStart) = (GC.CollectionCount(0), GC.GetTotalPauseDuration());

        async Task Send(long index, long due)
        {
            try
            {
                if (!await send().ConfigureAwait(false))
                {
                    Interlocked.Increment(ref errors);
                    if (index < warmup)
                    {
                        Interlocked.Increment(ref warmupErrors);
                    }
                }
                else if (index >= warmup)
                {
                    latencies[index - warmup] = Stopwatch.GetElapsedTime(due).TotalMilliseconds;
                    if (answeredAt is not null)
                    {
                        answeredAt[index - warmup] = Stopwatch.GetTimestamp();
                    }
                }
            }
            finally
            {
                Finished();
            }
        }

        void Finished()
        {
            if (Interlocked.Decrement(ref inFlight) == 0)
            {
                done.SetResult();
            }
        }

        for (long i = 0; i < total;)
        {
            // Fire every request that is due, then sleep about a millisecond: the timer's granularity
            // only delays sends, and each latency still counts from its own due time.
            var now = Stopwatch.GetTimestamp();
            for (; i < total && start + (long)(i * ticksPerRequest) <= now; i++)
            {
                if (i == warmup)
                {
                    cpuAtMeasureStart = Environment.CpuUsage.TotalTime;
                    (gcsAtMeasureStart, pausedAtMeasureStart) = (GC.CollectionCount(0), GC.GetTotalPauseDuration());
                }

                if (Volatile.Read(ref inFlight) > MaxInFlight)
                {
                    Interlocked.Increment(ref errors);
                    skipped++;
                    continue;
                }

                var sending = Interlocked.Increment(ref inFlight) - 1;
                if (sentAt is not null && i >= warmup)
                {
                    sentAt[i - warmup] = Stopwatch.GetTimestamp();
                    inFlightAtSend![i - warmup] = sending;
                }

                _ = Send(i, start + (long)(i * ticksPerRequest));
            }

            if (i < total)
            {
                await Task.Delay(1).ConfigureAwait(false);
            }
        }

        Finished();
        await done.Task.ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        await stopSampling.CancelAsync().ConfigureAwait(false);
        var samples = await sampling.ConfigureAwait(false);
        var cpuPerRequest = (Environment.CpuUsage.TotalTime - cpuAtMeasureStart.GetValueOrDefault()).TotalMicroseconds / Math.Max(total - warmup, 1);

        if (skipped > 0 || warmupErrors > 0)
        {
            // On stderr, so the line the scripts parse stays as it is: these are in its error count.
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"errors: {skipped} skipped (due while {MaxInFlight} were in flight), {warmupErrors} failed in the warm-up"));
        }

        var measured = latencies.Where(l => l > 0).Order().ToArray();
        if (timelinePath is not null)
        {
            var generatorGc = string.Create(CultureInfo.InvariantCulture, $"{GC.CollectionCount(0) - gcsAtMeasureStart} collections, {(GC.GetTotalPauseDuration() - pausedAtMeasureStart).TotalMilliseconds:F1} ms paused");
            WriteTimeline(timelinePath, firstDue, ticksPerRequest, sentAt!, answeredAt!, inFlightAtSend!, latencies, Quantile(measured, 0.99), samples, generatorGc);
        }

        var achieved = measured.Length / Math.Max(elapsed - warmupSeconds, 1e-9);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{rate:F0} {achieved:F0} {Quantile(measured, 0.50):F3} {Quantile(measured, 0.90):F3} {Quantile(measured, 0.99):F3} {Quantile(measured, 0.999):F3} {(measured.Length == 0 ? double.NaN : measured[^1]):F3} {errors} {cpuPerRequest:F1}"));
        return 0;
    }

    // One line per 100 ms of due times: requests due, the most in flight when one was sent, the
    // generator's worst lateness (sent − due: its own dispatch, not the target's), the worst time in
    // flight (answered − sent), in ms, and how many calls due then took p99 or longer. A queue in the
    // target shows as in-flight counts and times in flight that grow together; a stall of the
    // generator as lateness. With the target's samples (OPEN_LOOP_METRICS), also what it did in
    // that bucket: collections, ms paused for them, export batches, CPU ms; and a summary on stderr
    // comparing the buckets that hold the slow calls with the others (the tail's attribution).
    private static void WriteTimeline(string path, long firstDue, double ticksPerRequest, long[] sentAt, long[] answeredAt, int[] inFlightAtSend, double[] latencies, double p99, List<TargetSample> samples, string generatorGc)
    {
        var bucketTicks = Stopwatch.Frequency / 10;
        var toMs = 1000.0 / Stopwatch.Frequency;
        var buckets = new List<(int Slow, TargetSample? Work)>();
        // Of the slow calls' latency, what the generator itself added (sent late), and how many it made slow alone.
        double slowMs = 0, slowLateMs = 0;
        var lateMostly = 0;
        using var writer = new StreamWriter(path);
        writer.WriteLine("t_ms due max_in_flight max_late_ms max_in_call_ms slow gc gc_gen1 gc_gen2 paused_ms batches cpu_ms pool_threads pool_queue");
        for (var first = 0; first < sentAt.Length;)
        {
            var bucket = (long)(first * ticksPerRequest) / bucketTicks;
            int count = 0, maxInFlight = 0, slow = 0;
            double maxLate = 0, maxInCall = 0;
            var i = first;
            for (; i < sentAt.Length && (long)(i * ticksPerRequest) / bucketTicks == bucket; i++)
            {
                count++;
                maxInFlight = Math.Max(maxInFlight, inFlightAtSend[i]);
                maxLate = Math.Max(maxLate, (sentAt[i] - (firstDue + (long)(i * ticksPerRequest))) * toMs);
                if (answeredAt[i] != 0)
                {
                    maxInCall = Math.Max(maxInCall, (answeredAt[i] - sentAt[i]) * toMs);
                }

                if (latencies[i] >= p99)
                {
                    slow++;
                    var late = (sentAt[i] - (firstDue + (long)(i * ticksPerRequest))) * toMs;
                    slowMs += latencies[i];
                    slowLateMs += late;
                    lateMostly += late >= latencies[i] / 2 ? 1 : 0;
                }
            }

            // Sample k is read at firstDue + k × 100 ms: bucket k's work is sample k + 1 less sample k.
            var work = bucket + 1 < samples.Count ? samples[(int)bucket + 1].Less(samples[(int)bucket]) : null;
            buckets.Add((slow, work));
            var workColumns = work is null ? "- - - - - - - -" : string.Create(CultureInfo.InvariantCulture, $"{work.Collections:F0} {work.Gen1Collections:F0} {work.Gen2Collections:F0} {work.PausedMs:F2} {work.Batches:F0} {work.CpuMs:F1} {work.PoolThreads:F0} {work.PoolQueue:F0}");
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{bucket * 100} {count} {maxInFlight} {maxLate:F1} {maxInCall:F1} {slow} {workColumns}"));
            first = i;
        }

        if (samples.Count > 1)
        {
            Console.Error.WriteLine(TargetSample.Attribution(buckets, p99) + string.Create(
                CultureInfo.InvariantCulture,
                $"; the generator sent the slow calls late by {100 * slowLateMs / Math.Max(slowMs, 1e-9):F0} % of their latency, {lateMostly} of them by half or more; the generator's own {generatorGc}"));
        }
    }

    /// <summary>The <paramref name="q"/> quantile of ascending <paramref name="sorted"/> latencies (NaN when none).</summary>
    public static double Quantile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
}
