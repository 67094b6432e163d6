using System.Globalization;

namespace SpIstio.Core.Configuration;

/// <summary>How serious a configuration problem is.</summary>
public enum ProblemSeverity
{
    /// <summary>The agent must not start with this configuration.</summary>
    Error,

    /// <summary>The configuration works but probably not as meant (an unknown key, an empty public key).</summary>
    Warning,
}

/// <summary>
/// One thing wrong with a configuration: the key in dotted form with list indexes
/// (<c>collectionRules.http.client[0].host</c>), the value as written (null when there is none),
/// what is wrong with it, and where the value came from (file line and column, environment
/// variable or <c>--set</c> override) when known.
/// </summary>
public sealed record ConfigProblem(string Key, string? Value, string Message, ProblemSeverity Severity, string? Source = null)
{
    /// <summary>
    /// One line a person can act on, e.g.
    /// <c>traffic_direction: 'sideways' is not one of inbound, outbound, server, client, auto (agent.yaml:3:20)</c>.
    /// </summary>
    public override string ToString()
    {
        var text = Value is null
            ? string.Concat(Key, ": ", Message)
            : string.Create(CultureInfo.InvariantCulture, $"{Key}: '{Value}' {Message}");
        return Source is null ? text : string.Concat(text, " (", Source, ")");
    }
}

/// <summary>Every problem found in one load of the configuration, errors and warnings apart.</summary>
public sealed class ConfigReport
{
    /// <summary>Creates a report from the problems found, in the order found.</summary>
    public ConfigReport(IEnumerable<ConfigProblem> problems)
    {
        ArgumentNullException.ThrowIfNull(problems);
        var all = problems.ToList();
        Errors = all.Where(p => p.Severity == ProblemSeverity.Error).ToList();
        Warnings = all.Where(p => p.Severity == ProblemSeverity.Warning).ToList();
    }

    /// <summary>Problems that stop the agent from starting.</summary>
    public IReadOnlyList<ConfigProblem> Errors { get; }

    /// <summary>Problems worth telling the operator about that do not stop the agent.</summary>
    public IReadOnlyList<ConfigProblem> Warnings { get; }

    /// <summary>True when there is no error (warnings allowed).</summary>
    public bool IsValid => Errors.Count == 0;
}

/// <summary>
/// Thrown by <see cref="AgentConfigLoader.LoadOrThrow"/> when the configuration has errors; the
/// message lists every one of them, so a failed start shows everything to fix in one go.
/// </summary>
public sealed class ConfigurationException : Exception
{
    /// <summary>Creates the exception from a report with at least one error.</summary>
    public ConfigurationException(ConfigReport report)
        : base(BuildMessage(report))
    {
        Report = report;
    }

    /// <summary>The full report, warnings included.</summary>
    public ConfigReport Report { get; }

    private static string BuildMessage(ConfigReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var lines = report.Errors.Select(e => "  " + e);
        return string.Create(CultureInfo.InvariantCulture, $"The agent configuration has {report.Errors.Count} error(s):\n")
            + string.Join('\n', lines);
    }
}
