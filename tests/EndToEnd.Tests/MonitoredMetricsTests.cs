namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// The alert rules and the dashboard under deploy/observability name metrics; every one of them
/// must be one a running agent or backend actually exposes, or an alert can never fire.
/// </summary>
public sealed class MonitoredMetricsTests
{
    [Fact]
    public async Task EveryMetricTheAlertsAndDashboardUse_IsExposedByARunningAgentOrBackend()
    {
        var data = Directory.CreateTempSubdirectory("sp-metrics-");
        try
        {
            await using var backend = SpChild.Start(
                "backend", "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--demo",
                "--store", "sqlite:" + Path.Combine(data.FullName, "sp.db"));
            await using var agent = SpChild.Start(
                "agent", "proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9",
                "--admin", "127.0.0.1:0", "--config", SpProcess.TestData("proxy.yaml"), "--ignore-env");
            var backendLine = await backend.WaitForLineAsync("sp backend listening on ");
            var backendAddress = new Uri(backendLine["sp backend listening on ".Length..].Split(' ')[0]);
            var adminLine = await agent.WaitForLineAsync("admin listening on ");
            var adminAddress = new Uri(adminLine["admin listening on ".Length..].Trim());

            using var http = new HttpClient();
            var scraped = await http.GetStringAsync(new Uri(backendAddress, "/metrics"))
                + await http.GetStringAsync(new Uri(adminAddress, "/metrics"));

            var missing = MonitoredNames().Where(name => !scraped.Contains("# TYPE " + name + " ", StringComparison.Ordinal)).ToList();
            Assert.Empty(missing);
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    // deploy/observability/metric-names.txt: "name status" lines; external ones come from other exporters.
    private static IEnumerable<string> MonitoredNames()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "SpIstio.slnx")))
        {
            directory = directory.Parent;
        }

        Assert.NotNull(directory);
        foreach (var line in File.ReadLines(Path.Combine(directory.FullName, "deploy", "observability", "metric-names.txt")))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && !line.StartsWith('#') && parts[1] != "external")
            {
                yield return parts[0];
            }
        }
    }
}
