using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Infrastructure;

namespace SpIstio.Backend.Tests.Auth;

public sealed class ApiKeyTests : IAsyncLifetime
{
    private readonly string _directory = BackendFixture.NewDirectory();
    private ISpanStore _store = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        _store = SpanStoreFactory.Open("sqlite:" + Path.Combine(_directory, "sp.db"), NullLoggerFactory.Instance);
        await _store.MigrateAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void Generate_MakesDistinctWellFormedKeys_AndStoresOnlyTheHash()
    {
        var (key, record) = ApiKeys.Generate(7, KeyScope.Ingest, "agent", DateTimeOffset.UnixEpoch);
        var (other, _) = ApiKeys.Generate(7, KeyScope.Ingest, "agent", DateTimeOffset.UnixEpoch);

        Assert.Matches("^sp_[a-z2-7]{12}_[0-9A-Za-z]{32}$", key);
        Assert.NotEqual(key, other);
        Assert.Equal(key.Substring(3, 12), record.KeyId);
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)), record.KeyHash);
        Assert.True(ApiKeys.IsWellFormed(key));
        Assert.True(ApiKeys.IsWellFormed(ApiKeys.DemoKey));
    }

    [Theory]
    [InlineData("")]
    [InlineData("sp_")]
    [InlineData("sp_abc")]
    [InlineData("sp_abc_")]
    [InlineData("pk_abc_def")]
    [InlineData("sp_abc_d'ef")]
    public void IsWellFormed_RefusesGarbage(string key) => Assert.False(ApiKeys.IsWellFormed(key));

    [Theory]
    [InlineData("ingest", KeyScope.Ingest)]
    [InlineData("READ", KeyScope.Read)]
    [InlineData("ingest,read", KeyScope.Ingest | KeyScope.Read)]
    [InlineData("ingest|admin", KeyScope.Ingest | KeyScope.Admin)]
    public void TryParseScopes_ReadsNamesAndLists(string text, KeyScope expected)
    {
        Assert.True(ApiKeys.TryParseScopes(text, out var scopes));
        Assert.Equal(expected, scopes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("write")]
    [InlineData("ingest,write")]
    public void TryParseScopes_RefusesUnknownNames(string text) => Assert.False(ApiKeys.TryParseScopes(text, out _));

    [Fact]
    public void Admin_ImpliesEveryScope()
    {
        Assert.True(ApiKeys.Allows(KeyScope.Admin, KeyScope.Ingest));
        Assert.True(ApiKeys.Allows(KeyScope.Admin, KeyScope.Read));
        Assert.False(ApiKeys.Allows(KeyScope.Read, KeyScope.Ingest));
    }

    [Fact]
    public async Task Authenticator_AcceptsAValidKeyWithTheScope_AndForbidsOtherScopes()
    {
        var created = await KeyAdministration.CreateKeyAsync(_store, "acme", KeyScope.Ingest, null, TimeProvider.System, CancellationToken.None);
        var auth = new ApiKeyAuthenticator(_store, TimeSpan.FromSeconds(30), TimeProvider.System);

        var ingest = await auth.AuthenticateAsync(created.Key, KeyScope.Ingest, CancellationToken.None);
        var read = await auth.AuthenticateAsync(created.Key, KeyScope.Read, CancellationToken.None);
        var tampered = await auth.AuthenticateAsync(created.Key[..^1] + (created.Key[^1] == 'a' ? 'b' : 'a'), KeyScope.Ingest, CancellationToken.None);

        Assert.Equal(new AuthResult(AuthStatus.Allowed, new TenantContext(created.Tenant.Id, "acme", KeyScope.Ingest, created.Record.KeyId)), ingest);
        Assert.Equal(AuthStatus.Forbidden, read.Status);
        Assert.Equal(AuthStatus.Unknown, tampered.Status);
    }

    [Fact]
    public async Task Authenticator_RemembersAnswersForItsTtl_SoARevocationBitesAfterIt()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var created = await KeyAdministration.CreateKeyAsync(_store, "acme", KeyScope.Read, null, time, CancellationToken.None);
        var auth = new ApiKeyAuthenticator(_store, TimeSpan.FromSeconds(30), time);
        Assert.Equal(AuthStatus.Allowed, (await auth.AuthenticateAsync(created.Key, KeyScope.Read, CancellationToken.None)).Status);

        Assert.True(await _store.RevokeApiKeyAsync(created.Tenant.Id, created.Record.KeyId, CancellationToken.None));
        var withinTtl = await auth.AuthenticateAsync(created.Key, KeyScope.Read, CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(31));
        var afterTtl = await auth.AuthenticateAsync(created.Key, KeyScope.Read, CancellationToken.None);

        Assert.Equal(AuthStatus.Allowed, withinTtl.Status);
        Assert.Equal(AuthStatus.Unknown, afterTtl.Status);
    }

    [Fact]
    public async Task Authenticator_AcceptsTheDemoKeyOnlyInDemoMode()
    {
        var demo = new ApiKeyAuthenticator(_store, TimeSpan.FromSeconds(30), TimeProvider.System, demoTenantId: 1);
        var normal = new ApiKeyAuthenticator(_store, TimeSpan.FromSeconds(30), TimeProvider.System);

        Assert.Equal(new AuthResult(AuthStatus.Allowed, new TenantContext(1, "default", KeyScope.Ingest | KeyScope.Read, ApiKeys.DemoKeyId)), await demo.AuthenticateAsync(ApiKeys.DemoKey, KeyScope.Read, CancellationToken.None));
        Assert.Equal(AuthStatus.Forbidden, (await demo.AuthenticateAsync(ApiKeys.DemoKey, KeyScope.Admin, CancellationToken.None)).Status);
        Assert.Equal(AuthStatus.Unknown, (await normal.AuthenticateAsync(ApiKeys.DemoKey, KeyScope.Read, CancellationToken.None)).Status);
    }

    [Theory]
    [InlineData("sp_a_b", null, "sp_a_b")]
    [InlineData("  sp_a_b ", "Bearer other", "sp_a_b")]
    [InlineData(null, "Bearer sp_x_y", "sp_x_y")]
    [InlineData(null, "bearer sp_x_y", "sp_x_y")]
    [InlineData(null, "Basic abc", null)]
    [InlineData(null, null, null)]
    public void ExtractKey_PrefersXPublicKey_ThenBearer(string? publicKey, string? authorization, string? expected) =>
        Assert.Equal(expected, ApiKeyAuthenticator.ExtractKey(publicKey, authorization));
}
