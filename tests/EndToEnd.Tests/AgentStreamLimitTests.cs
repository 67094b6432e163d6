using System.Globalization;
using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;
using SpIstio.Agent.Tests.Infrastructure;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// The stream and connection bounds of the gRPC listeners, against real <c>sp</c> processes with the
/// smallest capture budget (so the smallest heap cap): <c>sp agent extproc</c>'s
/// <c>extproc.max_streams</c> / <c>extproc.max_connections</c> and <c>sp agent proxy</c>'s
/// <c>proxy.max_grpc_streams</c>. Real grpc-dotnet clients open more than allowed; the ones over the
/// bound get the documented answer, the held ones complete, the process stays under its heap cap
/// and keeps capturing. Every wait is on a signal (an answer from the server, an agent metric, a
/// span at the receiver).
/// </summary>
public sealed class AgentStreamLimitTests
{
    private const int Budget = 1024 * 1024;
    private const int BodyBytes = 64 * 1024;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ExtProc_MoreStreamsAndConnectionsThanTheBounds_OverThemUnavailable_HeldOnesComplete_CaptureGoesOn()
    {
        const int MaxStreams = 8;
        const int MaxConnections = 4;
        const int HeldConnections = 2;
        const int OverStreams = 24;
        const int OverConnections = 6;

        await using var receiver = await OtlpReceiver.StartAsync();
        await using var agent = SpChild.Start(
            "agent", "extproc", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ignore-env",
            "--set", "sp_backend_url=" + receiver.BaseAddress,
            "--set", "public_key=test",
            "--set", "export.batch_delay_ms=20",
            "--set", "export.max_inflight_bytes=" + Budget.ToString(CultureInfo.InvariantCulture),
            "--set", "extproc.max_streams=" + MaxStreams.ToString(CultureInfo.InvariantCulture),
            "--set", "extproc.max_connections=" + MaxConnections.ToString(CultureInfo.InvariantCulture));
        var grpc = new Uri("http://" + (await agent.WaitForLineAsync("extproc listening on "))["extproc listening on ".Length..]);
        var admin = new Uri((await agent.WaitForLineAsync("admin listening on "))["admin listening on ".Length..]);

        // The bound's worth of streams over two connections, each mid-request with a 64 KiB body
        // message answered: every one has reached the agent and holds its capture.
        var heldChannels = Enumerable.Range(0, HeldConnections).Select(_ => Channel(grpc, multipleConnections: false)).ToArray();
        var held = new List<AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse>>();
        for (var i = 0; i < MaxStreams; i++)
        {
            var call = new ExternalProcessor.ExternalProcessorClient(heldChannels[i % HeldConnections]).Process();
            held.Add(call);
            await SendAsync(call, RequestHeaders("/held/" + i));
            await SendAsync(call, Body(endOfStream: false));
        }

        Assert.Equal(MaxStreams, await MetricAsync(admin, "sp_extproc_streams_active"));
        Assert.Equal(MaxStreams, await MetricAsync(admin, "sp_extproc_streams_open"));
        Assert.Equal(HeldConnections, await MetricAsync(admin, "sp_extproc_connections_open"));

        // More streams, over a third connection (the client queues past its SETTINGS limit, and
        // each refusal frees its slot at once): each is answered UNAVAILABLE naming the key. The
        // first goes alone, so that the client has the agent's SETTINGS before it opens the others
        // (before them it may open more than the limit at once, and Kestrel resets the excess).
        using (var overChannel = Channel(grpc, multipleConnections: false))
        {
            var client = new ExternalProcessor.ExternalProcessorClient(overChannel);
            var first = await RefusedAsync(client);
            RpcException[] over = [first, .. await Task.WhenAll(Enumerable.Range(1, OverStreams - 1).Select(_ => RefusedAsync(client)))];
            Assert.All(over, e =>
            {
                Assert.Equal(StatusCode.Unavailable, e.StatusCode);
                Assert.Contains("extproc.max_streams", e.Status.Detail, StringComparison.Ordinal);
            });
        }

        Assert.Equal(OverStreams, await MetricAsync(admin, "sp_extproc_streams_refused_total"));
        await WaitForMetricAsync(admin, "sp_extproc_connections_open", v => v == HeldConnections);

        // Connections up to the bound, each with a stream of its own: two held streams end first,
        // so that the new ones are under the stream bound.
        for (var i = 0; i < MaxConnections - HeldConnections; i++)
        {
            await CompleteAsync(held[i]);
        }

        await WaitForMetricAsync(admin, "sp_extproc_streams_open", v => v == MaxStreams - (MaxConnections - HeldConnections));
        var fill = Enumerable.Range(0, MaxConnections - HeldConnections).Select(_ => Channel(grpc, multipleConnections: false)).ToArray();
        var fillCalls = new List<AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse>>();
        foreach (var channel in fill)
        {
            var call = new ExternalProcessor.ExternalProcessorClient(channel).Process();
            fillCalls.Add(call);
            await SendAsync(call, RequestHeaders("/fill"));
        }

        Assert.Equal(MaxConnections, await MetricAsync(admin, "sp_extproc_connections_open"));

        // Each connection over the bound is closed at once: its call fails UNAVAILABLE, or INTERNAL
        // when grpc-dotnet's HTTP/2 handshake was under way as the connection closed (a protocol
        // error to the client); either way it is refused without being served.
        for (var i = 0; i < OverConnections; i++)
        {
            using var channel = Channel(grpc, multipleConnections: false);
            using var call = new ExternalProcessor.ExternalProcessorClient(channel).Process();
            var refused = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Timeout()));
            Assert.Contains(refused.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
        }

        Assert.True(await MetricAsync(admin, "sp_extproc_connections_refused_total") >= OverConnections);
        Assert.Equal(MaxConnections, await MetricAsync(admin, "sp_extproc_connections_open"));

        // The held and filling streams complete, and capture goes on: a new exchange on a held
        // connection is exported.
        foreach (var call in held.Skip(MaxConnections - HeldConnections).Concat(fillCalls))
        {
            await CompleteAsync(call);
        }

        await WaitForMetricAsync(admin, "sp_extproc_streams_open", v => v == 0);
        var exported = receiver.Spans.Count;
        using (var after = new ExternalProcessor.ExternalProcessorClient(heldChannels[0]).Process())
        {
            await SendAsync(after, RequestHeaders("/after"));
            await CompleteAsync(after);
        }

        await WaitForMetricAsync(admin, "sp_export_inflight_bytes", v => v == 0);
        await receiver.WaitForSpansAsync(exported + 1, Deadline);
        Assert.Contains(receiver.Spans, s => s.Attributes.Any(a => a.Value.StringValue == "/after"));

        // Within its heap cap all along: 2 x 1 MiB + 16 MiB + 4 x 256 KiB + 8 x 64 KiB.
        await AssertWithinHeapCapAsync(agent, admin, (2 * Budget) + (16 << 20) + (MaxConnections * 256 * 1024) + (MaxStreams * 64 * 1024));
        Assert.Contains("streams are open (extproc.max_streams)", agent.StdErr, StringComparison.Ordinal);
        Assert.Contains("client connections are open (extproc.max_connections)", agent.StdErr, StringComparison.Ordinal);
        foreach (var channel in heldChannels.Concat(fill))
        {
            channel.Dispose();
        }

        Assert.Equal(0, await agent.TerminateAsync());
    }

    [Fact]
    public async Task Proxy_MoreGrpcStreamsThanTheBound_OverItUnavailable_HeldOnesComplete_CaptureGoesOn()
    {
        const int MaxStreams = 4;
        const int Over = 16;

        await using var receiver = await OtlpReceiver.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await HoldingUpstream.StartAsync(release.Task);
        await using var proxy = SpChild.Start(
            "agent", "proxy",
            "--listen", "127.0.0.1:0",
            "--grpc-listen", "127.0.0.1:0",
            "--upstream", upstream.Address.ToString(),
            "--admin", "127.0.0.1:0",
            "--ignore-env",
            "--set", "sp_backend_url=" + receiver.BaseAddress,
            "--set", "public_key=test",
            "--set", "export.batch_delay_ms=20",
            "--set", "export.max_inflight_bytes=" + Budget.ToString(CultureInfo.InvariantCulture),
            "--set", "proxy.max_grpc_streams=" + MaxStreams.ToString(CultureInfo.InvariantCulture));
        var admin = new Uri((await proxy.WaitForLineAsync("admin listening on ")).Split(' ')[3]);
        var grpc = new Uri((await proxy.WaitForLineAsync("proxy listening for gRPC (h2c) on ")).Split(' ')[^1]);

        // The bound's worth of calls, each answered once by the upstream and then held there.
        using var channel = Channel(grpc, multipleConnections: false);
        var client = new ExternalProcessor.ExternalProcessorClient(channel);
        var held = new List<AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse>>();
        for (var i = 0; i < MaxStreams; i++)
        {
            var call = client.Process();
            held.Add(call);
            await SendAsync(call, RequestHeaders("/held/" + i));
        }

        Assert.Equal(MaxStreams, await MetricAsync(admin, "sp_proxy_grpc_streams_open"));

        // Every call over it, on a connection of its own (the first alone, for the SETTINGS), is
        // answered UNAVAILABLE by the proxy, and none reaches the upstream.
        using var overChannel = Channel(grpc, multipleConnections: false);
        var overClient = new ExternalProcessor.ExternalProcessorClient(overChannel);
        var first = await RefusedAsync(overClient);
        RpcException[] over = [first, .. await Task.WhenAll(Enumerable.Range(1, Over - 1).Select(_ => RefusedAsync(overClient)))];
        Assert.All(over, e =>
        {
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Contains("proxy.max_grpc_streams", e.Status.Detail, StringComparison.Ordinal);
        });
        Assert.Equal(Over, await MetricAsync(admin, "sp_proxy_grpc_streams_refused_total"));
        Assert.Equal(MaxStreams, upstream.Calls);

        // The held calls finish with the upstream's OK and are captured; a new call is served.
        release.SetResult();
        foreach (var call in held)
        {
            await call.RequestStream.CompleteAsync();
            Assert.False(await call.ResponseStream.MoveNext(Timeout()));
            Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
            call.Dispose();
        }

        await WaitForMetricAsync(admin, "sp_proxy_grpc_streams_open", v => v == 0);
        using (var after = client.Process())
        {
            await SendAsync(after, RequestHeaders("/after"));
            await after.RequestStream.CompleteAsync();
            Assert.False(await after.ResponseStream.MoveNext(Timeout()));
        }

        await receiver.WaitForSpansAsync(MaxStreams + 1, Deadline);
        Assert.Equal(MaxStreams + 1, upstream.Calls);

        // Within its heap cap: 2 x 1 MiB + 16 MiB + (128 connections + 4 streams) x 256 KiB.
        await AssertWithinHeapCapAsync(proxy, admin, (2 * Budget) + (16 << 20) + ((128 + MaxStreams) * 256 * 1024));
        Assert.Contains("streams are open (proxy.max_grpc_streams)", proxy.StdErr, StringComparison.Ordinal);
        Assert.Equal(0, await proxy.TerminateAsync());
    }

    [Fact]
    public async Task StreamAndConnectionBoundsOutOfRange_StartUpFailsNamingEveryKey()
    {
        var run = await SpProcess.RunAsync(
            "agent", "extproc", "--listen", "127.0.0.1:0", "--ignore-env",
            "--set", "extproc.max_streams=0", "--set", "extproc.max_connections=100000", "--set", "proxy.max_grpc_streams=-1");

        Assert.Equal(2, run.ExitCode);
        var errors = run.StdErr.Split('\n').Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("error: extproc.max_streams:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("error: extproc.max_connections:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("error: proxy.max_grpc_streams:", StringComparison.Ordinal));
    }

    private static GrpcChannel Channel(Uri address, bool multipleConnections) => GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        // Disposing the channel closes its connections: the tests count them at the agent.
        HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = multipleConnections },
        DisposeHttpClient = true,
        MaxSendMessageSize = null,
        MaxReceiveMessageSize = null,
    });

    // A call over a bound: its HTTP/2 HEADERS open the stream, and the refusal comes before any
    // message (a write would race it), so the client only reads.
    private static async Task<RpcException> RefusedAsync(ExternalProcessor.ExternalProcessorClient client)
    {
        using var call = client.Process();
        return await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Timeout()));
    }

    private static async Task SendAsync(AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse> call, ProcessingRequest request)
    {
        using var timeout = new CancellationTokenSource(Deadline);
        await call.RequestStream.WriteAsync(request, timeout.Token);
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token), "the stream ended instead of answering");
    }

    // The rest of an exchange whose request headers (and maybe a partial body) were answered.
    private static async Task CompleteAsync(AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse> call)
    {
        await SendAsync(call, Body(endOfStream: true));
        var map = new HeaderMap();
        map.Headers.Add(new HeaderValue { Key = ":status", RawValue = ByteString.CopyFromUtf8("200") });
        await SendAsync(call, new ProcessingRequest { ResponseHeaders = new HttpHeaders { Headers = map, EndOfStream = true } });
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(Timeout()));
        call.Dispose();
    }

    private static ProcessingRequest RequestHeaders(string path)
    {
        var map = new HeaderMap();
        foreach (var (name, value) in new[] { (":method", "POST"), (":scheme", "http"), (":authority", "shop.example"), (":path", path), ("content-type", "application/octet-stream") })
        {
            map.Headers.Add(new HeaderValue { Key = name, RawValue = ByteString.CopyFromUtf8(value) });
        }

        return new ProcessingRequest { RequestHeaders = new HttpHeaders { Headers = map, EndOfStream = false } };
    }

    private static ProcessingRequest Body(bool endOfStream) =>
        new() { RequestBody = new HttpBody { Body = ByteString.CopyFrom(new byte[endOfStream ? 16 : BodyBytes]), EndOfStream = endOfStream } };

    // A wait on the agent that never comes fails the test (with the step in its stack) instead of hanging it.
    private static CancellationToken Timeout() => new CancellationTokenSource(Deadline).Token;

    private static Task<double> MetricAsync(Uri admin, string series) => AdminMetrics.ValueAsync(admin, series);

    private static Task WaitForMetricAsync(Uri admin, string series, Func<double, bool> condition) =>
        AdminMetrics.WaitForAsync(admin, series, condition, Deadline);

    // The runtime's own figure (the heap after the last collection) is under the cap the agent set,
    // nothing ran out of memory, and the process is up.
    private static async Task AssertWithinHeapCapAsync(SpChild agent, Uri admin, long cap)
    {
        var heap = await MetricAsync(admin, "dotnet_gc_heap_bytes");
        Assert.True(heap > 0 && heap <= cap, $"managed heap {heap} bytes, cap {cap}");
        Assert.False(agent.HasExited);
        Assert.DoesNotContain("OutOfMemory", agent.StdErr, StringComparison.Ordinal);
        Assert.Equal(0, await MetricAsync(admin, "sp_export_loop_faults_total"));
    }

    /// <summary>
    /// A real gRPC upstream (the ext_proc service contract, any bidirectional stream would do): answers
    /// each call's first message, then holds the call until <c>release</c>, then ends it with OK once
    /// the client half-closes.
    /// </summary>
    private sealed class HoldingUpstream : ExternalProcessor.ExternalProcessorBase, IAsyncDisposable
    {
        private readonly Task _release;
        private WebApplication? _app;
        private int _calls;

        private HoldingUpstream(Task release) => _release = release;

        public Uri Address { get; private set; } = null!;

        public int Calls => Volatile.Read(ref _calls);

        public static async Task<HoldingUpstream> StartAsync(Task release)
        {
            var upstream = new HoldingUpstream(release);
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(upstream);
            var app = builder.Build();
            app.MapGrpcService<HoldingUpstream>();
            await app.StartAsync();
            upstream._app = app;
            upstream.Address = new Uri(app.Urls.First());
            return upstream;
        }

        public override async Task Process(IAsyncStreamReader<ProcessingRequest> requestStream, IServerStreamWriter<ProcessingResponse> responseStream, ServerCallContext context)
        {
            Interlocked.Increment(ref _calls);
            while (await requestStream.MoveNext(context.CancellationToken))
            {
                await responseStream.WriteAsync(new ProcessingResponse { RequestHeaders = new HeadersResponse() });
                await _release.WaitAsync(context.CancellationToken);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_app is not null)
            {
                await _app.DisposeAsync();
            }
        }
    }
}
