using System.Collections;

namespace SpIstio.Core.Configuration;

/// <summary>The outcome of loading the agent configuration: the options and every problem found.</summary>
/// <param name="Options">The bound options; values that failed to bind keep their defaults.</param>
/// <param name="Report">Errors and warnings, from every source, binding and validation.</param>
public sealed record ConfigLoadResult(AgentOptions Options, ConfigReport Report);

/// <summary>
/// Loads <see cref="AgentOptions"/> from a YAML or JSON file (the original plugin's
/// <c>pluginConfig</c> keys verbatim), then <c>SP_</c> environment variables, then
/// <c>key.path=value</c> overrides, each layer beating the one before; binds and validates once,
/// collecting every problem instead of stopping at the first.
/// </summary>
public static class AgentConfigLoader
{
    /// <summary>Loads and validates; never throws on bad input (see <see cref="ConfigLoadResult.Report"/>).</summary>
    /// <param name="filePath">YAML (<c>.yaml</c>, <c>.yml</c>, anything else) or JSON (<c>.json</c>) file; null for none.</param>
    /// <param name="environment">Environment variables; only <c>SP_…</c> ones are read. Pass <see cref="ProcessEnvironment"/> in production.</param>
    /// <param name="overrides"><c>key.path=value</c> pairs, e.g. <c>circuit_breaker.max_failures=3</c>.</param>
    public static ConfigLoadResult Load(string? filePath, IReadOnlyDictionary<string, string?> environment, IReadOnlyList<string> overrides)
    {
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(overrides);

        var problems = new List<ConfigProblem>();
        var layers = new ConfigLayers();
        if (filePath is not null)
        {
            ConfigSources.ReadFile(filePath, layers, problems);
        }

        ConfigSources.ReadEnvironment(environment, layers);
        ConfigSources.ReadOverrides(overrides, layers, problems);
        return BindAndValidate(layers, problems);
    }

    /// <summary>Loads YAML or JSON text (no environment, no overrides); for tests and tools that hold the text already.</summary>
    public static ConfigLoadResult LoadText(string text, bool json = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var problems = new List<ConfigProblem>();
        var layers = new ConfigLayers();
        if (json)
        {
            ConfigSources.ReadJson(text, "(text)", "(text)", layers, problems);
        }
        else
        {
            ConfigSources.ReadYaml(text, "(text)", "(text)", layers, problems);
        }

        return BindAndValidate(layers, problems);
    }

    /// <summary>Loads and validates, for service start: returns the options or throws with every error listed.</summary>
    /// <exception cref="ConfigurationException">The configuration has at least one error.</exception>
    public static AgentOptions LoadOrThrow(string? filePath, IReadOnlyDictionary<string, string?> environment, IReadOnlyList<string> overrides)
    {
        var result = Load(filePath, environment, overrides);
        return result.Report.IsValid ? result.Options : throw new ConfigurationException(result.Report);
    }

    private static ConfigLoadResult BindAndValidate(ConfigLayers layers, List<ConfigProblem> problems)
    {
        var options = new AgentOptions();
        var binder = new ConfigBinder(problems);
        binder.BindObject(options, layers.BuildTree(), "");
        problems.AddRange(AgentOptionsValidator.Validate(options, binder.Sources));
        return new ConfigLoadResult(options, new ConfigReport(problems));
    }

    /// <summary>
    /// The environment variables <see cref="Load"/> reads as settings: <c>SP_</c> names, without
    /// Kubernetes service links and the variables the executables read themselves
    /// (<c>ConfigSources.ProcessVariables</c>).
    /// </summary>
    public static IEnumerable<KeyValuePair<string, string?>> SettingVariables(IReadOnlyDictionary<string, string?> environment) =>
        environment.Where(e => ConfigSources.IsSettingVariable(e.Key, e.Value));

    /// <summary>A snapshot of this process's environment variables.</summary>
    public static IReadOnlyDictionary<string, string?> ProcessEnvironment()
    {
        var result = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            result[(string)entry.Key] = entry.Value as string;
        }

        return result;
    }
}
