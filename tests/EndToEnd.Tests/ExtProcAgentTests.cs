using Google.Protobuf;
using Grpc.Net.Client;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Otlp;

namespace SpIstio.EndToEnd.Tests;

/// <summary><c>sp agent extproc</c> as a separate process, played by a gRPC client the way Envoy plays it.</summary>
public sealed class ExtProcAgentTests
{
    [Fact]
    public async Task AgentExtProc_CapturesAnExchangeExportsItAndServesMetrics()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var agent = SpChild.Start(
            "agent", "extproc", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ignore-env",
            "--set", "sp_backend_url=" + receiver.BaseAddress,
            "--set", "public_key=pk-e2e",
            "--set", "service_name=catalog",
            "--set", "export.batch_delay_ms=20");
        var grpcAddress = (await agent.WaitForLineAsync("extproc listening on "))["extproc listening on ".Length..];
        var adminAddress = (await agent.WaitForLineAsync("admin listening on "))["admin listening on ".Length..];

        using var channel = GrpcChannel.ForAddress("http://" + grpcAddress);
        using var call = new ExternalProcessor.ExternalProcessorClient(channel).Process();
        await call.RequestStream.WriteAsync(Headers(new ProcessingRequest(), true, (":method", "GET"), (":path", "/books/7"), (":authority", "catalog:8080"), (":scheme", "http")));
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var injected = call.ResponseStream.Current.RequestHeaders.Response.HeaderMutation.SetHeaders;
        await call.RequestStream.WriteAsync(Headers(new ProcessingRequest(), false, (":status", "200"), ("content-type", "text/plain")));
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        await receiver.WaitForSpansAsync(1, TimeSpan.FromSeconds(20));

        Assert.Contains(injected, h => h.Header.Key == "traceparent" && h.Header.Value.Length == 0 && !h.Header.RawValue.IsEmpty);
        var span = receiver.Spans[0];
        Assert.Equal("pk-e2e", receiver.Requests[0].Header("x-public-key"));
        Assert.Equal("/books/7", span.Attributes.Single(a => a.Key == OtlpAttributes.UrlPath).Value.StringValue);
        Assert.Equal("catalog", span.Attributes.Single(a => a.Key == OtlpAttributes.ServiceName).Value.StringValue);

        using var http = new HttpClient { BaseAddress = new Uri(adminAddress) };
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains("sp_extproc_messages_total{type=\"request_headers\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("sp_processing_duration_seconds_bucket{type=\"request_headers\"", metrics, StringComparison.Ordinal);
        Assert.Equal("ready\n", await http.GetStringAsync("/readyz"));

        var exitCode = await agent.TerminateAsync();
        Assert.Equal(0, exitCode);
    }

    [Fact]
    public async Task AgentExtProc_InvalidConfiguration_PrintsEveryProblemAndExits2()
    {
        var run = await SpProcess.RunAsync(
            "agent", "extproc", "--listen", "nowhere", "--ignore-env",
            "--set", "sampling.ratio=7", "--set", "circuit_breaker.max_failures=-1");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--listen", run.StdErr, StringComparison.Ordinal);
        Assert.Contains("sampling.ratio", run.StdErr, StringComparison.Ordinal);
        Assert.Contains("circuit_breaker.max_failures", run.StdErr, StringComparison.Ordinal);
        Assert.Equal("", run.StdOut);
    }

    private static ProcessingRequest Headers(ProcessingRequest request, bool isRequest, params (string Name, string Value)[] fields)
    {
        var map = new HeaderMap();
        foreach (var (name, value) in fields)
        {
            map.Headers.Add(new HeaderValue { Key = name, RawValue = ByteString.CopyFromUtf8(value) });
        }

        var headers = new HttpHeaders { Headers = map, EndOfStream = true };
        if (isRequest)
        {
            request.RequestHeaders = headers;
        }
        else
        {
            request.ResponseHeaders = headers;
        }

        return request;
    }
}
