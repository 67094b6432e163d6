using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using OpenQA.Selenium;
using SpIstio.Ui.Tests.Infrastructure;

namespace SpIstio.Ui.Tests;

/// <summary>
/// The service map in headless Chromium: every service is a node (one that calls no one and is called
/// by no one too), nodes carry a health class, and the browser's own layout boxes of the edge labels
/// overlap neither each other nor any node.
/// </summary>
public sealed class ServiceMapBrowserTests(SeededBackend backend) : IClassFixture<SeededBackend>, IDisposable
{
    private readonly Browser browser = new();

    public void Dispose() => browser.Dispose();

    [Fact]
    public async Task Map_ShowsEveryServiceWithHealth_AndLabelsDoNotOverlap()
    {
        await IngestLoneServiceAsync();
        browser.SignIn(backend.Address, backend.AcmeReadKey);

        browser.Go(backend.Address, "/services?range=24h");

        var services = browser.FindAll(By.CssSelector("#service-map g.node")).Select(n => n.GetAttribute("data-service")).ToList();
        Assert.Contains("inventory", services);
        Assert.Contains("frontend", services);
        Assert.Contains("payments", services);
        Assert.Contains("failing", browser.Find(By.CssSelector("#service-map g.node[data-service='payments']")).GetAttribute("class"), StringComparison.Ordinal);
        Assert.Contains("healthy", browser.Find(By.CssSelector("#service-map g.node[data-service='inventory']")).GetAttribute("class"), StringComparison.Ordinal);

        var labels = Boxes("#service-map text.edge-label");
        var nodes = Boxes("#service-map g.node rect");
        Assert.NotEmpty(labels);
        for (int i = 0; i < labels.Count; i++)
        {
            for (int j = i + 1; j < labels.Count; j++)
            {
                Assert.False(Overlap(labels[i], labels[j]), "labels " + i + " and " + j + " overlap: " + labels[i] + " " + labels[j]);
            }

            foreach (var node in nodes)
            {
                Assert.False(Overlap(labels[i], node), "label " + i + " covers a node: " + labels[i] + " " + node);
            }
        }

        browser.Screenshot("service-map-labels");
    }

    private List<(double Left, double Top, double Right, double Bottom)> Boxes(string selector)
    {
        var raw = (IReadOnlyCollection<object>)browser.Driver.ExecuteScript(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; });",
            selector)!;
        return [.. raw.Select(r => ((IReadOnlyCollection<object>)r).Select(Convert.ToDouble).ToArray()).Select(a => (a[0], a[1], a[2], a[3]))];
    }

    private static bool Overlap((double Left, double Top, double Right, double Bottom) a, (double Left, double Top, double Right, double Bottom) b) =>
        a.Left < b.Right && b.Left < a.Right && a.Top < b.Bottom && b.Top < a.Bottom;

    /// <summary>A service with spans but no calls to or from another service.</summary>
    private async Task IngestLoneServiceAsync()
    {
        var start = DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeMilliseconds() * 1_000_000;
        var json = $$$"""
            {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"inventory"}}]},
            "scopeSpans":[{"spans":[{"traceId":"{{{ActivityTraceId.CreateRandom().ToHexString()}}}","spanId":"{{{ActivitySpanId.CreateRandom().ToHexString()}}}",
            "name":"GET /stock","kind":2,"startTimeUnixNano":"{{{start}}}","endTimeUnixNano":"{{{start + 4_000_000}}}",
            "attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"url.path","value":{"stringValue":"/stock"}},{"key":"http.response.status_code","value":{"intValue":"200"}}]}]}]}]}
            """;
        using var http = new HttpClient { BaseAddress = backend.Address };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = new StringContent(json, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("x-public-key", backend.AcmeIngestKey);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
