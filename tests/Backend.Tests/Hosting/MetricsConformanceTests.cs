using System.Diagnostics;
using System.Globalization;
using System.Net;
using SpIstio.Backend.Tests.Infrastructure;

namespace SpIstio.Backend.Tests.Hosting;

/// <summary>The backend's /metrics passes Prometheus' own linter, <c>promtool check metrics</c> (installed in CI by the prometheus package).</summary>
public sealed class MetricsConformanceTests
{
    [Fact]
    public async Task Metrics_PassPromtoolCheck_AndProcessFiguresAreReal()
    {
        await using var backend = await BackendFixture.StartAsync();
        using var response = await backend.Http.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var (exitCode, output) = await PromtoolAsync(text);

        Assert.True(exitCode == 0, "promtool check metrics failed:\n" + output);
        Assert.Contains("# TYPE process_cpu_seconds_total counter", text, StringComparison.Ordinal);
        var heap = text.Split('\n').Single(l => l.StartsWith("dotnet_gc_heap_bytes ", StringComparison.Ordinal));
        Assert.True(double.Parse(heap.Split(' ')[1], CultureInfo.InvariantCulture) > 0, heap);
    }

    /// <summary>Runs <c>promtool check metrics</c> over <paramref name="exposition"/> on its standard input.</summary>
    internal static async Task<(int ExitCode, string Output)> PromtoolAsync(string exposition)
    {
        var path = Environment.GetEnvironmentVariable("PATH")!.Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "promtool")).FirstOrDefault(File.Exists);
        Assert.True(path is not null, "promtool is not on PATH: install Prometheus (the 'prometheus' package .ci/run installs) to run this test");
        var start = new ProcessStartInfo(path, "check metrics")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(exposition);
        process.StandardInput.Close();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }
}
