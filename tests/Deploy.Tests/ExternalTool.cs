using System.Diagnostics;

namespace SpIstio.Deploy.Tests;

/// <summary>Runs a command-line tool the tests depend on (kubectl, promtool) and captures its output.</summary>
internal static class ExternalTool
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr);

    /// <summary>
    /// Runs <paramref name="tool"/>; when it is not installed, fails with <paramref name="installHint"/>
    /// so the reader knows what to install rather than seeing a bare "file not found".
    /// </summary>
    public static Result Run(string tool, string installHint, params string[] args)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"`{tool}` is not installed or not on PATH ({e.Message}). {installHint}", e);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish within 2 minutes.");
            }

            return new Result(process.ExitCode, stdout.Result, stderr.Result);
        }
    }
}
