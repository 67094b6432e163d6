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
        // The generator's CPU from the first measured request on: the warm-up's share holds its JIT work.
        TimeSpan? cpuAtMeasureStart = warmup == 0 ? Environment.CpuUsage.TotalTime : null;

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
        var cpuPerRequest = (Environment.CpuUsage.TotalTime - cpuAtMeasureStart.GetValueOrDefault()).TotalMicroseconds / Math.Max(total - warmup, 1);

        if (skipped > 0 || warmupErrors > 0)
        {
            // On stderr, so the line the scripts parse stays as it is: these are in its error count.
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"errors: {skipped} skipped (due while {MaxInFlight} were in flight), {warmupErrors} failed in the warm-up"));
        }

        if (timelinePath is not null)
        {
            WriteTimeline(timelinePath, start + (long)(warmup * ticksPerRequest), ticksPerRequest, sentAt!, answeredAt!, inFlightAtSend!);
        }

        var measured = latencies.Where(l => l > 0).Order().ToArray();
        var achieved = measured.Length / Math.Max(elapsed - warmupSeconds, 1e-9);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{rate:F0} {achieved:F0} {Quantile(measured, 0.50):F3} {Quantile(measured, 0.90):F3} {Quantile(measured, 0.99):F3} {Quantile(measured, 0.999):F3} {(measured.Length == 0 ? double.NaN : measured[^1]):F3} {errors} {cpuPerRequest:F1}"));
        return 0;
    }

    // One line per 100 ms of due times: requests due, the most in flight when one was sent, the
    // generator's worst lateness (sent − due: its own dispatch, not the target's), and the worst
    // time in flight (answered − sent), in ms. A queue in the target shows as in-flight counts and
    // times in flight that grow together; a stall of the generator as lateness.
    private static void WriteTimeline(string path, long firstDue, double ticksPerRequest, long[] sentAt, long[] answeredAt, int[] inFlightAtSend)
    {
        var bucketTicks = Stopwatch.Frequency / 10;
        var toMs = 1000.0 / Stopwatch.Frequency;
        using var writer = new StreamWriter(path);
        writer.WriteLine("t_ms due max_in_flight max_late_ms max_in_call_ms");
        for (var first = 0; first < sentAt.Length;)
        {
            var bucket = (long)(first * ticksPerRequest) / bucketTicks;
            int count = 0, maxInFlight = 0;
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
            }

            writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{bucket * 100} {count} {maxInFlight} {maxLate:F1} {maxInCall:F1}"));
            first = i;
        }
    }

    /// <summary>The <paramref name="q"/> quantile of ascending <paramref name="sorted"/> latencies (NaN when none).</summary>
    public static double Quantile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
}
