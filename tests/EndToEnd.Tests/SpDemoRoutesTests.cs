using System.Net.Http.Json;
using System.Text.Json;
using SpIstio.Backend.Hosting;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// Route templating on the demo's own traffic (issue 15 §2): the journeys of about three minutes of
/// <c>sp demo</c> at its default rate (1 journey a second, so 180), played as fast as the machine
/// allows — bounded by count, not time — then the stored data read back through the query API.
/// </summary>
public sealed class SpDemoRoutesTests : IDisposable
{
    /// <summary>Three minutes of the demo at its default rate of one journey a second.</summary>
    private const int Journeys = 180;

    private const string DemoKey = "sp_demo_00000000000000000000000000000000";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly string _data = Path.Combine(Path.GetTempPath(), "sp-demo-routes-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }

    [Fact]
    public async Task ThreeMinutesOfDemoJourneys_GiveAtMostTwentyEndpoints_AndTheMapAgreesWithThemOnCallsAndErrors()
    {
        await using (var demo = SpChild.Start("demo", "--port", "0", "--journeys", Journeys.ToString(System.Globalization.CultureInfo.InvariantCulture), "--rate", "25", "--data", _data))
        {
            // Every journey played (the demo then keeps serving until stopped); SIGTERM makes it deliver
            // what was captured and close the store before it exits.
            await demo.WaitForLineAsync(l => l.StartsWith("journeys: " + Journeys + " (", StringComparison.Ordinal));
            demo.Terminate();
            Assert.Equal(0, await demo.WaitForExitAsync());
            Assert.Contains(demo.Lines, l => l.StartsWith("stopping: " + Journeys + " journeys played", StringComparison.Ordinal) && l.Contains(", 0 unexpected)", StringComparison.Ordinal));
            Assert.Contains(demo.Lines, l => l.StartsWith("demo stopped: ", StringComparison.Ordinal) && l.Contains(" 0 lost", StringComparison.Ordinal));
        }

        // The demo's store, served again (demo mode: the demo key reads tenant 'default').
        await using var backend = await BackendServer.StartAsync(new BackendOptions
        {
            Demo = true,
            Listen = "127.0.0.1:0",
            GrpcListen = null,
            Store = "sqlite:" + Path.Combine(_data, "demo.db"),
        });
        using var api = new HttpClient { BaseAddress = backend.Address };
        api.DefaultRequestHeaders.Add("x-public-key", DemoKey);
        var range = "?from=" + Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("o")) + "&to=" + Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(1).ToString("o"));

        var endpoints = (await api.GetFromJsonAsync<EndpointList>("/api/endpoints" + range, Json))!.Items;
        var map = (await api.GetFromJsonAsync<ServiceGraph>("/api/services" + range, Json))!;

        var rows = string.Join("\n", endpoints.Select(e => e.Service + " " + e.Method + " " + e.Route + " ×" + e.Count));
        Assert.True(endpoints.Count <= 20, endpoints.Count + " endpoint rows:\n" + rows);
        Assert.DoesNotContain(endpoints, e => e.Route.Contains("/SP", StringComparison.Ordinal) || e.Route.Any(char.IsAsciiDigit));
        Assert.Equal(["flights", "notifications", "payments", "web"], endpoints.Select(e => e.Service).Distinct().Order());

        foreach (var service in endpoints.GroupBy(e => e.Service))
        {
            // What a node says the service served is what its endpoints add up to.
            var node = Assert.Single(map.Nodes, n => n.Name == service.Key);
            Assert.Equal((service.Sum(e => e.Count), service.Sum(e => e.Errors), service.Sum(e => e.ClientErrors)), (node.Requests, node.Errors, node.ClientErrors));

            // Every request to a service the demo's own services call arrives over a map edge, with the same outcome.
            var incoming = map.Edges.Where(e => e.Callee == service.Key).ToList();
            if (service.Key != "web")
            {
                Assert.NotEmpty(incoming);
                Assert.Equal((service.Sum(e => e.Count), service.Sum(e => e.Errors), service.Sum(e => e.ClientErrors)), (incoming.Sum(e => e.Calls), incoming.Sum(e => e.Errors), incoming.Sum(e => e.ClientErrors)));
            }
        }

        // The journeys' scripted failures show as client errors (402 declined, 409 sold out), never as errors.
        Assert.Contains(endpoints, e => e.Service == "payments" && e.ClientErrors > 0);
    }

    private sealed record EndpointList(List<EndpointRow> Items);

    private sealed record EndpointRow(string Service, string Method, string Route, long Count, long Errors, long ClientErrors);

    private sealed record ServiceGraph(List<NodeRow> Nodes, List<EdgeRow> Edges);

    private sealed record NodeRow(string Name, long Requests, long Errors, long ClientErrors);

    private sealed record EdgeRow(string Caller, string Callee, long Calls, long Errors, long ClientErrors);
}
