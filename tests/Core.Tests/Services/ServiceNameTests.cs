using SpIstio.Core.Model;
using SpIstio.Core.Services;

namespace SpIstio.Core.Tests.Services;

public class ServiceNameTests
{
    private const string InboundCluster = "inbound|9080|http|reviews.default.svc.cluster.local";

    [Theory]
    [InlineData("outbound|9080||reviews.default.svc.cluster.local", TrafficDirection.Outbound, 9080, "reviews.default.svc.cluster.local")]
    [InlineData("outbound|9080|v1|reviews.default.svc.cluster.local", TrafficDirection.Outbound, 9080, "reviews.default.svc.cluster.local")]
    [InlineData("inbound|9080||", TrafficDirection.Inbound, 9080, null)]
    [InlineData("inbound|9080|http|reviews.default.svc.cluster.local", TrafficDirection.Inbound, 9080, "reviews.default.svc.cluster.local")]
    public void ClusterName_TryParse_ReadsIstioClusterNames(string name, TrafficDirection direction, int port, string? host)
    {
        var ok = ClusterName.TryParse(name, out var parsedDirection, out var parsedPort, out var parsedHost);

        Assert.True(ok);
        Assert.Equal(direction, parsedDirection);
        Assert.Equal(port, parsedPort);
        Assert.Equal(host, parsedHost);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("PassthroughCluster")]
    [InlineData("BlackHoleCluster")]
    [InlineData("sideways|9080||reviews")]
    [InlineData("outbound|http||reviews")]
    [InlineData("outbound|70000||reviews")]
    [InlineData("outbound|-1||reviews")]
    [InlineData("outbound|9080|reviews")]
    [InlineData("outbound|9080||reviews|extra")]
    public void ClusterName_TryParse_RefusesOtherNames(string? name)
    {
        Assert.False(ClusterName.TryParse(name, out _, out _, out _));
    }

    [Fact]
    public void Resolve_ConfiguredName_WinsOverEverything()
    {
        var headers = new HeaderList { { "x-sp-service-name", "from-header" } };

        var name = ServiceNameResolver.Resolve("orders", headers, "from-node", InboundCluster);

        Assert.Equal("orders", name);
    }

    [Fact]
    public void Resolve_DefaultConfiguredName_UsesTheHeader()
    {
        var headers = new HeaderList { { "X-SP-Service-Name", " from-header " } };

        var name = ServiceNameResolver.Resolve(ServiceNames.Default, headers, "from-node", InboundCluster);

        Assert.Equal("from-header", name);
    }

    [Fact]
    public void Resolve_WithoutHeader_UsesTheNodeWorkloadName()
    {
        var name = ServiceNameResolver.Resolve(ServiceNames.Default, new HeaderList(), "reviews-v1", InboundCluster);

        Assert.Equal("reviews-v1", name);
    }

    [Fact]
    public void Resolve_WithoutNodeMetadata_UsesTheInboundClusterHostsFirstLabel()
    {
        var name = ServiceNameResolver.Resolve("", new HeaderList(), null, InboundCluster);

        Assert.Equal("reviews", name);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("inbound|9080||")]
    [InlineData("outbound|9080||ratings.default.svc.cluster.local")]
    [InlineData("PassthroughCluster")]
    public void Resolve_WithNothingUsable_FallsBackToDefaultService(string? clusterName)
    {
        var name = ServiceNameResolver.Resolve(ServiceNames.Default, new HeaderList { { "x-sp-service-name", "" } }, " ", clusterName);

        Assert.Equal("default-service", name);
    }
}
