using System.Diagnostics;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Tests.Infrastructure;

namespace SpIstio.Agent.Tests.Hosting;

/// <summary>The agent's /metrics passes Prometheus' own linter, <c>promtool check metrics</c> (installed in CI by the prometheus package).</summary>
public sealed class AgentMetricsConformanceTests
{
    [Fact]
    public async Task Metrics_PassPromtoolCheck()
    {
        await using var runtime = AgentRuntime.Create(TestExchanges.Options(TestExchanges.RefusingBackend()), new LogCollector());
        var app = await runtime.StartAdminAsync(ListenAddress.Parse("127.0.0.1:0"), CancellationToken.None);
        using var http = new HttpClient { BaseAddress = AgentRuntime.BoundAddress(app) };
        var metrics = await http.GetStringAsync("/metrics");

        var path = Environment.GetEnvironmentVariable("PATH")!.Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "promtool")).FirstOrDefault(File.Exists);
        Assert.True(path is not null, "promtool is not on PATH: install Prometheus (the 'prometheus' package .ci/run installs) to run this test");
        using var process = Process.Start(new ProcessStartInfo(path, "check metrics")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(metrics);
        process.StandardInput.Close();
        await process.WaitForExitAsync();

        Assert.True(process.ExitCode == 0, "promtool check metrics failed:\n" + await stdout + await stderr);
        Assert.Contains("# TYPE process_cpu_seconds_total counter", metrics, StringComparison.Ordinal);
    }
}
