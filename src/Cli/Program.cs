using System.CommandLine;
using SpIstio.Cli.Commands;

namespace SpIstio.Cli;

internal static class Program
{
    // Long-running commands (agent, backend) drain on Ctrl+C / SIGTERM: the action's token is
    // cancelled, and the process waits this long for the drain and the export flush (the 2 s
    // default would cut them short).
    private static readonly TimeSpan _terminationTimeout = TimeSpan.FromSeconds(30);

    public static async Task<int> Main(string[] args)
    {
        // Our own handler instead of System.CommandLine's: every failure is one line and an exit code (see StartupErrors).
        var configuration = new InvocationConfiguration { ProcessTerminationTimeout = _terminationTimeout, EnableDefaultExceptionHandler = false };
        try
        {
            return await BuildRootCommand().Parse(args).InvokeAsync(configuration).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            return StartupErrors.Report(ex, configuration.Error);
        }
    }

    /// <summary>
    /// The whole command tree. Each command group lives in its own file under Commands/ and is
    /// added here, so new subcommands do not touch the others.
    /// </summary>
    internal static RootCommand BuildRootCommand()
    {
        var root = new RootCommand("sp: capture, search and replay of HTTP exchanges in an Istio mesh.");
        root.Subcommands.Add(ConfigCommands.Create());
        root.Subcommands.Add(AgentCommands.Create());
        root.Subcommands.Add(BackendCommands.Create());
        root.Subcommands.Add(KeysCommands.Create());
        root.Subcommands.Add(TenantsCommands.Create());
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(ReplayCommand.Create());
        return root;
    }
}
