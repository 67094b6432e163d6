using YamlDotNet.RepresentationModel;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>The Envoy bootstrap example under deploy/ wires the ext_proc filter the way the agent expects.</summary>
public sealed class EnvoyBootstrapTests
{
    private static readonly string _path = Path.Combine(RepoRoot(), "deploy", "envoy", "envoy-extproc.yaml");

    [Fact]
    public void ExampleBootstrap_HasTheExtProcFilterBeforeTheRouter_FailingOpen()
    {
        var filters = HttpFilters();
        var names = filters.Select(f => Scalar(f, "name")).ToList();
        var extProc = filters.Single(f => Scalar(f, "name") == "envoy.filters.http.ext_proc");
        var config = (YamlMappingNode)extProc["typed_config"];

        Assert.True(names.IndexOf("envoy.filters.http.ext_proc") < names.IndexOf("envoy.filters.http.router"));
        Assert.Equal("type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor", Scalar(config, "@type"));
        Assert.Equal("true", Scalar(config, "failure_mode_allow"));
        Assert.Equal("true", Scalar(config, "allow_mode_override"));
        Assert.Contains("xds.cluster_name", ((YamlSequenceNode)config["request_attributes"]).Select(n => ((YamlScalarNode)n).Value));
        Assert.Equal("SEND", Scalar((YamlMappingNode)config["processing_mode"], "request_header_mode"));
        Assert.Equal("SEND", Scalar((YamlMappingNode)config["processing_mode"], "response_trailer_mode"));
    }

    [Fact]
    public void ExampleBootstrap_AgentClusterSpeaksHttp2()
    {
        var root = Load();
        var clusters = (YamlSequenceNode)((YamlMappingNode)root["static_resources"])["clusters"];
        var filter = HttpFilters().Single(f => Scalar(f, "name") == "envoy.filters.http.ext_proc");
        var target = Scalar((YamlMappingNode)((YamlMappingNode)((YamlMappingNode)filter["typed_config"])["grpc_service"])["envoy_grpc"], "cluster_name");
        var agent = clusters.Cast<YamlMappingNode>().Single(c => Scalar(c, "name") == target);
        var options = (YamlMappingNode)((YamlMappingNode)agent["typed_extension_protocol_options"])["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];

        Assert.True(((YamlMappingNode)options["explicit_http_config"]).Children.ContainsKey("http2_protocol_options"));
    }

    private static List<YamlMappingNode> HttpFilters()
    {
        var root = Load();
        var listener = (YamlMappingNode)((YamlSequenceNode)((YamlMappingNode)root["static_resources"])["listeners"])[0];
        var chain = (YamlMappingNode)((YamlSequenceNode)listener["filter_chains"])[0];
        var hcm = (YamlMappingNode)((YamlSequenceNode)chain["filters"])[0];
        var config = (YamlMappingNode)hcm["typed_config"];
        return ((YamlSequenceNode)config["http_filters"]).Cast<YamlMappingNode>().ToList();
    }

    private static YamlMappingNode Load()
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(_path);
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static string? Scalar(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) ? ((YamlScalarNode)value).Value : null;

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SpIstio.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }
}
