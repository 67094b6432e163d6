using System.Text.Json;
using OpenQA.Selenium;
using SpIstio.Core.Redaction;
using SpIstio.Ui.Tests.Infrastructure;

namespace SpIstio.Ui.Tests;

/// <summary>
/// The Trace View end to end: a real backend seeded through ingest (shared by the class), and a
/// real headless Chromium of each test's own, so no cookie or stored setting carries over.
/// </summary>
public sealed class TraceViewBrowserTests(SeededBackend backend) : IClassFixture<SeededBackend>, IDisposable
{
    private readonly Browser browser = new();

    private Uri Base => backend.Address;

    public void Dispose() => browser.Dispose();

    [Fact]
    public void SignedOut_PageRedirectsToSignIn_AndAWrongKeyIsRefused()
    {
        browser.Go(Base, "/services");
        Assert.StartsWith("/signin", browser.CurrentPath, StringComparison.Ordinal);
        browser.TypeKeyAndSubmit("sp_nosuchkey0_000000000000000000000000000000");
        Assert.Contains("Unknown or revoked key", browser.Text(By.Id("signin-problem")), StringComparison.Ordinal);
        Assert.Empty(browser.FindAll(By.Id("demo-key")));
        browser.Screenshot("01-signin-refused");

        Assert.Equal("", browser.Find(By.Id("key")).GetAttribute("value"));
        browser.TypeKeyAndSubmit(backend.AcmeIngestKey);
        Assert.Contains("no read scope", browser.Text(By.Id("signin-problem")), StringComparison.Ordinal);
    }

    [Fact]
    public void SignIn_KeepsOnlyASessionIdInAnHttpOnlyStrictCookie_ReturnsToPage_AndSignOutEndsIt()
    {
        browser.Go(Base, "/endpoints?range=24h");
        browser.TypeKeyAndSubmit(backend.AcmeReadKey);

        Assert.Equal("/endpoints", browser.CurrentPath);
        var cookie = browser.Driver.Manage().Cookies.GetCookieNamed("sp_session");
        Assert.NotNull(cookie);
        var secret = backend.AcmeReadKey[(backend.AcmeReadKey.LastIndexOf('_') + 1)..];
        Assert.All(browser.Driver.Manage().Cookies.AllCookies, c => Assert.DoesNotContain(secret, Uri.UnescapeDataString(c.Value), StringComparison.Ordinal));
        Assert.True(cookie.IsHttpOnly);
        Assert.Equal("Strict", cookie.SameSite);
        Assert.Equal("", browser.Driver.ExecuteScript("return document.cookie") as string);

        browser.ClickToNavigate(By.Id("sign-out"));
        Assert.StartsWith("/signin", browser.CurrentPath, StringComparison.Ordinal);
        Assert.Null(browser.Driver.Manage().Cookies.GetCookieNamed("sp_session"));
    }

    [Fact]
    public void Journey_SessionsFilterSessionTraceExchange_ShowsWhatWasSent()
    {
        browser.SignIn(Base, backend.AcmeReadKey);

        // Sessions: newest first, counts, services; the other tenant's session is absent.
        Assert.Equal("/", browser.CurrentPath);
        var rows = browser.FindAll(By.CssSelector("#sessions-body tr")).Select(r => r.Text).ToList();
        var browse = rows.FindIndex(r => r.Contains(SeededBackend.BrowseSession, StringComparison.Ordinal));
        var checkout = rows.FindIndex(r => r.Contains(SeededBackend.CheckoutSession, StringComparison.Ordinal));
        Assert.True(browse >= 0 && checkout > browse, "browse (newer) should be listed above checkout: " + string.Join(" | ", rows));
        Assert.Contains("payments", rows[checkout], StringComparison.Ordinal);
        Assert.DoesNotContain(SeededBackend.GlobexSession, browser.Driver.PageSource, StringComparison.Ordinal);
        browser.Screenshot("02-sessions");

        // Filter: 5xx keeps only the checkout session, and the filter lands in the (shareable) URL.
        browser.Find(By.CssSelector("#f-status option[value='5xx']")).Click();
        browser.ClickToNavigate(By.Id("apply-filters"));
        Assert.Contains("status=5xx", browser.Driver.Url, StringComparison.Ordinal);
        var filtered = browser.FindAll(By.CssSelector("#sessions-body a.session-link")).Select(a => a.Text).ToList();
        Assert.Contains(SeededBackend.CheckoutSession, filtered);
        Assert.DoesNotContain(SeededBackend.BrowseSession, filtered);
        browser.Screenshot("03-sessions-filtered");

        // Free text and business key.
        browser.Go(Base, "/?q=flights");
        Assert.Equal([SeededBackend.BrowseSession], browser.FindAll(By.CssSelector("#sessions-body a.session-link")).Select(a => a.Text));
        browser.Go(Base, "/?session=" + SeededBackend.CheckoutSession);
        Assert.Equal([SeededBackend.CheckoutSession], browser.FindAll(By.CssSelector("#sessions-body a.session-link")).Select(a => a.Text));

        // Session: timeline rows and the sequence view, with the failed call marked.
        browser.ClickToNavigate(By.LinkText(SeededBackend.CheckoutSession));
        Assert.Equal("/sessions/" + SeededBackend.CheckoutSession, browser.CurrentPath);
        var timeline = browser.FindAll(By.CssSelector("#timeline tbody tr"));
        Assert.Equal(4, timeline.Count);
        var failed = browser.FindAll(By.CssSelector("#timeline tbody tr.failed"));
        Assert.Equal(2, failed.Count);
        Assert.All(failed, r => Assert.Contains("500", r.Text, StringComparison.Ordinal));
        var sequence = browser.Find(By.Id("sequence"));
        Assert.Contains("payments", sequence.Text, StringComparison.Ordinal);
        Assert.Single(browser.FindAll(By.CssSelector("#sequence .msg.server-error")));
        browser.Screenshot("04-session");

        // Trace: waterfall nested by parent (payments' server span under frontend's call).
        browser.ClickToNavigate(By.CssSelector("a.trace-link"));
        Assert.Equal("/traces/" + backend.CheckoutTrace.ToHexString(), browser.CurrentPath);
        var depths = browser.FindAll(By.CssSelector("#waterfall .wf-row")).Select(r => (r.GetAttribute("data-depth"), r.Text)).ToList();
        Assert.Equal(["0", "1", "2", "1"], depths.Select(d => d.Item1));
        Assert.Contains("/api/payments/ord-5521", depths[2].Text, StringComparison.Ordinal);
        Assert.Contains("error", depths[2].Text, StringComparison.Ordinal);
        browser.Screenshot("05-trace");

        // Exchange: the checkout request and its response side by side.
        browser.ClickToNavigate(By.PartialLinkText("/api/checkout"));
        Assert.Equal("https://shop.example:443/api/checkout?promo=spring&lang=en", browser.Text(By.Id("exchange-url")));
        var requestHeaders = browser.Text(By.Id("request-headers"));
        Assert.Contains("x-request-id req-42", requestHeaders, StringComparison.Ordinal);
        Assert.DoesNotContain("tok-9f8e7d6c5b4a", browser.Driver.PageSource, StringComparison.Ordinal);
        var marked = browser.FindAll(By.CssSelector("#request mark.redacted")).Select(m => m.Text).ToList();
        Assert.Equal(2, marked.Count);
        Assert.All(marked, m => Assert.StartsWith(Redactor.Marker, m, StringComparison.Ordinal));
        Assert.DoesNotContain(SeededBackend.Password, browser.Driver.PageSource, StringComparison.Ordinal);
        var requestBody = browser.Text(By.Id("request-body"));
        Assert.Contains("\"customer\": \"Ada Lovelace\"", requestBody, StringComparison.Ordinal);
        Assert.Contains("\"sku\": \"BOOK-1\"", requestBody, StringComparison.Ordinal);
        Assert.Contains("\"orderId\": \"ord-5521\"", browser.Text(By.Id("response-body")), StringComparison.Ordinal);
        Assert.Contains("201", browser.Text(By.Id("response")), StringComparison.Ordinal);
        Assert.Contains("curl -X POST 'https://shop.example:443/api/checkout?promo=spring&lang=en'", browser.Find(By.Id("curl")).GetAttribute("value"), StringComparison.Ordinal);
        browser.Screenshot("06-exchange");

        // JSON folds: closing the items array hides its entries.
        var items = browser.Find(By.XPath("//div[@id='request-body']//details[summary/span[@class='json-key' and text()='\"items\"']]"));
        items.FindElement(By.TagName("summary")).Click();
        Assert.DoesNotContain("BOOK-1", browser.Text(By.Id("request-body")), StringComparison.Ordinal);
        Assert.Contains("2 items", browser.Text(By.Id("request-body")), StringComparison.Ordinal);
    }

    [Fact]
    public void Exchange_BinaryAndTruncatedBody_ShowsSizeAndHexPreview()
    {
        browser.SignIn(Base, backend.AcmeReadKey);
        browser.Go(Base, "/traces/" + backend.CheckoutTrace.ToHexString() + "/spans/" + backend.LogoCall.ToHexString());

        var body = browser.Text(By.Id("response-body"));
        Assert.Contains("Binary body, 4 KiB", body, StringComparison.Ordinal);
        Assert.Contains("00000000  89 50 4e 47 0d 0a 1a 0a", body, StringComparison.Ordinal);
        Assert.Contains("Truncated: 264 B of 4 KiB captured", body, StringComparison.Ordinal);
        browser.Screenshot("07-exchange-binary");
    }

    [Fact]
    public void DownloadHar_SavesAValidHar12DocumentOfTheExchange()
    {
        browser.SignIn(Base, backend.AcmeReadKey);
        browser.Go(Base, "/traces/" + backend.CheckoutTrace.ToHexString() + "/spans/" + backend.CheckoutRoot.ToHexString());
        var file = Path.Combine(browser.Downloads, "exchange-" + backend.CheckoutRoot.ToHexString() + ".har");
        File.Delete(file);

        browser.Click(By.Id("download-har"));
        browser.WaitFor(_ => File.Exists(file) && new FileInfo(file).Length > 0, "the HAR download " + file);

        using var har = JsonDocument.Parse(File.ReadAllBytes(file));
        Assert.Empty(HarValidator.Validate(har.RootElement));
        var entry = Assert.Single(har.RootElement.GetProperty("log").GetProperty("entries").EnumerateArray());
        var request = entry.GetProperty("request");
        Assert.Equal("POST", request.GetProperty("method").GetString());
        Assert.Equal("https://shop.example:443/api/checkout?promo=spring&lang=en", request.GetProperty("url").GetString());
        Assert.Contains(request.GetProperty("queryString").EnumerateArray(), q => q.GetProperty("name").GetString() == "promo" && q.GetProperty("value").GetString() == "spring");
        Assert.Contains(request.GetProperty("headers").EnumerateArray(), h => h.GetProperty("name").GetString() == "authorization" && h.GetProperty("value").GetString()!.StartsWith(Redactor.Marker, StringComparison.Ordinal));
        Assert.Contains("Ada Lovelace", request.GetProperty("postData").GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.Equal(201, entry.GetProperty("response").GetProperty("status").GetInt32());
        Assert.Equal("Created", entry.GetProperty("response").GetProperty("statusText").GetString());
        Assert.Contains("ord-5521", entry.GetProperty("response").GetProperty("content").GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.Equal(180, entry.GetProperty("time").GetDouble(), 3);
    }

    [Fact]
    public async Task TraceHar_OfAnotherTenantOrWithoutCookie_IsRefused()
    {
        browser.SignIn(Base, backend.AcmeReadKey);
        var cookie = browser.Driver.Manage().Cookies.GetCookieNamed("sp_session");
        using var http = new HttpClient { BaseAddress = Base };

        using var signedOut = await http.GetAsync("/ui/har/" + backend.CheckoutTrace.ToHexString());
        using var request = new HttpRequestMessage(HttpMethod.Get, "/ui/har/" + backend.GlobexTrace.ToHexString());
        request.Headers.Add("Cookie", cookie!.Name + "=" + cookie.Value);
        using var otherTenant = await http.SendAsync(request);
        using var own = new HttpRequestMessage(HttpMethod.Get, "/ui/har/" + backend.CheckoutTrace.ToHexString());
        own.Headers.Add("Cookie", cookie.Name + "=" + cookie.Value);
        using var mine = await http.SendAsync(own);

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, signedOut.StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, otherTenant.StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.OK, mine.StatusCode);
        using var har = JsonDocument.Parse(await mine.Content.ReadAsByteArrayAsync());
        Assert.Empty(HarValidator.Validate(har.RootElement));
        Assert.Equal(4, har.RootElement.GetProperty("log").GetProperty("entries").GetArrayLength());
    }

    [Fact]
    public void OtherTenantsData_IsNeverShown_AndNoKeyAppearsInAnyUrl()
    {
        browser.SignIn(Base, backend.AcmeReadKey);

        browser.Go(Base, "/?range=all&q=globex");
        Assert.Contains("No session matches", browser.Text(By.Id("sessions-empty")), StringComparison.Ordinal);
        browser.Go(Base, "/sessions/" + SeededBackend.GlobexSession);
        Assert.Contains("No session", browser.Text(By.Id("not-found")), StringComparison.Ordinal);
        browser.Go(Base, "/traces/" + backend.GlobexTrace.ToHexString() + "/spans/" + backend.GlobexSpan.ToHexString());
        Assert.Contains("No span", browser.Text(By.Id("not-found")), StringComparison.Ordinal);
        Assert.DoesNotContain(SeededBackend.GlobexPath, browser.Driver.PageSource, StringComparison.Ordinal);
        browser.Go(Base, "/endpoints?range=24h");
        Assert.DoesNotContain("ledger", browser.Driver.PageSource, StringComparison.Ordinal);

        foreach (var url in browser.VisitedUrls)
        {
            Assert.DoesNotContain("sp_", url, StringComparison.Ordinal);
        }

        var hrefs = browser.FindAll(By.CssSelector("a[href]")).Select(a => a.GetAttribute("href") ?? "").ToList();
        Assert.DoesNotContain(hrefs, h => h.Contains(backend.AcmeReadKey, StringComparison.Ordinal));
    }

    [Fact]
    public void Trace_With10000Spans_IsPaged()
    {
        browser.SignIn(Base, backend.AcmeReadKey);

        browser.Go(Base, "/traces/" + backend.BulkTrace.ToHexString());

        Assert.Equal("10,000", browser.Text(By.Id("span-count")));
        var rows = browser.FindAll(By.CssSelector("#waterfall .wf-row"));
        Assert.Equal(TraceViewPageSize, rows.Count);
        Assert.Equal(["0", "1", "2"], rows.Take(3).Select(r => r.GetAttribute("data-depth")));
        Assert.Contains("page 1 of 20", browser.Text(By.CssSelector(".pager")), StringComparison.Ordinal);
        browser.Screenshot("08-trace-10000");

        // Child 42's grandchild 7 answered 503: on the page that holds row 1 + 43 * 101 + 8.
        browser.Go(Base, "/traces/" + backend.BulkTrace.ToHexString() + "?page=9");
        Assert.Single(browser.FindAll(By.CssSelector("#waterfall .wf-row.failed")));
    }

    [Fact]
    public void ServiceMapAndEndpoints_ShowCallsErrorRatesAndPercentiles()
    {
        browser.SignIn(Base, backend.AcmeReadKey);

        browser.Go(Base, "/services?range=24h");
        var map = browser.Find(By.Id("service-map"));
        Assert.Contains("frontend", map.Text, StringComparison.Ordinal);
        Assert.Contains("payments", map.Text, StringComparison.Ordinal);
        var edge = browser.FindAll(By.CssSelector("#edges tbody tr")).Single(r => r.Text.Contains("payments", StringComparison.Ordinal));
        Assert.Contains("100 %", edge.Text, StringComparison.Ordinal);
        browser.Screenshot("09-service-map");

        browser.ClickToNavigate(By.CssSelector("#service-map a[href*='service=payments']"));
        Assert.Contains("service=payments", browser.Driver.Url, StringComparison.Ordinal);
        var endpoint = browser.Find(By.CssSelector("table.endpoints tbody tr"));
        Assert.Contains("GET", endpoint.Text, StringComparison.Ordinal);
        Assert.Contains("100 %", endpoint.Text, StringComparison.Ordinal);
        Assert.Equal(10, endpoint.FindElements(By.TagName("td")).Count);
        browser.Screenshot("10-endpoints");
    }

    [Fact]
    public void ThemeToggle_SwitchesAndRemembersTheTheme()
    {
        browser.SignIn(Base, backend.AcmeReadKey);
        browser.Go(Base, "/");
        var before = (string?)browser.Driver.ExecuteScript("return document.documentElement.dataset.theme || ''");

        browser.Click(By.Id("theme-toggle"));
        var after = browser.Driver.ExecuteScript("return document.documentElement.dataset.theme") as string;
        browser.Go(Base, "/services");

        Assert.NotEqual(before, after);
        Assert.Equal(after, browser.Driver.ExecuteScript("return document.documentElement.dataset.theme") as string);
        if (after == "dark")
        {
            browser.Screenshot("11-dark-theme");
        }
    }

    [Fact]
    public void SkipLink_IsTheFirstFocusAndMovesToTheContent()
    {
        browser.SignIn(Base, backend.AcmeReadKey);
        browser.Go(Base, "/");

        browser.Find(By.TagName("body")).SendKeys(Keys.Tab);
        var focused = browser.Driver.SwitchTo().ActiveElement();
        Assert.Equal("Skip to content", focused.Text);
        focused.SendKeys(Keys.Enter);
        Assert.Equal("main", browser.Driver.SwitchTo().ActiveElement().GetAttribute("id"));
    }

    private static int TraceViewPageSize => 500;

    private async Task<List<JsonElement>> MocksAsync(string key)
    {
        using var client = new HttpClient { BaseAddress = Base };
        client.DefaultRequestHeaders.Add("x-public-key", key);
        using var response = await client.GetAsync("/api/mocks");
        response.EnsureSuccessStatusCode();
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return [.. document.RootElement.GetProperty("items").EnumerateArray().Select(e => e.Clone())];
    }

    [Fact]
    public async Task UseAsMock_WithAnAdminKey_CreatesTheMockAndConfirmsIt()
    {
        browser.SignIn(Base, backend.AcmeAdminKey);
        var page = "/traces/" + backend.CheckoutTrace + "/spans/" + backend.CheckoutRoot;
        browser.Go(Base, page);

        browser.ClickToNavigate(By.Id("use-as-mock"));

        // The new mock's page, ready to edit.
        var id = browser.Text(By.Id("mock-id"));
        Assert.Equal("/mocks/" + id, browser.CurrentPath);
        Assert.Contains("created from the exchange", browser.Text(By.Id("mock-notice")), StringComparison.Ordinal);
        Assert.Equal("POST shop.example:443/api/checkout?promo=spring&lang=en", browser.Text(By.Id("mock-matcher")));
        Assert.Empty(browser.FindAll(By.Id("mock-problem")));
        browser.Screenshot("20-use-as-mock");

        var mock = Assert.Single(await MocksAsync(backend.AcmeAdminKey), m => m.GetProperty("sourceSpanId").GetString() == backend.CheckoutRoot.ToHexString());
        Assert.Equal(id, mock.GetProperty("id").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(201, mock.GetProperty("status").GetInt32());
        Assert.Equal("/api/checkout", mock.GetProperty("path").GetString());
        Assert.Contains("ord-5521", mock.GetProperty("body").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(await MocksAsync(backend.GlobexKey), m => m.GetProperty("sourceSpanId").GetString() == backend.CheckoutRoot.ToHexString());
    }

    [Fact]
    public async Task UseAsMock_WithAReadOnlyKey_ExplainsTheAdminKeyAndCreatesNothing()
    {
        browser.SignIn(Base, backend.AcmeReadKey);
        var page = "/traces/" + backend.CheckoutTrace + "/spans/" + backend.PaymentServer;
        browser.Go(Base, page);

        browser.ClickToNavigate(By.Id("use-as-mock"));

        Assert.Equal(page, browser.CurrentPath);
        Assert.Contains("needs an admin key: sp keys create --tenant acme --scope admin", browser.Text(By.Id("mock-problem")), StringComparison.Ordinal);
        browser.Screenshot("21-use-as-mock-read-only");
        Assert.DoesNotContain(await MocksAsync(backend.AcmeAdminKey), m => m.GetProperty("sourceSpanId").GetString() == backend.PaymentServer.ToHexString());
    }

    [Fact]
    public async Task UseAsMock_WithoutTheFormsToken_IsRefused()
    {
        browser.SignIn(Base, backend.AcmeAdminKey);
        var session = browser.Driver.Manage().Cookies.GetCookieNamed("sp_session");
        using var client = new HttpClient(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = Base };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/ui/mocks/" + backend.CheckoutTrace + "/" + backend.LogoCall)
        {
            Content = new FormUrlEncodedContent([]),
        };
        request.Headers.Add("Cookie", session!.Name + "=" + session.Value);

        using var response = await client.SendAsync(request);

        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        Assert.DoesNotContain(await MocksAsync(backend.AcmeAdminKey), m => m.GetProperty("sourceSpanId").GetString() == backend.LogoCall.ToHexString());
    }
}
