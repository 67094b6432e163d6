using System.CommandLine;
using System.Globalization;
using SpIstio.Core.Configuration;

namespace SpIstio.Cli.Commands;

/// <summary><c>sp config …</c>: check a configuration before deploying it, and print the reference.</summary>
internal static class ConfigCommands
{
    public static Command Create()
    {
        var config = new Command("config", "Check agent configuration files and show every option.");
        config.Subcommands.Add(CreateValidate());
        config.Subcommands.Add(CreateReference());
        return config;
    }

    private static Command CreateValidate()
    {
        var file = new Argument<string>("FILE") { Description = "The agent configuration, YAML (.yaml, .yml) or JSON (.json)." };
        var set = new Option<string[]>("--set")
        {
            HelpName = "key.path=value",
            Description = "Override one key, as the agent's own --set does: key.path=value (e.g. circuit_breaker.max_failures=3). Repeatable.",
        };
        var ignoreEnvironment = new Option<bool>("--ignore-env")
        {
            Description = "Do not apply SP_* environment variables (by default they are applied, as the agent would).",
        };

        var validate = new Command("validate", "Load a configuration file as the agent would and report every problem. Exit code 0 when valid, 2 when not.");
        validate.Arguments.Add(file);
        validate.Options.Add(set);
        validate.Options.Add(ignoreEnvironment);
        validate.SetAction(parseResult =>
        {
            var path = parseResult.GetValue(file)!;
            var overrides = parseResult.GetValue(set) ?? [];
            var environment = parseResult.GetValue(ignoreEnvironment)
                ? new Dictionary<string, string?>()
                : AgentConfigLoader.ProcessEnvironment();
            var result = AgentConfigLoader.Load(path, environment, overrides);
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;

            if (!result.Report.IsValid)
            {
                WriteProblems(error, path, result);
                return ExitCodes.InvalidInput;
            }

            WriteSummary(output, path, result, CountEnvironmentKeys(environment), overrides.Length);
            return ExitCodes.Success;
        });
        return validate;
    }

    /// <summary>Prints every error and warning of an invalid configuration (shared with the agent commands).</summary>
    internal static void WriteProblems(TextWriter error, string path, ConfigLoadResult result)
    {
        error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{path}: invalid, {result.Report.Errors.Count} error(s)"));
        foreach (var problem in result.Report.Errors)
        {
            error.WriteLine("error: " + problem);
        }

        foreach (var problem in result.Report.Warnings)
        {
            error.WriteLine("warning: " + problem);
        }
    }

    private static Command CreateReference()
    {
        var reference = new Command("reference", "Print every configuration key with its type, default and meaning (Markdown).");
        reference.SetAction(parseResult =>
        {
            parseResult.InvocationConfiguration.Output.Write(ConfigReference.Generate());
            return ExitCodes.Success;
        });
        return reference;
    }

    private static void WriteSummary(TextWriter output, string path, ConfigLoadResult result, int environmentKeys, int overrides)
    {
        var o = result.Options;
        var ic = CultureInfo.InvariantCulture;
        output.WriteLine(path + ": valid");
        output.WriteLine("  backend:           " + o.SpBackendUrl.OriginalString);
        // The key is a credential: say whether it is there, never print it.
        output.WriteLine("  public key:        " + (o.PublicKey.Length == 0 ? "not set" : "set"));
        output.WriteLine("  service name:      " + o.ServiceName);
        output.WriteLine("  traffic direction: " + o.TrafficDirection.ToString().ToLowerInvariant());
        output.WriteLine(string.Create(ic, $"  collection rules:  {o.CollectionRules.Http.Client.Count} client, {o.CollectionRules.Http.Server.Count} server"));
        output.WriteLine(string.Create(ic, $"  exemption rules:   {o.ExemptionRules.Count}"));
        output.WriteLine(string.Create(ic, $"  body limits:       request {o.Capture.MaxRequestBodyBytes} B, response {o.Capture.MaxResponseBodyBytes} B, decoded {o.Capture.MaxDecodedBodyBytes} B"));
        output.WriteLine("  redaction:         " + (o.Redaction.Enabled ? "on (" + o.Redaction.Mode.ToString().ToLowerInvariant() + ")" : "OFF"));
        output.WriteLine("  sampling ratio:    " + o.Sampling.Ratio.ToString("0.0##", ic));
        output.WriteLine(string.Create(ic, $"  sources:           file, {environmentKeys} SP_ environment variable(s), {overrides} --set override(s)"));
        if (result.Report.Warnings.Count > 0)
        {
            output.WriteLine(string.Create(ic, $"{result.Report.Warnings.Count} warning(s):"));
            foreach (var warning in result.Report.Warnings)
            {
                output.WriteLine("warning: " + warning);
            }
        }
    }

    private static int CountEnvironmentKeys(IReadOnlyDictionary<string, string?> environment) =>
        environment.Keys.Count(k => k.StartsWith("SP_", StringComparison.OrdinalIgnoreCase) && k.Length > 3);
}
