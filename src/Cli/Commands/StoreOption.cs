using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Storage;

namespace SpIstio.Cli.Commands;

/// <summary>
/// The <c>--store</c> option shared by <c>sp backend</c>, <c>sp keys</c> and <c>sp tenants</c>,
/// resolved the same way by all of them: <c>--store</c>, then <c>SP_STORE</c>, then
/// <see cref="DefaultSpec"/> (relative to the working directory; the image sets
/// <c>SP_STORE=sqlite:/data/sp.db</c>, so <c>kubectl exec … sp keys …</c> finds the backend's store).
/// </summary>
internal static class StoreOption
{
    /// <summary>The embedded default store, relative to the working directory.</summary>
    public const string DefaultSpec = "sqlite:./data/sp.db";

    /// <summary>The environment variable read when <c>--store</c> is not given.</summary>
    public const string EnvironmentVariable = "SP_STORE";

    public static Option<string?> Create() => new("--store")
    {
        HelpName = "sqlite:<file>|postgres:<connection string>",
        Description = "The store: sqlite:<file> (embedded) or \"postgres:Host=…;Database=…;Username=…\". Default: $SP_STORE, else " + DefaultSpec + ".",
    };

    /// <summary>The <c>--store-create</c> flag of the administration commands.</summary>
    public static Option<bool> CreateStoreFlag() => new("--create-store")
    {
        Description = "Create the SQLite store when it does not exist (without it a missing store is an error, so a key never lands in a store no backend reads).",
    };

    /// <summary>The store to use and where that came from (<c>--store</c>, <c>SP_STORE</c> or <c>default</c>).</summary>
    public static (string Spec, string Source) Resolve(string? option)
    {
        if (!string.IsNullOrWhiteSpace(option))
        {
            return (option.Trim(), "--store");
        }

        var environment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(environment) ? (DefaultSpec, "default") : (environment.Trim(), EnvironmentVariable);
    }

    /// <summary>The spec as it may be printed: a PostgreSQL password is hidden.</summary>
    public static string Display(string spec) =>
        System.Text.RegularExpressions.Regex.Replace(spec, "(?i)(password|pwd)\\s*=[^;]*", "$1=***");

    /// <summary>The file of a <c>sqlite:</c> spec (options after '?' removed), or null for another store.</summary>
    public static string? SqliteFile(string spec)
    {
        if (!spec.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var file = spec["sqlite:".Length..];
        var question = file.IndexOf('?', StringComparison.Ordinal);
        return question >= 0 ? file[..question] : file;
    }

    /// <summary>
    /// Opens the store of an administration command: resolves it, prints which store is used on
    /// <paramref name="error"/> (stderr), and refuses a SQLite file that does not exist unless
    /// <paramref name="create"/>. Null (after printing why) when refused.
    /// </summary>
    public static async Task<ISpanStore?> OpenForAdministrationAsync(string? option, bool create, TextWriter error, CancellationToken cancellationToken)
    {
        var (spec, source) = Resolve(option);
        var file = SqliteFile(spec);
        var shown = file is null ? Display(spec) : "sqlite:" + Path.GetFullPath(file);
        if (file is not null && !File.Exists(file) && !create)
        {
            error.WriteLine("error: store " + shown + " (from " + source + ") does not exist. Point at the backend's store with --store or "
                + EnvironmentVariable + ", or pass --create-store to create a new one.");
            return null;
        }

        // Said once the store has opened, so a store that fails to open leaves the error as the first line.
        var store = await OpenAsync(spec, cancellationToken).ConfigureAwait(false);
        error.WriteLine("store: " + shown + " (from " + source + ")");
        return store;
    }

    /// <summary>Creates the folder of a SQLite file, so a first run on a fresh machine needs no preparation.</summary>
    public static void EnsureSqliteFolder(string spec)
    {
        // The factory takes options after '?' (sqlite:./data/sp.db?synchronous=full).
        var file = SqliteFile(spec);
        if (file is null)
        {
            return;
        }

        var folder = Path.GetDirectoryName(Path.GetFullPath(file));
        if (!string.IsNullOrEmpty(folder))
        {
            try
            {
                Directory.CreateDirectory(folder);
            }
            catch (Exception ex) when (StoreErrors.Describe(ex, spec) is { } described)
            {
                throw described;
            }
        }
    }

    /// <summary>Opens and migrates the store for a one-off command.</summary>
    public static async Task<ISpanStore> OpenAsync(string spec, CancellationToken cancellationToken)
    {
        EnsureSqliteFolder(spec);
        ISpanStore store;
        try
        {
            store = SpanStoreFactory.Open(spec, NullLoggerFactory.Instance);
        }
        catch (Exception ex) when (StoreErrors.Describe(ex, spec) is { } described)
        {
            throw described;
        }

        try
        {
            await store.MigrateAsync(cancellationToken).ConfigureAwait(false);
            return store;
        }
        catch (Exception ex)
        {
            await store.DisposeAsync().ConfigureAwait(false);
            if (StoreErrors.Describe(ex, spec) is { } described)
            {
                throw described;
            }

            throw;
        }
    }
}
