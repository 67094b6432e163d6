using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.ExtProc.Proto;

namespace SpIstio.Agent.Benchmarks;

/// <summary>
/// The baseline: an ext_proc server on the same stack (Kestrel, Grpc.AspNetCore, same Kestrel
/// tuning) that answers CONTINUE to every message and captures nothing. Run as its own process
/// (<c>--noop-server</c>) so it is measured exactly like the agent.
/// </summary>
internal static class NoopServer
{
    public static async Task<int> RunAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.Http2.MaxStreamsPerConnection = 10_000;
            k.Listen(System.Net.IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2);
        });
        builder.Services.AddGrpc();
        var app = builder.Build();
        app.MapGrpcService<ContinueProcessor>();
        await app.StartAsync();
        var address = app.Urls.First();
        Console.WriteLine("extproc listening on " + new Uri(address).Authority);
        await app.WaitForShutdownAsync();
        return 0;
    }

    private sealed class ContinueProcessor : ExternalProcessor.ExternalProcessorBase
    {
        private static readonly ProcessingResponse[] _continue =
        [
            new() { RequestHeaders = new HeadersResponse { Response = new CommonResponse() } },
            new() { ResponseHeaders = new HeadersResponse { Response = new CommonResponse() } },
            new() { RequestBody = new BodyResponse { Response = new CommonResponse() } },
            new() { ResponseBody = new BodyResponse { Response = new CommonResponse() } },
            new() { RequestTrailers = new TrailersResponse() },
            new() { ResponseTrailers = new TrailersResponse() },
        ];

        public override async Task Process(IAsyncStreamReader<ProcessingRequest> requestStream, IServerStreamWriter<ProcessingResponse> responseStream, ServerCallContext context)
        {
            try
            {
                while (await requestStream.MoveNext(context.CancellationToken))
                {
                    var request = requestStream.Current;
                    if (!request.ObservabilityMode)
                    {
                        await responseStream.WriteAsync(_continue[(int)request.RequestCase - 2]);
                    }
                }
            }
            catch (Exception) when (context.CancellationToken.IsCancellationRequested)
            {
            }
        }
    }
}
