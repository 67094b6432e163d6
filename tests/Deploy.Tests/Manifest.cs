using YamlDotNet.RepresentationModel;

namespace SpIstio.Deploy.Tests;

/// <summary>
/// One rendered Kubernetes object as a plain tree (mappings, sequences, scalar strings), with
/// path helpers so invariant checks read like the YAML they check.
/// </summary>
internal sealed class Manifest
{
    public Manifest(YamlMappingNode root)
    {
        Root = root;
    }

    public YamlMappingNode Root { get; }

    public string Kind => Scalar(Root, "kind") ?? "";

    public string ApiVersion => Scalar(Root, "apiVersion") ?? "";

    public string Name => Scalar(Root, "metadata", "name") ?? "";

    public string? Namespace => Scalar(Root, "metadata", "namespace");

    /// <summary>"Kind namespace/name", for assertion messages.</summary>
    public string Id => $"{Kind} {Namespace}/{Name}";

    /// <summary>Parses the multi-document output of <c>kubectl kustomize</c>.</summary>
    public static List<Manifest> ParseAll(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var result = new List<Manifest>();
        foreach (var doc in stream.Documents)
        {
            if (doc.RootNode is YamlMappingNode map)
            {
                result.Add(new Manifest(map));
            }
        }

        return result;
    }

    public static YamlNode? Get(YamlNode? node, params string[] path)
    {
        foreach (var key in path)
        {
            if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out node))
            {
                return null;
            }
        }

        return node;
    }

    public static string? Scalar(YamlNode? node, params string[] path) => (Get(node, path) as YamlScalarNode)?.Value;

    public static IEnumerable<YamlNode> Items(YamlNode? node, params string[] path) =>
        Get(node, path) is YamlSequenceNode seq ? seq.Children : [];

    public static IEnumerable<YamlMappingNode> Maps(YamlNode? node, params string[] path) =>
        Items(node, path).OfType<YamlMappingNode>();

    public static IEnumerable<string> Strings(YamlNode? node, params string[] path) =>
        Items(node, path).OfType<YamlScalarNode>().Select(s => s.Value ?? "");

    /// <summary>The pod spec of a workload (Deployment, StatefulSet, DaemonSet, Job, Pod), or null.</summary>
    public YamlMappingNode? PodSpec => Kind switch
    {
        "Pod" => Get(Root, "spec") as YamlMappingNode,
        "Deployment" or "StatefulSet" or "DaemonSet" or "ReplicaSet" or "Job" => Get(Root, "spec", "template", "spec") as YamlMappingNode,
        "CronJob" => Get(Root, "spec", "jobTemplate", "spec", "template", "spec") as YamlMappingNode,
        _ => null,
    };

    public IEnumerable<YamlMappingNode> Containers =>
        PodSpec is null ? [] : Maps(PodSpec, "containers").Concat(Maps(PodSpec, "initContainers"));
}
