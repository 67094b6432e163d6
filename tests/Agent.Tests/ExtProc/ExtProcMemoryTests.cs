using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>
/// Tests that read process-wide memory counters: they run alone (their collection disables
/// parallelization), so other tests' allocations cannot show up in the figures.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideMeasurements
{
    public const string Name = "process-wide measurements";
}

[Collection(ProcessWideMeasurements.Name)]
public sealed class ExtProcMemoryTests
{
    [Fact]
    public async Task BodyFarOverTheLimit_KeepsOnlyTheLimitAndCountsTheTruncation()
    {
        const int Chunks = 256;
        var options = new AgentOptions();
        options.Capture.MaxRequestBodyBytes = 1024;
        await using var host = await ExtProcTestHost.StartAsync(options);
        using var stream = host.Open();
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)'a');

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/bulk", false, ("content-type", "text/plain")));
        var before = GC.GetTotalMemory(forceFullCollection: true);
        // 16 MiB: far above what the gRPC and Kestrel buffer pools of the test process keep
        // (1-2 MiB seen), so the bound below tells a kept body from noise.
        for (var i = 0; i < Chunks; i++)
        {
            await stream.SendAsync(Envoy.RequestBody(chunk, i == Chunks - 1));
        }

        var retained = GC.GetTotalMemory(forceFullCollection: true) - before;
        await stream.SendAsync(Envoy.ResponseHeaders(200, true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(1024, exchange.RequestBody.Content.Length);
        Assert.True(exchange.RequestBody.Truncated);
        Assert.Equal(Chunks * 64L * 1024, exchange.RequestBody.OriginalSize);
        Assert.Equal(1, host.Metrics.BodyTruncated.Value);
        Assert.Equal(1024, host.Metrics.CaptureBytes.Value);
        // 16 MiB went through; what stays reachable is the 1 KiB capture plus noise, never the body.
        Assert.True(retained < 4 * 1024 * 1024, $"{retained} bytes retained while a 16 MiB body streamed through");
    }
}
