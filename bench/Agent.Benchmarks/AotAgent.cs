using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SpIstio.Agent.Benchmarks;

/// <summary>
/// The Native AOT <c>sp-agent</c>, as the image ships it: published from src/AgentHost once per
/// bench run (a publish of unchanged sources is incremental and quick).
/// </summary>
internal static class AotAgent
{
    /// <summary>Publishes src/AgentHost for this machine and returns the sp-agent path.</summary>
    public static async Task<string> PublishAsync(string from)
    {
        var root = RepoRoot(from);
        var rid = RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var output = Path.Combine(root, "src", "AgentHost", "bin", "aot-" + rid);
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "publish", Path.Combine(root, "src", "AgentHost", "AgentHost.csproj"), "-c", "Release", "-r", rid, "-v", "q", "-nologo", "-o", output })
        {
            start.ArgumentList.Add(arg);
        }

        Console.WriteLine("  publishing the Native AOT sp-agent (" + rid + ") …");
        using var publish = Process.Start(start)!;
        var stdout = publish.StandardOutput.ReadToEndAsync();
        var stderr = publish.StandardError.ReadToEndAsync();
        await publish.WaitForExitAsync();
        if (publish.ExitCode != 0)
        {
            throw new InvalidOperationException("dotnet publish src/AgentHost failed (clang or gcc and zlib are needed; --agent jit runs sp.dll instead):\n" + await stdout + await stderr);
        }

        return Path.Combine(output, "sp-agent");
    }

    private static string RepoRoot(string from)
    {
        for (var dir = new DirectoryInfo(from); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SpIstio.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("SpIstio.slnx not found above " + from + ": run the bench from the repository (or pass --agent PATH)");
    }
}
