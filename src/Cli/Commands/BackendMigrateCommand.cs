using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Storage;
using SpIstio.Core.Startup;

namespace SpIstio.Cli.Commands;

/// <summary>
/// <c>sp backend migrate [--store …] [--dry-run]</c>: applies (or lists) the schema migrations
/// this build knows without serving, so an upgrade can migrate once, from one place, before the
/// new version rolls out. <c>sp backend</c> still migrates on start; this makes the step explicit.
/// </summary>
internal static class BackendMigrateCommand
{
    public static Command Create()
    {
        var store = StoreOption.Create();
        var dryRun = new Option<bool>("--dry-run")
        {
            Description = "List the pending migrations and change nothing (a new SQLite file is not even created).",
        };
        var command = new Command("migrate", "Apply the pending schema migrations to the store and exit, without serving. Refuses a schema newer than this sp knows.");
        command.Options.Add(store);
        command.Options.Add(dryRun);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var spec = parseResult.GetValue(store)!;
            var dry = parseResult.GetValue(dryRun);
            if (dry && SqliteFileOf(spec) is { } file && !File.Exists(file))
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sqlite store {Path.GetFullPath(file)} does not exist yet: all {KnownMigrations()} migration(s) would be applied"));
                return ExitCodes.Success;
            }

            if (!dry)
            {
                StoreOption.EnsureSqliteFolder(spec);
            }

            ISpanStore opened;
            try
            {
                opened = SpanStoreFactory.Open(spec, NullLoggerFactory.Instance);
            }
            catch (Exception ex) when (StoreErrors.Describe(ex, spec) is { } described)
            {
                throw described;
            }

            await using var s = opened;
            try
            {
                var before = await ((IStoreSchema)s).GetSchemaStatusAsync(cancellationToken).ConfigureAwait(false);
                if (before.IsNewerThanKnown)
                {
                    throw new StoreSchemaTooNewException(before.Kind, before.Current, before.Known);
                }

                var pending = before.Pending;
                if (pending.Count == 0)
                {
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{before.Kind} store is up to date: schema version {before.Current}"));
                    return ExitCodes.Success;
                }

                var list = string.Join(", ", pending);
                if (dry)
                {
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{before.Kind} store at schema version {before.Current}; {pending.Count} pending migration(s): {list} (nothing applied: --dry-run)"));
                    return ExitCodes.Success;
                }

                await s.MigrateAsync(cancellationToken).ConfigureAwait(false);
                var after = await ((IStoreSchema)s).GetSchemaStatusAsync(cancellationToken).ConfigureAwait(false);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{after.Kind} store migrated: applied {list}; schema version {after.Current}"));
                return ExitCodes.Success;
            }
            catch (Exception ex) when (ex is not StartupException && StoreErrors.Describe(ex, spec) is { } described)
            {
                throw described;
            }
        });
        return command;
    }

    private static string? SqliteFileOf(string spec)
    {
        if (!spec.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var file = spec["sqlite:".Length..];
        var question = file.IndexOf('?', StringComparison.Ordinal);
        return question >= 0 ? file[..question] : file;
    }

    // A new SQLite store's status, without creating its file: the count this build knows.
    private static int KnownMigrations() => StoreSchemaInfo.KnownSqliteMigrations;
}
