namespace SpIstio.Backend.Storage;

/// <summary>
/// Deleting personal data on request: one session's spans (<c>DELETE /api/sessions/{id}</c>) and
/// everything a tenant captured (<c>sp tenants purge</c>). Both delete in bounded transactions
/// (<see cref="DeleteChunk"/> rows each), so a large tenant never holds one giant transaction
/// while ingest waits behind it.
/// </summary>
internal abstract partial class SqlSpanStore
{
    /// <summary>
    /// The tables besides <c>spans</c> that hold a tenant's captured data, with the column a batch
    /// deletes by. Every table with a <c>tenant_id</c> column is here or in
    /// <see cref="TenantIdentityTables"/>; a test compares both lists with the schema, so a new
    /// table cannot be forgotten by a purge.
    /// </summary>
    internal static readonly IReadOnlyList<(string Table, string Key)> TenantDataTables =
    [
        ("sessions", "session_id"),
        ("mocks", "id"),
        ("replay_jobs", "id"),
    ];

    /// <summary>What identifies the tenant rather than what it captured: kept unless the tenant is removed.</summary>
    internal static readonly IReadOnlyList<(string Table, string Key)> TenantIdentityTables =
    [
        ("api_keys", "key_hash"),
        ("ui_sessions", "id_hash"),

        // A running backend may still compress the tenant's new spans with a dictionary it holds
        // in memory: deleting it while the tenant lives would leave those spans unreadable elsewhere.
        ("codec_dictionaries", "id"),
    ];

    /// <summary>
    /// This engine's tables derived from a tenant's spans (an index kept in a table of its own, with
    /// the column a batch deletes by): deleted with the tenant's spans, not counted as captured data.
    /// </summary>
    internal virtual IReadOnlyList<(string Table, string Key)> TenantIndexTables => [];

    public async Task<long> DeleteSessionAsync(long tenantId, string sessionId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        long total = 0;
        while (true)
        {
            long deleted = await DeleteChunkAsync("tenant_id = @t AND session_id = @s", c => { Add(c, "t", tenantId); Add(c, "s", sessionId); }, long.MaxValue, cancellationToken).ConfigureAwait(false);
            total += deleted;
            if (deleted < DeleteChunk)
            {
                break;
            }
        }

        // The chunks drop the roll-up row with the session's last span; a row left without spans
        // (written by an interrupted delete) goes too, and counts as found.
        long rows = await WriteAsync(async connection =>
        {
            await using var command = Command(connection, null, "DELETE FROM sessions WHERE tenant_id = @t AND session_id = @s");
            Add(command, "t", tenantId);
            Add(command, "s", sessionId);
            return (long)await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        long found = total > 0 ? total : rows;
        if (found > 0)
        {
            StoreLog.SessionDeleted(Logger, total, tenantId);
        }

        return found;
    }

    public Task<IReadOnlyList<TenantTableRows>> CountTenantDataAsync(long tenantId, CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<TenantTableRows>>(async connection =>
    {
        var counts = new List<TenantTableRows>();
        foreach (var table in TenantDataTables.Concat(TenantIdentityTables).Select(t => t.Table).Prepend("spans"))
        {
            await using var command = Command(connection, null, "SELECT COUNT(*) FROM " + table + " WHERE tenant_id = @t");
            Add(command, "t", tenantId);
            counts.Add(new TenantTableRows(table, Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture)));
        }

        return counts;
    }, cancellationToken);

    public async Task<IReadOnlyList<TenantTableRows>> PurgeTenantAsync(long tenantId, bool removeTenant, IProgress<TenantTableRows>? progress, CancellationToken cancellationToken)
    {
        var result = new List<TenantTableRows>();
        // The roll-ups first, so the span chunks find no session rows left to repair one by one.
        foreach (var (table, key) in TenantDataTables)
        {
            result.Add(new TenantTableRows(table, await DeleteInBatchesAsync(table, key, tenantId, progress, cancellationToken).ConfigureAwait(false)));
        }

        long spans = 0;
        while (true)
        {
            long deleted = await DeleteChunkAsync("tenant_id = @t", c => Add(c, "t", tenantId), long.MaxValue, cancellationToken).ConfigureAwait(false);
            spans += deleted;
            progress?.Report(new TenantTableRows("spans", spans));
            if (deleted < DeleteChunk)
            {
                break;
            }
        }

        foreach (var (table, key) in TenantIndexTables)
        {
            await DeleteInBatchesAsync(table, key, tenantId, progress: null, cancellationToken).ConfigureAwait(false);
        }

        result.Insert(0, new TenantTableRows("spans", spans));
        if (removeTenant)
        {
            foreach (var (table, key) in TenantIdentityTables)
            {
                result.Add(new TenantTableRows(table, await DeleteInBatchesAsync(table, key, tenantId, progress, cancellationToken).ConfigureAwait(false)));
            }

            long tenants = await WriteAsync(async connection =>
            {
                await using var command = Command(connection, null, "DELETE FROM tenants WHERE id = @t");
                Add(command, "t", tenantId);
                return (long)await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            result.Add(new TenantTableRows("tenants", tenants));
        }

        StoreLog.TenantPurged(Logger, tenantId, removeTenant, string.Join(", ", result.Select(r => r.Table + " " + r.Rows.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        return result;
    }

    /// <summary>Deletes a tenant's rows of <paramref name="table"/>, <see cref="DeleteChunk"/> per transaction; returns how many.</summary>
    private async Task<long> DeleteInBatchesAsync(string table, string key, long tenantId, IProgress<TenantTableRows>? progress, CancellationToken cancellationToken)
    {
        long rows = 0;
        while (true)
        {
            long deleted = await WriteAsync(async connection =>
            {
                await using var command = Command(connection, null,
                    "DELETE FROM " + table + " WHERE tenant_id = @t AND " + key + " IN (SELECT " + key + " FROM " + table + " WHERE tenant_id = @t LIMIT @n)");
                Add(command, "t", tenantId);
                Add(command, "n", DeleteChunk);
                return (long)await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            rows += deleted;
            progress?.Report(new TenantTableRows(table, rows));
            if (deleted < DeleteChunk)
            {
                return rows;
            }
        }
    }
}
