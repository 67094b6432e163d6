using System.CommandLine;
using SpIstio.Backend.Hosting;
using SpIstio.Cli.Commands;
using SpIstio.Core.Startup;

namespace SpIstio.Cli;

internal static class Program
{
    public static Task<int> Main(string[] args) => CommandRunner.RunAsync(BuildRootCommand(), args, static ex =>
        ex is BackendOptionsException options ? new StartupException(string.Join("; ", options.Problems), StartupFailure.InvalidInput, options) : ex);

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
