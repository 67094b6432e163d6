namespace SpIstio.Core.Rules;

/// <summary>Host helpers shared by the rules and whoever reads <c>:authority</c>.</summary>
public static class HostName
{
    /// <summary>
    /// The host part of an authority: <c>api.example.com:8443</c> → <c>api.example.com</c>,
    /// <c>[::1]:80</c> and <c>[::1]</c> → <c>::1</c>. Rules match names, not sockets, and an
    /// operator writes an IPv6 address without the URI brackets (RFC 3986 §3.2.2 only adds them so
    /// the port can follow). A bare IPv6 address (more than one colon, no brackets) has no port
    /// and is returned unchanged.
    /// </summary>
    public static ReadOnlySpan<char> WithoutPort(ReadOnlySpan<char> authority)
    {
        if (authority.IsEmpty)
        {
            return authority;
        }

        if (authority[0] == '[')
        {
            var close = authority.IndexOf(']');
            return close < 0 ? authority : authority[1..close];
        }

        var colon = authority.IndexOf(':');
        if (colon < 0 || authority[(colon + 1)..].Contains(':'))
        {
            return authority;
        }

        return authority[..colon];
    }
}
