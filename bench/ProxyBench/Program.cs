using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;

// bench/proxy/run.sh's helpers (nginx serves the bodies and plays the OTLP receiver, so neither
// costs .NET CPU that would be charged to capture):
//   ProxyBench bodies DIR
//       writes 1k, 64k (compressible JSON) and 64k-random (incompressible base64 JSON) into DIR
//   ProxyBench load URL RATE SECONDS CONNECTIONS [WARMUP_SECONDS]
//       an open-loop load generator (wrk2 is not packaged): request i is due at start + i / RATE
//       whatever happened to earlier ones, and its latency counts from when it was due, so a slow
//       server cannot slow the generator down and hide its own queueing ("coordinated omission").
//       Prints one line: offered/s achieved/s p50 p90 p99 p99.9 max (ms) errors
//   ProxyBench grpc-server PORT
//       a Grpc.AspNetCore unary echo server on 127.0.0.1:PORT (h2c), the gRPC cell's upstream
//   ProxyBench grpc-load URL SECONDS CONCURRENCY [WARMUP_SECONDS] [PAYLOAD_BYTES]
//       grpc-dotnet unary calls, CONCURRENCY in flight (closed loop), 1 KiB payload by default.
//       Prints one line: calls/s p50 p99 (ms) errors
return args switch
{
    ["grpc-server", var port] => await SpIstio.ProxyBench.GrpcBench.ServeAsync((int)Parse(port)),
    ["grpc-load", var url, var seconds, var concurrency] => await SpIstio.ProxyBench.GrpcBench.LoadAsync(url, Parse(seconds), (int)Parse(concurrency), 0, 1024),
    ["grpc-load", var url, var seconds, var concurrency, var warmup] => await SpIstio.ProxyBench.GrpcBench.LoadAsync(url, Parse(seconds), (int)Parse(concurrency), Parse(warmup), 1024),
    ["grpc-load", var url, var seconds, var concurrency, var warmup, var payload] => await SpIstio.ProxyBench.GrpcBench.LoadAsync(url, Parse(seconds), (int)Parse(concurrency), Parse(warmup), (int)Parse(payload)),
    ["bodies", var dir] => WriteBodies(dir),
    ["load", var url, var rate, var seconds, var connections] => await Load(url, Parse(rate), Parse(seconds), (int)Parse(connections), 0),
    ["load", var url, var rate, var seconds, var connections, var warmup] => await Load(url, Parse(rate), Parse(seconds), (int)Parse(connections), Parse(warmup)),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: ProxyBench bodies DIR | ProxyBench load URL RATE SECONDS CONNECTIONS [WARMUP_SECONDS] | ProxyBench grpc-server PORT | ProxyBench grpc-load URL SECONDS CONCURRENCY [WARMUP_SECONDS] [PAYLOAD_BYTES]");
    return 2;
}

static double Parse(string value) => double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture);

static int WriteBodies(string dir)
{
    Directory.CreateDirectory(dir);
    File.WriteAllBytes(Path.Combine(dir, "1k"), Json(1024, random: false));
    File.WriteAllBytes(Path.Combine(dir, "64k"), Json(64 * 1024, random: false));
    File.WriteAllBytes(Path.Combine(dir, "64k-random"), Json(64 * 1024, random: true));
    return 0;
}

// A JSON document of exactly `size` bytes: one repeated letter (compresses to almost nothing), or
// base64 of random bytes (what compression cannot shrink below ~0.75x, like media or ciphertext).
static byte[] Json(int size, bool random)
{
    var bytes = new byte[size];
    if (random)
    {
        var noise = Convert.ToBase64String(RandomNumberGenerator.GetBytes(size));
        System.Text.Encoding.ASCII.GetBytes(noise.AsSpan(0, size), bytes);
    }
    else
    {
        bytes.AsSpan().Fill((byte)'a');
    }

    "{\"data\":\""u8.CopyTo(bytes);
    "\"}"u8.CopyTo(bytes.AsSpan(size - 2));
    return bytes;
}

static async Task<int> Load(string url, double rate, double seconds, int connections, double warmupSeconds)
{
    // Beyond this many requests in flight the target is not keeping up at all; further due
    // requests are counted as errors instead of piling up without bound in the generator.
    const int MaxInFlight = 8192;

    using var handler = new SocketsHttpHandler
    {
        MaxConnectionsPerServer = connections,
        UseProxy = false,
        AutomaticDecompression = DecompressionMethods.None,
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
    };
    using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    var uri = new Uri(url);

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
            using var response = await client.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
            await using var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
            await body.CopyToAsync(Stream.Null).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                Interlocked.Increment(ref errors);
            }
            else if (index >= warmup)
            {
                latencies[index - warmup] = Stopwatch.GetElapsedTime(due).TotalMilliseconds;
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            Interlocked.Increment(ref errors);
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
    double At(double q) => measured.Length == 0 ? double.NaN : measured[Math.Min(measured.Length - 1, (int)(q * measured.Length))];
    var achieved = measured.Length / Math.Max(elapsed - warmupSeconds, 1e-9);
    Console.WriteLine(string.Create(
        CultureInfo.InvariantCulture,
        $"{rate:F0} {achieved:F0} {At(0.50):F3} {At(0.90):F3} {At(0.99):F3} {At(0.999):F3} {(measured.Length == 0 ? double.NaN : measured[^1]):F3} {errors}"));
    return 0;
}
