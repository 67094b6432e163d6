using System.Buffers.Binary;
using System.Net;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Backend.Replay;

namespace SpIstio.Backend.Tests.Replay;

/// <summary>
/// <c>sp replay</c>'s runner re-sending recorded unary gRPC calls to a real Grpc.AspNetCore server
/// over cleartext HTTP/2, comparing the messages field by field (schema-less, by field number) and
/// the status.
/// </summary>
public sealed class GrpcReplayTests : IAsyncLifetime
{
    private WebApplication _target = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddRoutingCore();
        builder.Services.AddGrpc();
        builder.Services.AddSingleton<FlightsService>();
        builder.Services.AddSingleton<IServiceMethodProvider<FlightsService>, FlightsMethods>();
        _target = builder.Build();
        _target.UseRouting();
        _target.MapGrpcService<FlightsService>();
        await _target.StartAsync();
        var address = _target.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _client = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false }) { BaseAddress = new Uri(address + "/") };
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _target.DisposeAsync();
    }

    [Fact]
    public async Task Replay_UnaryCalls_ComparesMessagesByFieldNumber_AndTheStatus()
    {
        var runner = new ReplayRunner(_client, new ReplayOptions());

        var report = await runner.RunAsync("s-grpc", "flights", [
            Call(1, "SP102", Frame(Flight("SP102", 42)), "0"),
            // Recorded trailers-only: no message, NOT_FOUND in the headers.
            Call(2, "SP999", [], "5"),
            // The target now has 11 seats left on SP103 where the recording had 10.
            Call(3, "SP103", Frame(Flight("SP103", 10)), "0"),
            // Recorded OK, now refused.
            Call(4, "SP000", Frame(Flight("SP000", 1)), "0"),
        ], null, CancellationToken.None);

        Assert.Equal(ReplayVerdict.Passed, report.Results[0].Verdict);
        Assert.Equal(ReplayVerdict.Passed, report.Results[1].Verdict);
        Assert.Equal(ReplayVerdict.Regression, report.Results[2].Verdict);
        Assert.Equal(["body $.messages[0][2]: 10 → 11"], report.Results[2].Differences);
        Assert.Equal(ReplayVerdict.Regression, report.Results[3].Verdict);
        Assert.Contains("grpc-status: 0 (OK) → 14 (UNAVAILABLE)", report.Results[3].Differences);
        Assert.Contains("body $.messages[0]: {\"1\":\"SP000\",\"2\":1} → (absent)", report.Results[3].Differences);
    }

    [Fact]
    public void Messages_AreDecodedByFieldNumber_NestedAndRepeated()
    {
        // 1: "SP102", 2: 42, 3: { 1: "LHR" }, 4: 7, 4: 8
        byte[] message = [0x0A, 0x05, (byte)'S', (byte)'P', (byte)'1', (byte)'0', (byte)'2', 0x10, 0x2A, 0x1A, 0x05, 0x0A, 0x03, (byte)'L', (byte)'H', (byte)'R', 0x20, 0x07, 0x20, 0x08];

        var json = GrpcReplay.Messages(Frame(message));

        Assert.Equal("""{"messages":[{"1":"SP102","2":42,"3":{"1":"LHR"},"4":[7,8]}]}""", json.ToJsonString());
    }

    private static RecordedExchange Call(int step, string flight, byte[] response, string status) => new()
    {
        TraceId = "t" + step,
        SpanId = "s" + step,
        Method = "POST",
        Path = "/test.Flights/Get",
        RequestHeaders = [new("content-type", "application/grpc"), new("te", "trailers")],
        RequestBody = Frame(FlightId(flight)),
        Status = 200,
        ResponseHeaders = [new("content-type", "application/grpc"), new("grpc-status", status)],
        ResponseBody = response,
    };

    private static byte[] FlightId(string id) => [0x0A, (byte)id.Length, .. System.Text.Encoding.ASCII.GetBytes(id)];

    private static byte[] Flight(string id, int seats) => [.. FlightId(id), 0x10, (byte)seats];

    private static byte[] Frame(byte[] message)
    {
        var frame = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame, 5);
        return frame;
    }

    /// <summary>The target: SP102 has 42 seats, SP103 11; SP000 is refused as unavailable; anything else is not found.</summary>
    private sealed class FlightsService
    {
        public Task<byte[]> Get(byte[] request, ServerCallContext context)
        {
            var id = System.Text.Encoding.ASCII.GetString(request, 2, request[1]);
            return id switch
            {
                "SP102" => Task.FromResult(Flight(id, 42)),
                "SP103" => Task.FromResult(Flight(id, 11)),
                "SP000" => throw new RpcException(new Status(StatusCode.Unavailable, "flights are down")),
                _ => throw new RpcException(new Status(StatusCode.NotFound, "no flight " + id)),
            };
        }
    }

    private sealed class FlightsMethods : IServiceMethodProvider<FlightsService>
    {
        private static readonly Method<byte[], byte[]> Get = new(
            MethodType.Unary, "test.Flights", "Get", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));

        public void OnServiceMethodDiscovery(ServiceMethodProviderContext<FlightsService> context) =>
            context.AddUnaryMethod(Get, [], (service, request, call) => service.Get(request, call));
    }
}

/// <summary>A mock made from a gRPC span gets the call's status even when the span's headers lack it.</summary>
public sealed class GrpcMockStatusTests
{
    [Theory]
    [InlineData("""{"rpc.grpc.status_code":"5","sp.grpc.message":"no flight SP999"}""")]
    [InlineData("""{"rpc.grpc.status_code":5,"sp.grpc.message":"no flight SP999"}""")]
    public void StatusAttribute_AsStringOrInteger_BecomesTheStatusFields(string attributes)
    {
        var headers = new List<(string Name, string Value)> { ("content-type", "application/grpc") };

        SpIstio.Backend.Mocks.MockService.AddGrpcStatus(headers, attributes);

        Assert.Equal([("content-type", "application/grpc"), ("grpc-status", "5"), ("grpc-message", "no%20flight%20SP999")], headers);
    }

    [Fact]
    public void RecordedStatusFields_AndOtherContentTypes_AreLeftAlone()
    {
        var grpc = new List<(string Name, string Value)> { ("content-type", "application/grpc"), ("grpc-status", "0") };
        var json = new List<(string Name, string Value)> { ("content-type", "application/json") };

        SpIstio.Backend.Mocks.MockService.AddGrpcStatus(grpc, """{"rpc.grpc.status_code":5}""");
        SpIstio.Backend.Mocks.MockService.AddGrpcStatus(json, """{"rpc.grpc.status_code":5}""");

        Assert.Equal([("content-type", "application/grpc"), ("grpc-status", "0")], grpc);
        Assert.Single(json);
    }
}
