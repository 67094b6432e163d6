using System.Buffers.Binary;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Cache;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Proxy;
using SpIstio.Agent.Tests.ExtProc;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Tests.Cache;

/// <summary>
/// A recorded unary gRPC call answering a matching call (issue 18 §5): the proxy's answer code
/// writes the message and then the status as HTTP/2 trailers, read by a real grpc-dotnet client
/// over Kestrel HTTP/2; ext_proc sends the status in the ImmediateResponse's grpc_status (the
/// trailers-only form Envoy gives local replies to gRPC requests).
/// </summary>
public sealed class GrpcAnswerTests
{
    private static readonly Method<byte[], byte[]> GetFlight = new(
        MethodType.Unary, "test.Flights", "Get", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));

    // Field 1 (string) "SP102": a protobuf message, as a schema-less client sends it.
    private static readonly byte[] Request = [0x0A, 0x05, (byte)'S', (byte)'P', (byte)'1', (byte)'0', (byte)'2'];
    private static readonly byte[] Reply = [0x0A, 0x05, (byte)'S', (byte)'P', (byte)'1', (byte)'0', (byte)'2', 0x10, 0x2A];

    [Fact]
    public async Task Proxy_RecordedOkCall_IsAnsweredWithTheMessageThenTheStatusAsTrailers()
    {
        var recorded = Recorded(Frame(Reply), ("grpc-status", "0"));

        await using var server = await AnsweringServer.StartAsync(CachedResponse.From(recorded, "grpc-status, grpc-message").ToAnswer());
        using var channel = GrpcChannel.ForAddress(server.Address);
        using var call = channel.CreateCallInvoker().AsyncUnaryCall(GetFlight, null, new CallOptions(), Request);

        Assert.Equal(Reply, await call.ResponseAsync);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        // The status came after the message (grpc-dotnet reads it from the trailers), not with the headers.
        var headers = await call.ResponseHeadersAsync;
        Assert.Equal("hit", headers.GetValue("x-sp-cache"));
        Assert.Null(headers.Get("grpc-status"));
    }

    [Fact]
    public async Task Proxy_RecordedError_IsAnsweredTrailersOnly_WithItsStatusAndMessage()
    {
        var recorded = Recorded([], ("grpc-status", "5"), ("grpc-message", "no%20flight%20SP102"));

        await using var server = await AnsweringServer.StartAsync(CachedResponse.From(recorded, null).ToAnswer());
        using var channel = GrpcChannel.ForAddress(server.Address);
        using var call = channel.CreateCallInvoker().AsyncUnaryCall(GetFlight, null, new CallOptions(), Request);

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("no flight SP102", error.Status.Detail);
    }

    [Fact]
    public async Task ExtProc_RecordedCalls_AreAnsweredWithTheirGrpcStatus()
    {
        var options = new AgentOptions { PublicKey = "k" };
        options.Cache.Rules.Add(new CacheRule { Paths = ["/test\\.Flights/.*"] });
        using var cache = new TransparentCache(options, new AgentMetrics(), TimeProvider.System, NullLogger<TransparentCache>.Instance);
        await using var host = await ExtProcTestHost.StartAsync(options, cache);
        byte[] missing = [0x0A, 0x02, (byte)'N', (byte)'O'];

        // Recorded through Envoy: an OK call (message, then trailers) and a NOT_FOUND (trailers-only).
        using (var ok = host.Open())
        {
            await ok.SendAsync(Envoy.RequestHeaders("POST", "/test.Flights/Get", false, ("content-type", "application/grpc"), ("te", "trailers")));
            await ok.SendAsync(Envoy.RequestBody(Frame(Request), true));
            await ok.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/grpc")));
            await ok.SendAsync(Envoy.ResponseBody(Frame(Reply), false));
            await ok.SendAsync(Envoy.ResponseTrailers(("grpc-status", "0")));
            await ok.CompleteAsync();
        }

        using (var notFound = host.Open())
        {
            await notFound.SendAsync(Envoy.RequestHeaders("POST", "/test.Flights/Get", false, ("content-type", "application/grpc")));
            await notFound.SendAsync(Envoy.RequestBody(Frame(missing), true));
            await notFound.SendAsync(Envoy.ResponseHeaders(200, true, ("content-type", "application/grpc"), ("grpc-status", "5"), ("grpc-message", "no%20flight%20NO")));
            await notFound.CompleteAsync();
        }

        await host.Exporter.NextAsync();
        await host.Exporter.NextAsync();

        var okAnswer = await AskAsync(host, Request);
        var notFoundAnswer = await AskAsync(host, missing);

        Assert.Equal(0u, okAnswer.GrpcStatus.Status);
        Assert.Equal(200, (int)okAnswer.Status.Code);
        Assert.Equal(Frame(Reply), okAnswer.Body.ToByteArray());
        Assert.Contains(("grpc-status", "0"), Set(okAnswer));
        Assert.Contains(("content-type", "application/grpc"), Set(okAnswer));
        Assert.Equal(5u, notFoundAnswer.GrpcStatus.Status);
        Assert.Equal("no flight NO", notFoundAnswer.Body.ToStringUtf8());
        Assert.Contains(("grpc-status", "5"), Set(notFoundAnswer));
    }

    private static async Task<ImmediateResponse> AskAsync(ExtProcTestHost host, byte[] message)
    {
        using var stream = host.Open();
        await stream.SendAsync(Envoy.RequestHeaders("POST", "/test.Flights/Get", false, ("content-type", "application/grpc")));
        var answer = await stream.SendAsync(Envoy.RequestBody(Frame(message), true));
        await stream.CompleteAsync();
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ImmediateResponse, answer.ResponseCase);
        return answer.ImmediateResponse;
    }

    private static List<(string, string)> Set(ImmediateResponse answer) =>
        [.. answer.Headers.SetHeaders.Select(h => (h.Header.Key, h.Header.RawValue.ToStringUtf8()))];

    /// <summary>One length-prefixed gRPC message, uncompressed.</summary>
    private static byte[] Frame(byte[] message)
    {
        var frame = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame, 5);
        return frame;
    }

    /// <summary>A finished unary call as the capture records it: trailers among the response headers.</summary>
    private static Exchange Recorded(byte[] body, params (string Name, string Value)[] status)
    {
        var exchange = new Exchange { Method = "POST", Path = "/test.Flights/Get", StatusCode = 200, Outcome = ExchangeOutcome.Completed };
        exchange.ResponseHeaders.Add("content-type", "application/grpc");
        foreach (var (name, value) in status)
        {
            exchange.ResponseHeaders.Add(name, value);
        }

        exchange.ResponseBody = new CapturedBody(body, body.Length, false, BodyKind.Binary, "application/grpc");
        return exchange;
    }

    /// <summary>Kestrel over cleartext HTTP/2 answering every request with one answer through the proxy's answer code.</summary>
    private sealed class AnsweringServer : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private AnsweringServer(WebApplication app, Uri address)
        {
            _app = app;
            Address = address;
        }

        public Uri Address { get; }

        public static async Task<AnsweringServer> StartAsync(ShortCircuitResponse answer)
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
            var app = builder.Build();
            app.Run(context => ShortCircuitWriter.WriteAsync(context.Response, answer, context.RequestAborted));
            await app.StartAsync();
            return new AnsweringServer(app, new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()));
        }

        public ValueTask DisposeAsync() => _app.DisposeAsync();
    }
}
