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

        // Each service's agent exports on its own, so a session can list a trace before every span of it
        // has arrived: the waits are for a session whose spans have all come in, the asserts on what they say.
        // A booked journey's session: four traces (search, hold, pay, confirm) touching every service.
        var (booked, detail) = await WaitForSessionAsync(api, s => s.Services.Count == 4 && s.TraceCount == 4,
            d => _services.All(service => d.Spans.Any(s => s.ServiceName == service && s.Direction == "inbound"))
                && d.Spans.Any(s => s.ServiceName == "payments" && s.Direction == "outbound"));
        // A declined journey: search, hold and a refused payment. At three traces a booked journey looks
        // the same until its fourth arrives, so the wait is for the refusal itself and the call that got it.
        var (_, declinedDetail) = await WaitForSessionAsync(api, s => s.Services.Contains("payments"),
            d => d.Spans.Any(s => s.ServiceName == "payments" && s.Direction == "inbound" && s.StatusCode == 402
                && d.Spans.Any(p => p.SpanId == s.ParentSpanId)));
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
        // The scripted failure is captured as it happened on both sides: web's call to payments got the 402.
        var refused = declinedDetail.Spans.First(s => s.ServiceName == "payments" && s.Direction == "inbound" && s.StatusCode == 402);
        var caller = Assert.Single(declinedDetail.Spans, s => s.SpanId == refused.ParentSpanId);
        Assert.Equal(("web", "outbound", 402, refused.TraceId), (caller.ServiceName, caller.Direction, caller.StatusCode, caller.TraceId));
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

    /// <summary>Polls the session list until a session matches <paramref name="match"/> and its detail <paramref name="arrived"/>.</summary>
    private static async Task<(SessionRow Session, SessionDetail Detail)> WaitForSessionAsync(
        HttpClient api, Func<SessionRow, bool> match, Func<SessionDetail, bool> arrived)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var response = await api.GetAsync("/api/sessions?limit=100");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var page = (await response.Content.ReadFromJsonAsync<SessionPage>(Json))!;
                foreach (var found in page.Items.Where(match))
                {
                    var detail = (await api.GetFromJsonAsync<SessionDetail>("/api/sessions/" + found.SessionId, Json))!;
                    if (arrived(detail))
                    {
                        return (found, detail);
                    }
                }
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("no matching session with all its spans within 30 s; last answer " + (int)response.StatusCode + ": " + await response.Content.ReadAsStringAsync());
            }

            await Task.Delay(250);
        }
    }

    private sealed record SessionPage(List<SessionRow> Items);

    private sealed record SessionRow(string SessionId, int SpanCount, int TraceCount, int ErrorCount, List<string> Services);

    private sealed record SessionDetail(string SessionId, List<string> TraceIds, List<SpanRow> Spans);

    private sealed record SpanRow(string TraceId, string SpanId, string? ParentSpanId, string ServiceName, string? Direction, string? Method, string? Path, int? StatusCode);
}
