namespace SpIstio.Core.Model;

/// <summary>
/// Reading an authority (<c>:authority</c> / <c>Host</c>): the one splitter behind the capture
/// rules (which match names) and the OTLP mapping (which writes <c>server.address</c> and
/// <c>server.port</c>).
/// </summary>
public static class HostName
{
    /// <summary>
    /// Splits <paramref name="authority"/> into its host (brackets of an IPv6 literal removed) and
    /// the text after the port colon (empty when there is none). A bare IPv6 address (more than
    /// one colon, no brackets) has no port and is returned whole; a <c>[</c> without its <c>]</c>
    /// is returned whole too.
    /// </summary>
    public static void Split(ReadOnlySpan<char> authority, out ReadOnlySpan<char> host, out ReadOnlySpan<char> port)
    {
        host = authority;
        port = default;
        if (authority.IsEmpty)
        {
            return;
        }

        if (authority[0] == '[')
        {
            var close = authority.IndexOf(']');
            if (close >= 0)
            {
                host = authority[1..close];
                var rest = authority[(close + 1)..];
                port = rest.Length > 0 && rest[0] == ':' ? rest[1..] : default;
            }

            return;
        }

        var colon = authority.IndexOf(':');
        if (colon >= 0 && !authority[(colon + 1)..].Contains(':'))
        {
            host = authority[..colon];
            port = authority[(colon + 1)..];
        }
    }

    /// <summary>
    /// The host part of an authority: <c>api.example.com:8443</c> → <c>api.example.com</c>,
    /// <c>[::1]:80</c> and <c>[::1]</c> → <c>::1</c>. Rules match names, not sockets, and an
    /// operator writes an IPv6 address without the URI brackets (RFC 3986 §3.2.2 only adds them so
    /// the port can follow).
    /// </summary>
    public static ReadOnlySpan<char> WithoutPort(ReadOnlySpan<char> authority)
    {
        Split(authority, out var host, out _);
        return host;
    }
}
