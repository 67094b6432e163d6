using System.Net;
using SpIstio.Agent.Hosting;

namespace SpIstio.Agent.Tests.Hosting;

public sealed class ListenAddressTests
{
    [Theory]
    [InlineData("127.0.0.1:18080", "127.0.0.1", 18080, "127.0.0.1:18080")]
    [InlineData("[::1]:80", "::1", 80, "[::1]:80")]
    [InlineData("0.0.0.0:15020", "0.0.0.0", 15020, "0.0.0.0:15020")]
    [InlineData("localhost:8080", "localhost", 8080, "localhost:8080")]
    [InlineData(" agent.internal:0 ", "agent.internal", 0, "agent.internal:0")]
    public void TryParse_ValidAddresses_ParseAndFormatBack(string text, string host, int port, string formatted)
    {
        Assert.True(ListenAddress.TryParse(text, out var address, out var error), error);

        Assert.Equal(host, address.Host);
        Assert.Equal(port, address.Port);
        Assert.Equal(formatted, address.ToString());
    }

    [Fact]
    public void Address_IsTheIpForIpHosts_AndNullForNames()
    {
        Assert.Equal(IPAddress.IPv6Loopback, ListenAddress.Parse("[::1]:80").Address);
        Assert.Equal(IPAddress.Any, ListenAddress.Parse("0.0.0.0:1").Address);
        Assert.Null(ListenAddress.Parse("localhost:1").Address);
        Assert.True(ListenAddress.Parse("LocalHost:1").IsLocalhost);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("8080", "has no port")]
    [InlineData("127.0.0.1:", "port ''")]
    [InlineData("127.0.0.1:65536", "port '65536'")]
    [InlineData("127.0.0.1:-1", "port '-1'")]
    [InlineData("127.0.0.1:http", "port 'http'")]
    [InlineData(":8080", "has no host")]
    [InlineData("::1:80", "brackets")]
    [InlineData("[::1]80", "[ipv6]:port")]
    [InlineData("[127.0.0.1]:80", "not an IPv6 address")]
    [InlineData("bad host:80", "neither an IP address nor a host name")]
    public void TryParse_BadInput_FailsWithAnErrorNamingTheValue(string text, string expected)
    {
        Assert.False(ListenAddress.TryParse(text, out _, out var error));

        Assert.Contains(expected, error, StringComparison.Ordinal);
        if (text.Length > 0)
        {
            Assert.Contains($"'{text}'", error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Parse_BadInput_ThrowsFormatException()
    {
        var ex = Assert.Throws<FormatException>(() => ListenAddress.Parse("nohost"));

        Assert.Contains("'nohost'", ex.Message, StringComparison.Ordinal);
    }
}
