using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Storage.Postgres;
using static SpIstio.Backend.Tests.Storage.TestSpans;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>The contract suite on a real PostgreSQL: a fresh database per test.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresSpanStoreTests(PostgresFixture fixture) : SpanStoreContractTests
{
    private string? _connectionString;

    protected override async Task<ISpanStore> OpenStoreAsync(bool reopen)
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        return SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
    }

    protected override async Task<IReadOnlyList<string>> TablesWithTenantIdAsync()
    {
        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'tenant_id'", connection);
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }

    [Fact]
    public async Task Search_index_lag_reports_the_oldest_unindexed_commit_until_the_indexer_catches_up()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance, time);
        await store.MigrateAsync(CancellationToken.None);
        var progress = (ISearchIndexProgress)store;
        long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;

        // Hold the indexer's lock, as another replica's indexing pass would: the commits below stay unindexed.
        await using var holder = await HoldIndexerLockAsync();

        await store.InsertSpansAsync(tenant, [Exchange(1, 1), Exchange(1, 2)], CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(7));
        await store.InsertSpansAsync(tenant, [Exchange(2, 1)], CancellationToken.None);
        var searchable = progress.WaitForSearchAsync(CancellationToken.None);

        Assert.Equal(new SearchIndexLag(TimeSpan.FromSeconds(7), 3), progress.Lag);
        Assert.False(searchable.IsCompleted);

        await ReleaseIndexerLockAsync(holder);

        await searchable;
        Assert.Equal(default, progress.Lag);
    }

    [Fact]
    public async Task The_text_index_gathers_entries_in_a_16_MiB_pending_list()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT reloptions FROM pg_class WHERE relname = 'span_search_terms'", connection);

        Assert.Contains("gin_pending_list_limit=16384", (string[])(await command.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task Ingest_waits_for_the_text_index_once_it_is_two_indexing_passes_behind()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        var progress = (ISearchIndexProgress)store;
        long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;

        // Hold the indexer's lock, as another replica's pass would: what is stored now stays unindexed.
        await using var holder = await HoldIndexerLockAsync();

        int n = 0;
        while (progress.Lag.SpansBehind <= 4096)
        {
            await store.InsertSpansAsync(tenant, [.. Enumerable.Range(0, 512).Select(_ => { n++; return Exchange(n, n, responseText: "paris"); })], CancellationToken.None);
        }

        long behind = progress.Lag.SpansBehind;
        var next = store.InsertSpansAsync(tenant, [Exchange(n + 1, n + 1, responseText: "lisbon")], CancellationToken.None)
            .ContinueWith(_ => progress.IndexedUpTo, TaskScheduler.Default);
        await ReleaseIndexerLockAsync(holder);

        // The batch went in only after the indexer had caught up with everything stored before it.
        Assert.True(await next >= behind, $"stored with the index at {progress.IndexedUpTo}, {behind} spans behind");
        await progress.WaitForSearchAsync(CancellationToken.None);
        Assert.Equal([Trace(n + 1)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(t => t.TraceId));
    }

    [Fact]
    public async Task Ingest_does_not_wait_for_a_backlog_that_was_there_before_the_process_first_committed()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var holder = await HoldIndexerLockAsync();
        long tenant;
        int n = 0;
        // A previous process (or the upgrade's re-index) leaves more than two passes unindexed.
        await using (var before = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance))
        {
            await before.MigrateAsync(CancellationToken.None);
            tenant = (await before.EnsureTenantAsync("acme", CancellationToken.None)).Id;
            while (((ISearchIndexProgress)before).Lag.SpansBehind <= 4096)
            {
                await before.InsertSpansAsync(tenant, [.. Enumerable.Range(0, 512).Select(_ => { n++; return Exchange(n, n); })], CancellationToken.None);
            }
        }

        // Time that never moves: a batch that waited for the indexer could only end by the indexer
        // catching up, which the held lock prevents, so completing proves it did not wait.
        var frozen = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance, frozen);
        var progress = (ISearchIndexProgress)store;
        // (The minute only turns a regression into a failure instead of a hang.)
        await store.InsertSpansAsync(tenant, [Exchange(n + 1, n + 1)], CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));
        await store.InsertSpansAsync(tenant, [Exchange(n + 2, n + 2, responseText: "lisbon")], CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(progress.IndexedUpTo < n, $"the indexer ran ({progress.IndexedUpTo} of {n} indexed) while its lock was held");

        await ReleaseIndexerLockAsync(holder);
        await progress.WaitForSearchAsync(CancellationToken.None);
        Assert.Equal([Trace(n + 2)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(t => t.TraceId));
    }

    [Fact]
    public void Search_term_hashes_never_change_they_are_stored()
    {
        // A different hash would leave every span indexed before it unfindable.
        Assert.Equal(-5518093010897676151L, PostgresSearchTerms.Hash("lisbon"));
        Assert.Equal(unchecked((long)System.IO.Hashing.XxHash3.HashToUInt64("ação42"u8)), PostgresSearchTerms.Hash("ação42"));
        Assert.Equal("{" + PostgresSearchTerms.Hash("a") + "," + PostgresSearchTerms.Hash("b") + "}", PostgresSearchTerms.QueryValue(["a", "b"]));
    }

    // A connection holding the search indexer's lock, as another replica's indexing pass would.
    private async Task<Npgsql.NpgsqlConnection> HoldIndexerLockAsync()
    {
        var holder = new Npgsql.NpgsqlConnection(_connectionString);
        await holder.OpenAsync();
        await using var take = new Npgsql.NpgsqlCommand("SELECT pg_advisory_lock(" + PostgresSpanStore.IndexerLockKey + ")", holder);
        await take.ExecuteNonQueryAsync();
        return holder;
    }

    private static async Task ReleaseIndexerLockAsync(Npgsql.NpgsqlConnection holder)
    {
        await using var release = new Npgsql.NpgsqlCommand("SELECT pg_advisory_unlock(" + PostgresSpanStore.IndexerLockKey + ")", holder);
        await release.ExecuteNonQueryAsync();
    }

    protected override Task CleanUpAsync() =>
        _connectionString is null ? Task.CompletedTask : fixture.DropDatabaseAsync(_connectionString);
}
