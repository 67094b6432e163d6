namespace SpIstio.Core.Startup;

/// <summary>Why a process could not start: decides the exit code of <c>sp</c>.</summary>
public enum StartupFailure
{
    /// <summary>What the operator wrote is wrong (a connection string keyword, a TLS file that is not PEM); fixing the input fixes it.</summary>
    InvalidInput,

    /// <summary>The input is fine but the machine or a dependency refused (port in use, database down, folder not writable, schema too new).</summary>
    Unavailable,
}

/// <summary>
/// A start-up mistake described in one line an operator can act on, e.g.
/// <c>--listen 127.0.0.1:8090 (HTTP listener): port 8090 is already in use</c>. <c>sp</c> prints
/// the message alone (no stack trace) and exits with the code of <see cref="Failure"/>.
/// </summary>
public sealed class StartupException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StartupException(string message, StartupFailure failure, Exception? innerException = null)
        : base(message, innerException)
    {
        Failure = failure;
    }

    /// <summary>Creates an <see cref="StartupFailure.InvalidInput"/> exception.</summary>
    public StartupException(string message)
        : this(message, StartupFailure.InvalidInput)
    {
    }

    /// <summary>Creates an <see cref="StartupFailure.InvalidInput"/> exception.</summary>
    public StartupException()
        : this("start-up failed", StartupFailure.InvalidInput)
    {
    }

    /// <summary>Creates an <see cref="StartupFailure.InvalidInput"/> exception.</summary>
    public StartupException(string message, Exception innerException)
        : this(message, StartupFailure.InvalidInput, innerException)
    {
    }

    /// <summary>Whether the input or the environment is at fault.</summary>
    public StartupFailure Failure { get; }
}
