using SpIstio.Core.Startup;

namespace SpIstio.Cli.Commands;

/// <summary>
/// The last line of defence of <c>sp</c>: whatever escapes a command becomes one line on stderr
/// and an exit code, never a stack trace (unless <c>SP_DEBUG=1</c> asks for it).
/// </summary>
internal static class StartupErrors
{
    /// <summary>Set to 1 to print the stack trace under the one-line error.</summary>
    public const string DebugVariable = "SP_DEBUG";

    /// <summary>Writes <paramref name="exception"/> as one line and returns the exit code.</summary>
    public static int Report(Exception exception, TextWriter error)
    {
        int code;
        string line;
        switch (exception)
        {
            case StartupException startup:
                line = startup.Message;
                code = startup.Failure == StartupFailure.InvalidInput ? ExitCodes.InvalidInput : ExitCodes.Unavailable;
                break;
            default:
                line = "unexpected " + exception.GetType().Name + ": " + exception.Message.ReplaceLineEndings(" ") + " (" + DebugVariable + "=1 prints the stack trace)";
                code = ExitCodes.InternalError;
                break;
        }

        error.WriteLine("error: " + line);
        if (Environment.GetEnvironmentVariable(DebugVariable) == "1")
        {
            error.WriteLine(exception.ToString());
        }

        error.Flush();
        return code;
    }
}
