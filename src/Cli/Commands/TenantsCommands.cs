using System.CommandLine;
using System.Globalization;
using SpIstio.Backend.Auth;

namespace SpIstio.Cli.Commands;

/// <summary>
/// <c>sp tenants list|create|set-retention|purge</c>: the per-tenant settings kept in the store, managed
/// directly on it (the store is found as <c>sp backend</c> finds it; see <see cref="StoreOption"/>).
/// </summary>
internal static class TenantsCommands
{
    public static Command Create()
    {
        var tenants = new Command("tenants", "List and create tenants, set their retention, purge their data (works on the store directly).");
        tenants.Subcommands.Add(CreateList());
        tenants.Subcommands.Add(CreateCreate());
        tenants.Subcommands.Add(CreateSetRetention());
        tenants.Subcommands.Add(CreatePurge());
        return tenants;
    }

    private static Command CreatePurge()
    {
        var name = new Argument<string>("NAME") { Description = "The tenant whose captured data is deleted." };
        var yes = new Option<bool>("--yes") { Description = "Delete. Without it the command only prints what would be deleted, and exits with 1." };
        var removeTenant = new Option<bool>("--remove-tenant")
        {
            Description = "Also delete the tenant and its API keys (default: keep them, so its agents can go on sending).",
        };
        var store = StoreOption.Create();
        var command = new Command("purge", "Delete everything a tenant captured: spans with their bodies, search entries, session roll-ups and mocks (routes and endpoint statistics are derived from the spans and go with them).");
        command.Arguments.Add(name);
        command.Options.Add(yes);
        command.Options.Add(removeTenant);
        command.Options.Add(store);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var tenantName = parseResult.GetValue(name)!;
            bool remove = parseResult.GetValue(removeTenant);
            await using var s = await StoreOption.OpenForAdministrationAsync(parseResult.GetValue(store), create: false, error, cancellationToken).ConfigureAwait(false);
            if (s is null)
            {
                return ExitCodes.InvalidInput;
            }

            var tenant = await s.FindTenantAsync(tenantName, cancellationToken).ConfigureAwait(false);
            if (tenant is null)
            {
                error.WriteLine("error: tenant '" + tenantName + "' does not exist (sp tenants list shows the tenants)");
                return ExitCodes.InvalidInput;
            }

            var keep = remove ? "the tenant and its keys are deleted too" : "the tenant and its keys are kept (--remove-tenant deletes them too)";
            if (!parseResult.GetValue(yes))
            {
                var counts = await s.CountTenantDataAsync(tenant.Id, cancellationToken).ConfigureAwait(false);
                output.WriteLine("would delete of tenant '" + tenant.Name + "': " + FormatRows(counts.Where(c => remove || !c.IdentifiesTenant)) + "; " + keep);
                error.WriteLine("error: nothing deleted: pass --yes to delete");
                return ExitCodes.UsageError;
            }

            // The store deletes in bounded transactions, so a running backend keeps ingesting beside a long purge.
            var deleted = await s.PurgeTenantAsync(tenant.Id, remove, null, cancellationToken).ConfigureAwait(false);
            output.WriteLine("deleted of tenant '" + tenant.Name + "': " + FormatRows(deleted.Where(d => remove || !d.IdentifiesTenant)) + "; " + (remove ? "the tenant and its keys are deleted" : "the tenant and its keys are kept"));
            return ExitCodes.Success;
        });
        return command;
    }

    private static string FormatRows(IEnumerable<SpIstio.Backend.Storage.TenantTableRows> rows) =>
        string.Join(", ", rows.Select(r => r.Rows.ToString(CultureInfo.InvariantCulture) + " " + r.Table.Replace('_', ' ')));

    private static Command CreateList()
    {
        var store = StoreOption.Create();
        var createStore = StoreOption.CreateStoreFlag();
        var command = new Command("list", "List the tenants with their retention ('default' means the backend's --retention).");
        command.Options.Add(store);
        command.Options.Add(createStore);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            await using var s = await StoreOption.OpenForAdministrationAsync(parseResult.GetValue(store), parseResult.GetValue(createStore), parseResult.InvocationConfiguration.Error, cancellationToken).ConfigureAwait(false);
            if (s is null)
            {
                return ExitCodes.InvalidInput;
            }

            output.WriteLine("NAME                             RETENTION   CREATED");
            foreach (var tenant in await s.ListTenantsAsync(cancellationToken).ConfigureAwait(false))
            {
                output.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"{tenant.Name,-32} {FormatRetention(tenant.Retention),-11} {tenant.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm}Z"));
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateCreate()
    {
        var name = new Argument<string>("NAME") { Description = "The tenant (lower-case letters, digits, '-', '_')." };
        var retention = new Option<string?>("--retention") { HelpName = "duration", Description = "How long its spans are kept (7d, 12h, 90m); default: the backend's --retention." };
        var store = StoreOption.Create();
        var createStore = StoreOption.CreateStoreFlag();
        var command = new Command("create", "Create a tenant (nothing happens when it exists, except a given --retention is set).");
        command.Arguments.Add(name);
        command.Options.Add(retention);
        command.Options.Add(store);
        command.Options.Add(createStore);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var error = parseResult.InvocationConfiguration.Error;
            var tenantName = parseResult.GetValue(name)!;
            var retentionText = parseResult.GetValue(retention);
            var problems = new List<string>();
            if (!ApiKeys.IsValidTenantName(tenantName))
            {
                problems.Add("tenant: '" + tenantName + "' is not 1–63 lower-case letters, digits, '-' or '_'");
            }

            TimeSpan? retentionValue = null;
            if (retentionText is not null)
            {
                if (BackendCommands.TryParseDuration(retentionText, out var parsed))
                {
                    retentionValue = parsed;
                }
                else
                {
                    problems.Add("retention: '" + retentionText + "' is not a duration such as 7d, 12h or 90m");
                }
            }

            if (problems.Count > 0)
            {
                problems.ForEach(p => error.WriteLine("error: " + p));
                return ExitCodes.InvalidInput;
            }

            await using var s = await StoreOption.OpenForAdministrationAsync(parseResult.GetValue(store), parseResult.GetValue(createStore), error, cancellationToken).ConfigureAwait(false);
            if (s is null)
            {
                return ExitCodes.InvalidInput;
            }

            var tenant = await s.EnsureTenantAsync(tenantName, cancellationToken).ConfigureAwait(false);
            if (retentionValue is not null)
            {
                await s.SetRetentionAsync(tenant.Id, retentionValue, cancellationToken).ConfigureAwait(false);
            }

            parseResult.InvocationConfiguration.Output.WriteLine("tenant '" + tenant.Name + "' (retention " + FormatRetention(retentionValue ?? tenant.Retention) + ")");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateSetRetention()
    {
        var name = new Argument<string>("NAME") { Description = "The tenant." };
        var duration = new Argument<string>("DURATION") { Description = "How long its spans are kept (7d, 12h, 90m), or 'default' for the backend's --retention." };
        var store = StoreOption.Create();
        var createStore = StoreOption.CreateStoreFlag();
        var command = new Command("set-retention", "Set how long a tenant's spans are kept; the backend's retention job applies it on its next run.");
        command.Arguments.Add(name);
        command.Arguments.Add(duration);
        command.Options.Add(store);
        command.Options.Add(createStore);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var error = parseResult.InvocationConfiguration.Error;
            var tenantName = parseResult.GetValue(name)!;
            var text = parseResult.GetValue(duration)!;
            TimeSpan? retention = null;
            if (!string.Equals(text, "default", StringComparison.OrdinalIgnoreCase))
            {
                if (!BackendCommands.TryParseDuration(text, out var parsed))
                {
                    error.WriteLine("error: retention: '" + text + "' is not a duration such as 7d, 12h or 90m, nor 'default'");
                    return ExitCodes.InvalidInput;
                }

                retention = parsed;
            }

            await using var s = await StoreOption.OpenForAdministrationAsync(parseResult.GetValue(store), parseResult.GetValue(createStore), error, cancellationToken).ConfigureAwait(false);
            if (s is null)
            {
                return ExitCodes.InvalidInput;
            }

            var tenant = await s.FindTenantAsync(tenantName, cancellationToken).ConfigureAwait(false);
            if (tenant is null)
            {
                error.WriteLine("error: tenant '" + tenantName + "' does not exist (sp tenants create " + tenantName + ")");
                return ExitCodes.InvalidInput;
            }

            await s.SetRetentionAsync(tenant.Id, retention, cancellationToken).ConfigureAwait(false);
            parseResult.InvocationConfiguration.Output.WriteLine("tenant '" + tenant.Name + "' retention " + FormatRetention(retention));
            return ExitCodes.Success;
        });
        return command;
    }

    private static string FormatRetention(TimeSpan? retention) => retention switch
    {
        null => "default",
        { } r when r.TotalDays >= 1 && r.Ticks % TimeSpan.TicksPerDay == 0 => ((long)r.TotalDays).ToString(CultureInfo.InvariantCulture) + "d",
        { } r when r.Ticks % TimeSpan.TicksPerHour == 0 => ((long)r.TotalHours).ToString(CultureInfo.InvariantCulture) + "h",
        { } r => ((long)r.TotalMinutes).ToString(CultureInfo.InvariantCulture) + "m",
    };
}
