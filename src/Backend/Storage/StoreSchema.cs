using System.Globalization;

namespace SpIstio.Backend.Storage;

/// <summary>Where a store's schema stands against the migrations this build knows.</summary>
/// <param name="Kind">sqlite or postgres.</param>
/// <param name="Known">How many migrations this build knows (the newest version it can serve).</param>
/// <param name="Applied">The versions recorded in the store's <c>schema_migrations</c>, ascending; empty for a new store.</param>
public sealed record SchemaStatus(string Kind, int Known, IReadOnlyList<int> Applied)
{
    /// <summary>The newest version applied, 0 for a new store.</summary>
    public int Current => Applied.Count == 0 ? 0 : Applied[^1];

    /// <summary>Versions this build would apply, ascending.</summary>
    public IReadOnlyList<int> Pending => Enumerable.Range(1, Known).Where(v => !Applied.Contains(v)).ToList();

    /// <summary>True when the store was migrated by a newer build: this one must not serve it.</summary>
    public bool IsNewerThanKnown => Current > Known;
}

/// <summary>Reads the schema state without changing it (<c>sp backend migrate --dry-run</c>).</summary>
public interface IStoreSchema
{
    /// <summary>The applied versions and what this build knows.</summary>
    Task<SchemaStatus> GetSchemaStatusAsync(CancellationToken cancellationToken);
}

/// <summary>
/// The store's schema is newer than this build knows: a newer backend migrated it. Serving it
/// could write rows the newer schema does not expect, so the backend refuses to start.
/// </summary>
public sealed class StoreSchemaTooNewException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StoreSchemaTooNewException(string kind, int current, int known)
        : base(string.Create(
            CultureInfo.InvariantCulture,
            $"the {kind} schema is at version {current}, newer than the {known} this sp knows: a newer sp migrated it. Run that version (or newer), or restore the backup taken before the upgrade (see docs/production.md, Upgrades)"))
    {
        Current = current;
        Known = known;
    }

    /// <summary>Creates the exception.</summary>
    public StoreSchemaTooNewException()
        : this("store", 0, 0)
    {
    }

    /// <summary>Creates the exception.</summary>
    public StoreSchemaTooNewException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public StoreSchemaTooNewException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The store's schema version.</summary>
    public int Current { get; }

    /// <summary>The newest version this build knows.</summary>
    public int Known { get; }
}

/// <summary>How many migrations this build knows, per engine (the newest schema version it can serve).</summary>
public static class StoreSchemaInfo
{
    /// <summary>SQLite migrations known.</summary>
    public static int KnownSqliteMigrations => Sqlite.SqliteMigrations.All.Count;

    /// <summary>PostgreSQL migrations known.</summary>
    public static int KnownPostgresMigrations => Postgres.PostgresMigrations.All.Count;
}
