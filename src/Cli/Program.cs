using System.CommandLine;
using SpIstio.Cli.Commands;

namespace SpIstio.Cli;

internal static class Program
{
    // Long-running commands (sp backend) drain on Ctrl+C/SIGTERM; the 2 s default would cut a drain short.
    public static int Main(string[] args) =>
        BuildRootCommand().Parse(args).Invoke(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(30) });

    /// <summary>
    /// The whole command tree. Each command group lives in its own file under Commands/ and is
    /// added here, so new subcommands do not touch the others.
    /// </summary>
    internal static RootCommand BuildRootCommand()
    {
        var root = new RootCommand("sp: capture, search and replay of HTTP exchanges in an Istio mesh.");
        root.Subcommands.Add(ConfigCommands.Create());
        root.Subcommands.Add(BackendCommands.Create());
        root.Subcommands.Add(KeysCommands.Create());
        return root;
    }
}
