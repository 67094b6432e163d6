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
    /// offered/s achieved/s p50 p90 p99 p99.9 max (ms) errors.
    /// </summary>
    public static async Task<int> RunAsync(Func<Task<bool>> send, double rate, double seconds, double warmupSeconds)
    {
        var warmup = (long)(rate * warmupSeconds);
        var total = warmup + (long)(rate * seconds);
        var latencies = new double[total - warmup];
        var errors = 0L;
        var inFlight = 0;
        var pending = new List<Task>();
        var ticksPerRequest = Stopwatch.Frequency / rate;
        var start = Stopwatch.GetTimestamp();

        async Task Send(long index, long due)
        {
            try
            {
                if (!await send().ConfigureAwait(false))
                {
                    Interlocked.Increment(ref errors);
                }
                else if (index >= warmup)
                {
                    latencies[index - warmup] = Stopwatch.GetElapsedTime(due).TotalMilliseconds;
                }
            }
            finally
            {
                Interlocked.Decrement(ref inFlight);
            }
        }

        for (long i = 0; i < total;)
        {
            // Fire every request that is due, then sleep about a millisecond: the timer's granularity
            // only delays sends, and each latency still counts from its own due time.
            var now = Stopwatch.GetTimestamp();
            for (; i < total && start + (long)(i * ticksPerRequest) <= now; i++)
            {
                if (Volatile.Read(ref inFlight) >= MaxInFlight)
                {
                    Interlocked.Increment(ref errors);
                    continue;
                }

                Interlocked.Increment(ref inFlight);
                pending.Add(Send(i, start + (long)(i * ticksPerRequest)));
            }

            if (i < total)
            {
                await Task.Delay(1).ConfigureAwait(false);
            }
        }

        await Task.WhenAll(pending).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;

        var measured = latencies.Where(l => l > 0).Order().ToArray();
        var achieved = measured.Length / Math.Max(elapsed - warmupSeconds, 1e-9);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{rate:F0} {achieved:F0} {Quantile(measured, 0.50):F3} {Quantile(measured, 0.90):F3} {Quantile(measured, 0.99):F3} {Quantile(measured, 0.999):F3} {(measured.Length == 0 ? double.NaN : measured[^1]):F3} {errors}"));
        return 0;
    }

    /// <summary>The <paramref name="q"/> quantile of ascending <paramref name="sorted"/> latencies (NaN when none).</summary>
    public static double Quantile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
}
