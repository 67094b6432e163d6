using SpIstio.Examples.Travel;
using SpIstio.Examples.Travel.Flights;

namespace SpIstio.Examples.Tests;

/// <summary>TRAVEL_LISTEN takes host:port as sp's --listen does, and a URL as before.</summary>
public sealed class TravelListenTests
{
    [Theory]
    [InlineData("127.0.0.1:23080", "http://127.0.0.1:23080")]
    [InlineData("0.0.0.0:8080", "http://0.0.0.0:8080")]
    [InlineData("[::1]:8080", "http://[::1]:8080")]
    [InlineData("localhost:0", "http://localhost:0")]
    [InlineData("http://127.0.0.1:8081", "http://127.0.0.1:8081")]
    [InlineData(" 127.0.0.1:9 ", "http://127.0.0.1:9")]
    public void ListenUrl_AcceptsHostPortAndUrls(string listen, string expected) =>
        Assert.Equal(expected, TravelHost.ListenUrl(listen));

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:")]
    [InlineData("127.0.0.1:99999")]
    [InlineData("http://127.0.0.1")]
    [InlineData("ftp://127.0.0.1:21")]
    [InlineData("127.0.0.1:80/path")]
    [InlineData("")]
    public void ListenUrl_RejectsWhatIsNotAnAddress_NamingTheValue(string listen)
    {
        var error = Assert.Throws<FormatException>(() => TravelHost.ListenUrl(listen));
        Assert.Contains("'" + listen + "'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_ListensOnAHostPortAddress()
    {
        await using var app = FlightsService.Build(new TravelServiceOptions { Listen = "127.0.0.1:0" });
        await app.StartAsync();
        using var http = new HttpClient();

        var address = TravelHost.AddressOf(app);

        Assert.Equal("127.0.0.1", address.Host);
        Assert.NotEqual(0, address.Port);
        Assert.Equal("ok\n", await http.GetStringAsync(new Uri(address, "/healthz")));
    }
}
