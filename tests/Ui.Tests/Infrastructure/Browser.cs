using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;

namespace SpIstio.Ui.Tests.Infrastructure;

/// <summary>
/// Debian's headless Chromium driven by its chromedriver, both from /usr/bin (apt packages
/// chromium and chromium-driver): nothing is downloaded at test time.
/// </summary>
/// <remarks>
/// One instance per test, each with its own profile folder: cookies, <c>localStorage</c> and the
/// download folder never carry over from one test to the next. Every lookup is an explicit wait,
/// and every action that leaves the page waits for the next document, so a test never reads the
/// page it just left (a form POST can return before the browser has even started navigating).
/// </remarks>
public sealed class Browser : IDisposable
{
    /// <summary>How long any one awaited condition may take before the test fails with a description of it.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly string _profile;

    public Browser()
    {
        _profile = Path.Combine(Path.GetTempPath(), "sp-ui-chrome-" + Guid.NewGuid().ToString("N"));
        Downloads = Path.Combine(_profile, "downloads");
        Directory.CreateDirectory(Downloads);
        var service = ChromeDriverService.CreateDefaultService("/usr/bin", "chromedriver");
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        var options = new ChromeOptions { BinaryLocation = "/usr/bin/chromium" };
        options.AddArguments(
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1440,1000", "--user-data-dir=" + Path.Combine(_profile, "user"));
        options.AddUserProfilePreference("download.default_directory", Downloads);
        options.AddUserProfilePreference("download.prompt_for_download", false);
        Driver = new ChromeDriver(service, options, TimeSpan.FromSeconds(90));
        Driver.Manage().Timeouts().PageLoad = TimeSpan.FromSeconds(60);
    }

    public ChromeDriver Driver { get; }

    /// <summary>Where Chromium saves downloads.</summary>
    public string Downloads { get; }

    /// <summary>Every URL the browser was sent to or landed on, to check that no key ever appears in one.</summary>
    public List<string> VisitedUrls { get; } = [];

    public static string ScreenshotDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");

    /// <summary>The path of the page the browser shows now.</summary>
    public string CurrentPath => new Uri(Driver.Url).AbsolutePath;

    /// <summary>Opens a page and returns once its document has finished loading.</summary>
    public void Go(Uri baseAddress, string path)
    {
        var url = new Uri(baseAddress, path).ToString();
        VisitedUrls.Add(url);
        Driver.Navigate().GoToUrl(url);
        WaitFor(_ => IsComplete(), "the document of " + url + " to finish loading");
        VisitedUrls.Add(Driver.Url);
    }

    /// <summary>
    /// Clicks something that leaves the page (a link, a form's submit button) and returns once the
    /// old document is gone and the new one has finished loading, redirects included.
    /// </summary>
    public void ClickToNavigate(By by)
    {
        var old = Driver.FindElement(By.TagName("html"));
        Clickable(by).Click();
        WaitFor(_ => IsGone(old) && IsComplete(), "a new page to load after clicking " + by);
        VisitedUrls.Add(Driver.Url);
    }

    /// <summary>Clicks something that changes the page in place (a toggle, a fold) once it is visible and enabled.</summary>
    public void Click(By by) => Clickable(by).Click();

    /// <summary>Waits until the element is in the page, then returns it.</summary>
    public IWebElement Find(By by) => WaitFor(d => d.FindElements(by).FirstOrDefault(), "an element " + by);

    /// <summary>Every element that matches now; an empty answer is meaningful because the page has finished loading.</summary>
    public IReadOnlyCollection<IWebElement> FindAll(By by) => Driver.FindElements(by);

    /// <summary>The visible text of an element, waiting for it to be there (and re-reading if the page replaced it meanwhile).</summary>
    public string Text(By by) => WaitFor(
        d =>
        {
            try
            {
                return d.FindElements(by).FirstOrDefault()?.Text;
            }
            catch (StaleElementReferenceException)
            {
                return null;
            }
        },
        "the text of " + by);

    /// <summary>
    /// Waits until <paramref name="condition"/> gives a non-null, non-false answer. On time-out the
    /// failure names what was awaited, where the browser was, and a screenshot of what it showed.
    /// </summary>
    public T WaitFor<T>(Func<IWebDriver, T?> condition, string what)
        where T : class
    {
        var wait = new WebDriverWait(Driver, Patience);
        wait.IgnoreExceptionTypes(typeof(NoSuchElementException), typeof(StaleElementReferenceException));
        try
        {
            return wait.Until(condition)!;
        }
        catch (WebDriverTimeoutException)
        {
            var shot = Screenshot("failed-" + DateTime.UtcNow.ToString("HHmmss-fff", System.Globalization.CultureInfo.InvariantCulture));
            throw new Xunit.Sdk.XunitException($"Waited {Patience.TotalSeconds:0} s for {what}; the browser is at {Driver.Url}; screenshot: {shot}");
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds; see <see cref="WaitFor{T}"/>.</summary>
    public void WaitFor(Func<IWebDriver, bool> condition, string what) =>
        WaitFor(d => condition(d) ? this : null, what);

    /// <summary>Saves a screenshot under <see cref="ScreenshotDirectory"/> and returns its path.</summary>
    public string Screenshot(string name)
    {
        Directory.CreateDirectory(ScreenshotDirectory);
        var path = Path.Combine(ScreenshotDirectory, name + ".png");
        Driver.GetScreenshot().SaveAsFile(path);
        return path;
    }

    /// <summary>Signs in with a key that should be accepted, and returns once the signed-in page is shown.</summary>
    public void SignIn(Uri baseAddress, string key)
    {
        Go(baseAddress, "/signin");
        TypeKeyAndSubmit(key);
        WaitFor(d => d.FindElements(By.Id("sign-out")).Count > 0, "the signed-in page (a sign-out button) after signing in");
    }

    /// <summary>Types a key into the sign-in form and submits it, returning once the answer page has loaded.</summary>
    public void TypeKeyAndSubmit(string key)
    {
        var input = Find(By.Id("key"));
        input.Clear();
        input.SendKeys(key);
        ClickToNavigate(By.Id("sign-in"));
    }

    public void Dispose()
    {
        Driver.Quit();
        Driver.Dispose();
        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (IOException)
        {
            // Chromium may still hold a profile file for a moment; the temp folder is cleaned by the OS.
        }
    }

    private IWebElement Clickable(By by) => WaitFor(
        d => d.FindElements(by).FirstOrDefault(e => e.Displayed && e.Enabled),
        "a visible, enabled element " + by + " to click");

    private bool IsComplete() => Driver.ExecuteScript("return document.readyState") as string == "complete";

    private static bool IsGone(IWebElement element)
    {
        try
        {
            _ = element.Enabled;
            return false;
        }
        catch (StaleElementReferenceException)
        {
            return true;
        }
    }
}
