using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using SpIstio.Agent.Admin;
using SpIstio.Core.Configuration;
using SpIstio.Core.Startup;

namespace SpIstio.Cli.Commands;

/// <summary>What both agent modes do before serving: report configuration problems one per line, and name the listener a failed bind belongs to.</summary>
internal static class AgentStartup
{
    /// <summary>The <c>--allow-unknown-keys</c> option: an unknown key is usually a typo, so it stops the start unless this is given.</summary>
    public static Option<bool> CreateAllowUnknownKeysOption() => new("--allow-unknown-keys")
    {
        Description = "Start even when the configuration has keys the agent does not know (they are ignored). Without it an unknown key, usually a typo, stops the start.",
    };

    /// <summary>Every error of <paramref name="loaded"/>, with unknown keys counted as errors unless <paramref name="allowUnknownKeys"/>.</summary>
    public static List<string> Errors(ConfigLoadResult loaded, bool allowUnknownKeys)
    {
        var errors = loaded.Report.Errors.Select(p => p.ToString()).ToList();
        if (!allowUnknownKeys)
        {
            errors.AddRange(loaded.Report.Warnings.Where(IsUnknownKey).Select(p => p.ToString().Replace(" (ignored)", "", StringComparison.Ordinal) + " (--allow-unknown-keys starts anyway)"));
        }

        return errors;
    }

    /// <summary>Warnings that do not stop the start.</summary>
    public static IEnumerable<ConfigProblem> Warnings(ConfigLoadResult loaded, bool allowUnknownKeys) =>
        loaded.Report.Warnings.Where(w => allowUnknownKeys || !IsUnknownKey(w));

    /// <summary>Writes each problem on a line of its own (the first line is the first problem) and returns the exit code.</summary>
    public static int ReportProblems(TextWriter error, IReadOnlyList<string> problems, string command)
    {
        foreach (var problem in problems)
        {
            error.WriteLine("error: " + problem);
        }

        error.WriteLine(command + ": " + problems.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) + " problem(s), not started");
        return ExitCodes.InvalidInput;
    }

    /// <summary>Starts a listener; a bind failure becomes one line naming <paramref name="option"/>, the address and <paramref name="role"/>.</summary>
    public static async Task<T> BindAsync<T>(Func<Task<T>> start, string option, string address, string role)
    {
        try
        {
            return await start().ConfigureAwait(false);
        }
        catch (Exception ex) when (ListenerErrors.Describe(ex, option, address, role) is { } described)
        {
            throw described;
        }
    }

    /// <summary>
    /// A digest of the configuration's inputs (the file's bytes, the SP_ variables read as settings,
    /// the --set overrides, in that order) and a description of where they came from, for /status.
    /// Service links and the executables' own variables (SP_DEBUG, …) are left out, as the loader leaves them out: pods of one
    /// Deployment started before and after a Service was added must show the same digest.
    /// </summary>
    public static ConfigIdentity IdentityOf(string? path, IReadOnlyDictionary<string, string?> environment, IReadOnlyList<string> overrides)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var sources = new List<string>();
        if (path is not null && File.Exists(path))
        {
            hash.AppendData(File.ReadAllBytes(path));
            sources.Add("file " + Path.GetFullPath(path));
        }

        var variables = AgentConfigLoader.SettingVariables(environment)
            .OrderBy(e => e.Key, StringComparer.Ordinal)
            .ToList();
        foreach (var (key, value) in variables)
        {
            hash.AppendData(Encoding.UTF8.GetBytes("\nenv " + key + "=" + value));
        }

        foreach (var setting in overrides)
        {
            hash.AppendData(Encoding.UTF8.GetBytes("\nset " + setting));
        }

        if (variables.Count > 0)
        {
            sources.Add(variables.Count.ToString(CultureInfo.InvariantCulture) + " SP_ variable(s)");
        }

        if (overrides.Count > 0)
        {
            sources.Add(overrides.Count.ToString(CultureInfo.InvariantCulture) + " --set override(s)");
        }

        var digest = "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
        return new ConfigIdentity(digest, sources.Count == 0 ? "defaults" : string.Join(", ", sources));
    }

    /// <summary>
    /// The shutdown line: what became of the captured exchanges. "Delivered" counts what the backend
    /// accepted, so an agent without a backend never claims it flushed anything.
    /// </summary>
    public static string ShutdownLine(string what, AgentStatus status)
    {
        var (delivered, buffered, lost) = status.Totals();
        return string.Create(CultureInfo.InvariantCulture, $"{what} stopped: {delivered} exchange(s) delivered to the backend, {buffered} buffered, {lost} lost (dropped, failed or refused)");
    }

    private static bool IsUnknownKey(ConfigProblem problem) => problem.Message.StartsWith("unknown key", StringComparison.Ordinal);
}
