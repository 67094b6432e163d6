namespace SpIstio.Cli.Commands;

/// <summary>Process exit codes shared by every command.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what was asked.</summary>
    public const int Success = 0;

    /// <summary>The command line itself was wrong (System.CommandLine's own code for parse errors).</summary>
    public const int UsageError = 1;

    /// <summary>The input (a configuration file, say) is invalid; the problems were printed.</summary>
    public const int InvalidInput = 2;

    /// <summary><c>sp replay</c> found a regression (or an exchange it could not compare).</summary>
    public const int Regressions = 3;

    /// <summary>
    /// The command could not start although its input was well-formed: a port in use, a database
    /// that refuses or cannot be reached, a folder that cannot be written, a schema newer than known.
    /// </summary>
    public const int Unavailable = 4;

    /// <summary>Something failed that <c>sp</c> has no specific message for (a bug); the one-line error names the exception.</summary>
    public const int InternalError = 70;
}
