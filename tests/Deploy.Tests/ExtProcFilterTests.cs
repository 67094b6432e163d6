using YamlDotNet.RepresentationModel;

namespace SpIstio.Deploy.Tests;

/// <summary>The Istio EnvoyFilters and the Envoy Gateway policy wire ext_proc the way the agent needs it.</summary>
public sealed class ExtProcFilterTests
{
    private const string ExtProcType = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor";

    public static TheoryData<string> Overlays => new(DeployTree.Overlays);

    /// <summary>Every ext_proc filter config (typed_config) inserted by the EnvoyFilters of a render.</summary>
    private static List<(Manifest Filter, string Context, YamlMappingNode Config)> ExtProcConfigs(IEnumerable<Manifest> objects) =>
        objects.Where(o => o.Kind == "EnvoyFilter")
            .SelectMany(f => Manifest.Maps(f.Root, "spec", "configPatches").Select(p => (Filter: f, Patch: p)))
            .Where(x => Manifest.Scalar(x.Patch, "applyTo") == "HTTP_FILTER")
            .Select(x => (x.Filter, Context: Manifest.Scalar(x.Patch, "match", "context") ?? "", Config: Manifest.Get(x.Patch, "patch", "value", "typed_config") as YamlMappingNode))
            .Where(x => x.Config is not null && Manifest.Scalar(x.Config, "@type") == ExtProcType)
            .Select(x => (x.Filter, x.Context, x.Config!))
            .ToList();

    [Theory]
    [MemberData(nameof(Overlays))]
    public void EveryExtProcFilter_FailsOpenAndAsksForTheClusterName(string overlay)
    {
        foreach (var (filter, context, config) in ExtProcConfigs(DeployTree.Render("overlays/" + overlay)))
        {
            var where = $"{filter.Id} {context}";
            Assert.True(Manifest.Scalar(config, "failure_mode_allow") == "true", $"{where}: failure_mode_allow is not true");
            Assert.Contains("xds.cluster_name", Manifest.Strings(config, "request_attributes"));
            Assert.NotNull(Manifest.Scalar(config, "message_timeout"));
            var metadata = Manifest.Maps(config, "grpc_service", "initial_metadata").Select(m => Manifest.Scalar(m, "key")).ToList();
            Assert.Contains("x-sp-direction", metadata);
            Assert.Contains("x-sp-service-name", metadata);

            // A gRPC call's status is in the response trailers; without them it is never recorded.
            Assert.True(Manifest.Scalar(config, "processing_mode", "response_trailer_mode") == "SEND", $"{where}: response_trailer_mode is not SEND");
        }
    }

    [Fact]
    public void SharedAgentFilters_CoverInboundOutboundAndGatewayWithMatchingDirections()
    {
        var configs = ExtProcConfigs(DeployTree.Render("overlays/global"));

        var directions = configs.ToDictionary(
            c => c.Context,
            c => Manifest.Maps(c.Config, "grpc_service", "initial_metadata").Single(m => Manifest.Scalar(m, "key") == "x-sp-direction"));
        Assert.Equal(["GATEWAY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND"], directions.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("inbound", Manifest.Scalar(directions["SIDECAR_INBOUND"], "value"));
        Assert.Equal("outbound", Manifest.Scalar(directions["SIDECAR_OUTBOUND"], "value"));
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void EveryExtProcCluster_ResolvesToAnAgentServiceOrALoopbackCluster(string overlay)
    {
        var objects = DeployTree.Render("overlays/" + overlay);
        var addedClusters = objects.Where(o => o.Kind == "EnvoyFilter")
            .SelectMany(f => Manifest.Maps(f.Root, "spec", "configPatches"))
            .Where(p => Manifest.Scalar(p, "applyTo") == "CLUSTER" && Manifest.Scalar(p, "patch", "operation") == "ADD")
            .Select(p => Manifest.Scalar(p, "patch", "value", "name"))
            .ToHashSet();

        foreach (var (filter, context, config) in ExtProcConfigs(objects))
        {
            var cluster = Manifest.Scalar(config, "grpc_service", "envoy_grpc", "cluster_name") ?? "";
            if (addedClusters.Contains(cluster))
            {
                continue;
            }

            // Istio's name for a Service port: outbound|<port>||<svc>.<ns>.svc.cluster.local
            var parts = cluster.Split('|');
            Assert.True(parts.Length == 4 && parts[0] == "outbound", $"{filter.Id} {context}: '{cluster}' is neither an added cluster nor an Istio outbound cluster");
            var host = parts[3].Split('.');
            var service = objects.SingleOrDefault(o => o.Kind == "Service" && o.Name == host[0] && o.Namespace == host[1]);
            Assert.True(service is not null, $"{filter.Id} {context}: no Service {host[1]}/{host[0]} in the render for '{cluster}'");
            var port = Manifest.Maps(service!.Root, "spec", "ports").SingleOrDefault(p => Manifest.Scalar(p, "port") == parts[1]);
            Assert.True(port is not null, $"{service.Id} has no port {parts[1]}");
            Assert.StartsWith("grpc-", Manifest.Scalar(port, "name"));
        }
    }

    [Theory]
    [InlineData("global", "istio-system", false)]
    [InlineData("namespace", "travel", false)]
    [InlineData("workload", "travel", true)]
    [InlineData("in-pod", "travel", true)]
    public void Scope_IsSetByNamespaceAndSelector(string overlay, string expectedNamespace, bool hasSelector)
    {
        var filter = DeployTree.Render("overlays/" + overlay).Single(o => o.Kind == "EnvoyFilter" && o.Name == "sp-extproc");

        Assert.Equal(expectedNamespace, filter.Namespace);
        Assert.Equal(hasSelector, Manifest.Get(filter.Root, "spec", "workloadSelector") is not null);
    }

    [Theory]
    [InlineData("observability")]
    [InlineData("production")]
    public void ObservabilityVariant_NeverBlocksAndNeverBuffers(string overlay)
    {
        var configs = ExtProcConfigs(DeployTree.Render("overlays/" + overlay));

        Assert.NotEmpty(configs);
        foreach (var (filter, context, config) in configs)
        {
            Assert.True(Manifest.Scalar(config, "observability_mode") == "true", $"{filter.Id} {context}: observability_mode is not true");
            var bodyModes = new[] { "request_body_mode", "response_body_mode" }.Select(m => Manifest.Scalar(config, "processing_mode", m)).ToList();
            Assert.All(bodyModes, mode => Assert.True(mode is null or "NONE" or "STREAMED", $"{filter.Id} {context}: body mode {mode} is not allowed in observability mode"));
        }
    }

    [Fact]
    public void SyncVariant_BuffersRequestBodiesAndLetsTheAgentOverrideTheMode()
    {
        var configs = ExtProcConfigs(DeployTree.Render("overlays/sync"));

        Assert.Equal(3, configs.Count);
        Assert.All(configs, c =>
        {
            Assert.Equal("BUFFERED", Manifest.Scalar(c.Config, "processing_mode", "request_body_mode"));
            Assert.Equal("true", Manifest.Scalar(c.Config, "allow_mode_override"));
            Assert.Null(Manifest.Scalar(c.Config, "observability_mode"));
        });
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void AgentAndBackendPods_AreExemptFromCaptureWhereverAFilterReachesTheirNamespace(string overlay)
    {
        var objects = DeployTree.Render("overlays/" + overlay);
        var filters = objects.Where(o => o.Kind == "EnvoyFilter").ToList();
        foreach (var workload in objects.Where(o => o.Kind == "Deployment" && o.Name is "sp-agent" or "sp-backend"))
        {
            var meshWide = filters.Any(f => f.Name == "sp-extproc" && f.Namespace == "istio-system");
            var sameNamespace = filters.Any(f => f.Name == "sp-extproc" && f.Namespace == workload.Namespace && Manifest.Get(f.Root, "spec", "workloadSelector") is null);
            if (!meshWide && !sameNamespace)
            {
                continue;
            }

            // A loop otherwise: the agent's sidecar would call the agent for every stream it receives.
            Assert.Equal("off", Manifest.Scalar(workload.Root, "spec", "template", "metadata", "labels", "sp.dev/capture"));
            var exemption = filters.SingleOrDefault(f => f.Name == "sp-no-capture" && f.Namespace == workload.Namespace);
            Assert.True(exemption is not null, $"{workload.Id} is reached by the ext_proc filter but its namespace has no sp-no-capture EnvoyFilter");
            Assert.Equal("off", Manifest.Scalar(exemption!.Root, "spec", "workloadSelector", "labels", "sp.dev/capture"));
        }
    }

    [Fact]
    public void EnvoyGatewayPolicy_FailsOpenAndTargetsTheSharedAgent()
    {
        var objects = DeployTree.Render("overlays/envoy-gateway");
        var policy = objects.Single(o => o.Kind == "EnvoyExtensionPolicy");
        var extProc = Manifest.Maps(policy.Root, "spec", "extProc").Single();
        var backend = Manifest.Maps(extProc, "backendRefs").Single();

        Assert.Equal("gateway.envoyproxy.io/v1alpha1", policy.ApiVersion);
        Assert.Equal("true", Manifest.Scalar(extProc, "failOpen"));
        Assert.Contains("xds.cluster_name", Manifest.Strings(extProc, "attributes", "request"));
        Assert.Equal(("sp-agent", "sp-system", "18080"), (Manifest.Scalar(backend, "name"), Manifest.Scalar(backend, "namespace"), Manifest.Scalar(backend, "port")));
        Assert.Contains(objects, o => o.Kind == "Service" && o.Name == "sp-agent" && o.Namespace == "sp-system");
        // Cross-namespace backendRefs are refused without a ReferenceGrant in the Service's namespace.
        var grant = objects.Single(o => o.Kind == "ReferenceGrant");
        Assert.Equal("sp-system", grant.Namespace);
        Assert.Equal(policy.Namespace, Manifest.Scalar(Manifest.Maps(grant.Root, "spec", "from").Single(), "namespace"));
    }
}
