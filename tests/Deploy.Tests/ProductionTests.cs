using System.Text;

namespace SpIstio.Deploy.Tests;

/// <summary>The production overlay: availability, secrets, isolation between tenants, monitoring.</summary>
public sealed class ProductionTests
{
    private static List<Manifest> Objects => DeployTree.Render("overlays/production");

    private static Manifest Backend => Objects.Single(o => o.Kind == "Deployment" && o.Name == "sp-backend");

    [Fact]
    public void Backend_RunsThreeReplicasSpreadOverNodesWithAPdbOfTwoAndAnHpa()
    {
        var pdb = Objects.Single(o => o.Kind == "PodDisruptionBudget" && o.Name == "sp-backend");
        var hpa = Objects.Single(o => o.Kind == "HorizontalPodAutoscaler" && o.Name == "sp-backend");

        Assert.Equal("3", Manifest.Scalar(Backend.Root, "spec", "replicas"));
        Assert.Equal("2", Manifest.Scalar(pdb.Root, "spec", "minAvailable"));
        Assert.Equal("sp-backend", Manifest.Scalar(pdb.Root, "spec", "selector", "matchLabels", "app.kubernetes.io/name"));
        Assert.Equal("3", Manifest.Scalar(hpa.Root, "spec", "minReplicas"));
        Assert.Equal("sp-backend", Manifest.Scalar(hpa.Root, "spec", "scaleTargetRef", "name"));
        Assert.NotNull(Manifest.Get(Backend.PodSpec, "affinity", "podAntiAffinity"));
    }

    [Fact]
    public void EveryPdb_KeepsTwoOfAtLeastThreeReplicas()
    {
        var pdbs = Objects.Where(o => o.Kind == "PodDisruptionBudget").ToList();

        Assert.NotEmpty(pdbs);
        foreach (var pdb in pdbs)
        {
            var app = Manifest.Scalar(pdb.Root, "spec", "selector", "matchLabels", "app.kubernetes.io/name");
            var deployment = Objects.Single(o => o.Kind == "Deployment" && o.Namespace == pdb.Namespace
                && Manifest.Scalar(o.Root, "spec", "selector", "matchLabels", "app.kubernetes.io/name") == app);
            Assert.Equal("2", Manifest.Scalar(pdb.Root, "spec", "minAvailable"));
            Assert.True(int.Parse(Manifest.Scalar(deployment.Root, "spec", "replicas") ?? "1") >= 3, $"{deployment.Id} has fewer than 3 replicas under {pdb.Id}");
        }
    }

    [Fact]
    public void EveryPod_IsHardenedWithStartupProbesAndRuntimeDefaultSeccomp()
    {
        foreach (var workload in Objects.Where(o => o.PodSpec is not null))
        {
            Assert.Equal("RuntimeDefault", Manifest.Scalar(workload.PodSpec, "securityContext", "seccompProfile", "type"));
            Assert.Equal("true", Manifest.Scalar(workload.PodSpec, "securityContext", "runAsNonRoot"));
            Assert.All(workload.Containers, c =>
            {
                Assert.Equal("/healthz", Manifest.Scalar(c, "startupProbe", "httpGet", "path"));
                Assert.Equal("/healthz", Manifest.Scalar(c, "livenessProbe", "httpGet", "path"));
                Assert.Equal("/readyz", Manifest.Scalar(c, "readinessProbe", "httpGet", "path"));
                Assert.Equal("false", Manifest.Scalar(c, "securityContext", "allowPrivilegeEscalation"));
            });
        }
    }

    [Fact]
    public void Backend_TakesThePostgresDsnFromASecretAndKeepsNoLocalStore()
    {
        var container = Backend.Containers.Single();
        var args = Manifest.Strings(container, "args").ToList();
        var storeEnv = Manifest.Maps(container, "env").Single(e => Manifest.Scalar(e, "name") == "SP_STORE");
        var secretName = Manifest.Scalar(storeEnv, "valueFrom", "secretKeyRef", "name");
        var secret = Objects.Single(o => o.Kind == "Secret" && o.Name == secretName && o.Namespace == "sp-system");

        Assert.Equal("$(SP_STORE)", args[args.IndexOf("--store") + 1]);
        var dsn = Encoding.UTF8.GetString(Convert.FromBase64String(Manifest.Scalar(secret.Root, "data", "SP_STORE")!));
        Assert.Equal(DeployTree.FilledValue("overlays/production/backend-store.env", "SP_STORE"), dsn);
        Assert.DoesNotContain(Objects, o => o.Kind == "PersistentVolumeClaim");
        Assert.DoesNotContain(Manifest.Maps(Backend.PodSpec, "volumes"), v => Manifest.Get(v, "persistentVolumeClaim") is not null);
    }

    [Fact]
    public void EachTenantNamespace_HasItsOwnAgentKeyAndNamespaceScopedFilter()
    {
        var agents = Objects.Where(o => o.Kind == "Deployment" && o.Name == "sp-agent").ToList();

        Assert.True(agents.Count >= 2, "the production overlay should show at least two client namespaces");
        foreach (var agent in agents)
        {
            var ns = agent.Namespace!;
            var keyRef = Manifest.Maps(agent.Containers.Single(), "env").Single(e => Manifest.Scalar(e, "name") == "SP_PUBLIC_KEY");
            var secret = Objects.Single(o => o.Kind == "Secret" && o.Namespace == ns && o.Name == Manifest.Scalar(keyRef, "valueFrom", "secretKeyRef", "name"));
            var key = Encoding.UTF8.GetString(Convert.FromBase64String(Manifest.Scalar(secret.Root, "data", "SP_PUBLIC_KEY")!));
            Assert.Equal(DeployTree.FilledValue($"overlays/production/tenants/{ns}/agent-key.env", "SP_PUBLIC_KEY"), key);

            var filter = Objects.Single(o => o.Kind == "EnvoyFilter" && o.Name == "sp-extproc" && o.Namespace == ns);
            Assert.Null(Manifest.Get(filter.Root, "spec", "workloadSelector"));
            Assert.All(Manifest.Maps(filter.Root, "spec", "configPatches"), p =>
                Assert.Equal($"outbound|18080||sp-agent.{ns}.svc.cluster.local", Manifest.Scalar(p, "patch", "value", "typed_config", "grpc_service", "envoy_grpc", "cluster_name")));

            var ns0 = Objects.Single(o => o.Kind == "Namespace" && o.Name == ns);
            Assert.Equal(ns, Manifest.Scalar(ns0.Root, "metadata", "labels", "sp.dev/tenant"));
        }

        Assert.DoesNotContain(Objects, o => o.Kind == "EnvoyFilter" && o.Namespace == "istio-system");
    }

    [Fact]
    public void OnlyTenantAgentsReachIngest_AndOnlyTheGatewayReachesTheUi()
    {
        var agentNamespaces = Objects.Where(o => o.Kind == "Deployment" && o.Name == "sp-agent").Select(o => o.Namespace).ToList();
        var policy = Objects.Single(o => o.Kind == "AuthorizationPolicy" && o.Namespace == "sp-system");
        var rules = Manifest.Maps(policy.Root, "spec", "rules").ToList();
        var ingestRule = rules.Single(r => Manifest.Maps(r, "to").Any(t => Manifest.Strings(t, "operation", "paths").Contains("/v1/traces")));
        var uiRule = rules.Single(r => r != ingestRule);

        Assert.Equal("ALLOW", Manifest.Scalar(policy.Root, "spec", "action"));
        Assert.Equal(
            agentNamespaces.Select(ns => $"cluster.local/ns/{ns}/sa/sp-agent").Order(StringComparer.Ordinal),
            Manifest.Maps(ingestRule, "from").SelectMany(f => Manifest.Strings(f, "source", "principals")).Order(StringComparer.Ordinal));
        Assert.Equal(
            ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"],
            Manifest.Maps(uiRule, "from").SelectMany(f => Manifest.Strings(f, "source", "principals")));
        Assert.Contains("/v1/traces", Manifest.Maps(uiRule, "to").SelectMany(t => Manifest.Strings(t, "operation", "notPaths")));

        var strict = Objects.Single(o => o.Kind == "PeerAuthentication" && o.Namespace == "sp-system");
        Assert.Equal("STRICT", Manifest.Scalar(strict.Root, "spec", "mtls", "mode"));
        Assert.Null(Manifest.Get(strict.Root, "spec", "selector"));
        Assert.Contains(Objects, o => o.Kind == "NetworkPolicy" && o.Namespace == "sp-system");
    }

    [Fact]
    public void TenantAgents_AcceptStreamsOnlyFromTheirOwnNamespace()
    {
        foreach (var agent in Objects.Where(o => o.Kind == "Deployment" && o.Name == "sp-agent"))
        {
            var policy = Objects.Single(o => o.Kind == "AuthorizationPolicy" && o.Namespace == agent.Namespace);
            var sources = Manifest.Maps(policy.Root, "spec", "rules")
                .SelectMany(r => Manifest.Maps(r, "from"))
                .SelectMany(f => Manifest.Strings(f, "source", "namespaces"));

            Assert.Equal([agent.Namespace!], sources);
            Assert.Contains(Objects, o => o.Kind == "PeerAuthentication" && o.Namespace == agent.Namespace
                && Manifest.Scalar(o.Root, "spec", "mtls", "mode") == "STRICT");
        }
    }

    [Fact]
    public void Monitoring_ShipsServiceMonitorRulesAndALabelledDashboard()
    {
        Assert.Contains(Objects, o => o.Kind == "ServiceMonitor" && o.ApiVersion == "monitoring.coreos.com/v1");
        Assert.Contains(Objects, o => o.Kind == "PrometheusRule");
        var dashboard = Objects.Single(o => o.Kind == "ConfigMap" && Manifest.Scalar(o.Root, "metadata", "labels", "grafana_dashboard") == "1");
        var json = Manifest.Get(dashboard.Root, "data") as YamlDotNet.RepresentationModel.YamlMappingNode;
        var text = ((YamlDotNet.RepresentationModel.YamlScalarNode)json!.Children.Single().Value).Value!;
        using var doc = System.Text.Json.JsonDocument.Parse(text);
        Assert.True(doc.RootElement.GetProperty("panels").GetArrayLength() >= 10);
    }
}
