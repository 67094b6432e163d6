using Microsoft.Extensions.Logging;
using SpIstio.Backend.Storage.Postgres;
using SpIstio.Backend.Storage.Sqlite;

namespace SpIstio.Backend.Storage;

/// <summary>Opens a store from its <c>--store</c> spec.</summary>
public static class SpanStoreFactory
{
    /// <summary>The spec used when none is given: the embedded SQLite file.</summary>
    public const string DefaultSpec = "sqlite:./data/sp.db";

    /// <summary>
    /// Opens (without migrating) the store named by <paramref name="spec"/>:
    /// <c>sqlite:./data/sp.db</c> (add <c>?synchronous=full</c> to fsync every commit) or
    /// <c>postgres:Host=…;Database=…;Username=…</c> (an Npgsql connection string).
    /// Throws <see cref="ArgumentException"/> naming the spec when it is not one of these.
    /// </summary>
    public static ISpanStore Open(string spec, ILoggerFactory loggerFactory, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if (string.IsNullOrWhiteSpace(spec))
        {
            throw new ArgumentException("The store spec is empty: use sqlite:<file> or postgres:<connection string>.", nameof(spec));
        }

        var time = timeProvider ?? TimeProvider.System;
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        string scheme = colon < 0 ? string.Empty : spec[..colon].Trim();
        string rest = colon < 0 ? string.Empty : spec[(colon + 1)..].Trim();

        if (scheme.Equals("sqlite", StringComparison.OrdinalIgnoreCase))
        {
            var options = new SqliteStoreOptions();
            int question = rest.IndexOf('?', StringComparison.Ordinal);
            if (question >= 0)
            {
                string parameter = rest[(question + 1)..];
                rest = rest[..question];
                options = parameter.ToLowerInvariant() switch
                {
                    "synchronous=full" => new SqliteStoreOptions(FullSync: true),
                    "synchronous=normal" => new SqliteStoreOptions(FullSync: false),
                    _ => throw new ArgumentException($"Invalid store spec '{Describe(spec)}': the only SQLite option is ?synchronous=normal|full.", nameof(spec)),
                };
            }

            if (rest.Length == 0 || rest.Equals(":memory:", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Invalid store spec '{Describe(spec)}': name a database file, e.g. {DefaultSpec}.", nameof(spec));
            }

            return new SqliteSpanStore(rest, options, loggerFactory.CreateLogger("SpIstio.Backend.Storage.Sqlite"), time);
        }

        if (scheme.Equals("postgres", StringComparison.OrdinalIgnoreCase) || scheme.Equals("postgresql", StringComparison.OrdinalIgnoreCase))
        {
            if (rest.Length == 0)
            {
                throw new ArgumentException($"Invalid store spec '{Describe(spec)}': give an Npgsql connection string after postgres:, e.g. postgres:Host=localhost;Database=sp;Username=sp.", nameof(spec));
            }

            // Checked key by key first: Npgsql's own error for a misspelt keyword is a nest of ArgumentExceptions.
            if (StoreErrors.CheckPostgresConnectionString(rest) is { } problem)
            {
                throw new ArgumentException($"Invalid store spec '{Describe(spec)}': {problem}", nameof(spec));
            }

            return new PostgresSpanStore(rest, loggerFactory.CreateLogger("SpIstio.Backend.Storage.Postgres"), time);
        }

        throw new ArgumentException(
            $"Invalid store spec '{Describe(spec)}': use sqlite:<file> (e.g. {DefaultSpec}) or postgres:<connection string> (e.g. postgres:Host=localhost;Database=sp;Username=sp).",
            nameof(spec));
    }

    // Error messages name the spec, but never a password inside a connection string.
    private static string Describe(string spec) =>
        System.Text.RegularExpressions.Regex.Replace(spec, "(?i)(password|pwd)\\s*=[^;]*", "$1=***", System.Text.RegularExpressions.RegexOptions.None, TimeSpan.FromSeconds(1));

    /// <summary>Opens the store and applies pending migrations.</summary>
    public static async Task<ISpanStore> OpenAsync(string spec, ILoggerFactory loggerFactory, TimeProvider? timeProvider, CancellationToken cancellationToken)
    {
        var store = Open(spec, loggerFactory, timeProvider);
        try
        {
            await store.MigrateAsync(cancellationToken).ConfigureAwait(false);
            return store;
        }
        catch
        {
            await store.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
