using System.Text.Json.Nodes;

namespace SpIstio.EndToEnd.Tests;

public class SpCliTests
{
    // The runtimeconfig the image's backend runs with (and `sp backend` in these tests, SpProcess):
    // sp.runtimeconfig.json, whose gen0 budget cap is the agent's 4 MiB, but for the backend's 64 MiB
    // (eng/RuntimeSettings.props says why); every other setting is the same.
    [Fact]
    public void TheBackendRuntimeconfig_IsSpsWithTheBackendsGen0Budget()
    {
        var sp = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "sp.runtimeconfig.json")))!;
        var backend = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "sp-backend.runtimeconfig.json")))!;

        Assert.Equal(4 * 1024 * 1024, sp["runtimeOptions"]!["configProperties"]!["System.GC.Gen0MaxBudget"]!.GetValue<long>());
        Assert.Equal(64 * 1024 * 1024, backend["runtimeOptions"]!["configProperties"]!["System.GC.Gen0MaxBudget"]!.GetValue<long>());
        backend["runtimeOptions"]!["configProperties"]!["System.GC.Gen0MaxBudget"] = 4 * 1024 * 1024;
        Assert.True(JsonNode.DeepEquals(sp, backend), "sp-backend.runtimeconfig.json differs from sp.runtimeconfig.json in more than the gen0 budget");
    }

    [Fact]
    public async Task Version_PrintsTheReleaseVersion()
    {
        var run = await SpProcess.RunAsync("--version");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("0.1.0", run.StdOut.Trim());
    }

    [Fact]
    public async Task Help_ListsTheConfigCommand()
    {
        var run = await SpProcess.RunAsync("--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("config", run.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigValidate_GoodFile_ExitsZeroWithASummary()
    {
        var run = await SpProcess.RunAsync("config", "validate", SpProcess.TestData("good.yaml"));

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.StdErr);
        Assert.Contains("good.yaml: valid", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("backend:           https://o.softprobe.ai", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("traffic direction: outbound", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("collection rules:  2 client, 0 server", run.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("your-production-api-key", run.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigValidate_BadFile_ExitsTwoListingEveryProblem()
    {
        var run = await SpProcess.RunAsync("config", "validate", SpProcess.TestData("bad.yaml"));

        Assert.Equal(2, run.ExitCode);
        var errors = run.StdErr.Split('\n').Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("error: traffic_direction: 'sideways' is not one of", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith(@"error: collectionRules.http.client[0].host: 'api\.(unclosed' is not a valid regex", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("error: max_cache_size_mb: '-1'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ConfigValidate_SetOverride_CanFixABadValue()
    {
        var run = await SpProcess.RunAsync(
            "config", "validate", SpProcess.TestData("bad.yaml"),
            "--set", "traffic_direction=client",
            "--set", "max_cache_size_mb=50",
            "--set", @"collectionRules.http.client[0].host=api\..+");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("3 --set override(s)", run.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigValidate_MissingFile_ExitsTwo()
    {
        var run = await SpProcess.RunAsync("config", "validate", "no-such-file.yaml");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("no-such-file.yaml: configuration file not found", run.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfigReference_PrintsTheMarkdownReference()
    {
        var run = await SpProcess.RunAsync("config", "reference");

        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith("# Agent configuration reference", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("| `circuit_breaker.max_failures` | integer | `5` |", run.StdOut, StringComparison.Ordinal);
    }
}
