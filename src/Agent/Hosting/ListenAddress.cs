using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;

namespace SpIstio.Agent.Hosting;

/// <summary>
/// A <c>host:port</c> to listen on, as written on the command line or in configuration:
/// <c>127.0.0.1:18080</c>, <c>[::1]:80</c>, <c>0.0.0.0:15020</c>, <c>localhost:8080</c>.
/// Port 0 asks the OS for a free port (read the bound address back from the server).
/// </summary>
/// <param name="Host">An IP address (IPv6 without brackets) or a host name.</param>
/// <param name="Port">0 to 65535.</param>
public readonly record struct ListenAddress(string Host, int Port)
{
    /// <summary>The host as an IP address, or null when it is a name.</summary>
    public IPAddress? Address => IPAddress.TryParse(Host, out var ip) ? ip : null;

    /// <summary>True for <c>localhost</c> (any case).</summary>
    public bool IsLocalhost => string.Equals(Host, "localhost", StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> naming the bad value.</summary>
    public static ListenAddress Parse(string text) =>
        TryParse(text, out var address, out var error) ? address : throw new FormatException(error);

    /// <summary>
    /// Parses <c>host:port</c> or <c>[ipv6]:port</c>. On failure <paramref name="error"/> says what
    /// is wrong and quotes the value.
    /// </summary>
    public static bool TryParse(string? text, out ListenAddress address, [NotNullWhen(false)] out string? error)
    {
        address = default;
        var value = text?.Trim() ?? "";
        if (value.Length == 0)
        {
            error = "listen address is empty: expected host:port, e.g. 127.0.0.1:8080";
            return false;
        }

        string host;
        ReadOnlySpan<char> port;
        if (value[0] == '[')
        {
            var close = value.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 >= value.Length || value[close + 1] != ':')
            {
                error = $"listen address '{value}' is not [ipv6]:port";
                return false;
            }

            host = value[1..close];
            port = value.AsSpan(close + 2);
            if (!IPAddress.TryParse(host, out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                error = $"listen address '{value}': '{host}' is not an IPv6 address";
                return false;
            }
        }
        else
        {
            var colon = value.LastIndexOf(':');
            if (colon < 0)
            {
                error = $"listen address '{value}' has no port: expected host:port";
                return false;
            }

            if (value.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                error = $"listen address '{value}': write IPv6 addresses in brackets, e.g. [::1]:8080";
                return false;
            }

            host = value[..colon];
            port = value.AsSpan(colon + 1);
            if (host.Length == 0)
            {
                error = $"listen address '{value}' has no host: use 0.0.0.0:{port} for every interface";
                return false;
            }

            if (!IPAddress.TryParse(host, out _) && Uri.CheckHostName(host) != UriHostNameType.Dns)
            {
                error = $"listen address '{value}': '{host}' is neither an IP address nor a host name";
                return false;
            }
        }

        if (port.Length == 0
            || !int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number)
            || number > 65535)
        {
            error = $"listen address '{value}': port '{port}' is not a number from 0 to 65535";
            return false;
        }

        address = new ListenAddress(host, number);
        error = null;
        return true;
    }

    /// <summary><c>host:port</c>, with IPv6 addresses in brackets.</summary>
    public override string ToString() =>
        Address is { AddressFamily: System.Net.Sockets.AddressFamily.InterNetworkV6 }
            ? string.Create(CultureInfo.InvariantCulture, $"[{Host}]:{Port}")
            : string.Create(CultureInfo.InvariantCulture, $"{Host}:{Port}");
}
