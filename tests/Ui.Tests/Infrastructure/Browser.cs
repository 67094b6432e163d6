using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;

namespace SpIstio.Ui.Tests.Infrastructure;

/// <summary>
/// Debian's headless Chromium driven by its chromedriver, both from /usr/bin (apt packages
/// chromium and chromium-driver): nothing is downloaded at test time.
/// </summary>
public sealed class Browser : IDisposable
{
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

    public void Go(Uri baseAddress, string path)
    {
        var url = new Uri(baseAddress, path).ToString();
        VisitedUrls.Add(url);
        Driver.Navigate().GoToUrl(url);
        VisitedUrls.Add(Driver.Url);
    }

    public void Click(By by)
    {
        Driver.FindElement(by).Click();
        VisitedUrls.Add(Driver.Url);
    }

    public IWebElement Find(By by) => Driver.FindElement(by);

    public IReadOnlyCollection<IWebElement> FindAll(By by) => Driver.FindElements(by);

    public string Text(By by) => Driver.FindElement(by).Text;

    public T WaitFor<T>(Func<IWebDriver, T> condition, int seconds = 20) =>
        new WebDriverWait(Driver, TimeSpan.FromSeconds(seconds)).Until(condition);

    public void Screenshot(string name)
    {
        Directory.CreateDirectory(ScreenshotDirectory);
        Driver.GetScreenshot().SaveAsFile(Path.Combine(ScreenshotDirectory, name + ".png"));
    }

    public void SignIn(Uri baseAddress, string key)
    {
        Go(baseAddress, "/signin");
        var input = Find(By.Id("key"));
        input.Clear();
        input.SendKeys(key);
        Click(By.Id("sign-in"));
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
}
