using System.Diagnostics;
using System.Net;
using Google.Protobuf;
using SpIstio.Core.Otlp;
using static RssSampler;

/// <summary>
/// Ingest memory (bench/README.md, "Backend ingest memory"): 32 exporters at once each send one
/// export of one span with two 7 MB bodies (a 14 MB protobuf body, cut to the attribute cap once
/// parsed), and re-send it after <c>Retry-After</c> when refused with 503, as OTLP exporters do.
/// The process RSS is sampled throughout and for a while after. Run twice in one process: with
/// the default budget, then with the budget out of the way (1 TiB: every request is let in at
/// once, as before the budget existed), so the peaks compare within one run. The second run starts
/// on the heap the first one grew and reuses part of it, so its growth (the baseline) is if
/// anything understated, and so is the ratio's gain. The backend runs in this process; the body
/// the exporters share is built before the first sample.
/// </summary>
internal static class IngestMemoryBench
{
    private const int Exporters = 32;

    public static async Task RunAsync(int settleSeconds)
    {
        byte[] body = ExchangeSpanMapper.ToExportRequest([ReadMemoryBench.BigExchange()], null, "1.0").ToByteArray();
        Console.WriteLine($"Backend ingest memory: {Exporters} exporters at once, each one {Mb(body.Length)} export (one span, two 7 MB bodies), re-sent after Retry-After when refused; RSS sampled every 50 ms; {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| ingest budget | RSS before | peak RSS | growth | RSS after exports | RSS after " + settleSeconds + " s | stored / refused answers | time |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
        var (bounded, boundedGrowth) = await RunOnceAsync(body, SpIstio.Backend.Ingest.IngestBudget.DefaultTotalBytes, settleSeconds);
        Console.WriteLine(bounded);
        var (unbounded, unboundedGrowth) = await RunOnceAsync(body, 1L << 40, settleSeconds);
        Console.WriteLine(unbounded);
        Console.WriteLine();
        Console.WriteLine($"peak growth with the default budget / without: {(double)boundedGrowth / Math.Max(1, unboundedGrowth):N2}x");
    }

    private static async Task<(string Row, long Growth)> RunOnceAsync(byte[] body, long budget, int settleSeconds)
    {
        await using (var backend = await ScratchBackend.StartAsync("ingest", o => o with { IngestBudgetBytes = budget }, connections: Exporters))
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            long before = Rss();
            var sampler = RssSampler.Start();
            int refused = 0, stored = 0;
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, Exporters).Select(async _ =>
            {
                while (true)
                {
                    using var response = await backend.PostExportAsync(body);
                    if (response.StatusCode != HttpStatusCode.ServiceUnavailable)
                    {
                        response.EnsureSuccessStatusCode();
                        Interlocked.Increment(ref stored);
                        return;
                    }

                    Interlocked.Increment(ref refused);
                    await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
                }
            }));
            clock.Stop();
            long afterExports = Rss();
            long settled = await RssAfterAsync(settleSeconds);

            long peak = sampler.Peak;
            await sampler.DisposeAsync();
            string label = budget >= 1L << 40 ? "off (1 TiB)" : Mb(budget) + " (default)";
            return ($"| {label} | {Mb(before)} | {Mb(peak)} | {Mb(peak - before)} | {Mb(afterExports)} | {Mb(settled)} | {stored} / {refused} | {clock.Elapsed.TotalSeconds:N1} s |", peak - before);
        }
    }
}
