using System.Buffers.Binary;
using System.IO.Pipelines;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.ExtProc.Proto;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>
/// gRPC's framing on the HTTP/2 stream's pipes, as the ext_proc service reads and writes it without
/// Grpc.AspNetCore's stream reader and writer: the same messages, the same refusals.
/// </summary>
public sealed class ExtProcFramesTests
{
    private const int Limit = 64 * 1024;

    [Fact]
    public async Task Messages_SplitAtEveryByte_AreReadWholeAndInOrder_ThenTheEnd()
    {
        var messages = new[]
        {
            Envoy.RequestHeaders("POST", "/orders", false, ("content-type", "application/json")),
            Envoy.RequestBody("{\"id\":1}"u8.ToArray(), true),
            new ProcessingRequest { ResponseHeaders = new HttpHeaders(), ObservabilityMode = true },
        };
        var bytes = messages.SelectMany(Frame).ToArray();
        var pipe = new Pipe();
        var frames = Frames(pipe.Reader);

        // One byte per write: every message arrives in pieces, and its header too.
        var writing = Task.Run(async () =>
        {
            foreach (var b in bytes)
            {
                await pipe.Writer.WriteAsync(new[] { b });
            }

            await pipe.Writer.CompleteAsync();
        });
        var read = new List<(int Type, KeyValuePair<string, string>[] Headers, byte[] Body, bool EndOfStream, bool ObservabilityMode)>();
        while (await NextAsync(frames) is { } request)
        {
            // The stream's one request object, read into again for the next message: each message is
            // looked at when it is taken, as the stream loop does.
            read.Add((request.Type, request.Headers.ToArray(), request.Body.ToArray(), request.EndOfStream, request.ObservabilityMode));
        }

        await writing;
        Assert.Equal([0, 2, 1], read.Select(r => r.Type));
        Assert.Contains(new KeyValuePair<string, string>("content-type", "application/json"), read[0].Headers);
        Assert.Equal("{\"id\":1}"u8.ToArray(), read[1].Body);
        Assert.True(read[1].EndOfStream);
        Assert.False(read[2].EndOfStream);
        Assert.True(read[2].ObservabilityMode);
        Assert.False(read[0].ObservabilityMode);
    }

    [Fact]
    public async Task MessageAnnouncedOverTheLimit_IsRefusedBeforeItsBytesArrive()
    {
        var pipe = new Pipe();
        var frames = Frames(pipe.Reader);
        var header = new byte[5];
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(1), Limit + 1);
        await pipe.Writer.WriteAsync(header);

        var error = await Assert.ThrowsAsync<RpcException>(() => NextAsync(frames));

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    [Fact]
    public async Task CompressedMessage_WithoutGrpcEncoding_IsRefused()
    {
        var pipe = new Pipe();
        var frames = Frames(pipe.Reader);
        var frame = Frame(Envoy.RequestBody([1, 2, 3], true));
        frame[0] = 1;
        await pipe.Writer.WriteAsync(frame);

        var error = await Assert.ThrowsAsync<RpcException>(() => NextAsync(frames));

        Assert.Equal(StatusCode.Internal, error.StatusCode);
    }

    [Fact]
    public async Task RequestsEndingInsideAMessage_AreRefusedAsIncomplete()
    {
        var pipe = new Pipe();
        var frames = Frames(pipe.Reader);
        var frame = Frame(Envoy.RequestBody([1, 2, 3], true));
        await pipe.Writer.WriteAsync(frame.AsMemory(0, frame.Length - 1));
        await pipe.Writer.CompleteAsync();

        var error = await Assert.ThrowsAsync<RpcException>(() => NextAsync(frames));

        Assert.Equal(StatusCode.Internal, error.StatusCode);
        Assert.Contains("Incomplete", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Answers_AreLengthPrefixedMessagesTheGeneratedParserReads()
    {
        var body = new MemoryStream();
        var frames = Frames(new Pipe().Reader, body);

        await frames.WriteAsync(ExtProcResponses.Continue(2), default);
        await frames.WriteAsync(ExtProcResponses.Continue(3), default);

        var written = body.ToArray();
        var answers = new List<ProcessingResponse>();
        for (var at = 0; at < written.Length;)
        {
            Assert.Equal(0, written[at]);
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(written.AsSpan(at + 1));
            answers.Add(ProcessingResponse.Parser.ParseFrom(written, at + 5, length));
            at += 5 + length;
        }

        Assert.Equal([ProcessingResponse.ResponseOneofCase.RequestBody, ProcessingResponse.ResponseOneofCase.ResponseBody], answers.Select(a => a.ResponseCase));
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("identity", true)]
    [InlineData("gzip", false)]
    public void CompressedRequests_AreLeftToGrpcAspNetCore(string? encoding, bool taken)
    {
        var context = Context(new Pipe().Reader, new MemoryStream());
        if (encoding is not null)
        {
            context.Request.Headers["grpc-encoding"] = encoding;
        }

        Assert.Equal(taken, ExtProcFrames.TryCreate(context, Limit) is not null);
        Assert.Null(ExtProcFrames.TryCreate(null, Limit));
    }

    private static async Task<ExtProcRequest?> NextAsync(ExtProcFrames frames)
    {
        ExtProcRequest? request;
        while (!frames.TryTake(await frames.ReadAsync(default), out request))
        {
        }

        return request;
    }

    private static byte[] Frame(ProcessingRequest message)
    {
        var payload = message.ToByteArray();
        var frame = new byte[5 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(frame, 5);
        return frame;
    }

    private static ExtProcFrames Frames(PipeReader requests, Stream? responseBody = null) =>
        ExtProcFrames.TryCreate(Context(requests, responseBody ?? new MemoryStream()), Limit)!;

    private static DefaultHttpContext Context(PipeReader requests, Stream responseBody)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IRequestBodyPipeFeature>(new RequestBody(requests));
        context.Response.Body = responseBody;
        return context;
    }

    private sealed class RequestBody(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader { get; } = reader;
    }
}
