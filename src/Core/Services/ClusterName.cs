using System.Globalization;
using SpIstio.Core.Model;

namespace SpIstio.Core.Services;

/// <summary>
/// Istio's Envoy cluster names, <c>direction|port|subset|host</c>: e.g.
/// <c>outbound|9080||reviews.default.svc.cluster.local</c>, <c>outbound|9080|v1|reviews.default.svc.cluster.local</c>
/// (a DestinationRule subset), <c>inbound|9080||</c> and <c>inbound|9080|http|reviews.default.svc.cluster.local</c>.
/// Envoy reports the one serving a stream as the <c>xds.cluster_name</c> attribute.
/// </summary>
public static class ClusterName
{
    /// <summary>
    /// Splits an Istio cluster name. False for anything else (Envoy's own clusters such as
    /// <c>PassthroughCluster</c> or <c>BlackHoleCluster</c>, or a malformed name).
    /// </summary>
    /// <param name="clusterName">The cluster name.</param>
    /// <param name="direction">Inbound for <c>inbound|…</c>, outbound for <c>outbound|…</c>.</param>
    /// <param name="port">The service port, 0–65535.</param>
    /// <param name="host">The service's FQDN, or null when the name has none (<c>inbound|9080||</c>).</param>
    public static bool TryParse(string? clusterName, out TrafficDirection direction, out int port, out string? host)
    {
        direction = default;
        port = 0;
        host = null;
        if (clusterName is null)
        {
            return false;
        }

        var rest = clusterName.AsSpan();
        if (!NextPart(ref rest, out var directionPart) || !NextPart(ref rest, out var portPart)
            || !NextPart(ref rest, out _) || rest.Contains('|'))
        {
            return false;
        }

        if (directionPart.SequenceEqual("inbound"))
        {
            direction = TrafficDirection.Inbound;
        }
        else if (directionPart.SequenceEqual("outbound"))
        {
            direction = TrafficDirection.Outbound;
        }
        else
        {
            return false;
        }

        if (!int.TryParse(portPart, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port > 65535)
        {
            port = 0;
            return false;
        }

        host = rest.IsEmpty ? null : rest.ToString();
        return true;
    }

    /// <summary>The first DNS label of a host: <c>reviews.default.svc.cluster.local</c> → <c>reviews</c>.</summary>
    public static string FirstLabel(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var dot = host.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? host : host[..dot];
    }

    private static bool NextPart(ref ReadOnlySpan<char> rest, out ReadOnlySpan<char> part)
    {
        var bar = rest.IndexOf('|');
        if (bar < 0)
        {
            part = [];
            return false;
        }

        part = rest[..bar];
        rest = rest[(bar + 1)..];
        return true;
    }
}
