using System.CommandLine;

namespace SpIstio.Cli.Commands;

/// <summary><c>sp agent …</c>: the capture agent in each of its modes, one file per mode.</summary>
internal static class AgentCommands
{
    public static Command Create()
    {
        var agent = new Command("agent", "Run the capture agent: as Envoy's ext_proc service (extproc) or as a standalone capture proxy (proxy).");
        agent.Subcommands.Add(ExtProcCommand.Create());
        agent.Subcommands.Add(ProxyCommand.Create());
        return agent;
    }
}
