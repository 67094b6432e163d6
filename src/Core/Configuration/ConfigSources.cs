using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SpIstio.Core.Configuration;

/// <summary>
/// Reads each configuration source into <see cref="ConfigLayers"/>. Problems with a source (a
/// missing file, a syntax error, a malformed override) are reported, never thrown, so one run
/// shows every problem.
/// </summary>
internal static class ConfigSources
{
    /// <summary>Prefix of the environment variables the agent reads.</summary>
    public const string EnvironmentPrefix = "SP_";

    /// <summary>
    /// <c>SP_</c> variables that are not settings: the executables read them themselves before any
    /// configuration (<c>SP_DEBUG</c>: stack traces of start-up errors; <c>SP_AGENT_CPU</c>: which
    /// <c>sp-agent</c> build runs; <c>SP_AGENT_LAUNCHER_BUILD</c>: the build the <c>sp-agent</c> that
    /// started its x86-64-v3 file is). Taken for keys, they stopped the agent as unknown keys.
    /// </summary>
    public static readonly IReadOnlySet<string> ProcessVariables = new HashSet<string>(["SP_DEBUG", "SP_AGENT_CPU", "SP_AGENT_LAUNCHER_BUILD"], StringComparer.OrdinalIgnoreCase);

    /// <summary>The key <c>SP_BACKEND_URL</c> stands for (<c>SP_SP_BACKEND_URL</c> also works).</summary>
    private const string BackendUrlAlias = "BACKEND_URL";

    private static readonly Regex _serviceLink = new(
        "(_SERVICE_HOST|_SERVICE_PORT(_[A-Z0-9_]+)?|_PORT_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$",
        RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);

    /// <summary>
    /// Reads a YAML or JSON file. <c>.json</c> files go through System.Text.Json (YAML parsers
    /// disagree with JSON on tabs and some escapes); everything else through YamlDotNet, which
    /// also reads most JSON.
    /// </summary>
    public static void ReadFile(string path, ConfigLayers layers, List<ConfigProblem> problems)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            problems.Add(new ConfigProblem(path, null, "configuration file not found", ProblemSeverity.Error));
            return;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            problems.Add(new ConfigProblem(path, null, "cannot read the configuration file: " + ex.Message, ProblemSeverity.Error));
            return;
        }

        var fileName = Path.GetFileName(path);
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            ReadJson(text, path, fileName, layers, problems);
        }
        else
        {
            ReadYaml(text, path, fileName, layers, problems);
        }
    }

    /// <summary>Reads YAML text (the file's name is used in sources and messages).</summary>
    public static void ReadYaml(string text, string path, string fileName, ConfigLayers layers, List<ConfigProblem> problems)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException ex)
        {
            problems.Add(new ConfigProblem(
                path,
                null,
                string.Create(CultureInfo.InvariantCulture, $"YAML syntax error at line {ex.Start.Line}, column {ex.Start.Column}: {InnermostMessage(ex)}"),
                ProblemSeverity.Error));
            return;
        }

        if (stream.Documents.Count == 0)
        {
            return;
        }

        var root = stream.Documents[0].RootNode;
        if (root is YamlScalarNode scalar && IsNull(scalar))
        {
            return;
        }

        if (root is not YamlMappingNode mapping)
        {
            problems.Add(new ConfigProblem(path, null, "expected a mapping of keys at the top level of the file", ProblemSeverity.Error, Where(fileName, root)));
            return;
        }

        FlattenYaml(PluginConfigOf(mapping) ?? mapping, [], fileName, layers, problems);
    }

    /// <summary>Reads JSON text.</summary>
    public static void ReadJson(string text, string path, string fileName, ConfigLayers layers, List<ConfigProblem> problems)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException ex)
        {
            problems.Add(new ConfigProblem(
                path,
                null,
                string.Create(CultureInfo.InvariantCulture, $"JSON syntax error at line {(ex.LineNumber ?? 0) + 1}, column {(ex.BytePositionInLine ?? 0) + 1}: {ex.Message}"),
                ProblemSeverity.Error));
            return;
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                problems.Add(new ConfigProblem(path, null, "expected an object of keys at the top level of the file", ProblemSeverity.Error));
                return;
            }

            FlattenJson(document.RootElement, [], fileName, layers);
        }
    }

    /// <summary>
    /// Reads <c>SP_</c> environment variables: <c>__</c> separates nesting levels
    /// (<c>SP_CIRCUIT_BREAKER__MAX_FAILURES</c>), and <c>SP_BACKEND_URL</c> is sp_backend_url.
    /// </summary>
    public static void ReadEnvironment(IReadOnlyDictionary<string, string?> environment, ConfigLayers layers)
    {
        // Sorted so the result does not depend on the dictionary's order when two variables name one key.
        foreach (var (name, value) in environment.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!IsSettingVariable(name, value))
            {
                continue;
            }

            var rest = name[EnvironmentPrefix.Length..];
            if (string.Equals(rest, BackendUrlAlias, StringComparison.OrdinalIgnoreCase))
            {
                rest = ConfigMetadata.Key<AgentOptions>(nameof(AgentOptions.SpBackendUrl));
            }

            layers.Set(rest.Split("__"), value, "environment variable " + name);
        }
    }

    /// <summary>
    /// True for an environment variable <see cref="ReadEnvironment"/> reads as a setting: an <c>SP_</c>
    /// name with a value and no empty level (<c>SP_EXPORT____COMPRESSION</c>, <c>SP_EXPORT__</c>),
    /// neither a Kubernetes service link nor one of <see cref="ProcessVariables"/>.
    /// </summary>
    internal static bool IsSettingVariable(string name, string? value) =>
        value is not null
        && name.Length > EnvironmentPrefix.Length
        && name.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase)
        && !name[EnvironmentPrefix.Length..].Split("__").Contains("")
        && !IsKubernetesServiceLink(name, value)
        && !ProcessVariables.Contains(name);

    /// <summary>
    /// Kubernetes injects service-link variables for every Service in the namespace: a Service
    /// named sp-backend yields SP_BACKEND_SERVICE_HOST, SP_BACKEND_PORT=tcp://…, and so on. They
    /// are not agent settings, and warning about them on every start would bury real warnings.
    /// </summary>
    internal static bool IsKubernetesServiceLink(string name, string value) =>
        _serviceLink.IsMatch(name)
        || (name.EndsWith("_PORT", StringComparison.Ordinal)
            && (value.StartsWith("tcp://", StringComparison.Ordinal) || value.StartsWith("udp://", StringComparison.Ordinal) || value.StartsWith("sctp://", StringComparison.Ordinal)));

    /// <summary>
    /// Reads <c>key.path=value</c> overrides; list indexes are written <c>.0</c> or <c>[0]</c>
    /// (<c>collectionRules.http.client[0].host=api\..+</c>).
    /// </summary>
    public static void ReadOverrides(IReadOnlyList<string> overrides, ConfigLayers layers, List<ConfigProblem> problems)
    {
        foreach (var item in overrides)
        {
            var equals = item.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                problems.Add(new ConfigProblem("--set", item, "is not of the form key.path=value", ProblemSeverity.Error));
                continue;
            }

            var keyPath = item[..equals].Trim().Replace("[", ".", StringComparison.Ordinal).Replace("]", "", StringComparison.Ordinal);
            var segments = keyPath.Split('.');
            if (segments.Any(s => s.Length == 0))
            {
                problems.Add(new ConfigProblem("--set", item, "has an empty key segment", ProblemSeverity.Error));
                continue;
            }

            layers.Set(segments, item[(equals + 1)..], "--set " + item[..equals].Trim());
        }
    }

    /// <summary>
    /// When the file is a whole Istio WasmPlugin resource (what users of the original plugin
    /// have), the configuration is its <c>spec.pluginConfig</c>.
    /// </summary>
    private static YamlMappingNode? PluginConfigOf(YamlMappingNode root)
    {
        if (Lookup(root, "kind") is YamlScalarNode { Value: "WasmPlugin" }
            && Lookup(root, "spec") is YamlMappingNode spec
            && Lookup(spec, "pluginConfig") is YamlMappingNode pluginConfig)
        {
            return pluginConfig;
        }

        return null;
    }

    private static YamlNode? Lookup(YamlMappingNode mapping, string key)
    {
        foreach (var (k, v) in mapping.Children)
        {
            if (k is YamlScalarNode { Value: var name } && string.Equals(name, key, StringComparison.Ordinal))
            {
                return v;
            }
        }

        return null;
    }

    private static void FlattenYaml(YamlNode node, List<string> path, string fileName, ConfigLayers layers, List<ConfigProblem> problems)
    {
        switch (node)
        {
            case YamlMappingNode mapping:
                if (mapping.Children.Count == 0 && path.Count > 0)
                {
                    layers.Set(path.ToArray(), null, Where(fileName, node));
                }

                foreach (var (key, value) in mapping.Children)
                {
                    if (key is not YamlScalarNode { Value: { Length: > 0 } name })
                    {
                        problems.Add(new ConfigProblem(DisplayPath(path), null, "has a key that is not a plain name", ProblemSeverity.Error, Where(fileName, key)));
                        continue;
                    }

                    path.Add(name);
                    FlattenYaml(value, path, fileName, layers, problems);
                    path.RemoveAt(path.Count - 1);
                }

                break;
            case YamlSequenceNode sequence:
                if (sequence.Children.Count == 0)
                {
                    layers.Set(path.ToArray(), null, Where(fileName, node));
                }

                for (var i = 0; i < sequence.Children.Count; i++)
                {
                    path.Add(i.ToString(CultureInfo.InvariantCulture));
                    FlattenYaml(sequence.Children[i], path, fileName, layers, problems);
                    path.RemoveAt(path.Count - 1);
                }

                break;
            case YamlScalarNode scalar:
                layers.Set(path.ToArray(), IsNull(scalar) ? null : scalar.Value, Where(fileName, node));
                break;
        }
    }

    private static void FlattenJson(JsonElement element, List<string> path, string fileName, ConfigLayers layers)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var any = false;
                foreach (var property in element.EnumerateObject())
                {
                    any = true;
                    path.Add(property.Name);
                    FlattenJson(property.Value, path, fileName, layers);
                    path.RemoveAt(path.Count - 1);
                }

                if (!any && path.Count > 0)
                {
                    layers.Set(path.ToArray(), null, fileName);
                }

                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    path.Add(index.ToString(CultureInfo.InvariantCulture));
                    FlattenJson(item, path, fileName, layers);
                    path.RemoveAt(path.Count - 1);
                    index++;
                }

                if (index == 0)
                {
                    layers.Set(path.ToArray(), null, fileName);
                }

                break;
            case JsonValueKind.String:
                layers.Set(path.ToArray(), element.GetString(), fileName);
                break;
            case JsonValueKind.Null:
                layers.Set(path.ToArray(), null, fileName);
                break;
            default:
                // Numbers as written (no double round trip), true and false as themselves.
                layers.Set(path.ToArray(), element.GetRawText(), fileName);
                break;
        }
    }

    private static bool IsNull(YamlScalarNode scalar) =>
        scalar.Style == ScalarStyle.Plain
        && scalar.Value is null or "" or "~" or "null" or "Null" or "NULL";

    private static string Where(string fileName, YamlNode node) =>
        string.Create(CultureInfo.InvariantCulture, $"{fileName}:{node.Start.Line}:{node.Start.Column}");

    private static string InnermostMessage(Exception ex)
    {
        while (ex.InnerException is not null)
        {
            ex = ex.InnerException;
        }

        return ex.Message;
    }

    /// <summary>Dotted form of a raw segment path, numeric segments as indexes: <c>a.b[0].c</c>.</summary>
    public static string DisplayPath(IEnumerable<string> segments)
    {
        var result = "";
        foreach (var segment in segments)
        {
            result = segment.All(char.IsAsciiDigit)
                ? string.Concat(result, "[", segment, "]")
                : result.Length == 0 ? segment : string.Concat(result, ".", segment);
        }

        return result.Length == 0 ? "(top level)" : result;
    }
}
