using System.Text;
using System.Text.Unicode;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;

namespace SpIstio.Micro.Benchmarks;

/// <summary>
/// Reading the four ProcessingRequest messages of the ext_proc bench's 2 KiB sync exchange (request
/// headers, request body, response headers, response body) from their bytes into the header strings
/// and body bytes the exchange keeps (issue 13). <see cref="Reader"/> is the agent's path
/// (<see cref="ProcessingRequestReader"/>); <see cref="Generated"/> is the path before it: the
/// generated parser, then each header value decoded as ExtProcStream did.
/// </summary>
[MemoryDiagnoser]
public class ExtProcParse
{
    private byte[][] _messages = [];

    [GlobalSetup]
    public void Setup()
    {
        var body = ByteString.CopyFromUtf8(new string('x', 2048));
        _messages =
        [
            new ProcessingRequest
            {
                RequestHeaders = new HttpHeaders
                {
                    Headers = Map(
                        (":method", "POST"), (":scheme", "http"), (":authority", "orders.shop.svc.cluster.local:8080"), (":path", "/api/orders"),
                        ("user-agent", "load-driver/1.0"), ("x-request-id", "0d6f2bb4-8c1e-4f3a-9a53-6d0c1f2e9b11"), ("x-sp-session-id", "sess-bench-1"),
                        ("content-type", "application/json"), ("content-length", "2048")),
                },
            }.ToByteArray(),
            new ProcessingRequest { RequestBody = new HttpBody { Body = body, EndOfStream = true } }.ToByteArray(),
            new ProcessingRequest
            {
                ResponseHeaders = new HttpHeaders
                {
                    Headers = Map((":status", "200"), ("date", "Mon, 23 Nov 2026 11:00:00 GMT"), ("content-type", "application/json"), ("content-length", "2048")),
                },
            }.ToByteArray(),
            new ProcessingRequest { ResponseBody = new HttpBody { Body = body, EndOfStream = true } }.ToByteArray(),
        ];
    }

    [Benchmark(Baseline = true)]
    public long Generated()
    {
        long seen = 0;
        foreach (var bytes in _messages)
        {
            var message = ProcessingRequest.Parser.ParseFrom(bytes);
            if ((message.RequestHeaders ?? message.ResponseHeaders)?.Headers is { } map)
            {
                foreach (var header in map.Headers)
                {
                    var raw = header.RawValue.Span;
                    var value = raw.IsEmpty ? header.Value : Utf8.IsValid(raw) ? Encoding.UTF8.GetString(raw) : Encoding.Latin1.GetString(raw);
                    seen += header.Key.Length + value.Length;
                }
            }

            seen += (message.RequestBody ?? message.ResponseBody)?.Body.Length ?? 0;
        }

        return seen;
    }

    [Benchmark]
    public long Reader()
    {
        long seen = 0;

        // As the agent's stream reads them (ExtProcFrames): the exchange's messages into one request object.
        var request = new ExtProcRequest();
        foreach (var bytes in _messages)
        {
            var message = ProcessingRequestReader.Read(bytes, request);
            foreach (var (name, value) in message.Headers)
            {
                seen += name.Length + value.Length;
            }

            seen += message.Body.Length;

            // As the agent's stream does once a message is handled: the body's rented array goes back.
            message.ReturnBodyArray();
        }

        return seen;
    }

    private static HeaderMap Map(params (string Name, string Value)[] fields)
    {
        var map = new HeaderMap();
        foreach (var (name, value) in fields)
        {
            map.Headers.Add(new HeaderValue { Key = name, RawValue = ByteString.CopyFromUtf8(value) });
        }

        return map;
    }
}
