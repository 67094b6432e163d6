using System.Buffers.Text;
using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Infrastructure;

namespace SpIstio.Backend.Tests.Ui;

/// <summary>
/// The Trace View session over real HTTP: what the cookie holds, the headers every page sends,
/// antiforgery on sign-out, idle expiry on a driven clock, revocation, and two backends on one store.
/// </summary>
public sealed class TraceViewSessionTests : IAsyncLifetime
{
    private static readonly string[] Pages = ["/", "/sessions", "/traces", "/services", "/endpoints", "/open", "/sessions/none", "/traces/0123456789abcdef0123456789abcdef", "/traces/0123456789abcdef0123456789abcdef/spans/0123456789abcdef"];

    private readonly string _directory = BackendFixture.NewDirectory();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<BackendServer> _servers = [];
    private ISpanStore _store = null!;
    private string _spec = "";
    private string _readKey = "";
    private CreatedKey _adminKey = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        _spec = "sqlite:" + Path.Combine(_directory, "sp.db");
        _store = SpanStoreFactory.Open(_spec, NullLoggerFactory.Instance, _time);
        await _store.MigrateAsync(CancellationToken.None);
        _readKey = (await KeyAdministration.CreateKeyAsync(_store, "acme", KeyScope.Read, null, _time, CancellationToken.None)).Key;
        _adminKey = await KeyAdministration.CreateKeyAsync(_store, "acme", KeyScope.Read | KeyScope.Admin, null, _time, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        foreach (var server in _servers)
        {
            await server.StopAsync();
        }

        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task SignIn_TheCookieHoldsARandomIdWhoseHashAloneIsStored_NeverTheKey()
    {
        using var client = new TraceViewClient((await StartAsync()).Address);

        using var answer = await client.SignInAsync(_readKey);

        Assert.Equal(HttpStatusCode.Found, answer.StatusCode);
        var setCookies = answer.Headers.GetValues("Set-Cookie").ToList();
        var secret = _readKey[(_readKey.LastIndexOf('_') + 1)..];
        Assert.All(setCookies, c => Assert.DoesNotContain(secret, Uri.UnescapeDataString(c), StringComparison.Ordinal));
        var session = Assert.Single(setCookies, c => c.StartsWith("sp_session=", StringComparison.Ordinal));
        Assert.Contains("httponly", session, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", session, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("expires", session, StringComparison.OrdinalIgnoreCase);

        var id = Base64Url.DecodeFromChars(client.SessionCookie);
        Assert.Equal(32, id.Length);
        var stored = await _store.FindTraceViewSessionAsync(SHA256.HashData(id), CancellationToken.None);
        Assert.NotNull(stored);
        Assert.Equal(ApiKeys.Hash(_readKey), stored.KeyHash);
        Assert.Null(await _store.FindTraceViewSessionAsync(id, CancellationToken.None));
    }

    [Fact]
    public async Task EveryPage_SendsAStrictPolicy_NoSniff_NoReferrer_FrameDenial_AndNoStore()
    {
        var server = await StartAsync();
        using var client = new TraceViewClient(server.Address);
        using var signedOutPage = await client.Http.GetAsync("/signin");
        AssertSecurityHeaders(signedOutPage, "/signin");
        using var signedIn = await client.SignInAsync(_readKey);
        Assert.Equal(HttpStatusCode.Found, signedIn.StatusCode);

        foreach (var page in Pages.Append("/signin"))
        {
            using var response = await client.Http.GetAsync(page);
            Assert.True(response.StatusCode == HttpStatusCode.OK, page + " answered " + response.StatusCode);
            AssertSecurityHeaders(response, page);
            var html = await response.Content.ReadAsStringAsync();
            Assert.DoesNotContain(" style=", html, StringComparison.Ordinal);
            Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
        }

        using var api = new HttpRequestMessage(HttpMethod.Get, "/api/sessions");
        api.Headers.Add("x-public-key", _readKey);
        using var apiAnswer = await client.Http.SendAsync(api);
        Assert.Equal(HttpStatusCode.OK, apiAnswer.StatusCode);
        Assert.True(apiAnswer.Headers.CacheControl!.NoStore);
    }

    [Fact]
    public async Task SignOut_WithoutTheAntiforgeryToken_IsRefused_AndWithItEndsTheSession()
    {
        using var client = new TraceViewClient((await StartAsync()).Address);
        using var signedIn = await client.SignInAsync(_readKey);

        using var forged = await client.Http.PostAsync("/ui/signout", new FormUrlEncodedContent([]));
        using var stillIn = await client.Http.GetAsync("/");
        using var signedOut = await client.SubmitAsync("/", "/ui/signout");
        using var afterwards = await client.Http.GetAsync("/");

        Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        Assert.Equal(HttpStatusCode.OK, stillIn.StatusCode);
        Assert.Equal(HttpStatusCode.Found, signedOut.StatusCode);
        Assert.Equal("/signin", signedOut.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.Found, afterwards.StatusCode);
        Assert.StartsWith("/signin?returnUrl=", afterwards.Headers.Location!.OriginalString, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Session_OpenedOnOneBackend_IsServedByAnother_AndSignOutThroughItEndsItOnBoth()
    {
        var first = await StartAsync();
        var second = await StartAsync();
        var jar = new CookieContainer();
        using var toFirst = new TraceViewClient(first.Address, jar);
        using var toSecond = new TraceViewClient(second.Address, jar);

        using var signedIn = await toFirst.SignInAsync(_readKey);
        using var onSecond = await toSecond.Http.GetAsync("/traces");
        // The sign-out form (and its antiforgery token) comes from the first backend and is posted to the second.
        using var signedOut = await toFirst.SubmitAsync("/", "/ui/signout", postVia: toSecond);
        using var onFirst = await toFirst.Http.GetAsync("/traces");

        Assert.Equal(HttpStatusCode.Found, signedIn.StatusCode);
        Assert.Equal(HttpStatusCode.OK, onSecond.StatusCode);
        Assert.Equal(HttpStatusCode.Found, signedOut.StatusCode);
        Assert.Equal(HttpStatusCode.Found, onFirst.StatusCode);
        Assert.StartsWith("/signin", onFirst.Headers.Location!.OriginalString, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Session_EndsAfterTheIdlePeriod_WhileUseKeepsItAlive()
    {
        using var client = new TraceViewClient((await StartAsync()).Address);
        using var signedIn = await client.SignInAsync(_readKey);

        _time.Advance(TimeSpan.FromHours(11));
        using var after11h = await client.Http.GetAsync("/");
        _time.Advance(TimeSpan.FromHours(11));
        using var after22h = await client.Http.GetAsync("/");
        _time.Advance(TimeSpan.FromHours(12));
        using var idle12h = await client.Http.GetAsync("/");
        using var signInAgain = await client.SignInAsync(_readKey);
        using var fresh = await client.Http.GetAsync("/");

        Assert.Equal(HttpStatusCode.OK, after11h.StatusCode);
        Assert.Equal(HttpStatusCode.OK, after22h.StatusCode);
        Assert.Equal(HttpStatusCode.Found, idle12h.StatusCode);
        Assert.StartsWith("/signin", idle12h.Headers.Location!.OriginalString, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);
    }

    [Fact]
    public async Task RevokingTheKey_EndsItsSessions_WithinTheKeyCacheDelay()
    {
        var server = await StartAsync();
        using var client = new TraceViewClient(server.Address);
        using var signedIn = await client.SignInAsync(_adminKey.Key);
        using var before = await client.Http.GetAsync("/");

        Assert.True(await _store.RevokeApiKeyAsync(_adminKey.Tenant.Id, _adminKey.Record.KeyId, CancellationToken.None));
        _time.Advance(new BackendOptions().KeyCacheTtl + TimeSpan.FromSeconds(1));
        using var after = await client.Http.GetAsync("/");

        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.Equal(HttpStatusCode.Found, after.StatusCode);
        Assert.StartsWith("/signin", after.Headers.Location!.OriginalString, StringComparison.Ordinal);
        Assert.Null(await _store.FindTraceViewSessionAsync(SHA256.HashData(Base64Url.DecodeFromChars(client.SessionCookie ?? "")), CancellationToken.None));
    }

    [Fact]
    public async Task SessionCookie_DoesNotOpenTheApi_AndAKeyDoesNotOpenPages()
    {
        using var client = new TraceViewClient((await StartAsync()).Address);
        using var signedIn = await client.SignInAsync(_readKey);

        using var api = await client.Http.GetAsync("/api/sessions");
        using var page = new HttpRequestMessage(HttpMethod.Get, "/traces");
        page.Headers.Add("x-public-key", _readKey);
        using var anonymous = new TraceViewClient(client.Http.BaseAddress!);
        using var pageWithKey = await anonymous.Http.SendAsync(page);

        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        Assert.Equal(HttpStatusCode.Found, pageWithKey.StatusCode);
    }

    private static void AssertSecurityHeaders(HttpResponseMessage response, string page)
    {
        var csp = string.Join(";", response.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("default-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("style-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Equal("no-referrer", Assert.Single(response.Headers.GetValues("Referrer-Policy")));
        Assert.Equal("DENY", Assert.Single(response.Headers.GetValues("X-Frame-Options")));
        Assert.True(response.Headers.CacheControl?.NoStore == true, page + " lacks Cache-Control: no-store");
    }

    private async Task<BackendServer> StartAsync()
    {
        var options = new BackendOptions { Listen = "127.0.0.1:0", GrpcListen = null, Store = _spec };
        var server = await BackendServer.StartAsync(options, timeProvider: _time);
        _servers.Add(server);
        return server;
    }
}
