namespace SpIstio.Backend.Storage;

/// <summary>Trace View sessions (<see cref="ITraceViewSessionStore"/>): plain SQL both engines share.</summary>
internal abstract partial class SqlSpanStore
{
    public Task AddTraceViewSessionAsync(TraceViewSessionRecord session, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(session);
        return WriteAsync(async connection =>
        {
            await using var command = Command(connection, null,
                "INSERT INTO ui_sessions (id_hash, tenant_id, key_hash, created_ns, last_seen_ns) VALUES (@i, @t, @k, @c, @s)");
            Add(command, "i", session.IdHash);
            Add(command, "t", session.TenantId);
            Add(command, "k", session.KeyHash);
            Add(command, "c", StoreTime.ToNanos(session.CreatedAt));
            Add(command, "s", StoreTime.ToNanos(session.LastSeenAt));
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }, cancellationToken);
    }

    public Task<TraceViewSessionRecord?> FindTraceViewSessionAsync(byte[] idHash, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT id_hash, tenant_id, key_hash, created_ns, last_seen_ns FROM ui_sessions WHERE id_hash = @i");
        Add(command, "i", idHash);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new TraceViewSessionRecord(
                (byte[])reader.GetValue(0), Int64(reader, 1), (byte[])reader.GetValue(2),
                StoreTime.FromNanos(Int64(reader, 3)), StoreTime.FromNanos(Int64(reader, 4)))
            : null;
    }, cancellationToken);

    public Task TouchTraceViewSessionAsync(byte[] idHash, DateTimeOffset seenAt, CancellationToken cancellationToken) => WriteAsync(async connection =>
    {
        // Never moves backwards: two replicas touching at once keep the later time.
        await using var command = Command(connection, null, "UPDATE ui_sessions SET last_seen_ns = @s WHERE id_hash = @i AND last_seen_ns < @s");
        Add(command, "i", idHash);
        Add(command, "s", StoreTime.ToNanos(seenAt));
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }, cancellationToken);

    public async Task<bool> DeleteTraceViewSessionAsync(byte[] idHash, CancellationToken cancellationToken) => await WriteAsync(async connection =>
    {
        await using var command = Command(connection, null, "DELETE FROM ui_sessions WHERE id_hash = @i");
        Add(command, "i", idHash);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }, cancellationToken).ConfigureAwait(false) > 0;

    public async Task<long> DeleteTraceViewSessionsIdleSinceAsync(DateTimeOffset cutoff, CancellationToken cancellationToken) => await WriteAsync(async connection =>
    {
        await using var command = Command(connection, null, "DELETE FROM ui_sessions WHERE last_seen_ns < @c");
        Add(command, "c", StoreTime.ToNanos(cutoff));
        return (long)await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }, cancellationToken).ConfigureAwait(false);

    public Task<IReadOnlyList<string>> ListDataProtectionKeysAsync(CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<string>>(async connection =>
    {
        await using var command = Command(connection, null, "SELECT xml FROM data_protection_keys ORDER BY created_ns, name");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var keys = new List<string>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            keys.Add(reader.GetString(0));
        }

        return keys;
    }, cancellationToken);

    public Task AddDataProtectionKeyAsync(string name, string xml, CancellationToken cancellationToken) => WriteAsync(async connection =>
    {
        await using var command = Command(connection, null, "INSERT INTO data_protection_keys (name, xml, created_ns) VALUES (@n, @x, @c) ON CONFLICT (name) DO NOTHING");
        Add(command, "n", name);
        Add(command, "x", xml);
        Add(command, "c", StoreTime.ToNanos(TimeProvider.GetUtcNow()));
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }, cancellationToken);
}
