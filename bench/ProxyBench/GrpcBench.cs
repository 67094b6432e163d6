using System.Diagnostics;
using System.Globalization;
using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SpIstio.ProxyBench.Grpc;

namespace SpIstio.ProxyBench;

/// <summary>
/// The gRPC cells: a Grpc.AspNetCore unary server (the upstream, h2c) and a grpc-dotnet client,
/// either keeping CONCURRENCY unary calls in flight (closed loop: saturation) or sending them at a
/// fixed rate (open loop: the equal-load cell).
/// </summary>
internal static class GrpcBench
{
    // Failed calls by gRPC status code (0-16) and the first detail of each: an error count alone
    // does not say whether the proxy, the upstream or the generator refused them.
    private static readonly long[] s_failures = new long[17];
    private static readonly string?[] s_firstDetail = new string?[17];

    /// <summary>Serves <c>sp.bench.Bench/Unary</c> (echo) on 127.0.0.1:<paramref name="port"/> until killed.</summary>
    public static async Task<int> ServeAsync(int port)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
        builder.Services.AddGrpc();
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, port, o => o.Protocols = HttpProtocols.Http2);
            kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
        });
        var app = builder.Build();
        app.UseRouting();
        app.MapGrpcService<EchoService>();
        await app.RunAsync().ConfigureAwait(false);
        return 0;
    }

    /// <summary>
    /// Calls Unary with <paramref name="payload"/> from <paramref name="concurrency"/> loops for
    /// <paramref name="seconds"/> after <paramref name="warmupSeconds"/>. Prints one line:
    /// calls/s p50 p99 (ms) errors.
    /// </summary>
    /// <remarks>
    /// The calls go out through grpc-dotnet's client, what run.sh's saturation cells have measured
    /// since issue 18 began; <c>GRPC_CLIENT=raw</c> sends them through <see cref="RawGrpcClient"/>
    /// instead (one h2c connection, a fraction of the CPU), to compare the two generators.
    /// </remarks>
    public static async Task<int> LoadAsync(string url, double seconds, int concurrency, double warmupSeconds, Payload payload)
    {
        if (Environment.GetEnvironmentVariable("GRPC_CLIENT") == "raw")
        {
            await using var raw = await RawGrpcClient.ConnectAsync(new Uri(url), "/sp.bench.Bench/Unary", payload).ConfigureAwait(false);
            return await LoadAsync(() => CallAsync(raw), seconds, concurrency, warmupSeconds).ConfigureAwait(false);
        }

        using var channel = CreateChannel(url);
        var client = new Bench.BenchClient(channel);
        return await LoadAsync(() => CallAsync(client, payload), seconds, concurrency, warmupSeconds).ConfigureAwait(false);
    }

    private static async Task<int> LoadAsync(Func<Task<bool>> call, double seconds, int concurrency, double warmupSeconds)
    {
        var warmupEnd = Stopwatch.GetTimestamp() + (long)(warmupSeconds * Stopwatch.Frequency);
        var end = warmupEnd + (long)(seconds * Stopwatch.Frequency);
        var latencies = new List<double>[concurrency];
        var errors = 0L;

        async Task Loop(int slot)
        {
            var mine = latencies[slot] = new List<double>(capacity: 1 << 16);
            while (true)
            {
                var started = Stopwatch.GetTimestamp();
                if (started >= end)
                {
                    return;
                }

                if (await call().ConfigureAwait(false))
                {
                    if (started >= warmupEnd)
                    {
                        mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                }
                else
                {
                    Interlocked.Increment(ref errors);
                }
            }
        }

        var loops = new Task[concurrency];
        for (var i = 0; i < concurrency; i++)
        {
            loops[i] = Loop(i);
        }

        await Task.WhenAll(loops).ConfigureAwait(false);
        PrintFailures();
        var measured = latencies.SelectMany(l => l).Order().ToArray();
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{measured.Length / seconds:F0} {OpenLoop.Quantile(measured, 0.50):F3} {OpenLoop.Quantile(measured, 0.99):F3} {errors}"));
        return 0;
    }

    /// <summary>
    /// Calls Unary with <paramref name="payload"/> at <paramref name="rate"/> a second, open loop
    /// (<see cref="OpenLoop"/>): the gRPC equal-load cell. Prints <see cref="OpenLoop.RunAsync"/>'s line.
    /// </summary>
    /// <remarks>
    /// The calls go out through <see cref="RawGrpcClient"/> (the same requests on one connection for
    /// a fraction of the CPU); <c>GRPC_CLIENT=grpc-dotnet</c> sends them with grpc-dotnet's client
    /// instead, to compare the two generators.
    /// </remarks>
    public static async Task<int> OpenLoopAsync(string url, double rate, double seconds, double warmupSeconds, Payload payload)
    {
        int exitCode;
        if (Environment.GetEnvironmentVariable("GRPC_CLIENT") == "grpc-dotnet")
        {
            using var channel = CreateChannel(url);
            var client = new Bench.BenchClient(channel);
            exitCode = await OpenLoop.RunAsync(() => CallAsync(client, payload), rate, seconds, warmupSeconds).ConfigureAwait(false);
        }
        else
        {
            await using var client = await RawGrpcClient.ConnectAsync(new Uri(url), "/sp.bench.Bench/Unary", payload).ConfigureAwait(false);
            exitCode = await OpenLoop.RunAsync(() => CallAsync(client), rate, seconds, warmupSeconds).ConfigureAwait(false);
        }

        PrintFailures();
        return exitCode;
    }

    /// <summary>
    /// A payload from its bench name: bytes (<c>1024</c>) or KiB (<c>64k</c>), zeros, or random bytes
    /// with a <c>-random</c> suffix (<c>64k-random</c>).
    /// </summary>
    public static Payload ParsePayload(string spec)
    {
        var random = spec.EndsWith("-random", StringComparison.Ordinal);
        var size = random ? spec[..^"-random".Length] : spec;
        var bytes = size.EndsWith('k')
            ? 1024 * int.Parse(size[..^1], NumberStyles.None, CultureInfo.InvariantCulture)
            : int.Parse(size, NumberStyles.None, CultureInfo.InvariantCulture);
        return new Payload { Data = ByteString.CopyFrom(random ? RandomPayload(bytes) : new byte[bytes]) };
    }

    // The same bytes in every load process. Random bytes drawn afresh each process parsed as the
    // start of a cut protobuf message in ~5 % of processes (its first byte a length-delimited tag,
    // the length past the cut), which the capture then walks as a message: that run's cost was not
    // the other runs' (bench/README.md, 2026-11-28 16:41). The first byte is a tag of wire type 7,
    // which no message has, so every run measures what random binary bytes cost: the common case.
    private static byte[] RandomPayload(int bytes)
    {
        var data = new byte[bytes];
        new Random(6418).NextBytes(data);
        if (data.Length > 0)
        {
            data[0] = 0x0F; // field 1, wire type 7: not protobuf
        }

        return data;
    }

    // One HTTP/2 connection, whose calls past the server's SETTINGS_MAX_CONCURRENT_STREAMS wait in
    // the client (their wait counts as latency, from when each was due), as the HTTP cells' requests
    // wait for one of their fixed connections. A client that opens another connection instead gets
    // past the proxy's per-connection limit to its bound over all connections (proxy.max_grpc_streams,
    // 100, as the per-connection one) and is refused UNAVAILABLE by design: the open-loop cells then
    // counted tens of thousands of such refusals in both proxies, after any stall of a few ms.
    private static GrpcChannel CreateChannel(string url) => GrpcChannel.ForAddress(url, new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false, UseProxy = false },
    });

    // True when the call was answered with OK; a failed call is an error of the cell, not of the
    // generator, counted by its status (with the first one's detail) for PrintFailures.
    private static async Task<bool> CallAsync(Bench.BenchClient client, Payload payload)
    {
        try
        {
            await client.UnaryAsync(payload, deadline: DateTime.UtcNow.AddSeconds(30)).ConfigureAwait(false);
            return true;
        }
        catch (RpcException ex)
        {
            var code = (int)ex.StatusCode;
            if ((uint)code < (uint)s_failures.Length && Interlocked.Increment(ref s_failures[code]) == 1)
            {
                s_firstDetail[code] = ex.Status.Detail;
            }

            return false;
        }
    }

    // As above for the raw client: −1 is a call that ended without a status (reset, connection lost,
    // an echo of the wrong length), counted as Unknown with why.
    private static async Task<bool> CallAsync(RawGrpcClient client)
    {
        var (status, message) = await client.CallAsync().ConfigureAwait(false);
        if (status == 0)
        {
            return true;
        }

        var code = status < 0 ? (int)StatusCode.Unknown : Math.Min(status, s_failures.Length - 1);
        if (Interlocked.Increment(ref s_failures[code]) == 1)
        {
            s_firstDetail[code] = status < 0 ? "raw client, no grpc-status: " + message : message;
        }

        return false;
    }

    // On stderr, so the line the scripts parse stays as it is: "failed calls: Unavailable 12 (detail) ...".
    private static void PrintFailures()
    {
        var parts = new List<string>();
        for (var code = 0; code < s_failures.Length; code++)
        {
            if (s_failures[code] > 0)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"{(StatusCode)code} {s_failures[code]} ({s_firstDetail[code]})"));
            }
        }

        if (parts.Count > 0)
        {
            Console.Error.WriteLine("failed calls: " + string.Join("; ", parts));
        }
    }

    private sealed class EchoService : Bench.BenchBase
    {
        public override Task<Payload> Unary(Payload request, ServerCallContext context) => Task.FromResult(request);
    }
}
