using System.CommandLine;
using SpIstio.Cli.Commands;

namespace SpIstio.Cli;

internal static class Program
{
    // Ctrl+C / SIGTERM cancel the running command's token; the agent commands then drain and flush
    // within their own bounds (stream drain 10 s, export.shutdown_flush_ms), so the hard stop is later.
    private static readonly InvocationConfiguration _invocation = new() { ProcessTerminationTimeout = TimeSpan.FromSeconds(30) };

    public static int Main(string[] args) => BuildRootCommand().Parse(args).Invoke(_invocation);

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
        return root;
    }
}
