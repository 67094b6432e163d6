using SpIstio.Core.Model;

namespace SpIstio.Core.Services;

/// <summary>
/// Which service an exchange is captured for. The original plugin's order: the configured name,
/// else the request's <c>x-sp-service-name</c> header, else what Envoy / Istio say about the
/// workload, else <see cref="ServiceNames.Default"/>.
/// </summary>
public static class ServiceNameResolver
{
    /// <summary>The header an application (or a gateway) can set to name the service explicitly.</summary>
    public const string HeaderName = "x-sp-service-name";

    /// <summary>Resolves the service name of one exchange.</summary>
    /// <param name="configured">
    /// <c>service_name</c> from the agent configuration. Used unless it is blank or
    /// <see cref="ServiceNames.Default"/>, which means "detect".
    /// </param>
    /// <param name="requestHeaders">The request headers; <c>x-sp-service-name</c> is read from them.</param>
    /// <param name="nodeWorkloadName">
    /// The workload name from the Envoy node metadata Istio sets on every sidecar: the
    /// <c>WORKLOAD_NAME</c> field, or the pod's <c>app</c> /
    /// <c>service.istio.io/canonical-name</c> label under <c>LABELS</c>, as the caller found it
    /// (ext_proc sees it in the stream's metadata; the capture proxy gets it from its own
    /// configuration). Null when unknown.
    /// </param>
    /// <param name="inboundClusterName">
    /// Envoy's <c>xds.cluster_name</c> attribute of an inbound stream
    /// (<c>inbound|9080|http|reviews.default.svc.cluster.local</c>): the first label of its host
    /// names the local service. Ignored when it is an outbound cluster (that host is the peer,
    /// not this service) or carries no host.
    /// </param>
    public static string Resolve(string? configured, HeaderList requestHeaders, string? nodeWorkloadName, string? inboundClusterName)
    {
        ArgumentNullException.ThrowIfNull(requestHeaders);
        if (!string.IsNullOrWhiteSpace(configured)
            && !string.Equals(configured, ServiceNames.Default, StringComparison.Ordinal))
        {
            return configured;
        }

        var fromHeader = requestHeaders.Get(HeaderName);
        if (!string.IsNullOrWhiteSpace(fromHeader))
        {
            return fromHeader.Trim();
        }

        if (!string.IsNullOrWhiteSpace(nodeWorkloadName))
        {
            return nodeWorkloadName;
        }

        if (ClusterName.TryParse(inboundClusterName, out var direction, out _, out var host)
            && direction == TrafficDirection.Inbound
            && host is not null)
        {
            var label = ClusterName.FirstLabel(host);
            if (label.Length > 0)
            {
                return label;
            }
        }

        return ServiceNames.Default;
    }
}
