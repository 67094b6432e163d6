using System.CommandLine;
using System.Globalization;
using SpIstio.Backend.Auth;

namespace SpIstio.Cli.Commands;

/// <summary><c>sp keys create|list|revoke</c>: API keys of a tenant, managed directly on the store.</summary>
internal static class KeysCommands
{
    public static Command Create()
    {
        var keys = new Command("keys", "Create, list and revoke the API keys of a tenant (works on the store directly; a running backend notices within 30 s).");
        keys.Subcommands.Add(CreateCreate());
        keys.Subcommands.Add(CreateList());
        keys.Subcommands.Add(CreateRevoke());
        return keys;
    }

    private static Option<string> TenantOption() => new("--tenant")
    {
        HelpName = "name",
        Description = "The tenant (lower-case letters, digits, '-', '_').",
        DefaultValueFactory = _ => KeyAdministration.DefaultTenant,
    };

    private static Command CreateCreate()
    {
        var tenant = TenantOption();
        var scope = new Option<string>("--scope")
        {
            HelpName = "ingest|read|admin",
            Description = "What the key allows: ingest (send spans), read (query), admin (everything); several joined by ','.",
            Required = true,
        };
        var description = new Option<string?>("--description") { Description = "Free text shown by 'sp keys list'." };
        var store = StoreOption.Create();
        var createStore = StoreOption.CreateStoreFlag();
        var command = new Command("create", "Create a key and print it. It is shown only this once: the store keeps only its hash.");
        command.Options.Add(tenant);
        command.Options.Add(scope);
        command.Options.Add(description);
        command.Options.Add(store);
        command.Options.Add(createStore);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var error = parseResult.InvocationConfiguration.Error;
            var tenantName = parseResult.GetValue(tenant)!;
            var scopeText = parseResult.GetValue(scope);
            var problems = new List<string>();
            if (!ApiKeys.IsValidTenantName(tenantName))
            {
                problems.Add("tenant: '" + tenantName + "' is not 1–63 lower-case letters, digits, '-' or '_'");
            }

            if (!ApiKeys.TryParseScopes(scopeText, out var scopes))
            {
                problems.Add("scope: '" + scopeText + "' is not ingest, read or admin (several joined by ',')");
            }

            if (problems.Count > 0)
            {
                problems.ForEach(p => error.WriteLine("error: " + p));
                return ExitCodes.InvalidInput;
            }

            await using var s = await StoreOption.OpenForAdministrationAsync(parseResult.GetValue(store), parseResult.GetValue(createStore), parseResult.InvocationConfiguration.Error, cancellationToken).ConfigureAwait(false);
            if (s is null)
            {
                return ExitCodes.InvalidInput;
            }

            var created = await KeyAdministration.CreateKeyAsync(s, tenantName, scopes, parseResult.GetValue(description), TimeProvider.System, cancellationToken).ConfigureAwait(false);
            // The key alone on stdout, so scripts can capture it; the rest on stderr.
            parseResult.InvocationConfiguration.Output.WriteLine(created.Key);
            error.WriteLine("created key " + created.Record.KeyId + " for tenant '" + created.Tenant.Name + "' (" + ApiKeys.FormatScopes(scopes) + "); it is shown only this once");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateList()
    {
        var tenant = TenantOption();
        var store = StoreOption.Create();
        var createStore = StoreOption.CreateStoreFlag();
        var command = new Command("list", "List a tenant's keys (ids and scopes; never the keys).");
        command.Options.Add(tenant);
        command.Options.Add(store);
        command.Options.Add(createStore);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var tenantName = parseResult.GetValue(tenant)!;
            await using var s = await StoreOption.OpenForAdministrationAsync(parseResult.GetValue(store), parseResult.GetValue(createStore), parseResult.InvocationConfiguration.Error, cancellationToken).ConfigureAwait(false);
            if (s is null)
            {
                return ExitCodes.InvalidInput;
            }

            var t = await s.FindTenantAsync(tenantName, cancellationToken).ConfigureAwait(false);
            if (t is null)
            {
                parseResult.InvocationConfiguration.Error.WriteLine("error: tenant '" + tenantName + "' does not exist");
                return ExitCodes.InvalidInput;
            }

            var list = await s.ListApiKeysAsync(t.Id, cancellationToken).ConfigureAwait(false);
            output.WriteLine("KEY ID        SCOPES              CREATED               STATUS                DESCRIPTION");
            foreach (var key in list)
            {
                var status = key.RevokedAt is { } revoked ? "revoked " + revoked.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) : "active";
                output.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"{key.KeyId,-13} {ApiKeys.FormatScopes(key.Scopes),-19} {key.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm}Z     {status,-21} {key.Description}"));
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateRevoke()
    {
        var tenant = TenantOption();
        var store = StoreOption.Create();
        var createStore = StoreOption.CreateStoreFlag();
        var keyId = new Argument<string>("KEY-ID") { Description = "The key id (as 'sp keys list' shows it), or the whole key." };
        var command = new Command("revoke", "Revoke a key. A running backend refuses it within 30 s (its key cache).");
        command.Arguments.Add(keyId);
        command.Options.Add(tenant);
        command.Options.Add(store);
        command.Options.Add(createStore);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var error = parseResult.InvocationConfiguration.Error;
            var tenantName = parseResult.GetValue(tenant)!;
            var id = IdOf(parseResult.GetValue(keyId)!);
            await using var s = await StoreOption.OpenForAdministrationAsync(parseResult.GetValue(store), parseResult.GetValue(createStore), parseResult.InvocationConfiguration.Error, cancellationToken).ConfigureAwait(false);
            if (s is null)
            {
                return ExitCodes.InvalidInput;
            }

            var t = await s.FindTenantAsync(tenantName, cancellationToken).ConfigureAwait(false);
            if (t is null || !await s.RevokeApiKeyAsync(t.Id, id, cancellationToken).ConfigureAwait(false))
            {
                error.WriteLine("error: tenant '" + tenantName + "' has no key '" + id + "'");
                return ExitCodes.InvalidInput;
            }

            parseResult.InvocationConfiguration.Output.WriteLine("revoked key " + id + " of tenant '" + tenantName + "'");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The id part of a whole key (<c>sp_&lt;id&gt;_&lt;secret&gt;</c>), or the text itself.</summary>
    private static string IdOf(string text)
    {
        if (text.StartsWith(ApiKeys.Prefix, StringComparison.Ordinal))
        {
            var rest = text[ApiKeys.Prefix.Length..];
            var sep = rest.IndexOf('_', StringComparison.Ordinal);
            if (sep > 0)
            {
                return rest[..sep];
            }
        }

        return text;
    }
}
