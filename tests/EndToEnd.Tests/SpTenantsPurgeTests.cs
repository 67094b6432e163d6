using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Storage;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// <c>sp tenants purge</c> as an operator runs it, on each store engine: it shows what it would
/// delete until confirmed, deletes one tenant's data and nothing of another's, and removes the
/// tenant and its keys only when asked.
/// </summary>
public abstract class SpTenantsPurgeTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>The store spec handed to <c>sp --store</c>.</summary>
    protected string Spec { get; set; } = "";

    public abstract Task InitializeAsync();

    public abstract Task DisposeAsync();

    [Fact]
    public async Task Purge_ShowsWhatItWouldDelete_ThenDeletesOneTenantsData_AndRemovesTheTenantOnlyWhenAsked()
    {
        await using (var store = await SpanStoreFactory.OpenAsync(Spec, NullLoggerFactory.Instance, null, None))
        {
            await SeedAsync(store, "acme", spans: 12, sessions: 3);
            await SeedAsync(store, "globex", spans: 2, sessions: 1);
        }

        var dryRun = await SpProcess.RunAsync("tenants", "purge", "acme", "--store", Spec);

        Assert.Equal(1, dryRun.ExitCode);
        Assert.Equal("would delete of tenant 'acme': 12 spans, 3 sessions, 1 mocks, 0 replay jobs; the tenant and its keys are kept (--remove-tenant deletes them too)", dryRun.StdOut.Trim());
        Assert.Contains("store: ", dryRun.StdErr, StringComparison.Ordinal);
        Assert.Contains("(from --store)", dryRun.StdErr, StringComparison.Ordinal);
        Assert.Contains("error: nothing deleted: pass --yes to delete", dryRun.StdErr, StringComparison.Ordinal);
        await AssertRowsAsync("acme", spans: 12, sessions: 3, mocks: 1, keys: 1);

        var purged = await SpProcess.RunAsync("tenants", "purge", "acme", "--yes", "--store", Spec);

        Assert.Equal(0, purged.ExitCode);
        Assert.Equal("deleted of tenant 'acme': 12 spans, 3 sessions, 1 mocks, 0 replay jobs; the tenant and its keys are kept", purged.StdOut.Trim());
        await AssertRowsAsync("acme", spans: 0, sessions: 0, mocks: 0, keys: 1);
        await AssertRowsAsync("globex", spans: 2, sessions: 1, mocks: 1, keys: 1);

        var removed = await SpProcess.RunAsync("tenants", "purge", "acme", "--yes", "--remove-tenant", "--store", Spec);

        Assert.Equal(0, removed.ExitCode);
        Assert.Equal("deleted of tenant 'acme': 0 spans, 0 sessions, 0 mocks, 0 replay jobs, 1 api keys, 0 ui sessions, 0 codec dictionaries, 1 tenants; the tenant and its keys are deleted", removed.StdOut.Trim());
        var list = await SpProcess.RunAsync("tenants", "list", "--store", Spec);
        Assert.DoesNotMatch(@"(?m)^acme\s", list.StdOut);
        Assert.Matches(@"(?m)^globex\s", list.StdOut);
        await AssertRowsAsync("globex", spans: 2, sessions: 1, mocks: 1, keys: 1);

        var unknown = await SpProcess.RunAsync("tenants", "purge", "acme", "--yes", "--store", Spec);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("error: tenant 'acme' does not exist", unknown.StdErr, StringComparison.Ordinal);
    }

    private static async Task SeedAsync(ISpanStore store, string tenantName, int spans, int sessions)
    {
        var created = await KeyAdministration.CreateKeyAsync(store, tenantName, KeyScope.Ingest, null, TimeProvider.System, None);
        var tenant = created.Tenant.Id;
        var start = DateTimeOffset.UtcNow.AddMinutes(-5);
        var batch = Enumerable.Range(1, spans).Select(i => new StoredSpan
        {
            TraceId = i.ToString("x32", CultureInfo.InvariantCulture),
            SpanId = i.ToString("x16", CultureInfo.InvariantCulture),
            Name = "GET /api/people/" + i,
            Kind = 2,
            ServiceName = "frontend",
            StartTime = start.AddMilliseconds(i),
            EndTime = start.AddMilliseconds(i + 5),
            IsExchange = true,
            SessionId = "session-" + (i % sessions),
            Method = "GET",
            Path = "/api/people/" + i,
            StatusCode = 200,
            ResponseBody = "{\"name\":\"Ada Lovelace\"}"u8.ToArray(),
        }).ToList();
        await store.InsertSpansAsync(tenant, batch, None);
        await store.AddMockAsync(tenant, new MockRecord
        {
            Service = "frontend",
            Environment = "",
            Method = "GET",
            Authority = "people",
            Path = "/api/people/1",
            MatchKey = "k",
            StatusCode = 200,
            ResponseHeadersJson = "[]",
            CreatedAt = start,
            UpdatedAt = start,
        }, None);
    }

    private async Task AssertRowsAsync(string tenantName, long spans, long sessions, long mocks, long keys)
    {
        await using var store = await SpanStoreFactory.OpenAsync(Spec, NullLoggerFactory.Instance, null, None);
        var tenant = await store.FindTenantAsync(tenantName, None);
        Assert.NotNull(tenant);
        Assert.Equal(
            [new("spans", spans), new("sessions", sessions), new("mocks", mocks), new("replay_jobs", 0), new("api_keys", keys), new("ui_sessions", 0), new("codec_dictionaries", 0)],
            await store.CountTenantDataAsync(tenant.Id, None));
    }
}

/// <summary>The purge on the embedded SQLite store.</summary>
public sealed class SqliteTenantsPurgeTests : SpTenantsPurgeTests
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-purge-" + Guid.NewGuid().ToString("N"));

    public override Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        Spec = "sqlite:" + Path.Combine(_directory, "sp.db");
        return Task.CompletedTask;
    }

    public override Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>The purge on a real PostgreSQL (the store tests' throwaway cluster).</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresTenantsPurgeTests(PostgresFixture postgres) : SpTenantsPurgeTests
{
    private string _connectionString = "";

    public override async Task InitializeAsync()
    {
        _connectionString = await postgres.CreateDatabaseAsync();
        Spec = "postgres:" + _connectionString;
    }

    public override Task DisposeAsync() => postgres.DropDatabaseAsync(_connectionString);
}
