using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Storage;

namespace SpIstio.Cli.Commands;

/// <summary>The <c>--store</c> option shared by <c>sp backend</c> and <c>sp keys</c>.</summary>
internal static class StoreOption
{
    /// <summary>The embedded default store, relative to the working directory.</summary>
    public const string DefaultSpec = "sqlite:./data/sp.db";

    public static Option<string> Create() => new("--store")
    {
        HelpName = "sqlite:<file>|postgres:<connection string>",
        Description = "The store: sqlite:<file> (embedded, the default) or \"postgres:Host=…;Database=…;Username=…\".",
        DefaultValueFactory = _ => DefaultSpec,
    };

    /// <summary>Creates the folder of a SQLite file, so a first run on a fresh machine needs no preparation.</summary>
    public static void EnsureSqliteFolder(string spec)
    {
        if (!spec.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        var file = spec["sqlite:".Length..];
        // The factory takes options after '?' (sqlite:./data/sp.db?synchronous=full).
        var question = file.IndexOf('?', StringComparison.Ordinal);
        if (question >= 0)
        {
            file = file[..question];
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
