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
/// The gRPC cell: a Grpc.AspNetCore unary server (the upstream, h2c) and a grpc-dotnet client
/// keeping CONCURRENCY unary calls in flight (closed loop: gRPC clients wait for their answers).
/// </summary>
internal static class GrpcBench
{
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
    /// Calls Unary with a <paramref name="payloadBytes"/> payload from <paramref name="concurrency"/>
    /// loops for <paramref name="seconds"/> after <paramref name="warmupSeconds"/>. Prints one line:
    /// calls/s p50 p99 (ms) errors.
    /// </summary>
    public static async Task<int> LoadAsync(string url, double seconds, int concurrency, double warmupSeconds, int payloadBytes)
    {
        using var channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, UseProxy = false },
        });
        var client = new Bench.BenchClient(channel);
        var payload = new Payload { Data = ByteString.CopyFrom(new byte[payloadBytes]) };
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

                try
                {
                    await client.UnaryAsync(payload, deadline: DateTime.UtcNow.AddSeconds(30)).ConfigureAwait(false);
                    if (started >= warmupEnd)
                    {
                        mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                }
                catch (RpcException)
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
        var measured = latencies.SelectMany(l => l).Order().ToArray();
        double At(double q) => measured.Length == 0 ? double.NaN : measured[Math.Min(measured.Length - 1, (int)(q * measured.Length))];
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{measured.Length / seconds:F0} {At(0.50):F3} {At(0.99):F3} {errors}"));
        return 0;
    }

    private sealed class EchoService : Bench.BenchBase
    {
        public override Task<Payload> Unary(Payload request, ServerCallContext context) => Task.FromResult(request);
    }
}
