using System.Buffers.Binary;
using System.IO.Compression;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Otlp;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;
using HeaderSendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.HeaderSendMode;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>gRPC calls through ext_proc, in the message sequences Envoy sends for them (trailers asked for).</summary>
public sealed class ExtProcGrpcTests
{
    // OrderRequest { order_id = "ord-1" } and OrderReply { order_id = "ord-1", total_cents = 1234 } on the wire.
    private static readonly byte[] _request = [0x0A, 0x05, .. "ord-1"u8];
    private static readonly byte[] _reply = [0x0A, 0x05, .. "ord-1"u8, 0x10, 0xD2, 0x09];

    [Fact]
    public async Task UnaryCall_MessagesCutAcrossChunksAndACompressedReply_AreCapturedWithTheTrailerStatus()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();
        var requestFrame = Frame(_request);

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/shop.Orders/Get", false, ("content-type", "application/grpc"), ("te", "trailers")));
        await stream.SendAsync(Envoy.RequestBody(requestFrame[..3], false));
        await stream.SendAsync(Envoy.RequestBody(requestFrame[3..], true));
        await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/grpc"), ("grpc-encoding", "gzip")));
        await stream.SendAsync(Envoy.ResponseBody(Frame(Gzip(_reply), compressed: true), false));
        await stream.SendAsync(Envoy.ResponseTrailers(("grpc-status", "5"), ("grpc-message", "order%20ord-1%20gone")));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal("grpc", exchange.Attributes[GrpcSpanAttributes.RpcSystem]);
        Assert.Equal("shop.Orders", exchange.Attributes[GrpcSpanAttributes.RpcService]);
        Assert.Equal("Get", exchange.Attributes[GrpcSpanAttributes.RpcMethod]);
        Assert.Equal("5", exchange.Attributes[GrpcSpanAttributes.RpcStatusCode]);
        Assert.Equal("NOT_FOUND", exchange.Attributes[GrpcSpanAttributes.StatusName]);
        Assert.Equal("order ord-1 gone", exchange.Attributes[GrpcSpanAttributes.StatusMessage]);
        var requests = GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.RequestMessages))!;
        Assert.Equal(_request, Assert.Single(requests.Messages).Payload.ToArray());
        var replies = GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.ResponseMessages))!;
        var reply = Assert.Single(replies.Messages);
        Assert.True(reply.Compressed);
        Assert.True(reply.Decoded);
        Assert.Equal(_reply, reply.Payload.ToArray());
    }

    [Fact]
    public async Task BodyLimitCutsTheStreamAndAContentCodedReply_MessagesAreStillListedWhole()
    {
        // The request body keeps 10 bytes (inside the first message), so the messages the capture
        // located in it are copied out when it stops; the reply's body is content-coded, so its
        // messages are copied out before the body is decoded rather than taken from it.
        var options = new AgentOptions();
        options.Capture.MaxRequestBodyBytes = 10;
        await using var host = await ExtProcTestHost.StartAsync(options);
        using var stream = host.Open();
        byte[] second = [0x0A, 0x03, .. "ord"u8];
        var requestFrames = Frame(_request).Concat(Frame(second)).ToArray();

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/shop.Orders/Get", false, ("content-type", "application/grpc")));
        await stream.SendAsync(Envoy.RequestBody(requestFrames[..7], false));
        await stream.SendAsync(Envoy.RequestBody(requestFrames[7..], true));
        await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/grpc"), ("content-encoding", "gzip")));
        await stream.SendAsync(Envoy.ResponseBody(Frame(_reply), false));
        await stream.SendAsync(Envoy.ResponseTrailers(("grpc-status", "0")));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.True(exchange.RequestBody.Truncated);
        Assert.Equal(requestFrames[..10], exchange.RequestBody.Content.ToArray());
        var requests = GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.RequestMessages))!;
        Assert.Equal([_request, second], requests.Messages.Select(m => m.Payload.ToArray()));
        Assert.All(requests.Messages, m => Assert.False(m.Truncated));
        var replies = GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.ResponseMessages))!;
        Assert.Equal(_reply, Assert.Single(replies.Messages).Payload.ToArray());
        Assert.Equal("OK", exchange.Attributes[GrpcSpanAttributes.StatusName]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UnaryCallPastTheBodyLimitInSixteenKiBChunks_IsStoredByTheBackendByteForByte(bool compressed)
    {
        // The bench's 64k-random call: a 65,540-byte message (a 65,536-byte bytes field) in a 65,545-byte
        // frame, each way, past the body limit and the message limit (65,536 both). Uncompressed, the
        // cut body is the start of its listed message's frame and goes out once, as a reference to the
        // list; compressed (flag 1, the list holds the message decoded), it keeps its own bytes.
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = await StoringBackend.StartAsync();
        await using var extProc = await ExportingExtProc.StartAsync(receiver);
        using var stream = extProc.OpenStream();
        var requestFrame = LargeFrame(1, compressed);
        var replyFrame = LargeFrame(2, compressed);
        var grpcEncoding = ("grpc-encoding", compressed ? "gzip" : "identity");
        const int Chunk = 16 * 1024;

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/shop.Orders/Put", false, ("content-type", "application/grpc"), grpcEncoding));
        for (var offset = 0; offset < requestFrame.Length; offset += Chunk)
        {
            var end = Math.Min(offset + Chunk, requestFrame.Length);
            await stream.SendAsync(Envoy.RequestBody(requestFrame[offset..end], end == requestFrame.Length));
        }

        await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/grpc"), grpcEncoding));
        for (var offset = 0; offset < replyFrame.Length; offset += Chunk)
        {
            await stream.SendAsync(Envoy.ResponseBody(replyFrame[offset..Math.Min(offset + Chunk, replyFrame.Length)], false));
        }

        await stream.SendAsync(Envoy.ResponseTrailers(("grpc-status", "0")));
        await stream.CompleteAsync();
        await receiver.WaitForSpansAsync(1);

        var span = Assert.Single(receiver.Spans);
        string? Attribute(string key) => span.Attributes.SingleOrDefault(a => a.Key == key) is { } a ? ExchangeSpanMapper.AsString(a.Value) : null;
        foreach (var (body, meta) in (ReadOnlySpan<(string, string)>)[(OtlpAttributes.RequestBody, OtlpAttributes.RequestBodyMetaPrefix), (OtlpAttributes.ResponseBody, OtlpAttributes.ResponseBodyMetaPrefix)])
        {
            Assert.Equal(compressed ? OtlpAttributes.Base64 : OtlpAttributes.GrpcMessageFramesPrefix, Attribute(meta + OtlpAttributes.BodyEncodingSuffix));
            Assert.Equal(compressed, Attribute(body) is not null);
            Assert.Equal(compressed ? null : "65536", Attribute(meta + OtlpAttributes.BodyFramesLengthSuffix));
            Assert.Equal("true", Attribute(meta + OtlpAttributes.BodyTruncatedSuffix));
        }

        var stored = await backend.StoreAsync(receiver.Requests.Single(), span);
        Assert.Equal(requestFrame[..CaptureOptions.DefaultBodyLimit], stored.RequestBody.ToArray());
        Assert.Equal(replyFrame[..CaptureOptions.DefaultBodyLimit], stored.ResponseBody.ToArray());
    }

    [Fact]
    public async Task TrailersOnlyResponse_TakesTheStatusFromTheHeaders()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/shop.Orders/Nope", false, ("content-type", "application/grpc+proto")));
        await stream.SendAsync(Envoy.RequestBody(Frame(_request), true));
        await stream.SendAsync(Envoy.ResponseHeaders(200, true, ("content-type", "application/grpc"), ("grpc-status", "12"), ("grpc-message", "unknown method")));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal("UNIMPLEMENTED", exchange.Attributes[GrpcSpanAttributes.StatusName]);
        Assert.Equal("12", exchange.Attributes[GrpcSpanAttributes.RpcStatusCode]);
        Assert.Null(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.ResponseMessages));
        Assert.Single(GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.RequestMessages))!.Messages);
    }

    [Fact]
    public async Task ServerStream_EveryMessageIsListedInOrder()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/shop.Orders/Watch", false, ("content-type", "application/grpc")));
        await stream.SendAsync(Envoy.RequestBody(Frame(_request), true));
        await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/grpc")));
        for (var i = 0; i < 3; i++)
        {
            await stream.SendAsync(Envoy.ResponseBody(Frame([0x10, (byte)(i + 1)]), false));
        }

        await stream.SendAsync(Envoy.ResponseTrailers(("grpc-status", "0")));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        var replies = GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.ResponseMessages))!;
        Assert.Equal(3, replies.Count);
        Assert.Equal([1, 2, 3], replies.Messages.Select(m => (int)m.Payload.Span[1]));
        Assert.Equal([0, 1, 2], replies.Messages.Select(m => m.Index));
        Assert.Equal("OK", exchange.Attributes[GrpcSpanAttributes.StatusName]);
    }

    [Fact]
    public async Task SyncModeWithBufferedBodies_SwitchesAGrpcCallToStreamedBodiesAndTrailers()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var grpc = host.Open();
        using var json = host.Open();

        var grpcAnswer = await grpc.SendAsync(Envoy.RequestHeaders("POST", "/shop.Orders/Watch", false, ("content-type", "application/grpc"))
            .WithBodyModes(BodySendMode.Buffered, BodySendMode.Buffered));
        var jsonAnswer = await json.SendAsync(Envoy.RequestHeaders("POST", "/orders", false, ("content-type", "application/json"))
            .WithBodyModes(BodySendMode.Buffered, BodySendMode.Buffered));

        var mode = grpcAnswer.ModeOverride;
        Assert.NotNull(mode);
        Assert.Equal(BodySendMode.Streamed, mode.RequestBodyMode);
        Assert.Equal(BodySendMode.Streamed, mode.ResponseBodyMode);
        Assert.Equal(HeaderSendMode.Send, mode.ResponseHeaderMode);
        Assert.Equal(HeaderSendMode.Send, mode.ResponseTrailerMode);
        Assert.Null(jsonAnswer.ModeOverride);

        // Streamed from here on: a client stream's first message is captured without waiting for its end.
        await grpc.SendAsync(Envoy.RequestBody(Frame(_request), false));
        await grpc.SendAsync(Envoy.RequestBody(Frame(_request), true));
        await grpc.SendAsync(Envoy.ResponseHeaders(200, true, ("content-type", "application/grpc"), ("grpc-status", "0")));
        await grpc.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(2, GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.RequestMessages))!.Count);
    }

    [Fact]
    public async Task PlainHttpExchange_GetsNoGrpcAttributes()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/shop.Orders/Get", false, ("content-type", "application/json")));
        await stream.SendAsync(Envoy.RequestBody("{}", true));
        await stream.SendAsync(Envoy.ResponseHeaders(200, true, ("grpc-status", "0")));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.DoesNotContain(exchange.Attributes.Keys, k => k.StartsWith("rpc.", StringComparison.Ordinal) || k.StartsWith("sp.grpc.", StringComparison.Ordinal));
    }

    private static byte[] Frame(byte[] message, bool compressed = false)
    {
        var frame = new byte[5 + message.Length];
        frame[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame, 5);
        return frame;
    }

    // A frame of a message whose one bytes field holds 65,536 random bytes (seeded): 65,540 bytes, gzip-compressed when asked.
    private static byte[] LargeFrame(int seed, bool compressed)
    {
        var message = new byte[4 + (64 * 1024)];
        message[0] = 0x0A;
        message[1] = 0x80;
        message[2] = 0x80;
        message[3] = 0x04;
        new Random(seed).NextBytes(message.AsSpan(4));
        return compressed ? Frame(Gzip(message), compressed: true) : Frame(message);
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }
}
