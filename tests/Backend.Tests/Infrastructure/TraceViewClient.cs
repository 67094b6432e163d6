using System.Net;
using System.Text.RegularExpressions;

namespace SpIstio.Backend.Tests.Infrastructure;

/// <summary>
/// A browser-like HTTP client of the Trace View: a cookie jar, no automatic redirects, and forms
/// posted with the fields (antiforgery token included) the page rendered.
/// </summary>
internal sealed partial class TraceViewClient : IDisposable
{
    private readonly HttpClientHandler _handler;

    public TraceViewClient(Uri baseAddress, CookieContainer? cookies = null)
    {
        Cookies = cookies ?? new CookieContainer();
        _handler = new HttpClientHandler { CookieContainer = Cookies, UseCookies = true, AllowAutoRedirect = false };
        Http = new HttpClient(_handler) { BaseAddress = baseAddress };
    }

    /// <summary>The jar; share it between two clients to be one browser talking to two backends.</summary>
    public CookieContainer Cookies { get; }

    public HttpClient Http { get; }

    /// <summary>The session cookie's value, or null.</summary>
    public string? SessionCookie => Cookies.GetCookies(Http.BaseAddress!)["sp_session"]?.Value;

    /// <summary>Fills the sign-in form with <paramref name="key"/> and posts it.</summary>
    public async Task<HttpResponseMessage> SignInAsync(string key)
    {
        var page = await Http.GetStringAsync("/signin");
        var fields = FormFields(page, "/signin", keyValue: key);
        return await Http.PostAsync("/signin", new FormUrlEncodedContent(fields));
    }

    /// <summary>
    /// Opens <paramref name="page"/> and posts its form whose action is <paramref name="action"/>, as
    /// rendered, through <paramref name="postVia"/> (another backend sharing the jar) or this client.
    /// </summary>
    public async Task<HttpResponseMessage> SubmitAsync(string page, string action, TraceViewClient? postVia = null)
    {
        var html = await Http.GetStringAsync(page);
        return await (postVia ?? this).Http.PostAsync(action, new FormUrlEncodedContent(FormFields(html, action, keyValue: null)));
    }

    public void Dispose()
    {
        Http.Dispose();
        _handler.Dispose();
    }

    /// <summary>The inputs of the first form posting to <paramref name="action"/> (the sign-in form posts to its own page).</summary>
    private static List<KeyValuePair<string, string>> FormFields(string html, string action, string? keyValue)
    {
        var form = FormPattern().Matches(html).FirstOrDefault(m =>
            m.Groups["action"].Value == action || (action == "/signin" && m.Groups["action"].Value.Length == 0))
            ?? throw new InvalidOperationException("no form posting to " + action + " in the page");
        var fields = new List<KeyValuePair<string, string>>();
        foreach (Match input in InputPattern().Matches(form.Groups["body"].Value))
        {
            var tag = input.Value;
            var name = Attribute(tag, "name");
            if (name is null)
            {
                continue;
            }

            var value = Attribute(tag, "id") == "key" && keyValue is not null ? keyValue : WebUtility.HtmlDecode(Attribute(tag, "value") ?? "");
            fields.Add(new(name, value));
        }

        return fields;
    }

    private static string? Attribute(string tag, string name)
    {
        var match = Regex.Match(tag, "\\s" + name + "=\"(?<v>[^\"]*)\"");
        return match.Success ? match.Groups["v"].Value : null;
    }

    [GeneratedRegex("<form(?=[^>]*method=\"post\")(?:[^>]*action=\"(?<action>[^\"]*)\")?[^>]*>(?<body>.*?)</form>", RegexOptions.Singleline | RegexOptions.IgnoreCase)]
    private static partial Regex FormPattern();

    [GeneratedRegex("<input[^>]*>", RegexOptions.IgnoreCase)]
    private static partial Regex InputPattern();
}
