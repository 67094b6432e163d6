using System.Diagnostics;
using System.Net;
using Google.Protobuf;
using SpIstio.Backend.Auth;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using static RssSampler;

/// <summary>
/// Reader memory (bench/README.md, "Backend reads"): one span with two 7 MB bodies is ingested
/// (cut to the attribute cap), then 16 readers each make 3 requests of it at once — the API span
/// detail, the trace's HAR and the exchange page — and the process RSS is sampled throughout and
/// for a minute after. Run once at the default cap (1 MiB) and once at 16 MiB. The backend runs in
/// this process (the same server `sp backend` starts); the readers discard what they read as it
/// arrives, so the RSS is the server's.
/// </summary>
internal static class ReadMemoryBench
{
    private const int Readers = 16;

    public static async Task RunAsync(int settleSeconds)
    {
        Console.WriteLine($"Backend read memory: {Readers} readers x 3 requests (API, HAR, page) of one span with two 7 MB bodies; RSS sampled every 50 ms; {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| attribute cap | stored body bytes | RSS before | peak RSS | growth | RSS after reads | RSS after " + settleSeconds + " s | answers (200/503/other) | reads time |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (int cap in new[] { 1024 * 1024, 16 * 1024 * 1024 })
        {
            Console.WriteLine(await RunOnceAsync(cap, settleSeconds));
        }
    }

    private static async Task<string> RunOnceAsync(int cap, int settleSeconds)
    {
        await using (var backend = await ScratchBackend.StartAsync("read", o => o with { MaxAttributeBytes = cap }, connections: 64))
        {
            var (server, key, http) = (backend.Server, backend.Key, backend.Http);
            var (traceId, spanId) = await IngestAsync(backend);
            var stored = await server.Store.GetSpanSizeAsync((await server.Store.FindTenantAsync(KeyAdministration.DefaultTenant, CancellationToken.None))!.Id, traceId, spanId, CancellationToken.None);

            // Settle the ingest's own garbage first: the measure is what readers add.
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            await Task.Delay(500);
            long before = Rss();
            var sampler = RssSampler.Start();

            string[] paths = [$"/api/spans/{traceId}/{spanId}", $"/api/traces/{traceId}/har", $"/traces/{traceId}/spans/{spanId}"];
            int ok = 0, busy = 0, other = 0;
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, Readers).SelectMany(_ => paths).Select(async path =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                request.Headers.Add("x-public-key", key);
                request.Headers.Add("Cookie", "sp_ui_key=" + key);
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                await (await response.Content.ReadAsStreamAsync()).CopyToAsync(Stream.Null);
                _ = response.StatusCode switch
                {
                    HttpStatusCode.OK => Interlocked.Increment(ref ok),
                    HttpStatusCode.ServiceUnavailable => Interlocked.Increment(ref busy),
                    _ => Interlocked.Increment(ref other),
                };
            }));
            clock.Stop();
            long afterReads = Rss();
            long settled = await RssAfterAsync(settleSeconds);

            long peak = sampler.Peak;
            await sampler.DisposeAsync();
            return $"| {Mb(cap)} | {Mb(stored ?? 0)} | {Mb(before)} | {Mb(peak)} | {Mb(peak - before)} | {Mb(afterReads)} | {Mb(settled)} | {ok}/{busy}/{other} | {clock.Elapsed.TotalSeconds:N1} s |";
        }
    }

    private static async Task<(string TraceId, string SpanId)> IngestAsync(ScratchBackend backend)
    {
        var exchange = BigExchange();
        using var response = await backend.PostExportAsync(ExchangeSpanMapper.ToExportRequest([exchange], null, "1.0").ToByteArray());
        response.EnsureSuccessStatusCode();
        return (exchange.TraceId.ToHexString(), exchange.SpanId.ToHexString());
    }

    /// <summary>One exchange with two 7 MB bodies of JSON-ish text (shared by the ingest memory bench).</summary>
    internal static Exchange BigExchange()
    {
        var big = new byte[7_000_000];
        var random = new Random(3);
        for (int i = 0; i < big.Length; i++)
        {
            // JSON-ish text that does not compress to nothing.
            big[i] = (byte)"abcdefghijklmnopqrstuvwxyz0123456789{}\":,"[random.Next(41)];
        }

        var exchange = new Exchange
        {
            Direction = TrafficDirection.Inbound,
            ServiceName = "flights",
            Method = "POST",
            Authority = "flights:80",
            Path = "/api/flights",
            StatusCode = 200,
            TraceId = ActivityTraceId.CreateRandom(),
            SpanId = ActivitySpanId.CreateRandom(),
            StartTime = DateTimeOffset.UtcNow.AddSeconds(-3),
            EndTime = DateTimeOffset.UtcNow.AddSeconds(-2),
            RequestBody = new CapturedBody(big, big.Length, false, BodyKind.Text, "application/json", null, false),
            ResponseBody = new CapturedBody(big, big.Length, false, BodyKind.Text, "application/json", null, false),
        };
        return exchange;
    }
}
