namespace SpIstio.Backend.Storage;

/// <summary>
/// A text query (<c>q</c>) that would make the store check more spans than one request may: the
/// API answers 400 naming <c>q</c> and the limit.
/// </summary>
public sealed class SearchTooBroadException : Exception
{
    /// <summary>Creates the exception; <paramref name="message"/> completes "'q' …".</summary>
    public SearchTooBroadException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with no detail.</summary>
    public SearchTooBroadException()
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public SearchTooBroadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
