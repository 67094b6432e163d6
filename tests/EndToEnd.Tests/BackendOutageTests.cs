using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;
using SpIstio.Agent.Tests.Infrastructure;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// Nothing captured is lost while the backend is away: real <c>sp backend</c> processes on one
/// SQLite file, killed and restarted on the same port, real agents (the capture proxy and
/// ext_proc, played the way Envoy plays it) with a disk export buffer, steady traffic throughout.
/// Every wait is on a signal (agent metrics, the backend's store), never on time.
/// </summary>
public sealed class BackendOutageTests : IDisposable
{
    private static readonly TimeSpan StoreDeadline = TimeSpan.FromSeconds(90);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-outage-" + Guid.NewGuid().ToString("N"));

    private string Store => "sqlite:" + Path.Combine(_directory, "data", "sp.db");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task BackendKilledAndRestarted_EveryExchangeThroughProxyAndExtProcIsStored()
    {
        var key = await CreateKeyAsync();
        var port = FreePort();
        await using var upstream = await StartUpstreamAsync();
        var backends = new List<SpChild>();
        var backend = StartBackend(port);
        backends.Add(backend);
        try
        {
            await WaitForBackendAsync(backend);
            await using var proxy = StartProxy(upstream.Address, port, key, "proxy-buffer");
            await using var extproc = StartExtProc(port, key, "extproc-buffer");
            var (proxyAdmin, extprocAdmin, traffic) = await TrafficThroughAnOutageAsync(proxy, extproc, backend);
            await using var trafficScope = traffic;
            Assert.Equal(0, await MetricAsync(proxyAdmin, "sp_backend_up"));

            // Back on the same address: buffered batches are re-sent and new exchanges flow.
            backend = StartBackend(port);
            backends.Add(backend);
            await WaitForBackendAsync(backend);
            var sentAtRestart = traffic.Sent;
            await WaitForMetricAsync(proxyAdmin, "sp_backend_up", v => v == 1);
            await OtlpWait(() => traffic.Sent >= sentAtRestart + 10);
            await traffic.StopAsync();

            Assert.Empty(traffic.Errors);
            await WaitForStoredAsync(port, key, traffic.Traces);
            await WaitForMetricAsync(proxyAdmin, "sp_export_buffer_bytes", v => v == 0);
            await WaitForMetricAsync(extprocAdmin, "sp_export_buffer_bytes", v => v == 0);
            Assert.Equal(0, await MetricAsync(proxyAdmin, Failed));
            Assert.Equal(0, await MetricAsync(extprocAdmin, Failed));
            Assert.Equal(0, await MetricAsync(proxyAdmin, "sp_export_dropped_total"));
        }
        finally
        {
            foreach (var child in backends)
            {
                await child.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AgentsRestartedWhileTheBuffersHoldBatches_TheNextRunDeliversEveryExchange()
    {
        var key = await CreateKeyAsync();
        var port = FreePort();
        await using var upstream = await StartUpstreamAsync();
        var backends = new List<SpChild>();
        var backend = StartBackend(port);
        backends.Add(backend);
        try
        {
            await WaitForBackendAsync(backend);
            List<string> traces;
            await using (var proxy = StartProxy(upstream.Address, port, key, "proxy-buffer"))
            await using (var extproc = StartExtProc(port, key, "extproc-buffer"))
            {
                var (_, _, traffic) = await TrafficThroughAnOutageAsync(proxy, extproc, backend);
                await using var trafficScope = traffic;
                await traffic.StopAsync();
                Assert.Empty(traffic.Errors);
                traces = [.. traffic.Traces];

                // Both agents restarted while the backend is still away: what was queued at the
                // stop goes to the buffer too (shutdown flush), nothing is counted lost.
                Assert.Equal(0, await proxy.TerminateAsync());
                Assert.Equal(0, await extproc.TerminateAsync());
            }

            Assert.NotEmpty(Directory.GetFiles(Path.Combine(_directory, "proxy-buffer")));
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(_directory, "extproc-buffer")));
            await using var restartedProxy = StartProxy(upstream.Address, port, key, "proxy-buffer");
            await using var restartedExtProc = StartExtProc(port, key, "extproc-buffer");
            var restartedProxyAdmin = await AdminAsync(restartedProxy);
            var restartedExtProcAdmin = await AdminAsync(restartedExtProc);
            Assert.True(await MetricAsync(restartedProxyAdmin, "sp_export_buffer_bytes") > 0);
            Assert.True(await MetricAsync(restartedExtProcAdmin, "sp_export_buffer_bytes") > 0);

            // The backend is back: the new agents re-send what the old ones buffered.
            backend = StartBackend(port);
            backends.Add(backend);
            await WaitForBackendAsync(backend);
            await WaitForStoredAsync(port, key, traces);
            await WaitForMetricAsync(restartedProxyAdmin, "sp_export_buffer_bytes", v => v == 0);
            await WaitForMetricAsync(restartedExtProcAdmin, "sp_export_buffer_bytes", v => v == 0);
            Assert.Empty(Directory.GetFiles(Path.Combine(_directory, "proxy-buffer")));
            Assert.Empty(Directory.GetFiles(Path.Combine(_directory, "extproc-buffer")));
        }
        finally
        {
            foreach (var child in backends)
            {
                await child.DisposeAsync();
            }
        }
    }

    // Steady traffic through both agents: exchanges of both front ends reach the store, then the
    // backend is killed and what traffic brings in goes to the disk buffers; the traffic itself keeps flowing.
    private static async Task<(Uri ProxyAdmin, Uri ExtProcAdmin, Traffic Traffic)> TrafficThroughAnOutageAsync(SpChild proxy, SpChild extproc, SpChild backend)
    {
        var proxyAdmin = await AdminAsync(proxy);
        var proxyAddress = Address(await proxy.WaitForLineAsync("proxy listening on "));
        var extprocAdmin = await AdminAsync(extproc);
        var grpcAddress = (await extproc.WaitForLineAsync("extproc listening on "))["extproc listening on ".Length..];
        var traffic = Traffic.Start(proxyAddress, new Uri("http://" + grpcAddress));
        await WaitForMetricAsync(proxyAdmin, Exported, v => v >= 3);
        await WaitForMetricAsync(extprocAdmin, Exported, v => v >= 3);

        backend.KillHard();
        await WaitForMetricAsync(proxyAdmin, Buffered, v => v >= 10);
        await WaitForMetricAsync(extprocAdmin, Buffered, v => v >= 10);
        return (proxyAdmin, extprocAdmin, traffic);
    }

    private const string Exported = "sp_export_spans_total{result=\"exported\"}";
    private const string Buffered = "sp_export_spans_total{result=\"buffered\"}";
    private const string Failed = "sp_export_spans_total{result=\"failed\"}";

    private SpChild StartBackend(int port) =>
        SpChild.Start("backend", "--listen", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), "--grpc-listen", "off", "--store", Store);

    private static async Task WaitForBackendAsync(SpChild backend) =>
        await backend.WaitForLineAsync(l => l.StartsWith("sp backend listening on ", StringComparison.Ordinal));

    private SpChild StartProxy(Uri upstream, int backendPort, string key, string buffer) =>
        SpChild.Start(
            [
                "agent", "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream.ToString(), "--admin", "127.0.0.1:0", "--ignore-env",
                .. AgentSettings(backendPort, key, buffer),
            ]);

    private SpChild StartExtProc(int backendPort, string key, string buffer) =>
        SpChild.Start(
            [
                "agent", "extproc", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ignore-env",
                .. AgentSettings(backendPort, key, buffer),
            ]);

    private string[] AgentSettings(int backendPort, string key, string buffer) =>
    [
        "--set", "sp_backend_url=http://127.0.0.1:" + backendPort.ToString(CultureInfo.InvariantCulture),
        "--set", "public_key=" + key,
        "--set", "service_name=orders",
        "--set", "export.batch_delay_ms=20",
        "--set", "export.max_batch_spans=8",
        "--set", "export.buffer_path=" + Path.Combine(_directory, buffer),
    ];

    private static async Task<Uri> AdminAsync(SpChild agent) =>
        Address(await agent.WaitForLineAsync("admin listening on "));

    private static Uri Address(string line) => new(line.Split(' ')[3]);

    // A port the OS has just handed out, so the backend can be restarted on the same address.
    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private async Task<string> CreateKeyAsync()
    {
        var run = await SpProcess.RunAsync("keys", "create", "--tenant", "acme", "--scope", "ingest,read", "--store", Store, "--create-store");
        Assert.Equal(0, run.ExitCode);
        return run.StdOut.Trim();
    }

    private static async Task WaitForStoredAsync(int port, string key, IReadOnlyCollection<string> traces)
    {
        using var http = new HttpClient { BaseAddress = new Uri("http://127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture)) };
        var missing = new HashSet<string>(traces, StringComparer.Ordinal);
        await OtlpReceiver.WaitUntilAsync(
            async () =>
            {
                foreach (var trace in missing.ToList())
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, "/api/traces/" + trace);
                    request.Headers.Add("x-public-key", key);
                    using var response = await http.SendAsync(request);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        missing.Remove(trace);
                    }
                }

                return missing.Count == 0;
            },
            StoreDeadline,
            () => $"{missing.Count} of {traces.Count} exchanges never reached the store, e.g. {missing.First()}",
            TimeSpan.FromMilliseconds(200));
    }

    private static Task<double> MetricAsync(Uri admin, string series) => AdminMetrics.ValueAsync(admin, series);

    private static Task WaitForMetricAsync(Uri admin, string series, Func<double, bool> condition) =>
        AdminMetrics.WaitForAsync(admin, series, condition, StoreDeadline);

    private static Task OtlpWait(Func<bool> condition) => OtlpReceiver.WaitUntilAsync(condition, StoreDeadline);

    private static async Task<WebApplication> StartUpstreamAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(context => context.Response.WriteAsync("{\"ok\":true}"));
        await app.StartAsync();
        return app;
    }

    /// <summary>
    /// Steady traffic, one exchange at a time per front end, each with its own W3C trace id so the
    /// store can be asked for it: HTTP through the capture proxy, and ext_proc streams carrying
    /// the messages Envoy sends for a GET (request headers, response headers, end of stream).
    /// </summary>
    private sealed class Traffic : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentQueue<string> _traces = new();
        private readonly ConcurrentQueue<string> _errors = new();
        private readonly List<Task> _loops = [];
        private readonly HttpClient _http = new();
        private readonly GrpcChannel? _channel;
        private int _sent;

        private Traffic(GrpcChannel? channel)
        {
            _channel = channel;
        }

        public int Sent => Volatile.Read(ref _sent);

        public IReadOnlyCollection<string> Traces => [.. _traces];

        public IReadOnlyCollection<string> Errors => [.. _errors];

        public static Traffic Start(Uri proxy, Uri? extProc)
        {
            var traffic = new Traffic(extProc is null ? null : GrpcChannel.ForAddress(extProc));
            traffic._loops.Add(Task.Run(() => traffic.ProxyLoopAsync(proxy)));
            if (traffic._channel is not null)
            {
                traffic._loops.Add(Task.Run(() => traffic.ExtProcLoopAsync(traffic._channel)));
            }

            return traffic;
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_loops);
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _http.Dispose();
            _channel?.Dispose();
            _stop.Dispose();
        }

        private async Task ProxyLoopAsync(Uri proxy)
        {
            var i = 0;
            while (!_stop.IsCancellationRequested)
            {
                var trace = ActivityTraceId.CreateRandom().ToHexString();
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(proxy, "/orders/" + i++));
                request.Headers.Add("traceparent", "00-" + trace + "-" + ActivitySpanId.CreateRandom().ToHexString() + "-01");
                try
                {
                    using var response = await _http.SendAsync(request, CancellationToken.None);
                    await response.Content.ReadAsStringAsync(CancellationToken.None);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        _traces.Enqueue(trace);
                    }
                    else
                    {
                        _errors.Enqueue("proxy answered " + (int)response.StatusCode);
                    }
                }
                catch (HttpRequestException ex)
                {
                    _errors.Enqueue("proxy: " + ex.Message);
                }

                Interlocked.Increment(ref _sent);
                await Pace();
            }
        }

        private async Task ExtProcLoopAsync(GrpcChannel channel)
        {
            var client = new ExternalProcessor.ExternalProcessorClient(channel);
            var i = 0;
            while (!_stop.IsCancellationRequested)
            {
                var trace = ActivityTraceId.CreateRandom().ToHexString();
                var traceparent = "00-" + trace + "-" + ActivitySpanId.CreateRandom().ToHexString() + "-01";
                using var call = client.Process(cancellationToken: CancellationToken.None);
                await call.RequestStream.WriteAsync(Headers(true, (":method", "GET"), (":path", "/books/" + i++), (":authority", "catalog:8080"), (":scheme", "http"), ("traceparent", traceparent)));
                var answered = await call.ResponseStream.MoveNext(CancellationToken.None);
                await call.RequestStream.WriteAsync(Headers(false, (":status", "200"), ("content-type", "text/plain")));
                answered &= await call.ResponseStream.MoveNext(CancellationToken.None);
                await call.RequestStream.CompleteAsync();
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                }

                if (answered)
                {
                    _traces.Enqueue(trace);
                }
                else
                {
                    _errors.Enqueue("ext_proc did not answer a headers message");
                }

                Interlocked.Increment(ref _sent);
                await Pace();
            }
        }

        // Paces the loops (a few exchanges per batch delay) so an outage spans many batches.
        private async Task Pace()
        {
            try
            {
                await Task.Delay(10, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                // Stopping.
            }
        }

        private static ProcessingRequest Headers(bool isRequest, params (string Name, string Value)[] fields)
        {
            var map = new HeaderMap();
            foreach (var (name, value) in fields)
            {
                map.Headers.Add(new HeaderValue { Key = name, RawValue = ByteString.CopyFromUtf8(value) });
            }

            var headers = new HttpHeaders { Headers = map, EndOfStream = true };
            return isRequest ? new ProcessingRequest { RequestHeaders = headers } : new ProcessingRequest { ResponseHeaders = headers };
        }
    }
}
