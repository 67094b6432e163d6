using System.Buffers.Binary;
using System.Text;
using BenchmarkDotNet.Attributes;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Redaction;

namespace SpIstio.Micro.Benchmarks;

/// <summary>
/// What the agent does with a captured unary gRPC call between the capture and the export request
/// (issue 18's proxy cell: a 1 KiB message each way): redact both message lists and both framed
/// bodies, and encode the span. <see cref="OnePass"/> is the agent's path (the lists stay bytes
/// until the span encoder writes them; a framed message equal to a listed one reuses its result;
/// a body that is its list's frames is sent as a reference to the list);
/// <see cref="AttributesFirst"/> is the path of a span whose lists arrived as attributes (encode,
/// then decode JSON and base64 again to redact, and re-encode what changed), the agent's path before.
/// </summary>
[MemoryDiagnoser]
public class GrpcPath
{
    private Redactor _redactor = null!;
    private GrpcMessageList _request = null!;
    private GrpcMessageList _response = null!;
    private CapturedBody _requestBody = null!;
    private CapturedBody _responseBody = null!;

    /// <summary>
    /// zeros: the proxy bench's payload (a bytes field of 1 KiB of zeros); text: a 1 KiB string field
    /// of prose; random-64k: the proxy bench's 64k-random call (a 65,536-byte bytes field of random
    /// bytes), listed to <c>capture.grpc.max_message_bytes</c> and its body cut at the body limit
    /// (65,536 bytes of stream), as the capture hands it over.
    /// </summary>
    [Params("zeros", "text", "random-64k")]
    public string Payload { get; set; } = "zeros";

    [GlobalSetup]
    public void Setup()
    {
        _redactor = Redactor.Create(new AgentOptions().Redaction ?? new RedactionOptions());
        if (Payload == "random-64k")
        {
            SetupCut();
            return;
        }

        var value = Payload == "zeros"
            ? new byte[1024]
            : Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog ", 24))[..1024]);

        // Field 1, length-delimited: 0x0a, varint 1024 (0x80 0x08), the value.
        var message = new byte[3 + value.Length];
        message[0] = 0x0a;
        message[1] = 0x80;
        message[2] = 0x08;
        value.CopyTo(message, 3);
        _request = new GrpcMessageList(1, false, [new GrpcMessage(0, TimeSpan.Zero, false, message.Length, message, false, false)]);
        _response = new GrpcMessageList(1, false, [new GrpcMessage(0, TimeSpan.FromMilliseconds(1), false, message.Length, message.ToArray(), false, false)]);
        var framed = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)message.Length);
        message.CopyTo(framed, 5);
        _requestBody = new CapturedBody(framed, framed.Length, false, BodyKind.Binary, "application/grpc");
        _responseBody = new CapturedBody(framed.ToArray(), framed.Length, false, BodyKind.Binary, "application/grpc");
    }

    private void SetupCut()
    {
        // Field 1, length-delimited: 0x0a, varint 65,536 (0x80 0x80 0x04), the random bytes.
        var message = new byte[4 + 65536];
        message[0] = 0x0a;
        message[1] = 0x80;
        message[2] = 0x80;
        message[3] = 0x04;
        new Random(64).NextBytes(message.AsSpan(4));
        var framed = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)message.Length);
        message.CopyTo(framed, 5);
        using var reader = new GrpcFrameReader(GrpcCaptureLimits.Default, null);
        reader.Append(framed, TimeSpan.Zero);
        reader.Complete();
        _request = new GrpcMessageList(reader.MessageCount, reader.Truncated, [.. reader.Messages]);
        _response = _request with { Messages = [reader.Messages[0] with { Payload = reader.Messages[0].Payload.ToArray() }] };
        _requestBody = new CapturedBody(framed.AsMemory(0, 65536), framed.Length, true, BodyKind.Binary, "application/grpc");
        _responseBody = new CapturedBody(framed.AsSpan(0, 65536).ToArray(), framed.Length, true, BodyKind.Binary, "application/grpc");
    }

    /// <summary>The agent's path: redact the lists and the bodies in one pass, then write the attributes.</summary>
    [Benchmark]
    public int OnePass()
    {
        var exchange = Exchange();
        exchange.GrpcCall = new GrpcCallMessages(_request, _response);
        var count = _redactor.Redact(exchange);
        GrpcCallMessages.Seal(exchange);
        OtlpSpanWriter.Write([exchange], "bench", "1", Stream.Null);
        return count + exchange.Attributes.Count;
    }

    /// <summary>The lists written as attributes first and redacted from there.</summary>
    [Benchmark(Baseline = true)]
    public int AttributesFirst()
    {
        var exchange = Exchange();
        exchange.Attributes[GrpcSpanAttributes.RequestMessages] = GrpcSpanAttributes.EncodeMessages(_request);
        exchange.Attributes[GrpcSpanAttributes.ResponseMessages] = GrpcSpanAttributes.EncodeMessages(_response);
        var count = _redactor.Redact(exchange);
        OtlpSpanWriter.Write([exchange], "bench", "1", Stream.Null);
        return count + exchange.Attributes.Count;
    }

    private Exchange Exchange()
    {
        var exchange = new Exchange { Method = "POST", Path = "/sp.bench.Bench/Unary", StatusCode = 200 };
        exchange.RequestHeaders.Add("content-type", "application/grpc");
        exchange.RequestHeaders.Add("te", "trailers");
        exchange.ResponseHeaders.Add("content-type", "application/grpc");
        exchange.ResponseHeaders.Add("grpc-status", "0");
        exchange.RequestBody = _requestBody;
        exchange.ResponseBody = _responseBody;
        return exchange;
    }
}
