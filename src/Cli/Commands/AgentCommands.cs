using System.CommandLine;

namespace SpIstio.Cli.Commands;

/// <summary><c>sp agent …</c>: the capture agent in each of its modes, one file per mode.</summary>
internal static class AgentCommands
{
    public static Command Create()
    {
        var agent = new Command("agent", "Run the capture agent: beside Envoy (extproc) or as a capture proxy.");
        agent.Subcommands.Add(ExtProcCommand.Create());
        return agent;
    }
}
