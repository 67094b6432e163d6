using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>The contract suite on a SQLite file in a temporary folder.</summary>
public sealed class SqliteSpanStoreTests : SpanStoreContractTests
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-sqlite-" + Guid.NewGuid().ToString("N"));

    protected override Task<ISpanStore> OpenStoreAsync(bool reopen) =>
        Task.FromResult(SpanStoreFactory.Open("sqlite:" + Path.Combine(_directory, "sp.db"), NullLoggerFactory.Instance));

    protected override Task CleanUpAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    protected override async Task<IReadOnlyList<string>> TablesWithTenantIdAsync()
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table' AND c.name = 'tenant_id'";
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }

    [Fact]
    public async Task The_text_index_merges_segments_sixteen_at_a_time() =>
        Assert.Equal(16L, await TextIndexSettingAsync("automerge"));

    [Fact]
    public async Task The_text_index_writes_blocks_of_one_page() =>
        Assert.Equal(8000L, await TextIndexSettingAsync("pgsz"));

    // A setting FTS5 keeps in the table's own configuration (set by the migrations).
    private async Task<long> TextIndexSettingAsync(string key)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT v FROM spans_fts_config WHERE k = @k";
        command.Parameters.AddWithValue("@k", key);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_row_the_database_refuses_fails_its_batch_with_SQLites_reason_and_the_next_batch_goes_in()
    {
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;

        // The table's CHECK refuses a trace id that is not 32 lower-case hex digits.
        var refused = TestSpans.Exchange(1, 1) with { TraceId = "not-a-trace-id" };
        var error = await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => Store.InsertSpansAsync(tenant, [refused], CancellationToken.None));
        Assert.Equal(19, error.SqliteErrorCode); // SQLITE_CONSTRAINT
        Assert.Contains("CHECK constraint failed", error.Message, StringComparison.Ordinal);

        // The prepared insert was reset: the next batch is stored.
        Assert.Equal(1, await Store.InsertSpansAsync(tenant, [TestSpans.Exchange(2, 1)], CancellationToken.None));
    }

    [Fact]
    public async Task The_database_uses_WAL_so_readers_run_beside_the_writer()
    {
        await Store.EnsureTenantAsync("acme", CancellationToken.None);

        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode";

        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
    }
}
