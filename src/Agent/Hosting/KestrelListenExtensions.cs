using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace SpIstio.Agent.Hosting;

/// <summary>Binds Kestrel to a <see cref="ListenAddress"/>.</summary>
public static class KestrelListenExtensions
{
    /// <summary>
    /// Listens on <paramref name="address"/>: an IP address as given; <c>localhost</c> on the
    /// loopback addresses (127.0.0.1 only for port 0, since one dynamic port cannot be shared by
    /// two sockets); any other name on the addresses it resolves to.
    /// </summary>
    public static void Listen(this KestrelServerOptions options, ListenAddress address, Action<ListenOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        configure ??= static _ => { };
        if (address.Address is { } ip)
        {
            options.Listen(ip, address.Port, configure);
        }
        else if (address.IsLocalhost)
        {
            if (address.Port == 0)
            {
                options.Listen(IPAddress.Loopback, 0, configure);
            }
            else
            {
                options.ListenLocalhost(address.Port, configure);
            }
        }
        else
        {
            foreach (var resolved in Dns.GetHostAddresses(address.Host))
            {
                options.Listen(resolved, address.Port, configure);
            }
        }
    }
}
