using SpIstio.Cli;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// A linux-x64 publish of sp-agent holds an x86-64-v2 build and an x86-64-v3 build beside it; started
/// as sp-agent on a CPU with x86-64-v3, the process becomes the v3 build (same PID and arguments),
/// unless SP_AGENT_CPU=baseline. The process tests run on the published binary (.ci/run sets
/// SP_TEST_AGENT_BINARY) and are skipped under <c>dotnet sp.dll</c>, which has no builds to choose from.
/// </summary>
public sealed class CpuBuildTests
{
    private const string V3Cpu = """
        processor	: 0
        vendor_id	: GenuineIntel
        flags		: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt xsave avx f16c abm bmi1 avx2 bmi2 erms
        processor	: 1
        """;

    [Fact]
    public void A_cpuinfo_listing_every_x86_64_v3_feature_has_v3()
    {
        Assert.True(CpuBuild.HasV3(V3Cpu));
    }

    [Theory]
    [InlineData("avx2")] // e.g. Sandy Bridge: AVX without AVX2
    [InlineData("bmi2")]
    [InlineData("abm")] // LZCNT
    [InlineData("movbe")]
    [InlineData("xsave")] // a kernel that does not save the AVX registers lists no usable AVX
    public void A_cpuinfo_missing_one_x86_64_v3_feature_has_not(string missing)
    {
        var flags = V3Cpu.Replace(" " + missing + " ", " ", StringComparison.Ordinal);
        Assert.NotEqual(V3Cpu, flags);

        Assert.False(CpuBuild.HasV3(flags));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("processor\t: 0\nmodel name\t: avx avx2 bmi1 bmi2 fma movbe abm f16c xsave\n")] // the words, but not on a flags line
    [InlineData("flags\t\t: avx2bmi1 avx bmi2 fma movbe abm f16c xsave\n")] // flags are whole words
    public void A_cpuinfo_without_a_complete_flags_line_has_not(string? cpuinfo)
    {
        Assert.False(CpuBuild.HasV3(cpuinfo));
    }

    [AgentBinaryFact]
    public async Task On_a_cpu_with_x86_64_v3_the_agent_runs_the_v3_build_and_SP_AGENT_CPU_baseline_keeps_its_own()
    {
        var binary = Environment.GetEnvironmentVariable(SpProcess.AgentBinaryVariable)!;
        var v3 = Path.Combine(Path.GetDirectoryName(binary)!, CpuBuild.V3Name);
        Assert.True(File.Exists(v3), "a linux-x64 publish puts " + CpuBuild.V3Name + " beside sp-agent");
        var expected = CpuBuild.HasV3(await File.ReadAllTextAsync("/proc/cpuinfo")) ? v3 : binary;

        foreach (var (choice, runs) in new[] { ("auto", expected), ("baseline", binary) })
        {
            await using var agent = SpChild.Start(
                new Dictionary<string, string> { [CpuBuild.Variable] = choice },
                "agent", "proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--no-capture", "--ignore-env");
            await agent.WaitForLineAsync("proxy listening on ");

            // The same process (the PID the test started), now running the chosen file, its arguments as given.
            Assert.Equal(Path.GetFullPath(runs), new FileInfo("/proc/" + agent.Id + "/exe").LinkTarget);
            var argv = (await File.ReadAllTextAsync("/proc/" + agent.Id + "/cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal([binary, "agent", "proxy", "--listen", "127.0.0.1:0"], argv[..5]);
            Assert.Equal(0, await agent.TerminateAsync());
        }
    }

    [AgentBinaryFact]
    public async Task An_SP_AGENT_CPU_that_is_neither_auto_nor_baseline_stops_start_up_naming_it()
    {
        var run = await SpProcess.RunAsync(
            new Dictionary<string, string> { [CpuBuild.Variable] = "v3" },
            "agent", "proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--ignore-env");

        Assert.Equal(2, run.ExitCode);
        Assert.Equal("error: SP_AGENT_CPU must be 'auto' or 'baseline', not 'v3'", run.StdErr.TrimEnd());
    }

    [AgentBinaryOnV3CpuFact]
    public async Task A_v3_file_from_another_build_hands_over_to_the_sp_agent_that_started_it_as_baseline_and_says_so()
    {
        // What sp-agent of another publish does when it starts the v3 file beside it: its path as
        // argv[0], its build in the launcher variable (here one no build has).
        var binary = Path.GetFullPath(Environment.GetEnvironmentVariable(SpProcess.AgentBinaryVariable)!);
        var v3 = Path.Combine(Path.GetDirectoryName(binary)!, CpuBuild.V3Name);
        string[] args = ["agent", "proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--no-capture", "--ignore-env"];
        var start = SpProcess.StartInfo(args, new Dictionary<string, string> { [CpuBuild.LauncherVariable] = new string('0', 32) });
        start.Environment.Remove(CpuBuild.Variable);
        start.FileName = "bash";
        start.ArgumentList.Clear();
        foreach (var arg in (string[])["-c", "exec -a \"$0\" \"$1\" \"${@:2}\"", binary, v3, .. args])
        {
            start.ArgumentList.Add(arg);
        }

        await using var agent = SpChild.Start(start);
        await agent.WaitForLineAsync("proxy listening on ");

        // Same PID, now sp-agent's own build, as baseline, its arguments as given; the launcher's
        // variable is gone and the warning names both files.
        Assert.Equal(binary, new FileInfo("/proc/" + agent.Id + "/exe").LinkTarget);
        var argv = (await File.ReadAllTextAsync("/proc/" + agent.Id + "/cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([binary, .. args], argv);
        var environment = (await File.ReadAllTextAsync("/proc/" + agent.Id + "/environ")).Split('\0');
        Assert.Contains(CpuBuild.Variable + "=baseline", environment);
        Assert.DoesNotContain(environment, e => e.StartsWith(CpuBuild.LauncherVariable + "=", StringComparison.Ordinal));
        Assert.Contains("warning: " + v3 + " is from another build than " + binary, agent.StdErr, StringComparison.Ordinal);
        Assert.Contains("Install both files of one publish together.", agent.StdErr, StringComparison.Ordinal);
        Assert.Equal(0, await agent.TerminateAsync());
    }

    /// <summary>A test of the published sp-agent on a CPU that runs its x86-64-v3 file.</summary>
    private sealed class AgentBinaryOnV3CpuFactAttribute : AgentBinaryFactAttribute
    {
        public AgentBinaryOnV3CpuFactAttribute()
        {
            if (Skip is null && !CpuBuild.HasV3(File.ReadAllText("/proc/cpuinfo")))
            {
                Skip = "this CPU cannot run the x86-64-v3 file";
            }
        }
    }

    /// <summary>A test of the published sp-agent: skipped unless <see cref="SpProcess.AgentBinaryVariable"/> names one.</summary>
    private class AgentBinaryFactAttribute : FactAttribute
    {
        public AgentBinaryFactAttribute()
        {
            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(SpProcess.AgentBinaryVariable)))
            {
                Skip = "runs on the published sp-agent (" + SpProcess.AgentBinaryVariable + ", set by .ci/run)";
            }
        }
    }
}
