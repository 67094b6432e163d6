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

    [Fact]
    public async Task Map_NoEdgeRunsThroughANode_EvenWhenItSkipsAColumnOrGoesBack()
    {
        // m-a → m-b → m-c, m-a → m-c past m-b's column (drawn straight, it would cross m-b or a node
        // below it), and m-c → m-a back again.
        var trace = ActivityTraceId.CreateRandom();
        var (a1, b1, c1, c2, a2) = (ActivitySpanId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivitySpanId.CreateRandom());
        await IngestAsync(
            ("m-a", trace, a1, default),
            ("m-b", trace, b1, a1),
            ("m-c", trace, c1, b1),
            ("m-c", trace, c2, a1),
            ("m-a", trace, a2, c1));
        browser.SignIn(backend.Address, backend.AcmeReadKey);

        browser.Go(backend.Address, "/services?range=24h");

        // The skip edge crosses m-b's column along a lane between rows; the back edge goes around below.
        var skip = browser.Find(By.CssSelector("#service-map g.edge[data-caller='m-a'][data-callee='m-c'] path")).GetAttribute("d")!;
        Assert.Matches("^M[^L]* C[^L]* L[^L]* C", skip);
        var back = browser.Find(By.CssSelector("#service-map g.edge[data-caller='m-c'][data-callee='m-a'] path")).GetAttribute("d")!;
        Assert.DoesNotContain(" C", back, StringComparison.Ordinal);

        // Every edge, sampled along its drawn length in the browser, stays out of every node's box
        // (its own ends touch its caller's and callee's borders, so boxes are taken 2 px inside).
        var hits = (IReadOnlyCollection<object>)browser.Driver.ExecuteScript("""
            const nodes = [...document.querySelectorAll('#service-map g.node rect')].map(r => [r.closest('g').dataset.service, r.getBoundingClientRect()]);
            const hits = [];
            let sampled = 0;
            document.querySelectorAll('#service-map g.edge').forEach(g => {
              const p = g.querySelector('path'), len = p.getTotalLength(), m = p.getScreenCTM();
              for (let s = 0; s <= 400; s++) {
                const pt = p.getPointAtLength(len * s / 400).matrixTransform(m);
                sampled++;
                for (const [name, b] of nodes) {
                  if (pt.x > b.left + 2 && pt.x < b.right - 2 && pt.y > b.top + 2 && pt.y < b.bottom - 2) {
                    hits.push(g.dataset.caller + '→' + g.dataset.callee + ' runs through ' + name + ' at ' + Math.round(pt.x) + ',' + Math.round(pt.y));
                  }
                }
              }
            });
            return [sampled, ...hits];
            """)!;
        var answer = hits.Select(h => h.ToString()!).ToList();
        Assert.True(int.Parse(answer[0], System.Globalization.CultureInfo.InvariantCulture) > 400 * 4, "too few edge points were measured");
        Assert.Empty(answer.Skip(1));
        browser.Screenshot("service-map-edges");
    }

    private async Task IngestAsync(params (string Service, ActivityTraceId Trace, ActivitySpanId Span, ActivitySpanId Parent)[] spans)
    {
        var start = DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeMilliseconds() * 1_000_000;
        var resources = string.Join(",", spans.Select((s, i) => $$$"""
            {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"{{{s.Service}}}"}}]},
            "scopeSpans":[{"spans":[{"traceId":"{{{s.Trace.ToHexString()}}}","spanId":"{{{s.Span.ToHexString()}}}"{{{(s.Parent == default ? "" : ",\"parentSpanId\":\"" + s.Parent.ToHexString() + "\"")}}},
            "name":"work","kind":2,"startTimeUnixNano":"{{{start + (i * 1_000_000)}}}","endTimeUnixNano":"{{{start + (i * 1_000_000) + 500_000}}}"}]}]}
            """));
        using var http = new HttpClient { BaseAddress = backend.Address };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = new StringContent("{\"resourceSpans\":[" + resources + "]}", Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("x-public-key", backend.AcmeIngestKey);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Endpoints_ShowClientErrorsBesideErrors()
    {
        var trace = ActivityTraceId.CreateRandom();
        var start = DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeMilliseconds() * 1_000_000;
        var spans = string.Join(",", new[] { 200, 404, 404, 500 }.Select((status, i) => $$$"""
            {"traceId":"{{{trace.ToHexString()}}}","spanId":"{{{ActivitySpanId.CreateRandom().ToHexString()}}}","name":"GET /books/{id}","kind":2,
            "startTimeUnixNano":"{{{start + (i * 1_000_000)}}}","endTimeUnixNano":"{{{start + (i * 1_000_000) + 500_000}}}",
            "attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"http.route","value":{"stringValue":"/books/{id}"}},{"key":"url.path","value":{"stringValue":"/books/{{{i}}}"}},{"key":"http.response.status_code","value":{"intValue":"{{{status}}}"}}]}
            """));
        var json = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"library\"}}]},\"scopeSpans\":[{\"spans\":[" + spans + "]}]}]}";
        using (var http = new HttpClient { BaseAddress = backend.Address })
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = new StringContent(json, Encoding.UTF8) })
        {
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.Add("x-public-key", backend.AcmeIngestKey);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        browser.SignIn(backend.Address, backend.AcmeReadKey);
        browser.Go(backend.Address, "/endpoints?service=library&range=24h");

        var headers = browser.FindAll(By.CssSelector("table.endpoints thead th")).Select(h => h.Text).ToList();
        var cells = browser.Find(By.CssSelector("table.endpoints tbody tr")).FindElements(By.TagName("td")).Select(c => c.Text).ToList();
        string Cell(string header) => cells[headers.IndexOf(header)];
        Assert.Equal("/books/{id}", Cell("Route"));
        Assert.Equal("4", Cell("Count"));
        Assert.Equal("1", Cell("Errors"));
        Assert.Equal("25 %", Cell("Error rate"));
        Assert.Equal("2", Cell("Client errors"));
        Assert.Equal("50 %", Cell("Client error rate"));
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
