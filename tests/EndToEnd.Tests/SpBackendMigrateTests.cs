using Microsoft.Data.Sqlite;

namespace SpIstio.EndToEnd.Tests;

/// <summary><c>sp backend migrate</c>: lists, applies, and refuses a schema newer than it knows.</summary>
public sealed class SpBackendMigrateTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "sp-migrate-" + Guid.NewGuid().ToString("N"));

    public SpBackendMigrateTests() => Directory.CreateDirectory(_folder);

    [Fact]
    public async Task DryRun_ThenMigrate_ThenDryRun_ListsAppliesAndFindsNothingLeft()
    {
        var file = Path.Combine(_folder, "sp.db");
        var store = "sqlite:" + file;

        var listedNew = await SpProcess.RunAsync("backend", "migrate", "--store", store, "--dry-run");
        Assert.Equal(0, listedNew.ExitCode);
        Assert.StartsWith("sqlite store " + file + " does not exist yet: all ", listedNew.StdOut, StringComparison.Ordinal);
        Assert.False(File.Exists(file));

        var applied = await SpProcess.RunAsync("backend", "migrate", "--store", store);
        Assert.Equal(0, applied.ExitCode);
        Assert.StartsWith("sqlite store migrated: applied 1, ", applied.StdOut, StringComparison.Ordinal);
        Assert.Equal("", applied.StdErr);

        var listedAgain = await SpProcess.RunAsync("backend", "migrate", "--store", store, "--dry-run");
        Assert.Equal(0, listedAgain.ExitCode);
        Assert.StartsWith("sqlite store is up to date: schema version ", listedAgain.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DryRun_OnAPartlyMigratedStore_ListsWhatIsPending()
    {
        var file = Path.Combine(_folder, "old.db");
        var applied = await SpProcess.RunAsync("backend", "migrate", "--store", "sqlite:" + file);
        Assert.Equal(0, applied.ExitCode);
        // Forget the newest migration, as a store last migrated by the previous release would be.
        Execute(file, "DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)");
        var newest = Scalar(file, "SELECT MAX(version) FROM schema_migrations") + 1;

        var listed = await SpProcess.RunAsync("backend", "migrate", "--store", "sqlite:" + file, "--dry-run");

        Assert.Equal(0, listed.ExitCode);
        Assert.Equal($"sqlite store at schema version {newest - 1}; 1 pending migration(s): {newest} (nothing applied: --dry-run)", listed.StdOut.Trim());
        Assert.Equal(newest - 1, Scalar(file, "SELECT MAX(version) FROM schema_migrations"));
    }

    [Fact]
    public async Task Migrate_OnASchemaNewerThanKnown_RefusesWithOneLine()
    {
        var file = Path.Combine(_folder, "newer.db");
        Execute(file, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL); INSERT INTO schema_migrations VALUES (999, 0)");

        var run = await SpProcess.RunAsync("backend", "migrate", "--store", "sqlite:" + file);

        Assert.Equal(4, run.ExitCode);
        Assert.StartsWith("error: store: the sqlite schema is at version 999, newer than the ", run.StdErr, StringComparison.Ordinal);
        Assert.Single(run.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_folder, recursive: true);
    }

    private static void Execute(string file, string sql)
    {
        using var connection = new SqliteConnection("Data Source=" + file + ";Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static long Scalar(string file, string sql)
    {
        using var connection = new SqliteConnection("Data Source=" + file + ";Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
