using System.CommandLine;

namespace SpIstio.Cli.Commands;

/// <summary><c>sp agent …</c>: the capture agent in its modes.</summary>
internal static class AgentCommands
{
    public static Command Create()
    {
        var agent = new Command("agent", "Run the capture agent: as Envoy's ext_proc service or as a standalone capture proxy.");
        agent.Subcommands.Add(ProxyCommand.Create());
        return agent;
    }
}
