using System.Diagnostics;
using Grpc.Net.Client;
using SpIstio.Agent.ExtProc.Proto;

namespace SpIstio.Agent.Benchmarks;

/// <summary>Result of one load run.</summary>
internal sealed record LoadResult(long Exchanges, long Errors, TimeSpan Elapsed, double[] LatenciesMs)
{
    public double PerSecond => Exchanges / Elapsed.TotalSeconds;

    /// <summary>Slices of one cell as one result: their exchanges over their summed time.</summary>
    public static LoadResult Combine(IReadOnlyList<LoadResult> slices)
    {
        var latencies = slices.SelectMany(s => s.LatenciesMs).ToArray();
        Array.Sort(latencies);
        return new LoadResult(slices.Sum(s => s.Exchanges), slices.Sum(s => s.Errors), TimeSpan.FromTicks(slices.Sum(s => s.Elapsed.Ticks)), latencies);
    }

    public double Percentile(double q)
    {
        if (LatenciesMs.Length == 0)
        {
            return double.NaN;
        }

        return LatenciesMs[Math.Min(LatenciesMs.Length - 1, (int)(q * LatenciesMs.Length))];
    }
}

/// <summary>
/// Plays exchanges the way Envoy does: one bidirectional stream per exchange, multiplexed over a
/// few HTTP/2 connections (Envoy keeps about one per worker thread), N exchanges in flight.
/// </summary>
internal static class LoadDriver
{
    public static async Task<LoadResult> RunAsync(string address, ExchangeScript script, int concurrency, int connections, TimeSpan duration, double? rate)
    {
        var channels = new GrpcChannel[connections];
        var clients = new ExternalProcessor.ExternalProcessorClient[connections];
        for (var i = 0; i < connections; i++)
        {
            channels[i] = GrpcChannel.ForAddress("http://" + address, new GrpcChannelOptions
            {
                HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) },
                MaxReceiveMessageSize = null,

                // The channel disposes the handler, and so closes its connections, only when told
                // to: otherwise every cell left its connections open on the agent, which counts them
                // against extproc.max_connections and refused the third run's cells.
                DisposeHttpClient = true,
            });
            clients[i] = new ExternalProcessor.ExternalProcessorClient(channels[i]);
        }

        var stopAt = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var started = Stopwatch.GetTimestamp();
        var ticksPerExchange = rate is { } r ? Stopwatch.Frequency / r : 0;
        long next = -1;
        long errors = 0;
        var latencies = new List<double>[concurrency];
        var workers = new Task[concurrency];
        for (var w = 0; w < concurrency; w++)
        {
            // Grown as needed: a worker records a few thousand exchanges a cell at most, and 64
            // presized 128 KiB lists a cell were large-object garbage that only a full collection of
            // the driver (running beside the servers on the same cores) took back.
            var list = latencies[w] = new List<double>(256);
            var client = clients[w % connections];
            workers[w] = Task.Run(async () =>
            {
                while (true)
                {
                    if (ticksPerExchange > 0)
                    {
                        var due = started + (long)(Interlocked.Increment(ref next) * ticksPerExchange);
                        while (Stopwatch.GetTimestamp() < due)
                        {
                            var wait = (due - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
                            await Task.Delay(wait > 1 ? TimeSpan.FromMilliseconds(wait - 1) : TimeSpan.FromMilliseconds(1));
                        }
                    }

                    var begin = Stopwatch.GetTimestamp();
                    if (begin >= stopAt)
                    {
                        return;
                    }

                    try
                    {
                        await PlayAsync(client, script);
                        list.Add(Stopwatch.GetElapsedTime(begin).TotalMilliseconds);
                    }
                    catch (Exception)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
            });
        }

        await Task.WhenAll(workers);
        var elapsed = Stopwatch.GetElapsedTime(started);
        foreach (var channel in channels)
        {
            channel.Dispose();
        }

        var all = latencies.SelectMany(l => l).ToArray();
        Array.Sort(all);
        return new LoadResult(all.Length, errors, elapsed, all);
    }

    private static async Task PlayAsync(ExternalProcessor.ExternalProcessorClient client, ExchangeScript script)
    {
        using var call = client.Process();
        var messages = script.Messages;
        if (script.Observability)
        {
            for (var i = 0; i < messages.Length; i++)
            {
                await call.RequestStream.WriteAsync(messages[i]);
            }

            await call.RequestStream.CompleteAsync();
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                throw new InvalidOperationException("the server answered in observability mode");
            }

            return;
        }

        for (var i = 0; i < messages.Length; i++)
        {
            await call.RequestStream.WriteAsync(messages[i]);
            if (!await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                throw new InvalidOperationException("stream ended early");
            }
        }

        await call.RequestStream.CompleteAsync();
        await call.ResponseStream.MoveNext(CancellationToken.None);
    }
}
