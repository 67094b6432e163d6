using System.Globalization;
using System.Security.Cryptography;
using SpIstio.ProxyBench;

// bench/proxy/run.sh's helpers (nginx serves the bodies and plays the OTLP receiver, so neither
// costs .NET CPU that would be charged to capture):
//   ProxyBench bodies DIR
//       writes 1k, 64k (compressible JSON) and 64k-random (incompressible base64 JSON) into DIR
//   ProxyBench load URL RATE SECONDS CONNECTIONS [WARMUP_SECONDS]
//       an open-loop HTTP load generator (OpenLoop: request i is due at start + i / RATE whatever
//       happened to earlier ones, latency counted from when it was due) over CONNECTIONS kept-alive
//       HTTP/1.1 connections of a lean client (RawHttpClient: it shares the cores with the proxy).
//       Prints one line: offered/s achieved/s p50 p90 p99 p99.9 max (ms) errors generator-CPU-µs/request
//   ProxyBench grpc-server PORT
//       a Grpc.AspNetCore unary echo server on 127.0.0.1:PORT (h2c), the gRPC cells' upstream
//   ProxyBench grpc-load URL SECONDS CONCURRENCY [WARMUP_SECONDS] [PAYLOAD]
//       grpc-dotnet unary calls, CONCURRENCY in flight (closed loop; GRPC_CLIENT=raw sends them
//       through RawGrpcClient, grpc-open's lean client, instead).
//       Prints one line: calls/s p50 p99 (ms) errors
//   ProxyBench grpc-open URL RATE SECONDS [WARMUP_SECONDS] [PAYLOAD]
//       unary calls at RATE a second (open loop, as `load`) on one h2c connection of a lean client
//       (RawGrpcClient; GRPC_CLIENT=grpc-dotnet for grpc-dotnet's); prints `load`'s line.
//   OPEN_LOOP_TIMELINE=FILE (load, grpc-open): also writes, per 100 ms of due times, the most
//       requests in flight, the generator's worst lateness, the longest time in flight and the
//       calls of p99 or longer; with OPEN_LOOP_METRICS=URL (the target's /metrics, read every
//       100 ms) also the target's collections, ms paused, export batches and CPU ms a bucket, and
//       on stderr the tail's attribution (TargetSample.Attribution: the slow calls' buckets
//       against the others, and how much of their latency the generator's own lateness was).
// PAYLOAD: bytes (1024, the default), with a k suffix for KiB (64k), and -random for random bytes
// instead of zeros (64k-random: what neither the export's compression nor redaction's digit and
// anchor checks find easy, like the HTTP cells' 64k-random body).
return args switch
{
    ["grpc-server", var port] => await GrpcBench.ServeAsync((int)Parse(port)),
    ["grpc-load", var url, var seconds, var concurrency, .. var rest] when rest.Length <= 2 =>
        await GrpcBench.LoadAsync(url, Parse(seconds), (int)Parse(concurrency), rest.Length > 0 ? Parse(rest[0]) : 0, GrpcBench.ParsePayload(rest.Length > 1 ? rest[1] : "1024")),
    ["grpc-open", var url, var rate, var seconds, .. var rest] when rest.Length <= 2 =>
        await GrpcBench.OpenLoopAsync(url, Parse(rate), Parse(seconds), rest.Length > 0 ? Parse(rest[0]) : 0, GrpcBench.ParsePayload(rest.Length > 1 ? rest[1] : "1024")),
    ["bodies", var dir] => WriteBodies(dir),
    ["load", var url, var rate, var seconds, var connections] => await Load(url, Parse(rate), Parse(seconds), (int)Parse(connections), 0),
    ["load", var url, var rate, var seconds, var connections, var warmup] => await Load(url, Parse(rate), Parse(seconds), (int)Parse(connections), Parse(warmup)),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: ProxyBench bodies DIR | ProxyBench load URL RATE SECONDS CONNECTIONS [WARMUP_SECONDS] | ProxyBench grpc-server PORT | ProxyBench grpc-load URL SECONDS CONCURRENCY [WARMUP_SECONDS] [PAYLOAD] | ProxyBench grpc-open URL RATE SECONDS [WARMUP_SECONDS] [PAYLOAD]  (PAYLOAD: 1024, 1k, 64k, 64k-random)");
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
    await using var client = new RawHttpClient(new Uri(url), connections);
    return await OpenLoop.RunAsync(client.GetAsync, rate, seconds, warmupSeconds).ConfigureAwait(false);
}
