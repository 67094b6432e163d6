using OpenQA.Selenium;
using SpIstio.Ui.Tests.Infrastructure;

namespace SpIstio.Ui.Tests;

/// <summary>
/// Every page of the Trace View under its strict Content-Security-Policy in real Chromium: a
/// listener installed before any page script runs records each <c>securitypolicyviolation</c>,
/// and no page may cause one.
/// </summary>
public sealed class ContentSecurityPolicyBrowserTests(SeededBackend backend) : IClassFixture<SeededBackend>, IDisposable
{
    // Injected through the DevTools protocol, so it runs first in every new document and is not itself subject to the page's policy.
    private const string Recorder =
        "window.spCspViolations = [];"
        + "document.addEventListener('securitypolicyviolation', function (e) {"
        + "  window.spCspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);"
        + "});";

    private readonly Browser browser = new();

    private Uri Base => backend.Address;

    public void Dispose() => browser.Dispose();

    [Fact]
    public async Task EveryPage_RendersWithoutAPolicyViolation()
    {
        // A mock to open in the mock editor, made through the API as an operator would.
        using var http = new HttpClient { BaseAddress = Base };
        http.DefaultRequestHeaders.Add("x-public-key", backend.AcmeAdminKey);
        using var created = await http.PostAsync(new Uri("/api/mocks/from-span/" + backend.CheckoutTrace + "/" + backend.PaymentServer, UriKind.Relative), null);
        created.EnsureSuccessStatusCode();
        using var mock = System.Text.Json.JsonDocument.Parse(await created.Content.ReadAsStringAsync());
        var mockId = mock.RootElement.GetProperty("id").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);

        browser.Driver.ExecuteCdpCommand("Page.addScriptToEvaluateOnNewDocument", new Dictionary<string, object?> { ["source"] = Recorder });
        string[] pages =
        [
            "/",
            "/sessions?range=7d",
            "/sessions/" + SeededBackend.CheckoutSession,
            "/traces",
            "/traces/" + backend.CheckoutTrace,
            "/traces/" + backend.CheckoutTrace + "/spans/" + backend.PaymentServer,
            "/traces/" + backend.CheckoutTrace + "/spans/" + backend.LogoCall,
            "/traces/" + backend.BulkTrace,
            "/services",
            "/endpoints",
            "/open?id=" + SeededBackend.CheckoutSession,
            "/mocks",
            "/mocks/new",
            "/mocks/" + mockId,
            "/replays",
            "/diff?a=" + backend.CheckoutTrace + "/" + backend.PaymentServer + "&b=" + backend.CheckoutTrace + "/" + backend.LogoCall,
        ];

        browser.Go(Base, "/signin");
        AssertNoViolations("/signin");
        browser.SignIn(Base, backend.AcmeAdminKey);
        foreach (var page in pages)
        {
            browser.Go(Base, page);
            Assert.False(browser.CurrentPath.StartsWith("/signin", StringComparison.Ordinal), page + " sent the browser to sign in");
            AssertNoViolations(page);
        }

        // The control: the recorder does see a violation when a page causes one (an inline style element).
        browser.Driver.ExecuteScript("document.head.insertAdjacentHTML('beforeend', '<style>body { outline: 1px solid red; }</style>');");
        browser.WaitFor(d => ((IJavaScriptExecutor)d).ExecuteScript("return window.spCspViolations.length;") is long n && n > 0, "the control violation to be recorded");
    }

    private void AssertNoViolations(string page)
    {
        // Violations are reported as the document is parsed and scripts run; Go returned after the load event.
        var violations = ((IReadOnlyCollection<object>)browser.Driver.ExecuteScript("return window.spCspViolations;")!).Select(v => v.ToString()).ToList();
        Assert.True(violations.Count == 0, page + ": " + string.Join("; ", violations));
    }
}
