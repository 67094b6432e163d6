using System.Diagnostics;

namespace SpIstio.EndToEnd.Tests;

/// <summary>The outcome of one run of the sp executable.</summary>
internal sealed record SpRun(int ExitCode, string StdOut, string StdErr);

/// <summary>
/// Runs the built <c>sp</c> (sp.dll, copied next to this assembly through the project reference)
/// with <c>dotnet sp.dll …</c>, as a separate process, with a timeout.
/// </summary>
/// <remarks>
/// With <see cref="AgentBinaryVariable"/> set to a published Native AOT <c>sp-agent</c>, every
/// <c>agent …</c> command runs that binary instead, with the same arguments: .ci/run publishes it
/// once and runs the agent tests again against it, so the binary the image ships passes the same
/// tests (capture, export, metrics, health, drain, every configuration problem) as <c>sp agent</c>.
/// </remarks>
internal static class SpProcess
{
    /// <summary>The path of a published sp-agent that runs the <c>agent …</c> commands instead of sp.dll.</summary>
    public const string AgentBinaryVariable = "SP_TEST_AGENT_BINARY";

    /// <summary>Passed to that sp-agent as <c>SP_AGENT_CPU</c>: <c>baseline</c> runs the x86-64-v2 build on an AVX2 machine too.</summary>
    public const string AgentCpuVariable = "SP_TEST_AGENT_CPU";

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>How to start <paramref name="args"/>: <c>dotnet sp.dll …</c>, or the AOT sp-agent for an agent command when one is given.</summary>
    public static ProcessStartInfo StartInfo(IReadOnlyList<string> args) => StartInfo(args, new Dictionary<string, string>());

    /// <summary><see cref="StartInfo(IReadOnlyList{string})"/> with <paramref name="environment"/> set (after the machine's SP_ variables are removed).</summary>
    public static ProcessStartInfo StartInfo(IReadOnlyList<string> args, IReadOnlyDictionary<string, string> environment)
    {
        var agentBinary = Environment.GetEnvironmentVariable(AgentBinaryVariable);
        ProcessStartInfo start;
        if (!string.IsNullOrEmpty(agentBinary) && args.Count > 0 && args[0] == "agent")
        {
            Assert.True(File.Exists(agentBinary), AgentBinaryVariable + " names no file: " + agentBinary);
            start = new ProcessStartInfo(agentBinary);
        }
        else
        {
            var spDll = Path.Combine(AppContext.BaseDirectory, "sp.dll");
            Assert.True(File.Exists(spDll), "sp.dll not found next to the test assembly: " + spDll);
            start = new ProcessStartInfo("dotnet");
            if (args.Count > 0 && args[0] == "backend")
            {
                // As the image's backend runs (deploy/base/backend): with the backend's runtimeconfig.
                var backendConfig = Path.Combine(AppContext.BaseDirectory, "sp-backend.runtimeconfig.json");
                Assert.True(File.Exists(backendConfig), "sp-backend.runtimeconfig.json not found next to the test assembly: " + backendConfig);
                start.ArgumentList.Add("exec");
                start.ArgumentList.Add("--runtimeconfig");
                start.ArgumentList.Add(backendConfig);
            }

            start.ArgumentList.Add(spDll);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.WorkingDirectory = AppContext.BaseDirectory;
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The machine's own SP_ variables must not change what the test sees.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("SP_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        if (start.FileName == agentBinary && Environment.GetEnvironmentVariable(AgentCpuVariable) is { Length: > 0 } cpu)
        {
            start.Environment["SP_AGENT_CPU"] = cpu;
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        return start;
    }

    public static string TestData(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", name);

    public static Task<SpRun> RunAsync(params string[] args) => RunAsync(new Dictionary<string, string>(), args);

    public static async Task<SpRun> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        using var process = Process.Start(StartInfo(args, environment))!;
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

/// <summary>
/// A long-running <c>sp</c> (<c>sp backend</c>, <c>sp agent …</c>, <c>sp demo</c>) started in the background: its stdout
/// lines are collected as they come, it can be waited on for a line, signalled, or killed.
/// </summary>
internal sealed class SpChild : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly System.Text.StringBuilder _stderr = new();
    private readonly SemaphoreSlim _lineArrived = new(0);

    private SpChild(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_lines)
                {
                    _lines.Add(e.Data);
                }

                _lineArrived.Release();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public string StdErr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public static SpChild Start(params string[] args) => new(Process.Start(SpProcess.StartInfo(args))!);

    public static SpChild Start(IReadOnlyDictionary<string, string> environment, params string[] args) =>
        new(Process.Start(SpProcess.StartInfo(args, environment))!);

    /// <summary>Starts <paramref name="start"/> (its output redirected) as it is.</summary>
    public static SpChild Start(ProcessStartInfo start) => new(Process.Start(start)!);

    /// <summary>The first stdout line matching <paramref name="match"/>, waiting up to 60 s for it.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var found = Lines.FirstOrDefault(match);
            if (found is not null)
            {
                return found;
            }

            if (_process.HasExited)
            {
                throw new InvalidOperationException("sp exited with " + _process.ExitCode + " before printing the line; stderr: " + StdErr);
            }

            try
            {
                await _lineArrived.WaitAsync(TimeSpan.FromMilliseconds(200), cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException("sp did not print the expected line; stdout: " + string.Join('\n', Lines) + "\nstderr: " + StdErr);
            }
        }
    }

    /// <summary>Everything written to stdout and then stderr so far (for assertion messages).</summary>
    public string Output => string.Join('\n', Lines) + "\n" + StdErr;

    /// <summary>The first stdout line starting with <paramref name="prefix"/> (such as a bound address), waiting up to 60 s for it.</summary>
    public Task<string> WaitForLineAsync(string prefix) =>
        WaitForLineAsync(line => line.StartsWith(prefix, StringComparison.Ordinal));

    /// <summary>SIGTERM, then the exit code.</summary>
    public async Task<int> TerminateAsync()
    {
        Terminate();
        return await WaitForExitAsync();
    }

    /// <summary>SIGKILL: the process gets no chance to clean up.</summary>
    public void KillHard()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>SIGTERM, as an orchestrator stops a pod.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public async Task<int> WaitForExitAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        _lineArrived.Dispose();
    }
}
