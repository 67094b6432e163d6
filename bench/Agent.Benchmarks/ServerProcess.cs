using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace SpIstio.Agent.Benchmarks;

/// <summary>An ext_proc server (the agent or the baseline) running as its own process.</summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];

    private ServerProcess(Process process)
    {
        _process = process;
    }

    public int Pid => _process.Id;

    public string GrpcAddress { get; private set; } = "";

    public string? AdminAddress { get; private set; }

    /// <summary>Starts <paramref name="dll"/>; with <paramref name="runtimeConfig"/>, under that runtimeconfig.json instead of its own.</summary>
    public static async Task<ServerProcess> StartAsync(string dll, IReadOnlyList<string> args, string? runtimeConfig, bool hasAdmin)
    {
        var start = new ProcessStartInfo("dotnet");
        if (runtimeConfig is not null)
        {
            start.ArgumentList.Add("exec");
            start.ArgumentList.Add("--runtimeconfig");
            start.ArgumentList.Add(runtimeConfig);
        }

        start.ArgumentList.Add(dll);
        return await StartAsync(start, args, hasAdmin);
    }

    /// <summary>Starts the native executable <paramref name="path"/> (the Native AOT sp-agent); its runtime settings are compiled in.</summary>
    public static Task<ServerProcess> StartExecutableAsync(string path, IReadOnlyList<string> args, bool hasAdmin) =>
        StartAsync(new ProcessStartInfo(path), args, hasAdmin);

    private static async Task<ServerProcess> StartAsync(ProcessStartInfo start, IReadOnlyList<string> args, bool hasAdmin)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The runtime settings come from the runtimeconfig alone (no inherited DOTNET_GC* override).
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("DOTNET_GC", StringComparison.OrdinalIgnoreCase) || k.StartsWith("DOTNET_Tiered", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }

        var process = new Process { StartInfo = start };
        var server = new ServerProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (server._lines)
                {
                    server._lines.Add(e.Data);
                }
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        server.GrpcAddress = await server.WaitForLineAsync("extproc listening on ");
        if (hasAdmin)
        {
            server.AdminAddress = (await server.WaitForLineAsync("admin listening on ")).TrimEnd('/');
        }

        return server;
    }

    /// <summary>Resident set size now, in MiB (VmRSS of /proc/PID/status).</summary>
    public double RssMiB() => ReadStatusKiB("VmRSS:") / 1024.0;

    /// <summary>Anonymous (heap, stacks, JIT code) part of the resident set, in MiB (RssAnon).</summary>
    public double AnonymousRssMiB() => ReadStatusKiB("RssAnon:") / 1024.0;

    /// <summary>CPU time (user + system) the process has used so far.</summary>
    public TimeSpan CpuTime()
    {
        _process.Refresh();
        return _process.TotalProcessorTime;
    }

    /// <summary>Peak resident set size so far, in MiB (VmHWM).</summary>
    public double PeakRssMiB() => ReadStatusKiB("VmHWM:") / 1024.0;

    public async Task<string> ScrapeAsync(HttpClient http) => await http.GetStringAsync(AdminAddress + "/metrics");

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _ = Kill(_process.Id, 15);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process.Dispose();
    }

    private long ReadStatusKiB(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                var parts = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[0], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    private async Task<string> WaitForLineAsync(string prefix)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            lock (_lines)
            {
                var line = _lines.Find(l => l.StartsWith(prefix, StringComparison.Ordinal));
                if (line is not null)
                {
                    return line[prefix.Length..].Trim();
                }
            }

            if (_process.HasExited)
            {
                throw new InvalidOperationException("server exited with code " + _process.ExitCode);
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("server did not print '" + prefix + "'");
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
