using System.Globalization;

namespace SpIstio.Backend.Storage;

/// <summary>The read-only side of the migration runner: which versions are applied (for <c>sp backend migrate --dry-run</c>).</summary>
internal abstract partial class SqlSpanStore : IStoreSchema
{
    public Task<SchemaStatus> GetSchemaStatusAsync(CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        // A new store has no schema_migrations table yet; asking the catalogue avoids a failed statement.
        var exists = Kind == "sqlite"
            ? "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            : "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'schema_migrations' AND table_schema = current_schema()";
        await using (var check = Command(connection, null, exists))
        {
            if (Convert.ToInt64(await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) == 0)
            {
                return new SchemaStatus(Kind, Migrations.Count, []);
            }
        }

        var applied = new List<int>();
        await using var command = Command(connection, null, "SELECT version FROM schema_migrations ORDER BY version");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            applied.Add(Convert.ToInt32(reader.GetValue(0), CultureInfo.InvariantCulture));
        }

        return new SchemaStatus(Kind, Migrations.Count, applied);
    }, cancellationToken);
}
