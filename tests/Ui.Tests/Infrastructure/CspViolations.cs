namespace SpIstio.Ui.Tests.Infrastructure;

/// <summary>
/// Records the Content-Security-Policy violations of every page a browser opens (a script evaluated
/// on each new document, before the page's own), so a test can assert a page broke none.
/// </summary>
public static class CspViolations
{
    private const string Recorder =
        "window.spCspViolations = [];"
        + "document.addEventListener('securitypolicyviolation', function (e) { window.spCspViolations.push(e.violatedDirective + ' at ' + e.sourceFile + ':' + e.lineNumber); });";

    /// <summary>Starts recording on every document <paramref name="browser"/> opens from now on.</summary>
    public static void Record(Browser browser)
    {
        ArgumentNullException.ThrowIfNull(browser);
        browser.Driver.ExecuteCdpCommand("Page.addScriptToEvaluateOnNewDocument", new Dictionary<string, object?> { ["source"] = Recorder });
    }

    /// <summary>Fails when the current page reported a violation, naming the page and each violated directive.</summary>
    public static void AssertNone(Browser browser)
    {
        ArgumentNullException.ThrowIfNull(browser);
        var violations = ((IReadOnlyCollection<object>)browser.Driver.ExecuteScript("return window.spCspViolations;")!).Select(v => v.ToString()).ToList();
        Assert.True(violations.Count == 0, browser.CurrentPath + ": " + string.Join("; ", violations));
    }
}
