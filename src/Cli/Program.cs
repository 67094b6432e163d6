using System.CommandLine;

namespace SpIstio.Cli;

internal static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("sp: capture, search and replay of HTTP exchanges in an Istio mesh.");
        return root.Parse(args).Invoke();
    }
}
