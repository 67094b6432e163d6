using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Net.Http.Headers;
using System.Text;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Hosting;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

/// <summary>
/// The end-to-end ingest cell (bench/README.md, "Backend"): concurrent OTLP/HTTP clients post
/// protobuf + gzip export requests of 512 exchange spans (2 KiB + 2 KiB JSON bodies, as the agent
/// exports them) to a running backend (the server `sp backend` starts, in this process), which
/// authenticates, inflates, parses, converts, group-commits and answers. Requests are built and
/// compressed before the clock starts, so the rate is the server's (on the same 2 cores); the
/// warm-up requests go first, off the clock (JIT tiering, the tenant's first dictionary).
/// </summary>
internal static class EndToEndBench
{
    private const int SpansPerRequest = 512;

    public static async Task<string> RunAsync(string kind, string storeSpec, int requests, int warmupRequests, int clients, int seconds)
    {
        var bodies = Build(warmupRequests + requests);
        var options = new BackendOptions { Listen = "127.0.0.1:0", GrpcListen = null, Store = storeSpec };
        await using var server = await BackendServer.StartAsync(options, NullLoggerFactory.Instance);
        string key = server.BootstrapKey!;
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients }) { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(2) };
        int next = -1, failed = 0;
        var latencies = new List<double>[clients];

        // The clients post the next bodies, up to index `to` (exclusive), until the clock passes its bound;
        // each client's last increment overshoots, so the next phase is set to start at `to`.
        async Task PostAsync(int to, Stopwatch clock, bool measured)
        {
            await Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
            {
                var mine = latencies[c] ??= [];
                int i;
                while ((i = Interlocked.Increment(ref next)) < to && clock.Elapsed.TotalSeconds < seconds)
                {
                    using var content = new ByteArrayContent(bodies[i]);
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
                    content.Headers.ContentEncoding.Add("gzip");
                    using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = content };
                    request.Headers.Add("x-public-key", key);
                    long start = Stopwatch.GetTimestamp();
                    using var response = await http.SendAsync(request);
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref failed);
                    }

                    if (measured)
                    {
                        mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    }
                }
            }));
            Interlocked.Exchange(ref next, to - 1);
        }

        await PostAsync(warmupRequests, Stopwatch.StartNew(), measured: false);
        if (failed > 0)
        {
            return $"| {kind} | {clients} | warm-up: {failed} of {warmupRequests} requests failed | – | – | {failed} |";
        }

        var clock = Stopwatch.StartNew();
        await PostAsync(bodies.Count, clock, measured: true);
        clock.Stop();
        var all = latencies.SelectMany(l => l).OrderBy(x => x).ToArray();
        int sent = all.Length;
        double rate = (sent - failed) * (double)SpansPerRequest / clock.Elapsed.TotalSeconds;
        return $"| {kind} | {clients} | {sent:N0} x {SpansPerRequest} | {rate:N0} | {all[all.Length / 2]:N0} / {all[(int)(all.Length * 0.99)]:N0} ms | {failed} |";
    }

    private static List<byte[]> Build(int requests)
    {
        var random = new Random(11);
        var result = new List<byte[]>(requests);
        var clock = DateTimeOffset.UtcNow.AddHours(-1);
        for (int r = 0; r < requests; r++)
        {
            var exchanges = new List<Exchange>(SpansPerRequest);
            for (int i = 0; i < SpansPerRequest; i++)
            {
                clock = clock.AddMilliseconds(1);
                var exchange = new Exchange
                {
                    Direction = i % 2 == 0 ? TrafficDirection.Inbound : TrafficDirection.Outbound,
                    ServiceName = "frontend",
                    Method = "POST",
                    Authority = "flights:8080",
                    Path = "/api/flights/" + random.Next(100_000).ToString(CultureInfo.InvariantCulture),
                    StatusCode = random.Next(100) < 3 ? 503 : 200,
                    TraceId = ActivityTraceId.CreateRandom(),
                    SpanId = ActivitySpanId.CreateRandom(),
                    StartTime = clock,
                    EndTime = clock.AddMilliseconds(random.Next(2, 200)),
                    SessionId = "sess-" + (r * 50 + i / 10).ToString("D8", CultureInfo.InvariantCulture),
                    RequestBody = Body(random),
                    ResponseBody = Body(random),
                };
                exchange.RequestHeaders.Add("content-type", "application/json");
                exchange.RequestHeaders.Add("x-request-id", Guid.NewGuid().ToString());
                exchange.ResponseHeaders.Add("content-type", "application/json");
                exchanges.Add(exchange);
            }

            var bytes = ExchangeSpanMapper.ToExportRequest(exchanges, null, "1.0").ToByteArray();
            using var output = new MemoryStream();
            using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
            {
                gzip.Write(bytes);
            }

            result.Add(output.ToArray());
        }

        return result;
    }

    private static CapturedBody Body(Random random)
    {
        var sb = new StringBuilder(2200);
        sb.Append("{\"items\":[");
        while (sb.Length < 2048 - 96)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{{\"id\":{random.Next(1_000_000)},\"city\":\"{Workload.Cities[random.Next(Workload.Cities.Length)]}\",\"price\":{random.Next(20, 900)}.{random.Next(100):D2},\"seats\":{random.Next(300)}}},");
        }

        sb.Append("{}]}");
        var bytes = Encoding.UTF8.GetBytes(sb.ToString());
        return new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json", null, false);
    }
}
