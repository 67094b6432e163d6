using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace SpIstio.EndToEnd.Tests;

/// <summary><c>sp demo</c> as a user runs it: headless, bounded, checked through the query API with the demo key.</summary>
public sealed class SpDemoTests : IDisposable
{
    private const string DemoKey = "sp_demo_00000000000000000000000000000000";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly string[] _services = ["flights", "notifications", "payments", "web"];
    private readonly string _data = Path.Combine(Path.GetTempPath(), "sp-demo-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }

    [Fact]
    public async Task Demo_ForTwentySeconds_StoresSessionsAcrossAllFourServicesInBothDirectionsThenExitsZero()
    {
        await using var demo = SpChild.Start("demo", "--port", "0", "--duration", "20s", "--rate", "4", "--data", _data);
        var traceView = new Uri((await demo.WaitForLineAsync(l => l.StartsWith("Trace View: ", StringComparison.Ordinal)))["Trace View: ".Length..]);
        using var api = new HttpClient { BaseAddress = traceView };
        api.DefaultRequestHeaders.Add("x-public-key", DemoKey);

        // A booked journey's session: four traces (search, hold, pay, confirm) touching every service.
        var booked = await WaitForSessionAsync(api, s => s.Services.Count == 4 && s.TraceCount == 4);
        var detail = (await api.GetFromJsonAsync<SessionDetail>("/api/sessions/" + booked.SessionId, Json))!;
        // A declined journey: search, hold and a refused payment (402 is a client error, not an error: three traces).
        var declined = await WaitForSessionAsync(api, s => s.TraceCount == 3 && s.Services.Contains("payments"));
        var declinedDetail = (await api.GetFromJsonAsync<SessionDetail>("/api/sessions/" + declined.SessionId, Json))!;
        var exitCode = await demo.WaitForExitAsync();

        Assert.Equal(_services, booked.Services.Order());
        Assert.Equal(4, detail.TraceIds.Count);
        Assert.Equal(["inbound", "outbound"], detail.Spans.Select(s => s.Direction).Distinct().Order());
        Assert.All(_services, service => Assert.Contains(detail.Spans, s => s.ServiceName == service && s.Direction == "inbound"));
        Assert.Contains(detail.Spans, s => s.ServiceName == "web" && s.Direction == "outbound");
        Assert.Contains(detail.Spans, s => s.ServiceName == "payments" && s.Direction == "outbound" && s.Path == "/notifications");
        // Trace context crossed every hop: flights' inbound span is the child of web's outbound call to it.
        var flightsIn = detail.Spans.First(s => s.ServiceName == "flights" && s.Direction == "inbound");
        var parent = Assert.Single(detail.Spans, s => s.SpanId == flightsIn.ParentSpanId);
        Assert.Equal(("web", "outbound", flightsIn.TraceId), (parent.ServiceName, parent.Direction, parent.TraceId));
        // The scripted failure is captured as it happened: the payment answered 402.
        Assert.Contains(declinedDetail.Spans, s => s.ServiceName == "payments" && s.Direction == "inbound" && s.StatusCode == 402);
        Assert.Equal(0, exitCode);
        Assert.Contains(demo.Lines, l => l.StartsWith("stopping: ", StringComparison.Ordinal) && l.Contains(", 0 unexpected)", StringComparison.Ordinal));
        Assert.Contains(demo.Lines, l => l.StartsWith("demo stopped: ", StringComparison.Ordinal) && l.Contains(" exchange(s) delivered to the backend", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(_data, "demo.db")));
    }

    [Fact]
    public async Task Demo_Sigterm_StopsEverythingAndExitsZero()
    {
        await using var demo = SpChild.Start("demo", "--port", "0", "--rate", "2", "--data", _data);
        await demo.WaitForLineAsync(l => l.StartsWith("Running until Ctrl+C", StringComparison.Ordinal));

        demo.Terminate();
        var exitCode = await demo.WaitForExitAsync();

        Assert.Equal(0, exitCode);
        Assert.Contains(demo.Lines, l => l.StartsWith("demo stopped: ", StringComparison.Ordinal) && l.Contains(" exchange(s) delivered to the backend", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Demo_BadOptions_ExitTwoNamingEachOne()
    {
        var run = await SpProcess.RunAsync("demo", "--rate", "0", "--duration", "soon", "--data", _data);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--rate", run.StdErr, StringComparison.Ordinal);
        Assert.Contains("--duration: 'soon'", run.StdErr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_data));
    }

    private static async Task<SessionRow> WaitForSessionAsync(HttpClient api, Func<SessionRow, bool> match)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var response = await api.GetAsync("/api/sessions?limit=100");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var page = (await response.Content.ReadFromJsonAsync<SessionPage>(Json))!;
                var found = page.Items.FirstOrDefault(match);
                if (found is not null)
                {
                    return found;
                }
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("no matching session within 30 s; last answer " + (int)response.StatusCode + ": " + await response.Content.ReadAsStringAsync());
            }

            await Task.Delay(250);
        }
    }

    private sealed record SessionPage(List<SessionRow> Items);

    private sealed record SessionRow(string SessionId, int SpanCount, int TraceCount, int ErrorCount, List<string> Services);

    private sealed record SessionDetail(string SessionId, List<string> TraceIds, List<SpanRow> Spans);

    private sealed record SpanRow(string TraceId, string SpanId, string? ParentSpanId, string ServiceName, string? Direction, string? Method, string? Path, int? StatusCode);
}
