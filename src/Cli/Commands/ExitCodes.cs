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
}
