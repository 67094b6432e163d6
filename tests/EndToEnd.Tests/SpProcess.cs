using System.Diagnostics;

namespace SpIstio.EndToEnd.Tests;

/// <summary>The outcome of one run of the sp executable.</summary>
internal sealed record SpRun(int ExitCode, string StdOut, string StdErr);

/// <summary>
/// Runs the built <c>sp</c> (sp.dll, copied next to this assembly through the project reference)
/// with <c>dotnet sp.dll …</c>, as a separate process, with a timeout.
/// </summary>
internal static class SpProcess
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static string TestData(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", name);

    public static async Task<SpRun> RunAsync(params string[] args)
    {
        var spDll = Path.Combine(AppContext.BaseDirectory, "sp.dll");
        Assert.True(File.Exists(spDll), "sp.dll not found next to the test assembly: " + spDll);

        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(spDll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The machine's own SP_ variables must not change what the test sees.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("SP_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("sp " + string.Join(' ', args) + " did not exit within " + Timeout);
        }

        return new SpRun(process.ExitCode, await stdout, await stderr);
    }
}
