using System.Reflection;
using SpIstio.Core.Configuration;

namespace SpIstio.Core.Tests.Configuration;

public class ConfigReferenceTests
{
    [Fact]
    public void CommittedReference_IsTheGeneratedOne()
    {
        var committed = File.ReadAllText(Path.Combine(TestFiles.RepoRoot, "docs", "configuration.md"));

        // If this fails, run: dotnet run --project src/Cli -- config reference > docs/configuration.md
        Assert.Equal(ConfigReference.Generate(), committed.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void Reference_ListsEveryConfigKeyWithItsDescription()
    {
        var reference = ConfigReference.Generate();
        var keyed = typeof(AgentOptions).Assembly.GetTypes()
            .SelectMany(t => t.GetProperties())
            .Select(p => p.GetCustomAttribute<ConfigKeyAttribute>())
            .OfType<ConfigKeyAttribute>()
            .ToList();

        Assert.NotEmpty(keyed);
        foreach (var key in keyed)
        {
            Assert.Matches(@"\| `([^`]*[.\]])?" + System.Text.RegularExpressions.Regex.Escape(key.Name) + "` \\|", reference);
            Assert.Contains(key.Description.Replace("|", "\\|", StringComparison.Ordinal), reference, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Reference_ShowsDefaultsFromTheOptionClasses()
    {
        var reference = ConfigReference.Generate();

        Assert.Contains("| `cache_ttl_seconds` | integer | `300` |", reference, StringComparison.Ordinal);
        Assert.Contains("| `traffic_direction` | one of inbound, outbound, server, client, auto | `auto` |", reference, StringComparison.Ordinal);
        Assert.Contains("| `fallback_timeout_ms` | integer (optional) | unset |", reference, StringComparison.Ordinal);
        Assert.Contains("| `collectionRules.http.client[].host` | string | `.*` |", reference, StringComparison.Ordinal);
    }

    [Fact]
    public void KeyPaths_AreAllAcceptedByTheLoader()
    {
        // Every documented leaf key, set through --set, binds without an unknown-key warning.
        var overrides = ConfigReference.KeyPaths()
            .Where(p => !p.Contains("[]", StringComparison.Ordinal))
            .Select(p => p + "=")
            .ToList();

        var result = AgentConfigLoader.Load(null, new Dictionary<string, string?>(), overrides);

        Assert.DoesNotContain(result.Report.Warnings, w => w.Message.StartsWith("unknown key", StringComparison.Ordinal));
    }
}
