using System.Net.Sockets;

namespace SpIstio.Core.Startup;

/// <summary>Turns the exception Kestrel throws when it cannot bind into one line naming the listener and the port.</summary>
public static class ListenerErrors
{
    /// <summary>
    /// A <see cref="StartupException"/> for a failed bind of the listener set by
    /// <paramref name="option"/> (e.g. <c>--listen</c>) to <paramref name="address"/>, described as
    /// <paramref name="role"/> (e.g. <c>HTTP listener</c>), or null when <paramref name="exception"/>
    /// is not a bind failure.
    /// </summary>
    public static StartupException? Describe(Exception exception, string option, string address, string role)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var listener = option + " " + address + " (" + role + ")";
        var socket = Find<SocketException>(exception);
        var port = PortOf(address);
        // Kestrel wraps the socket error in an IOException ("Failed to bind to address …"), and for
        // a port in use throws its own AddressInUseException.
        var inUse = socket?.SocketErrorCode == SocketError.AddressAlreadyInUse
            || HasType(exception, "Microsoft.AspNetCore.Connections.AddressInUseException");
        if (inUse)
        {
            return new StartupException(listener + ": port " + port + " is already in use (another process listens there; pick another port or stop it)", StartupFailure.Unavailable, exception);
        }

        if (socket is not null)
        {
            var reason = socket.SocketErrorCode switch
            {
                SocketError.AddressNotAvailable => "the address is not one of this machine's addresses",
                SocketError.AccessDenied => "permission denied (ports below 1024 need privileges)",
                _ => socket.Message,
            };
            return new StartupException(listener + ": cannot listen: " + reason, StartupFailure.Unavailable, exception);
        }

        if (exception is IOException io && io.Message.StartsWith("Failed to bind", StringComparison.Ordinal))
        {
            return new StartupException(listener + ": cannot listen: " + io.Message, StartupFailure.Unavailable, exception);
        }

        return null;
    }

    /// <summary>The port part of <c>host:port</c>.</summary>
    private static string PortOf(string address)
    {
        var colon = address.LastIndexOf(':');
        return colon < 0 ? address : address[(colon + 1)..];
    }

    private static T? Find<T>(Exception? exception)
        where T : Exception
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is T found)
            {
                return found;
            }
        }

        return null;
    }

    private static bool HasType(Exception? exception, string fullName)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e.GetType().FullName == fullName)
            {
                return true;
            }
        }

        return false;
    }
}
