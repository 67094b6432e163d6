using Grpc.Net.Client;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>
/// The ext_proc service on the real agent runtime (service "orders"), exporting to an
/// <see cref="OtlpReceiver"/> with a 20 ms batch delay, and a gRPC client to it: what the tests
/// that read the exported spans play Envoy's message sequences against.
/// </summary>
internal sealed class ExportingExtProc : IAsyncDisposable
{
    private readonly ExtProcServer _server;
    private readonly GrpcChannel _channel;

    private ExportingExtProc(AgentRuntime runtime, ExtProcServer server)
    {
        Runtime = runtime;
        _server = server;
        _channel = GrpcChannel.ForAddress($"http://127.0.0.1:{server.Port}");
        Client = new ExternalProcessor.ExternalProcessorClient(_channel);
    }

    public AgentRuntime Runtime { get; }

    public ExternalProcessor.ExternalProcessorClient Client { get; }

    public static async Task<ExportingExtProc> StartAsync(OtlpReceiver receiver)
    {
        var options = new AgentOptions { SpBackendUrl = receiver.BaseAddress, PublicKey = "pk-test", ServiceName = "orders" };
        options.Export.BatchDelayMs = 20;
        var runtime = AgentRuntime.Create(options, NullLoggerFactory.Instance);
        try
        {
            var server = await ExtProcServer.StartAsync(runtime.Pipeline, new ExtProcOptions { Listen = new ListenAddress("127.0.0.1", 0) }, NullLoggerFactory.Instance);
            return new ExportingExtProc(runtime, server);
        }
        catch
        {
            await runtime.DisposeAsync();
            throw;
        }
    }

    /// <summary>A new ext_proc stream, as Envoy opens one an HTTP request.</summary>
    public EnvoyStream OpenStream() => new(Client.Process());

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _server.DisposeAsync();
        await Runtime.DisposeAsync();
    }
}
