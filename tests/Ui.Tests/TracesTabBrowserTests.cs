using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using OpenQA.Selenium;
using SpIstio.Ui.Tests.Infrastructure;

namespace SpIstio.Ui.Tests;

/// <summary>
/// The Traces tab, the header's open-by-id box and the span model on the span page, in headless
/// Chromium over a real backend: a trace from a plain OpenTelemetry SDK (no session) is found,
/// plotted, opened from its point, and shows its resource, events and typed attributes.
/// </summary>
public sealed class TracesTabBrowserTests(SeededBackend backend) : IClassFixture<SeededBackend>, IDisposable
{
    private static readonly string s_traceId = ActivityTraceId.CreateRandom().ToHexString();
    private static readonly string s_spanId = ActivitySpanId.CreateRandom().ToHexString();
    private static readonly SemaphoreSlim s_ingest = new(1, 1);
    private static bool s_ingested;

    private readonly Browser browser = new();

    private Uri Base => backend.Address;

    public void Dispose() => browser.Dispose();

    [Fact]
    public async Task TracesTab_FindsASessionlessTrace_PlotsIt_AndItsPointOpensIt()
    {
        await IngestSdkTraceAsync();
        browser.SignIn(Base, backend.AcmeReadKey);

        browser.ClickToNavigate(By.LinkText("Traces"));
        Assert.Equal("/traces", browser.CurrentPath);
        var rows = browser.FindAll(By.CssSelector("#traces-body tr")).Select(r => r.Text).ToList();
        Assert.Contains(rows, r => r.Contains("inventory", StringComparison.Ordinal) && r.Contains("reserve stock", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Contains("POST /api/checkout", StringComparison.Ordinal));
        Assert.Equal(rows.Count, browser.FindAll(By.CssSelector("#trace-scatter circle.point")).Count);
        browser.Screenshot("traces-tab");

        // Filters are a plain GET form: the service filter keeps only the SDK trace.
        var service = browser.Find(By.Id("t-service"));
        service.SendKeys("inventory");
        browser.ClickToNavigate(By.Id("search-traces"));
        Assert.Contains("service=inventory", browser.Driver.Url, StringComparison.Ordinal);
        Assert.Single(browser.FindAll(By.CssSelector("#traces-body a.trace-link")));

        browser.ClickToNavigate(By.CssSelector("circle[data-trace-id='" + s_traceId + "']"));
        Assert.Equal("/traces/" + s_traceId, browser.CurrentPath);
    }

    [Fact]
    public async Task HeaderBox_OpensATraceIdOrASessionId_AndSaysWhenNothingHasIt()
    {
        await IngestSdkTraceAsync();
        browser.SignIn(Base, backend.AcmeReadKey);

        Open(s_traceId.ToUpperInvariant());
        Assert.Equal("/traces/" + s_traceId, browser.CurrentPath);

        Open(SeededBackend.CheckoutSession);
        Assert.Equal("/sessions/" + SeededBackend.CheckoutSession, browser.CurrentPath);

        Open(SeededBackend.GlobexSession);
        Assert.Equal("/open", browser.CurrentPath);
        Assert.Contains("No trace and no session", browser.Text(By.Id("open-problem")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SpanPage_ShowsResourceScopeEventsLinksAndAttributeTypes()
    {
        await IngestSdkTraceAsync();
        browser.SignIn(Base, backend.AcmeReadKey);

        browser.Go(Base, "/traces/" + s_traceId + "/spans/" + s_spanId);

        Assert.Contains("deployment.environment", browser.Text(By.Id("resource-attributes")), StringComparison.Ordinal);
        Assert.Contains("staging", browser.Text(By.Id("resource-attributes")), StringComparison.Ordinal);
        Assert.Contains("inventory.lib 2.1.0", browser.Text(By.Id("span-scope")), StringComparison.Ordinal);
        Assert.Contains("ERROR: out of stock", browser.Text(By.Id("span-status")), StringComparison.Ordinal);
        Assert.Contains("exception", browser.Text(By.Id("span-events")), StringComparison.Ordinal);
        Assert.Contains("InsufficientStock", browser.Text(By.Id("span-events")), StringComparison.Ordinal);
        Assert.Contains("0af7651916cd43dd8448eb211c80319c", browser.Text(By.Id("span-links")), StringComparison.Ordinal);
        Assert.Equal("int", browser.Find(By.CssSelector("#span-attributes td[data-type]")).GetAttribute("data-type"));
        Assert.Equal("double", browser.FindAll(By.CssSelector("#span-attributes td[data-type]")).ElementAt(1).GetAttribute("data-type"));
        browser.Screenshot("span-model");
    }

    private void Open(string id)
    {
        var box = browser.Find(By.Id("open-id"));
        box.Clear();
        box.SendKeys(id);
        browser.ClickToNavigate(By.Id("open-id-go"));
    }

    /// <summary>Sends one OTLP/JSON trace the way an SDK would (no session id), once per fixture.</summary>
    private async Task IngestSdkTraceAsync()
    {
        await s_ingest.WaitAsync();
        try
        {
            if (s_ingested)
            {
                return;
            }

            var start = DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeMilliseconds() * 1_000_000;
            var json = $$$"""
                {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"inventory"}},{"key":"deployment.environment","value":{"stringValue":"staging"}}]},
                "scopeSpans":[{"scope":{"name":"inventory.lib","version":"2.1.0"},"spans":[{"traceId":"{{{s_traceId}}}","spanId":"{{{s_spanId}}}","name":"reserve stock","kind":1,
                "startTimeUnixNano":"{{{start}}}","endTimeUnixNano":"{{{start + 42_000_000}}}",
                "attributes":[{"key":"stock.requested","value":{"intValue":"3"}},{"key":"stock.ratio","value":{"doubleValue":0.5}}],
                "events":[{"timeUnixNano":"{{{start + 40_000_000}}}","name":"exception","attributes":[{"key":"exception.type","value":{"stringValue":"InsufficientStock"}}]}],
                "links":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}],
                "status":{"code":2,"message":"out of stock"}}]}]}]}
                """;
            using var http = new HttpClient { BaseAddress = Base };
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = new StringContent(json, Encoding.UTF8) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.Add("x-public-key", backend.AcmeIngestKey);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            s_ingested = true;
        }
        finally
        {
            s_ingest.Release();
        }
    }
}
