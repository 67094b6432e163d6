using System.CommandLine;
using SpIstio.Core.Startup;

namespace SpIstio.Cli.Commands;

/// <summary>
/// Runs a command tree the way every executable of the project does (<c>sp</c> and the Native
/// AOT <c>sp-agent</c>): Ctrl+C / SIGTERM drain with a generous timeout, and whatever escapes a
/// command becomes one line and an exit code (<see cref="StartupErrors"/>).
/// </summary>
internal static class CommandRunner
{
    // Long-running commands (agent, backend) drain on Ctrl+C / SIGTERM: the action's token is
    // cancelled, and the process waits this long for the drain and the export flush (the 2 s
    // default would cut them short).
    private static readonly TimeSpan _terminationTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Parses <paramref name="args"/> against <paramref name="root"/> and runs the command.
    /// <paramref name="translate"/> turns an executable's own exception types into a
    /// <see cref="StartupException"/> (or leaves them) before they are reported.
    /// </summary>
    public static async Task<int> RunAsync(RootCommand root, string[] args, Func<Exception, Exception>? translate = null)
    {
        ArgumentNullException.ThrowIfNull(root);

        // Our own handler instead of System.CommandLine's: every failure is one line and an exit code (see StartupErrors).
        var configuration = new InvocationConfiguration { ProcessTerminationTimeout = _terminationTimeout, EnableDefaultExceptionHandler = false };
        try
        {
            return await root.Parse(args).InvokeAsync(configuration).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            return StartupErrors.Report(translate is null ? ex : translate(ex), configuration.Error);
        }
    }
}
