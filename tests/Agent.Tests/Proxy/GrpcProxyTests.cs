using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Proxy;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Agent.Tests.Proxy.GrpcNotes;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Agent.Tests.Proxy;

/// <summary>
/// A Grpc.AspNetCore server behind the capture proxy's h2c listener and a grpc-dotnet client in
/// front of it; what is asserted is what the user sees: the call's result at the client, and the
/// span the agent exported to a real OTLP receiver.
/// </summary>
public sealed class GrpcProxyTests
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Unary_call_passes_through_and_is_exported_with_service_method_status_and_redacted_messages()
    {
        await using var rig = await GrpcRig.StartAsync();

        var sent = new Note { Text = "write to ada@example.com", N = 7 };
        var reply = await rig.Client.EchoAsync(sent, deadline: Deadline());

        Assert.Equal("echo: write to ada@example.com", reply.Text);
        var span = await rig.SpanAsync("Echo");
        Assert.Equal("grpc", span.Text(GrpcSpanAttributes.RpcSystem));
        Assert.Equal("sp.test.proxy.Notes", span.Text(GrpcSpanAttributes.RpcService));
        Assert.Equal(0, span.Int(GrpcSpanAttributes.RpcStatusCode));
        Assert.Equal("OK", span.Text(GrpcSpanAttributes.StatusName));
        var request = Assert.Single(span.Messages(GrpcSpanAttributes.RequestMessages));
        var response = Assert.Single(span.Messages(GrpcSpanAttributes.ResponseMessages));

        // Redaction ran on the message: the address is gone, the message still parses.
        Assert.Equal("write to [REDACTED]", request.Text);
        Assert.Equal(7, request.N);
        Assert.Equal("echo: write to [REDACTED]", response.Text);
        Assert.Equal("application/grpc", span.Text("http.request.header.content-type"));

        // The stream metrics count both messages and every framed byte (5-byte prefix + message, each way).
        Assert.Equal(2, rig.Metrics.StreamMessages(StreamKinds.Grpc).Value);
        Assert.Equal(5 + sent.CalculateSize() + 5 + reply.CalculateSize(), rig.Metrics.StreamBytes(StreamKinds.Grpc).Value);
    }

    [Fact]
    public async Task Unary_call_past_the_body_limit_is_exported_once_and_stored_by_the_backend_byte_for_byte()
    {
        // A 65,540-byte request (a 65,536-character string field) and a 65,546-byte answer: each body
        // is cut at the limit (65,536) inside the message the list keeps 65,536 bytes of, so the span
        // carries each message once and the backend rebuilds the cut bodies from the lists.
        await using var rig = await GrpcRig.StartAsync();
        await using var backend = await StoringBackend.StartAsync();
        var random = new Random(18);
        var sent = new Note { Text = string.Create(64 * 1024, random, static (chars, r) => { for (var i = 0; i < chars.Length; i++) { chars[i] = (char)('a' + r.Next(26)); } }) };

        var reply = await rig.Client.EchoAsync(sent, deadline: Deadline());

        Assert.Equal("echo: " + sent.Text, reply.Text);
        var (export, span) = await rig.ExportAsync("Echo");
        string? Attribute(string key) => span.Attributes.SingleOrDefault(a => a.Key == key) is { } a ? ExchangeSpanMapper.AsString(a.Value) : null;
        Assert.Null(Attribute(OtlpAttributes.RequestBody));
        Assert.Null(Attribute(OtlpAttributes.ResponseBody));
        Assert.Equal(OtlpAttributes.GrpcMessageFramesPrefix, Attribute(OtlpAttributes.RequestBodyMetaPrefix + OtlpAttributes.BodyEncodingSuffix));
        Assert.Equal(OtlpAttributes.GrpcMessageFramesPrefix, Attribute(OtlpAttributes.ResponseBodyMetaPrefix + OtlpAttributes.BodyEncodingSuffix));

        // Each message goes out as bytes (not base64) in its list, and the export is about the two
        // messages' size: 2 x 65,536 bytes kept and the span around them.
        foreach (var (key, note) in (ReadOnlySpan<(string, Note)>)[(GrpcSpanAttributes.RequestMessages, sent), (GrpcSpanAttributes.ResponseMessages, reply)])
        {
            var list = Assert.Single(span.Attributes, a => a.Key == key).Value.KvlistValue;
            var message = Assert.Single(list.Values.Single(e => e.Key == "messages").Value.ArrayValue.Values).KvlistValue;
            Assert.Equal(note.ToByteArray()[..CaptureOptions.DefaultBodyLimit], message.Values.Single(e => e.Key == "data").Value.BytesValue.ToByteArray());
        }

        Assert.InRange(export.Body.Length, 2 * CaptureOptions.DefaultBodyLimit, (2 * CaptureOptions.DefaultBodyLimit) + 4096);

        var stored = await backend.StoreAsync(export, span);
        Assert.Equal(Framed(sent)[..CaptureOptions.DefaultBodyLimit], stored.RequestBody.ToArray());
        Assert.Equal(Framed(reply)[..CaptureOptions.DefaultBodyLimit], stored.ResponseBody.ToArray());

        // The store keeps each list as the JSON the Trace View, HAR and replay read, payloads whole.
        using var attributes = System.Text.Json.JsonDocument.Parse(stored.AttributesJson);
        var storedRequest = GrpcSpanAttributes.DecodeMessages(attributes.RootElement.GetProperty(GrpcSpanAttributes.RequestMessages).GetString());
        var storedReply = GrpcSpanAttributes.DecodeMessages(attributes.RootElement.GetProperty(GrpcSpanAttributes.ResponseMessages).GetString());
        Assert.Equal(sent.ToByteArray()[..CaptureOptions.DefaultBodyLimit], Assert.Single(storedRequest!.Messages).Payload.ToArray());
        Assert.Equal(reply.ToByteArray()[..CaptureOptions.DefaultBodyLimit], Assert.Single(storedReply!.Messages).Payload.ToArray());

        static byte[] Framed(Note note)
        {
            var message = note.ToByteArray();
            var frame = new byte[5 + message.Length];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
            message.CopyTo(frame, 5);
            return frame;
        }
    }

    [Fact]
    public async Task Unary_answer_reaches_the_client_before_the_capture_is_redacted_and_queued()
    {
        var exporter = new GatedExporter();
        await using var rig = await GrpcRig.StartAsync(exporter);

        // The exporter holds the call's capture until released: the answer (its trailers) must not
        // wait for the capture's finish (redaction, span encode, queueing), which used to run before
        // the proxy's handler returned and the HTTP/2 stream ended.
        var reply = await rig.Client.EchoAsync(new Note { Text = "fast", N = 1 }, deadline: Deadline());

        Assert.Equal("echo: fast", reply.Text);
        Assert.False(exporter.AnyQueued, "the capture was queued before the client had its answer");
        exporter.Release();
        var exchange = await exporter.Queued.WaitAsync(CallTimeout);
        Assert.Equal("/sp.test.proxy.Notes/Echo", exchange.Path);
        Assert.Equal("0", exchange.Attributes[GrpcSpanAttributes.RpcStatusCode]);
    }

    [Fact]
    public async Task Next_call_on_a_connection_at_its_stream_limit_is_served_while_the_last_ones_capture_is_finished()
    {
        // One stream allowed (the connection's SETTINGS_MAX_CONCURRENT_STREAMS and the bound over all
        // connections), and the exporter holds every capture until released: the first call has its
        // answer while its capture's finish still runs in the proxy's handler.
        var exporter = new GatedExporter();
        await using var rig = await GrpcRig.StartAsync(exporter, maxGrpcStreams: 1);
        var first = await rig.Client.EchoAsync(new Note { Text = "first", N = 1 }, deadline: Deadline());
        Assert.Equal("echo: first", first.Text);
        Assert.False(exporter.AnyQueued, "the capture was queued before the client had its answer");

        // The client kept to the limit: its stream ended, so its next call takes the one allowed.
        // The bound used to count the first call until its handler returned, and refused this one
        // with UNAVAILABLE.
        var second = await rig.Client.EchoAsync(new Note { Text = "second", N = 2 }, deadline: Deadline());

        Assert.Equal("echo: second", second.Text);
        Assert.Equal(0L, rig.Metrics.ProxyGrpcStreamsRefused.Value);
        exporter.Release();
        var exchange = await exporter.Queued.WaitAsync(CallTimeout);
        Assert.Equal("/sp.test.proxy.Notes/Echo", exchange.Path);
    }

    [Fact]
    public async Task Server_streaming_reaches_the_client_message_by_message()
    {
        await using var rig = await GrpcRig.StartAsync();

        using var call = rig.Client.Count(new Note { N = 3 }, deadline: Deadline());
        var received = new List<int>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            received.Add(call.ResponseStream.Current.N);

            // The server sends the next note only after this acknowledgement: a proxy that held
            // the response stream back would never deliver the first one, and the call would stall.
            rig.Service.Acknowledge();
        }

        Assert.Equal([1, 2, 3], received);
        var span = await rig.SpanAsync("Count");
        Assert.Equal(0, span.Int(GrpcSpanAttributes.RpcStatusCode));
        Assert.Equal([1, 2, 3], span.Messages(GrpcSpanAttributes.ResponseMessages).Select(n => n.N));
        Assert.Equal(3, Assert.Single(span.Messages(GrpcSpanAttributes.RequestMessages)).N);
    }

    [Fact]
    public async Task Client_streaming_is_summed_by_the_server_and_every_request_message_is_captured()
    {
        await using var rig = await GrpcRig.StartAsync();

        using var call = rig.Client.Sum(deadline: Deadline());
        foreach (var n in new[] { 2, 3, 5 })
        {
            await call.RequestStream.WriteAsync(new Note { N = n });
        }

        await call.RequestStream.CompleteAsync();
        var sum = await call.ResponseAsync;

        Assert.Equal(10, sum.N);
        var span = await rig.SpanAsync("Sum");
        Assert.Equal([2, 3, 5], span.Messages(GrpcSpanAttributes.RequestMessages).Select(n => n.N));
        Assert.Equal(10, Assert.Single(span.Messages(GrpcSpanAttributes.ResponseMessages)).N);
        Assert.Equal(0, span.Int(GrpcSpanAttributes.RpcStatusCode));
    }

    [Fact]
    public async Task Bidirectional_stream_is_full_duplex_through_the_proxy()
    {
        await using var rig = await GrpcRig.StartAsync();

        using var call = rig.Client.Chat(deadline: Deadline());
        var replies = new List<string>();
        foreach (var word in new[] { "one", "two", "three" })
        {
            // Each reply is awaited before the next request is written: neither direction may be
            // buffered to its end, or the first reply never comes.
            await call.RequestStream.WriteAsync(new Note { Text = word });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            replies.Add(call.ResponseStream.Current.Text);
        }

        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));

        Assert.Equal(["re: one", "re: two", "re: three"], replies);
        var span = await rig.SpanAsync("Chat");
        var requests = span.Messages(GrpcSpanAttributes.RequestMessages);
        var responses = span.Messages(GrpcSpanAttributes.ResponseMessages);
        Assert.Equal(["one", "two", "three"], requests.Select(n => n.Text));
        Assert.Equal(replies, responses.Select(n => n.Text));

        // Offsets follow the conversation: each reply after its request, each request after the previous reply.
        var offsets = span.Offsets(GrpcSpanAttributes.RequestMessages).Zip(span.Offsets(GrpcSpanAttributes.ResponseMessages)).ToList();
        for (var i = 0; i < offsets.Count; i++)
        {
            Assert.True(offsets[i].Second >= offsets[i].First, $"reply {i} at {offsets[i].Second} ms before its request at {offsets[i].First} ms");
            if (i > 0)
            {
                Assert.True(offsets[i].First >= offsets[i - 1].Second, $"request {i} at {offsets[i].First} ms before reply {i - 1}");
            }
        }
    }

    [Fact]
    public async Task Deadline_exceeded_reaches_the_client_and_the_capture_is_finished_with_that_status()
    {
        await using var rig = await GrpcRig.StartAsync();

        // The client computes grpc-timeout before it opens its connection: a first call would spend
        // part of its deadline on connection set-up before the proxy sees it. Open it first, so the
        // agent sees the whole deadline, as it does for any call on an established connection.
        await rig.Client.EchoAsync(new Note { Text = "warm" });

        var error = await Assert.ThrowsAsync<RpcException>(
            async () => await rig.Client.HangAsync(new Note { Text = "wait" }, deadline: DateTime.UtcNow.AddSeconds(2)));

        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        var span = await rig.SpanAsync("Hang");

        // Either the server's DEADLINE_EXCEEDED trailers came through first, or the client's reset
        // did and the agent inferred the status from grpc-timeout: the span says the same.
        Assert.Equal(4, span.Int(GrpcSpanAttributes.RpcStatusCode));
        Assert.Equal("DEADLINE_EXCEEDED", span.Text(GrpcSpanAttributes.StatusName));
        Assert.Equal("wait", Assert.Single(span.Messages(GrpcSpanAttributes.RequestMessages)).Text);
    }

    [Fact]
    public async Task Cancelled_stream_is_exported_as_cancelled_with_what_was_seen()
    {
        await using var rig = await GrpcRig.StartAsync();
        using var cancel = new CancellationTokenSource();

        using var call = rig.Client.Count(new Note { N = 5 }, deadline: Deadline(), cancellationToken: cancel.Token);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(1, call.ResponseStream.Current.N);
        await cancel.CancelAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));

        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        var span = await rig.SpanAsync("Count");
        Assert.Equal(1, span.Int(GrpcSpanAttributes.RpcStatusCode));
        Assert.Equal("true", span.Text(GrpcSpanAttributes.StatusInferred));
        Assert.Equal(1, Assert.Single(span.Messages(GrpcSpanAttributes.ResponseMessages)).N);
    }

    [Fact]
    public async Task Non_OK_status_with_a_message_reaches_the_client_and_the_span()
    {
        await using var rig = await GrpcRig.StartAsync();

        var error = await Assert.ThrowsAsync<RpcException>(
            async () => await rig.Client.FailAsync(new Note { Text = "ghost" }, deadline: Deadline()));

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("no note 'ghost' – ünïcode", error.Status.Detail);
        var span = await rig.SpanAsync("Fail");
        Assert.Equal(5, span.Int(GrpcSpanAttributes.RpcStatusCode));
        Assert.Equal("NOT_FOUND", span.Text(GrpcSpanAttributes.StatusName));
        Assert.Equal("no note 'ghost' – ünïcode", span.Text(GrpcSpanAttributes.StatusMessage));
        Assert.Null(span.Text(GrpcSpanAttributes.ResponseMessages));
    }

    private static DateTime Deadline() => DateTime.UtcNow.Add(CallTimeout);

    /// <summary>The service: each method is one call shape; <see cref="Acknowledge"/> paces server streaming.</summary>
    internal sealed class NotesService : Notes.NotesBase
    {
        private readonly SemaphoreSlim _acknowledged = new(0);

        public void Acknowledge() => _acknowledged.Release();

        public override Task<Note> Echo(Note request, ServerCallContext context) =>
            Task.FromResult(new Note { Text = "echo: " + request.Text, N = request.N });

        public override async Task Count(Note request, IServerStreamWriter<Note> responseStream, ServerCallContext context)
        {
            for (var i = 1; i <= request.N; i++)
            {
                await responseStream.WriteAsync(new Note { N = i }, context.CancellationToken);
                if (i < request.N)
                {
                    await _acknowledged.WaitAsync(context.CancellationToken);
                }
            }
        }

        public override async Task<Note> Sum(IAsyncStreamReader<Note> requestStream, ServerCallContext context)
        {
            var sum = 0;
            await foreach (var note in requestStream.ReadAllAsync(context.CancellationToken))
            {
                sum += note.N;
            }

            return new Note { N = sum };
        }

        public override async Task Chat(IAsyncStreamReader<Note> requestStream, IServerStreamWriter<Note> responseStream, ServerCallContext context)
        {
            await foreach (var note in requestStream.ReadAllAsync(context.CancellationToken))
            {
                await responseStream.WriteAsync(new Note { Text = "re: " + note.Text }, context.CancellationToken);
            }
        }

        public override async Task<Note> Hang(Note request, ServerCallContext context)
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
            return request;
        }

        public override Task<Note> Fail(Note request, ServerCallContext context) =>
            throw new RpcException(new Status(StatusCode.NotFound, "no note '" + request.Text + "' – ünïcode"));
    }

    /// <summary>OTLP receiver ← agent runtime ← capture proxy (h2c) ← client; proxy → Grpc.AspNetCore server.</summary>
    private sealed class GrpcRig : IAsyncDisposable
    {
        private readonly OtlpReceiver _receiver;
        private readonly WebApplication _server;
        private readonly AgentRuntime _runtime;
        private readonly CaptureProxyServer _proxy;
        private readonly GrpcChannel _channel;

        private GrpcRig(OtlpReceiver receiver, WebApplication server, NotesService service, AgentRuntime runtime, CaptureProxyServer proxy, AgentMetrics metrics)
        {
            _receiver = receiver;
            _server = server;
            Service = service;
            _runtime = runtime;
            _proxy = proxy;
            Metrics = metrics;
            _channel = GrpcChannel.ForAddress(proxy.GrpcAddress!);
            Client = new Notes.NotesClient(_channel);
        }

        public Notes.NotesClient Client { get; }

        public NotesService Service { get; }

        public AgentMetrics Metrics { get; }

        /// <summary>
        /// The rig; with <paramref name="exporter"/>, the proxy's captures go there instead of to the
        /// OTLP receiver; <paramref name="maxGrpcStreams"/> is <c>proxy.max_grpc_streams</c>.
        /// </summary>
        public static async Task<GrpcRig> StartAsync(IExchangeExporter? exporter = null, int maxGrpcStreams = ProxyOptions.DefaultMaxGrpcStreams)
        {
            var receiver = await OtlpReceiver.StartAsync();
            var service = new NotesService();
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.Services.AddLogging();
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(service);
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
            var server = builder.Build();
            server.UseRouting();
            server.MapGrpcService<NotesService>();
            await server.StartAsync();
            var upstream = new Uri(server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

            var options = new AgentOptions
            {
                SpBackendUrl = receiver.BaseAddress,
                PublicKey = "pk-test",
                ServiceName = "notes",
                Export = new ExportOptions { BatchDelayMs = 20 },
            };
            var runtime = AgentRuntime.Create(options, NullLoggerFactory.Instance);
            var pipeline = exporter is null
                ? runtime.Pipeline
                : new CapturePipeline(options, exporter, new AgentMetrics(), NullLogger<CapturePipeline>.Instance);
            var proxy = await CaptureProxyServer.StartAsync(
                new ListenAddress("127.0.0.1", 0),
                new CaptureProxyOptions { Upstream = upstream, GrpcListen = new ListenAddress("127.0.0.1", 0), MaxGrpcStreams = maxGrpcStreams },
                pipeline,
                NullLoggerFactory.Instance);
            return new GrpcRig(receiver, server, service, runtime, proxy, pipeline.Metrics);
        }

        /// <summary>The one exported span of the call to <paramref name="method"/>, once it arrived.</summary>
        public async Task<GrpcSpan> SpanAsync(string method)
        {
            await OtlpReceiver.WaitUntilAsync(
                () => _receiver.Spans.Any(s => new GrpcSpan(s).Text(GrpcSpanAttributes.RpcMethod) == method),
                CallTimeout,
                () => "no span for " + method + "; spans: " + string.Join(", ", _receiver.Spans.Select(s => s.Name)));
            return new GrpcSpan(_receiver.Spans.Single(s => new GrpcSpan(s).Text(GrpcSpanAttributes.RpcMethod) == method));
        }

        /// <summary>The export that carried the one span of the call to <paramref name="method"/>, and the span, once it arrived.</summary>
        public async Task<(ReceivedExport Export, OtlpSpan Span)> ExportAsync(string method)
        {
            await SpanAsync(method);
            var export = _receiver.Requests.Single(r => r.Spans.Any(s => new GrpcSpan(s).Text(GrpcSpanAttributes.RpcMethod) == method));
            return (export, export.Spans.Single(s => new GrpcSpan(s).Text(GrpcSpanAttributes.RpcMethod) == method));
        }

        public async ValueTask DisposeAsync()
        {
            _channel.Dispose();
            await _proxy.DisposeAsync();
            await _runtime.DisposeAsync();
            await _server.DisposeAsync();
            await _receiver.DisposeAsync();
        }
    }

    /// <summary>
    /// An exporter that holds the first exchange handed to it until <see cref="Release"/> (or the
    /// call timeout, so a proxy that waits for it still lets the test end and fail).
    /// </summary>
    private sealed class GatedExporter : IExchangeExporter
    {
        private readonly ManualResetEventSlim _release = new();
        private readonly TaskCompletionSource<Exchange> _queued = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<Exchange> Queued => _queued.Task;

        public bool AnyQueued => _queued.Task.IsCompleted;

        public void Release() => _release.Set();

        public bool TryEnqueue(Exchange exchange)
        {
            _release.Wait(CallTimeout / 2);
            _queued.TrySetResult(exchange);
            return true;
        }
    }

    internal sealed class GrpcSpan(OtlpSpan span)
    {
        public string? Text(string key) => span.Attributes.FirstOrDefault(a => a.Key == key) is { } a ? ExchangeSpanMapper.AsString(a.Value) : null;

        public long? Int(string key)
        {
            var attribute = span.Attributes.FirstOrDefault(a => a.Key == key);
            Assert.NotNull(attribute);
            Assert.Equal(Core.Otlp.Proto.Common.AnyValue.ValueOneofCase.IntValue, attribute.Value.ValueCase);
            return attribute.Value.IntValue;
        }

        public List<Note> Messages(string key) =>
            [.. (GrpcSpanAttributes.DecodeMessages(Text(key)) ?? throw new Xunit.Sdk.XunitException("no " + key)).Messages.Select(m => Note.Parser.ParseFrom(m.Payload.Span))];

        public List<double> Offsets(string key) =>
            [.. GrpcSpanAttributes.DecodeMessages(Text(key))!.Messages.Select(m => m.Offset.TotalMilliseconds)];
    }
}
