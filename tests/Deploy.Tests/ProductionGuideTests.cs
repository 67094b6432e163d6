using System.Text.RegularExpressions;

namespace SpIstio.Deploy.Tests;

/// <summary>The commands docs/production.md tells an operator to run work as written.</summary>
public sealed partial class ProductionGuideTests
{
    private const string PromtoolHint = "Install the Debian package `prometheus` (apt-get install -y prometheus), which ships promtool; .ci/run does this.";

    [Fact]
    public void PromtoolBlock_RunsAsDocumented_AndChecksEveryRule()
    {
        var guide = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "production.md"));
        var block = ShellBlocks().Matches(guide).Select(m => m.Groups["body"].Value).Single(b => b.Contains("promtool check rules", StringComparison.Ordinal));

        var result = ExternalTool.Run("bash", PromtoolHint, "-euo", "pipefail", "-c", "cd \"$0\" && " + block, RepoPaths.Root);

        Assert.True(result.ExitCode == 0, $"the documented promtool block failed:\n{block}\n{result.StdOut}\n{result.StdErr}");
        var alerts = Regex.Matches(File.ReadAllText(Path.Combine(RepoPaths.Observability, "prometheusrule.yaml")), @"^\s+- alert: ", RegexOptions.Multiline).Count;
        Assert.Contains($"SUCCESS: {alerts} rules found", result.StdOut, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"```sh\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex ShellBlocks();
}
