using YamlDotNet.RepresentationModel;

namespace SpIstio.Deploy.Tests;

/// <summary>Every kustomization renders, and the rendered workloads meet the project's hardening rules.</summary>
public sealed class RenderTests
{
    public static TheoryData<string> Renderable => new(DeployTree.RenderableDirectories);

    public static TheoryData<string> Overlays => new(DeployTree.Overlays);

    [Fact]
    public void OverlayFolder_HoldsEveryScopeAndPlacement()
    {
        Assert.Superset(
            new HashSet<string>(["global", "namespace", "workload", "observability", "sync", "in-pod", "envoy-gateway", "production"]),
            DeployTree.Overlays.ToHashSet());
    }

    [Theory]
    [MemberData(nameof(Renderable))]
    public void Kustomization_RendersWithKubectlKustomize(string dir)
    {
        var objects = DeployTree.Render(dir);

        Assert.NotEmpty(objects);
        Assert.All(objects, o =>
        {
            Assert.False(string.IsNullOrEmpty(o.Kind), "an object without kind");
            Assert.False(string.IsNullOrEmpty(o.Name), $"a {o.Kind} without a name");
        });
        // Names must be unique per kind and namespace, or `kubectl apply` silently keeps the last one.
        var duplicates = objects.GroupBy(o => o.Id).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.Empty(duplicates);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void EveryContainer_HasResourcesProbesAndHardenedSecurityContext(string overlay)
    {
        var problems = new List<string>();
        foreach (var workload in DeployTree.Render("overlays/" + overlay).Where(o => o.PodSpec is not null))
        {
            var podNonRoot = Manifest.Scalar(workload.PodSpec, "securityContext", "runAsNonRoot") == "true";
            foreach (var c in workload.Containers)
            {
                var where = $"{workload.Id} container {Manifest.Scalar(c, "name")}";
                foreach (var kind in new[] { "requests", "limits" })
                {
                    foreach (var resource in new[] { "cpu", "memory" })
                    {
                        if (Manifest.Scalar(c, "resources", kind, resource) is null)
                        {
                            problems.Add($"{where}: no resources.{kind}.{resource}");
                        }
                    }
                }

                foreach (var probe in new[] { "livenessProbe", "readinessProbe" })
                {
                    if (Manifest.Get(c, probe) is null)
                    {
                        problems.Add($"{where}: no {probe}");
                    }
                }

                var sc = Manifest.Get(c, "securityContext");
                if (!podNonRoot && Manifest.Scalar(sc, "runAsNonRoot") != "true")
                {
                    problems.Add($"{where}: runAsNonRoot is not true");
                }

                if (Manifest.Scalar(sc, "readOnlyRootFilesystem") != "true")
                {
                    problems.Add($"{where}: readOnlyRootFilesystem is not true");
                }

                if (!Manifest.Strings(sc, "capabilities", "drop").Contains("ALL"))
                {
                    problems.Add($"{where}: capabilities.drop does not contain ALL");
                }
            }
        }

        Assert.Empty(problems);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void EveryImage_HasAPinnedTagOtherThanLatest(string overlay)
    {
        var images = DeployTree.Render("overlays/" + overlay)
            .SelectMany(w => w.Containers)
            .Select(c => Manifest.Scalar(c, "image") ?? "")
            .ToList();

        Assert.NotEmpty(images);
        Assert.All(images, image => Assert.True(ImageReference.HasPinnedTag(image), $"image '{image}' has no tag or uses latest"));
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void EverySecretConfigMapAndClaimAWorkloadUses_IsInTheSameRender(string overlay)
    {
        var objects = DeployTree.Render("overlays/" + overlay);
        var present = objects.Select(o => (o.Kind, o.Namespace, o.Name)).ToHashSet();
        var missing = new List<string>();
        foreach (var workload in objects.Where(o => o.PodSpec is not null))
        {
            foreach (var (kind, name) in References(workload.PodSpec!))
            {
                if (!present.Contains((kind, workload.Namespace, name)))
                {
                    missing.Add($"{workload.Id} uses {kind} {workload.Namespace}/{name}");
                }
            }
        }

        Assert.Empty(missing);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void AgentServicePorts_AreNamedGrpcSoIstioSpeaksHttp2(string overlay)
    {
        var agentServices = DeployTree.Render("overlays/" + overlay)
            .Where(o => o.Kind == "Service" && Manifest.Scalar(o.Root, "spec", "selector", "app.kubernetes.io/name") == "sp-agent")
            .ToList();

        foreach (var service in agentServices)
        {
            var extProc = Manifest.Maps(service.Root, "spec", "ports").Single(p => Manifest.Scalar(p, "port") == "18080");
            Assert.StartsWith("grpc-", Manifest.Scalar(extProc, "name"));
        }
    }

    private static IEnumerable<(string Kind, string Name)> References(YamlMappingNode podSpec)
    {
        foreach (var volume in Manifest.Maps(podSpec, "volumes"))
        {
            if (Manifest.Scalar(volume, "secret", "secretName") is { } secret)
            {
                yield return ("Secret", secret);
            }

            if (Manifest.Scalar(volume, "configMap", "name") is { } configMap)
            {
                yield return ("ConfigMap", configMap);
            }

            if (Manifest.Scalar(volume, "persistentVolumeClaim", "claimName") is { } claim)
            {
                yield return ("PersistentVolumeClaim", claim);
            }

            foreach (var source in Manifest.Maps(volume, "projected", "sources"))
            {
                if (Manifest.Scalar(source, "secret", "name") is { } s)
                {
                    yield return ("Secret", s);
                }

                if (Manifest.Scalar(source, "configMap", "name") is { } m)
                {
                    yield return ("ConfigMap", m);
                }
            }
        }

        foreach (var container in Manifest.Maps(podSpec, "containers").Concat(Manifest.Maps(podSpec, "initContainers")))
        {
            foreach (var env in Manifest.Maps(container, "env"))
            {
                if (Manifest.Scalar(env, "valueFrom", "secretKeyRef", "name") is { } s)
                {
                    yield return ("Secret", s);
                }

                if (Manifest.Scalar(env, "valueFrom", "configMapKeyRef", "name") is { } m)
                {
                    yield return ("ConfigMap", m);
                }
            }

            foreach (var envFrom in Manifest.Maps(container, "envFrom"))
            {
                if (Manifest.Scalar(envFrom, "secretRef", "name") is { } s)
                {
                    yield return ("Secret", s);
                }

                if (Manifest.Scalar(envFrom, "configMapRef", "name") is { } m)
                {
                    yield return ("ConfigMap", m);
                }
            }
        }
    }
}
