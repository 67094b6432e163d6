using System.CommandLine;
using SpIstio.Cli.Commands;

namespace SpIstio.Cli;

/// <summary>
/// <c>sp-agent</c>: the <c>agent</c> command group of <c>sp</c> alone, so <c>sp-agent agent proxy …</c>
/// is <c>sp agent proxy …</c> (a script or manifest swaps the executable and nothing else).
/// </summary>
internal static class Program
{
    public static Task<int> Main(string[] args)
    {
        // First: on an x86-64-v3 CPU this does not return (the process becomes the v3 build).
        if (CpuBuild.ExecBest(args) is { } problem)
        {
            Console.Error.WriteLine("error: " + problem);
            return Task.FromResult(ExitCodes.InvalidInput);
        }

        var root = new RootCommand("sp-agent: the SP-Istio capture agent (Native AOT), as Envoy's ext_proc service or a standalone capture proxy.");
        root.Subcommands.Add(AgentCommands.Create());
        return CommandRunner.RunAsync(root, args);
    }
}
