using System.Data.Common;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;

namespace SpIstio.Backend.Storage;

/// <summary>
/// What the SQLite and PostgreSQL stores share: the schema shape (same tables, columns and
/// indexes; see docs/ARCHITECTURE.md "Storage and indexes"), tenants and keys, every query,
/// retention deletes and the migration runner. Subclasses own connections, bulk insert, text
/// search and size accounting — the parts where the engines differ.
/// </summary>
internal abstract partial class SqlSpanStore : ISpanStore
{
    private string? _summaryColumns;

    private const int DeleteChunk = 5000;

    private static readonly string[] s_noServices = [];

    protected SqlSpanStore(ILogger logger, TimeProvider timeProvider)
    {
        Logger = logger;
        TimeProvider = timeProvider;
    }

    /// <summary>Columns of a span summary, in the order <see cref="ReadSummary"/> reads them.</summary>
    protected string SummaryColumns => _summaryColumns ??=
        IdSql("trace_id") + ", " + IdSql("span_id") + ", " + IdSql("parent_span_id") +
        ", " + NameSql("") + ", kind, service, start_ns, end_ns, is_error, is_exchange, session_id, direction, method, authority, path, status_code";

    protected ILogger Logger { get; }

    protected TimeProvider TimeProvider { get; }

    public abstract string Kind { get; }

    /// <summary>Numbered schema scripts; a script's number is its index + 1 and never changes once released.</summary>
    protected abstract IReadOnlyList<string> Migrations { get; }

    /// <summary>Runs <paramref name="work"/> on a connection that may write (SQLite: the single writer).</summary>
    protected abstract Task<T> WriteAsync<T>(Func<DbConnection, Task<T>> work, CancellationToken cancellationToken);

    /// <summary>Runs <paramref name="work"/> on a read connection.</summary>
    protected abstract Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> work, CancellationToken cancellationToken);

    /// <summary>A condition on <c>s.session_id</c> limiting sessions to those with a span matching these terms (bound by <see cref="AddTextQuery"/>).</summary>
    protected abstract string SessionTextCondition(string[] terms);

    /// <summary>Adds the parameters the text conditions read for these (normalised, non-empty) terms of tenant <paramref name="tenantId"/>: <c>@q</c>, and whatever else a store's conditions need.</summary>
    protected abstract void AddTextQuery(DbCommand command, long tenantId, string[] terms);

    /// <summary>
    /// Of these sessions, which the session text condition matched, the ones none of whose spans
    /// holds every term once each "maybe" is settled (<see cref="FalseTextMatchesAsync"/>): a
    /// session's exact matches (spans found by an exact condition) are read first, then its
    /// "maybe" ones, newest first, until one holds.
    /// </summary>
    protected virtual async Task<IReadOnlySet<string>> SessionsWithoutTextMatchAsync(
        DbConnection connection, long tenantId, string[] terms, List<string> sessionIds, CancellationToken cancellationToken)
    {
        var without = new HashSet<string>(StringComparer.Ordinal);
        if (!TextMatchesMayBeFalse(terms))
        {
            return without;
        }

        // Each session's matching spans, exact ones first (MaybeTextMatchSql false).
        var candidates = new Dictionary<string, Queue<(long Id, bool Maybe)>>(StringComparer.Ordinal);
        await using (var command = connection.CreateCommand())
        {
            command.CommandText =
                "SELECT x.session_id, x.id, " + MaybeTextMatchSql("x") + " AS maybe FROM spans x WHERE x.tenant_id = @t AND x.session_id IN (" +
                string.Join(", ", sessionIds.Select((_, i) => "@s" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))) + ") AND " +
                SpanTextRowCondition(terms) + " ORDER BY x.session_id, maybe, x.id DESC";
            Add(command, "t", tenantId);
            for (int i = 0; i < sessionIds.Count; i++)
            {
                Add(command, "s" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), sessionIds[i]);
            }

            AddTextQuery(command, tenantId, terms);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                string session = reader.GetString(0);
                if (!candidates.TryGetValue(session, out var queue))
                {
                    candidates[session] = queue = new Queue<(long, bool)>();
                }

                queue.Enqueue((reader.GetInt64(1), reader.GetBoolean(2)));
            }
        }

        var open = new List<string>();
        foreach (string session in sessionIds)
        {
            if (!candidates.TryGetValue(session, out var queue))
            {
                // A span that matched is gone since (retention): nothing left holds the words.
                without.Add(session);
            }
            else if (queue.Peek().Maybe)
            {
                open.Add(session);
            }
        }

        // One "maybe" span a session a round; a false one (rare: a 35-bit prefix's collision) moves on to the next.
        while (open.Count > 0)
        {
            var round = open.ConvertAll(session => candidates[session].Peek().Id);
            var falseMatches = await FalseTextMatchesAsync(connection, tenantId, terms, round, cancellationToken).ConfigureAwait(false);
            var next = new List<string>();
            foreach (string session in open)
            {
                var queue = candidates[session];
                if (!falseMatches.Contains(queue.Dequeue().Id))
                {
                    continue;
                }

                if (queue.Count == 0)
                {
                    without.Add(session);
                }
                else
                {
                    next.Add(session);
                }
            }

            open = next;
        }

        return without;
    }

    /// <summary>
    /// The part of <see cref="SpanTextCondition"/> that decides on a span's own row, without what
    /// only narrows the candidates (an index or a filter of other rows), for a few spans found otherwise.
    /// </summary>
    protected virtual string SpanTextRowCondition(string[] terms) => SpanTextCondition(terms);

    /// <summary>Whether the text condition for these terms may match a span whose text does not hold them all (<see cref="FalseTextMatchesAsync"/> settles those); false by default.</summary>
    protected virtual bool TextMatchesMayBeFalse(string[] terms) => false;

    /// <summary>A boolean SQL expression on spans aliased <paramref name="alias"/>: true when a text match of the span is only a "maybe".</summary>
    protected virtual string MaybeTextMatchSql(string alias) => "FALSE";

    /// <summary>Runs before migrations inside their transaction (PostgreSQL takes an advisory lock there).</summary>
    /// <summary>
    /// Runs in a retention or purge chunk's transaction once its spans (row ids up to
    /// <paramref name="maxId"/>) are deleted, so that what the engine keeps about them elsewhere goes with them.
    /// </summary>
    protected virtual Task AfterSpansDeletedAsync(DbConnection connection, DbTransaction transaction, long maxId, CancellationToken cancellationToken) => Task.CompletedTask;

    protected virtual Task BeforeMigrationsAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs in the migrations' transaction once the schema is current: checks what the store relies on and the schema cannot enforce.</summary>
    protected virtual Task AfterMigrationsAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;

    public abstract Task<int> InsertSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken);

    /// <inheritdoc cref="ISpanQueryStore.PrepareSpansAsync"/>
    public virtual ValueTask<PreparedSpans> PrepareSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken) =>
        ValueTask.FromResult(PreparedSpans.Unprepared(tenantId, spans));

    /// <inheritdoc cref="ISpanQueryStore.InsertPreparedAsync"/>
    public virtual Task<int> InsertPreparedAsync(long tenantId, IReadOnlyList<PreparedSpans> batches, CancellationToken cancellationToken) =>
        InsertSpansAsync(tenantId, PreparedSpans.Concat(batches), cancellationToken);

    /// <inheritdoc cref="ISpanQueryStore.IngestWriters"/>
    public virtual int IngestWriters => 1;

    public abstract Task<long> GetStoredBytesAsync(CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    // ---- migrations ----

    public Task MigrateAsync(CancellationToken cancellationToken) => WriteAsync(async connection =>
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await BeforeMigrationsAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, transaction, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL)", cancellationToken).ConfigureAwait(false);

        var applied = new HashSet<int>();
        await using (var command = Command(connection, transaction, "SELECT version FROM schema_migrations"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                applied.Add(Convert.ToInt32(reader.GetValue(0), CultureInfo.InvariantCulture));
            }
        }

        // A newer sp migrated this store: serving it could write what that schema does not expect.
        if (applied.Count > 0 && applied.Max() > Migrations.Count)
        {
            throw new StoreSchemaTooNewException(Kind, applied.Max(), Migrations.Count);
        }

        int count = 0;
        for (int i = 0; i < Migrations.Count; i++)
        {
            int version = i + 1;
            if (applied.Contains(version))
            {
                continue;
            }

            await ExecuteAsync(connection, transaction, Migrations[i], cancellationToken).ConfigureAwait(false);
            await using var insert = Command(connection, transaction, "INSERT INTO schema_migrations (version, applied_ns) VALUES (@v, @t)");
            Add(insert, "v", version);
            Add(insert, "t", StoreTime.ToNanos(TimeProvider.GetUtcNow()));
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            StoreLog.MigrationApplied(Logger, Kind, version);
            count++;
        }

        await AfterMigrationsAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        StoreLog.SchemaReady(Logger, Kind, Migrations.Count, count);
        await FindBacklogAsync(connection, cancellationToken).ConfigureAwait(false);
        StartIndexer();
        return count;
    }, cancellationToken);

    // ---- tenants and keys ----

    public async Task<Tenant> EnsureTenantAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var existing = await FindTenantAsync(name, cancellationToken).ConfigureAwait(false);
        if (existing is not null)
        {
            return existing;
        }

        await WriteAsync(async connection =>
        {
            await using var command = Command(connection, null, "INSERT INTO tenants (name, created_ns) VALUES (@n, @c) ON CONFLICT (name) DO NOTHING");
            Add(command, "n", name);
            Add(command, "c", StoreTime.ToNanos(TimeProvider.GetUtcNow()));
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);

        return await FindTenantAsync(name, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"Tenant '{name}' was created but cannot be read back.");
    }

    public Task<Tenant?> FindTenantAsync(string name, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT id, name, retention_seconds, created_ns FROM tenants WHERE name = @n");
        Add(command, "n", name);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadTenant(reader) : null;
    }, cancellationToken);

    public Task<IReadOnlyList<Tenant>> ListTenantsAsync(CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<Tenant>>(async connection =>
    {
        await using var command = Command(connection, null, "SELECT id, name, retention_seconds, created_ns FROM tenants ORDER BY id");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<Tenant>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(ReadTenant(reader));
        }

        return list;
    }, cancellationToken);

    public Task SetRetentionAsync(long tenantId, TimeSpan? retention, CancellationToken cancellationToken) => WriteAsync(async connection =>
    {
        await using var command = Command(connection, null, "UPDATE tenants SET retention_seconds = @r WHERE id = @id");
        Add(command, "r", retention is { } r ? (long)r.TotalSeconds : null);
        Add(command, "id", tenantId);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }, cancellationToken);

    public Task AddApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        return WriteAsync(async connection =>
        {
            await using var command = Command(connection, null,
                "INSERT INTO api_keys (key_hash, key_id, tenant_id, scopes, description, created_ns, revoked_ns) VALUES (@h, @k, @t, @s, @d, @c, @r)");
            Add(command, "h", key.KeyHash);
            Add(command, "k", key.KeyId);
            Add(command, "t", key.TenantId);
            Add(command, "s", (int)key.Scopes);
            Add(command, "d", key.Description);
            Add(command, "c", StoreTime.ToNanos(key.CreatedAt));
            Add(command, "r", key.RevokedAt is { } revoked ? StoreTime.ToNanos(revoked) : null);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }, cancellationToken);
    }

    public Task<ApiKeyRecord?> FindApiKeyAsync(byte[] keyHash, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null,
            "SELECT key_id, tenant_id, key_hash, scopes, description, created_ns, revoked_ns FROM api_keys WHERE key_hash = @h");
        Add(command, "h", keyHash);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadKey(reader) : null;
    }, cancellationToken);

    public Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(long tenantId, CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<ApiKeyRecord>>(async connection =>
    {
        await using var command = Command(connection, null,
            "SELECT key_id, tenant_id, key_hash, scopes, description, created_ns, revoked_ns FROM api_keys WHERE tenant_id = @t ORDER BY created_ns DESC, key_id DESC");
        Add(command, "t", tenantId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<ApiKeyRecord>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(ReadKey(reader));
        }

        return list;
    }, cancellationToken);

    public async Task<bool> RevokeApiKeyAsync(long tenantId, string keyId, CancellationToken cancellationToken)
    {
        int changed = await WriteAsync(async connection =>
        {
            await using var command = Command(connection, null,
                "UPDATE api_keys SET revoked_ns = COALESCE(revoked_ns, @r) WHERE tenant_id = @t AND key_id = @k");
            Add(command, "r", StoreTime.ToNanos(TimeProvider.GetUtcNow()));
            Add(command, "t", tenantId);
            Add(command, "k", keyId);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        return changed > 0;
    }

    // ---- queries ----

    public Task<Page<SessionSummary>> ListSessionsAsync(long tenantId, SessionQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        int limit = Math.Clamp(query.Limit, 1, 500);
        (long Nanos, string Id)? cursor = query.Cursor is { Length: > 0 } c ? SessionCursor.Parse(c) : null;
        string[] terms = SearchText.Terms(query.Text);
        if (query.StatusClass is { } statusClass && (statusClass < 1 || statusClass > 5))
        {
            throw new ArgumentException($"Invalid status class {statusClass}: use 1 to 5 (2 = 2xx, 4 = 4xx, 5 = 5xx).", nameof(query));
        }

        return ReadAsync(async connection =>
        {
            var sql = new StringBuilder("SELECT s.session_id, s.first_ns, s.last_ns FROM sessions s WHERE s.tenant_id = @t");
            await using var command = connection.CreateCommand();
            Add(command, "t", tenantId);
            if (query.From is { } from)
            {
                sql.Append(" AND s.last_ns >= @from");
                Add(command, "from", StoreTime.ToNanos(from));
            }

            if (query.To is { } to)
            {
                sql.Append(" AND s.first_ns < @to");
                Add(command, "to", StoreTime.ToNanos(to));
            }

            if (cursor is { } after)
            {
                sql.Append(" AND (s.last_ns < @cn OR (s.last_ns = @cn AND s.session_id < @ci))");
                Add(command, "cn", after.Nanos);
                Add(command, "ci", after.Id);
            }

            if (query.Service is not null || query.StatusClass is not null)
            {
                // One span must satisfy both: "sessions where service X answered 5xx".
                sql.Append(" AND EXISTS (SELECT 1 FROM spans x WHERE x.tenant_id = s.tenant_id AND x.session_id = s.session_id");
                if (query.Service is not null)
                {
                    sql.Append(" AND x.service = @svc");
                    Add(command, "svc", query.Service);
                }

                if (query.StatusClass is { } cls)
                {
                    sql.Append(" AND x.status_code >= @slo AND x.status_code < @shi");
                    Add(command, "slo", cls * 100);
                    Add(command, "shi", (cls + 1) * 100);
                }

                sql.Append(')');
            }

            if (terms.Length > 0)
            {
                sql.Append(" AND ").Append(SessionTextCondition(terms));
                AddTextQuery(command, tenantId, terms);
            }

            sql.Append(" ORDER BY s.last_ns DESC, s.session_id DESC LIMIT @lim");
            Add(command, "lim", limit + 1);
            command.CommandText = sql.ToString();

            var rows = new List<(string Id, long First, long Last)>(limit + 1);
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    rows.Add((reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2)));
                }
            }

            string? next = null;
            if (rows.Count > limit)
            {
                rows.RemoveAt(limit);
                next = SessionCursor.Format(rows[^1].Last, rows[^1].Id);
            }

            if (terms.Length > 0 && rows.Count > 0)
            {
                // The page may then hold fewer sessions than the limit; its cursor still goes on after the last one read.
                var without = await SessionsWithoutTextMatchAsync(connection, tenantId, terms, rows.ConvertAll(r => r.Id), cancellationToken).ConfigureAwait(false);
                rows.RemoveAll(r => without.Contains(r.Id));
            }

            var items = await SummariseSessionsAsync(connection, tenantId, rows, cancellationToken).ConfigureAwait(false);
            return new Page<SessionSummary>(items, next);
        }, cancellationToken);
    }

    private static async Task<IReadOnlyList<SessionSummary>> SummariseSessionsAsync(
        DbConnection connection, long tenantId, List<(string Id, long First, long Last)> rows, CancellationToken cancellationToken)
    {
        if (rows.Count == 0)
        {
            return [];
        }

        var inList = new StringBuilder();
        await using var stats = connection.CreateCommand();
        await using var services = connection.CreateCommand();
        Add(stats, "t", tenantId);
        Add(services, "t", tenantId);
        for (int i = 0; i < rows.Count; i++)
        {
            string name = "s" + i.ToString(CultureInfo.InvariantCulture);
            inList.Append(i == 0 ? "@" : ", @").Append(name);
            Add(stats, name, rows[i].Id);
            Add(services, name, rows[i].Id);
        }

        stats.CommandText = "SELECT session_id, COUNT(*), COUNT(DISTINCT trace_id), SUM(" + ErrorDefinition.Sql("spans") + "), MAX(end_ns) FROM spans WHERE tenant_id = @t AND session_id IN (" + inList + ") GROUP BY session_id";
        services.CommandText = "SELECT DISTINCT session_id, service FROM spans WHERE tenant_id = @t AND session_id IN (" + inList + ")";

        var counts = new Dictionary<string, (int Spans, int Traces, int Errors, long LastEnd)>(StringComparer.Ordinal);
        await using (var reader = await stats.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                counts[reader.GetString(0)] = ((int)Int64(reader, 1), (int)Int64(reader, 2), (int)Int64(reader, 3), Int64(reader, 4));
            }
        }

        var serviceLists = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        await using (var reader = await services.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                string id = reader.GetString(0);
                if (!serviceLists.TryGetValue(id, out var list))
                {
                    serviceLists[id] = list = [];
                }

                list.Add(reader.GetString(1));
            }
        }

        var items = new List<SessionSummary>(rows.Count);
        foreach (var (id, first, last) in rows)
        {
            counts.TryGetValue(id, out var c);
            IReadOnlyList<string> names = s_noServices;
            if (serviceLists.TryGetValue(id, out var list))
            {
                list.Sort(StringComparer.Ordinal);
                names = list;
            }

            items.Add(new SessionSummary(id, StoreTime.FromNanos(first), StoreTime.FromNanos(Math.Max(last, c.LastEnd)), c.Spans, c.Traces, c.Errors, names));
        }

        return items;
    }

    public Task<IReadOnlyList<SpanSummary>?> GetSessionAsync(long tenantId, string sessionId, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null,
            "SELECT " + SummaryColumns + ", grpc_status FROM spans WHERE tenant_id = @t AND session_id = @s ORDER BY start_ns, id");
        Add(command, "t", tenantId);
        Add(command, "s", sessionId);
        var list = await ReadSummariesAsync(command, cancellationToken).ConfigureAwait(false);
        return list.Count == 0 ? null : (IReadOnlyList<SpanSummary>?)list;
    }, cancellationToken);

    public Task<IReadOnlyList<SpanSummary>> GetTraceAsync(long tenantId, string traceId, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null,
            "SELECT " + SummaryColumns + ", grpc_status FROM spans WHERE tenant_id = @t AND trace_id = " + IdParameterSql("tr") + " ORDER BY start_ns, id");
        Add(command, "t", tenantId);
        Add(command, "tr", traceId);
        return (IReadOnlyList<SpanSummary>)await ReadSummariesAsync(command, cancellationToken).ConfigureAwait(false);
    }, cancellationToken);

    public Task<StoredSpan?> GetSpanAsync(long tenantId, string traceId, string spanId, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null,
            "SELECT " + SummaryColumns + ", scheme, query, route, request_headers, response_headers, request_body, response_body, attributes, span_model, grpc_status " +
            "FROM spans WHERE tenant_id = @t AND trace_id = " + IdParameterSql("tr") + " AND span_id = " + IdParameterSql("sp"));
        Add(command, "t", tenantId);
        Add(command, "tr", traceId);
        Add(command, "sp", spanId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        return WithGrpcStatus(ReadStoredSpanHead(reader), reader, 25) with
        {
            RequestHeadersJson = BodyCodec.DecodeString(NullableBytes(reader, 19), Dictionaries),
            ResponseHeadersJson = BodyCodec.DecodeString(NullableBytes(reader, 20), Dictionaries),
            RequestBody = BodyCodec.Decode(NullableBytes(reader, 21), Dictionaries),
            ResponseBody = BodyCodec.Decode(NullableBytes(reader, 22), Dictionaries),
            AttributesJson = BodyCodec.DecodeString(NullableBytes(reader, 23), Dictionaries) ?? "{}",
            ModelJson = BodyCodec.DecodeString(NullableBytes(reader, 24), Dictionaries),
        };
    }, cancellationToken);

    public virtual Task<long?> GetSpanSizeAsync(long tenantId, string traceId, string spanId, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        // Only the codec header (flag + decoded length) and the stored length of each value: the
        // values themselves stay on disk until the reader holds its share of the read budget.
        string[] columns = ["request_headers", "response_headers", "request_body", "response_body", "attributes", "span_model"];
        await using var command = Command(connection, null,
            "SELECT " + string.Join(", ", columns.Select(c => BlobHeadSql(c) + ", " + BlobLengthSql(c))) +
            " FROM spans WHERE tenant_id = @t AND trace_id = " + IdParameterSql("tr") + " AND span_id = " + IdParameterSql("sp"));
        Add(command, "t", tenantId);
        Add(command, "tr", traceId);
        Add(command, "sp", spanId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return (long?)null;
        }

        long total = 0;
        for (int i = 0; i < columns.Length; i++)
        {
            if (!reader.IsDBNull(2 * i))
            {
                total += BodyCodec.DecodedLength(NullableBytes(reader, 2 * i), reader.GetInt64(2 * i + 1));
            }
        }

        return total;
    }, cancellationToken);

    /// <summary>The retention claim; a store written by one process (SQLite) always grants it.</summary>
    public virtual Task<IAsyncDisposable?> TryClaimRetentionAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IAsyncDisposable?>(NoClaim.Instance);

    /// <summary>SQL for the first <see cref="BodyCodec.HeadBytes"/> bytes of a blob column (the codec header).</summary>
    protected virtual string BlobHeadSql(string column) => "substr(" + column + ", 1, " + BodyCodec.HeadBytes + ")";

    /// <summary>SQL for the stored length in bytes of a blob column.</summary>
    protected virtual string BlobLengthSql(string column) => "length(" + column + ")";

    /// <summary>SQL reading a trace or span id column as lower-case hex text (null stays null); the columns hold hex text unless an engine stores the bytes.</summary>
    protected virtual string IdSql(string column) => column;

    /// <summary>
    /// A span's name as the API reads it, from the columns of the row <paramref name="prefix"/>
    /// ("x." or "") qualifies; a store that leaves out names it can rebuild rebuilds them here.
    /// </summary>
    protected virtual string NameSql(string prefix) => prefix + "name";

    /// <summary>SQL for the value an id column is compared with, from the hex-text parameter <paramref name="name"/>.</summary>
    protected virtual string IdParameterSql(string name) => "@" + name;

    public Task<IReadOnlyList<StoredSpan>> GetTraceSpansAsync(long tenantId, string traceId, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null,
            "SELECT " + SummaryColumns + ", scheme, query, route, attributes, span_model, grpc_status FROM spans WHERE tenant_id = @t AND trace_id = " + IdParameterSql("tr") + " ORDER BY start_ns, id");
        Add(command, "t", tenantId);
        Add(command, "tr", traceId);
        var list = new List<StoredSpan>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(WithGrpcStatus(ReadStoredSpanHead(reader), reader, 21) with
            {
                AttributesJson = BodyCodec.DecodeString(NullableBytes(reader, 19), Dictionaries) ?? "{}",
                ModelJson = BodyCodec.DecodeString(NullableBytes(reader, 20), Dictionaries),
            });
        }

        return (IReadOnlyList<StoredSpan>)list;
    }, cancellationToken);

    public Task<IReadOnlyList<ServiceEdge>> GetServiceGraphAsync(long tenantId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<ServiceEdge>>(async connection =>
    {
        // The edge rule (docs/ARCHITECTURE.md, "Storage and indexes"): an outbound CLIENT span is a
        // call from its service to the service of its child span in another service, or to the
        // host it called when the callee was not captured; a span whose parent is a non-client
        // span of another service (SDKs that record no client span) is a call from that parent's
        // service. Latency is the caller-side span's duration when there is one.
        var edges = new Dictionary<(string, string), LatencyStats>();
        await using (var command = Command(connection, null,
            "SELECT c.service, (SELECT ch.service FROM spans ch WHERE ch.tenant_id = c.tenant_id AND ch.trace_id = c.trace_id AND ch.parent_span_id = c.span_id AND ch.service <> c.service ORDER BY ch.id LIMIT 1), " +
            "c.authority, c.end_ns - c.start_ns, c.is_error, c.status_code, c.grpc_status FROM spans c " +
            "WHERE c.tenant_id = @t AND c.start_ns >= @f AND c.start_ns < @to AND (c.kind = 3 OR c.direction = 'outbound')"))
        {
            AddRange(command, tenantId, from, to);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                string? callee = NullableString(reader, 1);
                if (callee is null)
                {
                    string? authority = NullableString(reader, 2);
                    if (string.IsNullOrEmpty(authority))
                    {
                        continue;
                    }

                    callee = SpIstio.Core.Model.HostName.WithoutPort(authority).ToString();
                }

                int? status = NullableInt32(reader, 5);
                int? grpc = NullableInt32(reader, 6);
                Stats(edges, (reader.GetString(0), callee)).Add(LatencyStats.NanosToMs(Int64(reader, 3)), ErrorDefinition.FromStored(Int64(reader, 4) != 0, status, grpc), ErrorDefinition.IsClientError(status, grpc));
            }
        }

        await using (var command = Command(connection, null,
            "SELECT p.service, s.service, s.end_ns - s.start_ns, s.is_error, s.status_code, s.grpc_status FROM spans s " +
            "JOIN spans p ON p.tenant_id = s.tenant_id AND p.trace_id = s.trace_id AND p.span_id = s.parent_span_id " +
            "WHERE s.tenant_id = @t AND s.start_ns >= @f AND s.start_ns < @to AND p.service <> s.service " +
            "AND p.kind <> 3 AND (p.direction IS NULL OR p.direction <> 'outbound')"))
        {
            AddRange(command, tenantId, from, to);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                int? status = NullableInt32(reader, 4);
                int? grpc = NullableInt32(reader, 5);
                Stats(edges, (reader.GetString(0), reader.GetString(1))).Add(LatencyStats.NanosToMs(Int64(reader, 2)), ErrorDefinition.FromStored(Int64(reader, 3) != 0, status, grpc), ErrorDefinition.IsClientError(status, grpc));
            }
        }

        var result = new List<ServiceEdge>(edges.Count);
        foreach (var ((caller, callee), stats) in edges)
        {
            stats.Seal();
            result.Add(new ServiceEdge(caller, callee, stats.Count, stats.Errors, stats.Percentile(0.50), stats.Percentile(0.95), stats.Percentile(0.99), stats.ClientErrors));
        }

        result.Sort(static (a, b) => a.Caller != b.Caller ? string.CompareOrdinal(a.Caller, b.Caller) : string.CompareOrdinal(a.Callee, b.Callee));
        return result;
    }, cancellationToken);

    public Task<IReadOnlyList<EndpointStats>> GetEndpointsAsync(long tenantId, string? service, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<EndpointStats>>(async connection =>
    {
        // Endpoints are what a service serves: its server-side spans, not the calls it makes.
        string sql = "SELECT service, method, COALESCE(route, path, '/'), end_ns - start_ns, is_error, status_code, grpc_status FROM spans " +
            "WHERE tenant_id = @t AND start_ns >= @f AND start_ns < @to AND method IS NOT NULL AND kind <> 3 AND (direction IS NULL OR direction <> 'outbound')";
        await using var command = Command(connection, null, service is null ? sql : sql + " AND service = @svc");
        AddRange(command, tenantId, from, to);
        if (service is not null)
        {
            Add(command, "svc", service);
        }

        var rows = new List<(string Service, string Method, string Route, double Ms, bool Error, bool ClientError)>();
        var learner = new RouteLearner();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                int? status = NullableInt32(reader, 5);
                int? grpc = NullableInt32(reader, 6);
                var row = (reader.GetString(0), reader.GetString(1), reader.GetString(2), LatencyStats.NanosToMs(Int64(reader, 3)),
                    ErrorDefinition.FromStored(Int64(reader, 4) != 0, status, grpc), ErrorDefinition.IsClientError(status, grpc));
                rows.Add(row);
                learner.Observe(row.Item1 + " " + row.Item2, row.Item3);
            }
        }

        // Paths no instrumentation templated: segments with many values under one prefix become {id}.
        var groups = new Dictionary<(string, string, string), LatencyStats>();
        foreach (var (svc, method, route, ms, error, clientError) in rows)
        {
            Stats(groups, (svc, method, learner.Template(svc + " " + method, route))).Add(ms, error, clientError);
        }

        var result = new List<EndpointStats>(groups.Count);
        foreach (var ((svc, method, route), stats) in groups)
        {
            stats.Seal();
            result.Add(new EndpointStats(svc, method, route, stats.Count, stats.Errors, stats.Percentile(0.50), stats.Percentile(0.95), stats.Percentile(0.99), stats.ClientErrors));
        }

        result.Sort(static (a, b) =>
        {
            int c = string.CompareOrdinal(a.Service, b.Service);
            c = c != 0 ? c : string.CompareOrdinal(a.Route, b.Route);
            return c != 0 ? c : string.CompareOrdinal(a.Method, b.Method);
        });
        return result;
    }, cancellationToken);

    // ---- retention ----

    public async Task<long> DeleteOlderThanAsync(long tenantId, DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        long total = 0;
        long cutoffNs = StoreTime.ToNanos(cutoff);
        while (true)
        {
            // Chunks in separate transactions so ingest keeps flowing while a large backlog is deleted.
            long deleted = await DeleteChunkAsync("tenant_id = @t AND start_ns < @c", c => { Add(c, "t", tenantId); Add(c, "c", cutoffNs); }, long.MaxValue, cancellationToken).ConfigureAwait(false);
            total += deleted;
            if (deleted < DeleteChunk)
            {
                return total;
            }
        }
    }

    public async Task<long> DeleteOldestAsync(long bytes, CancellationToken cancellationToken)
    {
        long total = 0;
        long remaining = bytes;
        while (remaining > 0)
        {
            long before = remaining;
            long deleted = await DeleteChunkAsync(null, null, remaining, cancellationToken, freed => remaining -= freed).ConfigureAwait(false);
            total += deleted;
            if (deleted == 0 || remaining == before)
            {
                break;
            }
        }

        return total;
    }

    /// <summary>
    /// Deletes up to one chunk of the oldest spans (by insertion order) matching
    /// <paramref name="condition"/> (its parameters added by <paramref name="bind"/>), stopping once
    /// <paramref name="maxBytes"/> of stored size is freed, and repairs the session rows those spans belonged to.
    /// </summary>
    private Task<long> DeleteChunkAsync(string? condition, Action<DbCommand>? bind, long maxBytes, CancellationToken cancellationToken, Action<long>? freed = null) => WriteAsync(async connection =>
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        string where = condition is null ? string.Empty : " WHERE " + condition;
        long maxId = -1;
        long bytes = 0;
        long count = 0;
        var sessions = new HashSet<(long, string)>();
        await using (var select = Command(connection, transaction, "SELECT id, tenant_id, session_id, stored_bytes FROM spans" + where + " ORDER BY id LIMIT @n"))
        {
            bind?.Invoke(select);
            Add(select, "n", DeleteChunk);
            await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (bytes < maxBytes && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                maxId = reader.GetInt64(0);
                if (!reader.IsDBNull(2))
                {
                    sessions.Add((reader.GetInt64(1), reader.GetString(2)));
                }

                bytes += reader.GetInt64(3);
                count++;
            }
        }

        if (count == 0)
        {
            return 0L;
        }

        await using (var delete = Command(connection, transaction, "DELETE FROM spans WHERE id <= @max" + (condition is null ? string.Empty : " AND " + condition)))
        {
            Add(delete, "max", maxId);
            bind?.Invoke(delete);

            count = await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await AfterSpansDeletedAsync(connection, transaction, maxId, cancellationToken).ConfigureAwait(false);

        await using var drop = Command(connection, transaction,
            "DELETE FROM sessions WHERE tenant_id = @t AND session_id = @s AND NOT EXISTS (SELECT 1 FROM spans x WHERE x.tenant_id = @t AND x.session_id = @s)");
        await using var repair = Command(connection, transaction,
            "UPDATE sessions SET first_ns = (SELECT MIN(x.start_ns) FROM spans x WHERE x.tenant_id = @t AND x.session_id = @s), " +
            "last_ns = (SELECT MAX(x.start_ns) FROM spans x WHERE x.tenant_id = @t AND x.session_id = @s) WHERE tenant_id = @t AND session_id = @s");
        var dropTenant = Add(drop, "t", 0L);
        var dropSession = Add(drop, "s", string.Empty);
        var repairTenant = Add(repair, "t", 0L);
        var repairSession = Add(repair, "s", string.Empty);
        foreach (var (tenant, session) in sessions)
        {
            dropTenant.Value = tenant;
            dropSession.Value = session;
            if (await drop.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                repairTenant.Value = tenant;
                repairSession.Value = session;
                await repair.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        freed?.Invoke(bytes);
        return count;
    }, cancellationToken);

    // ---- shared helpers ----

    protected static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        return command;
    }

    protected static DbParameter Add(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
        return parameter;
    }

    protected static async Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static void AddRange(DbCommand command, long tenantId, DateTimeOffset from, DateTimeOffset to)
    {
        Add(command, "t", tenantId);
        Add(command, "f", StoreTime.ToNanos(from));
        Add(command, "to", StoreTime.ToNanos(to));
    }

    private static LatencyStats Stats<TKey>(Dictionary<TKey, LatencyStats> map, TKey key)
        where TKey : notnull
    {
        if (!map.TryGetValue(key, out var stats))
        {
            map[key] = stats = new LatencyStats();
        }

        return stats;
    }

    // The summary columns followed by grpc_status (column 16).
    private static async Task<List<SpanSummary>> ReadSummariesAsync(DbCommand command, CancellationToken cancellationToken)
    {
        var list = new List<SpanSummary>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(WithGrpcStatus(ReadSummary(reader), reader, 16));
        }

        return list;
    }

    // The summary columns followed by scheme, query and route (columns 16-18), as a span; the
    // caller adds what its query selected after them.
    private static StoredSpan ReadStoredSpanHead(DbDataReader reader)
    {
        var s = ReadSummary(reader);
        return new StoredSpan
        {
            TraceId = s.TraceId,
            SpanId = s.SpanId,
            ParentSpanId = s.ParentSpanId,
            Name = s.Name,
            Kind = s.Kind,
            ServiceName = s.ServiceName,
            StartTime = s.StartTime,
            EndTime = s.EndTime,
            IsError = s.IsError,
            IsExchange = s.IsExchange,
            SessionId = s.SessionId,
            Direction = s.Direction,
            Method = s.Method,
            Authority = s.Authority,
            Path = s.Path,
            StatusCode = s.StatusCode,
            Scheme = NullableString(reader, 16),
            Query = NullableString(reader, 17),
            Route = NullableString(reader, 18),
        };
    }

    // A gRPC call's status (selected at column) decides whether it is an error (ErrorDefinition).
    private static SpanSummary WithGrpcStatus(SpanSummary summary, DbDataReader reader, int column)
    {
        var (grpc, isError) = GrpcOutcome(reader, column, summary.StatusCode);
        return summary with { GrpcStatus = grpc, IsError = isError };
    }

    private static StoredSpan WithGrpcStatus(StoredSpan span, DbDataReader reader, int column)
    {
        var (grpc, isError) = GrpcOutcome(reader, column, span.StatusCode);
        return span with { GrpcStatus = grpc, IsError = isError };
    }

    // The gRPC status at column and the error flag (column 8 of every span head) it decides with the HTTP status.
    private static (int? Grpc, bool IsError) GrpcOutcome(DbDataReader reader, int column, int? httpStatus)
    {
        int? grpc = NullableInt32(reader, column);
        return (grpc, ErrorDefinition.FromStored(Int64(reader, 8) != 0, httpStatus, grpc));
    }

    private static SpanSummary ReadSummary(DbDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        NullableString(r, 2),
        r.GetString(3),
        (int)Int64(r, 4),
        r.GetString(5),
        StoreTime.FromNanos(Int64(r, 6)),
        StoreTime.FromNanos(Int64(r, 7)),
        ErrorDefinition.FromStored(Int64(r, 8) != 0, NullableInt32(r, 15)),
        Int64(r, 9) != 0,
        NullableString(r, 10),
        NullableString(r, 11),
        NullableString(r, 12),
        NullableString(r, 13),
        NullableString(r, 14),
        NullableInt32(r, 15));

    private static Tenant ReadTenant(DbDataReader r) => new(
        Int64(r, 0),
        r.GetString(1),
        r.IsDBNull(2) ? null : TimeSpan.FromSeconds(Int64(r, 2)),
        StoreTime.FromNanos(Int64(r, 3)));

    private static ApiKeyRecord ReadKey(DbDataReader r) => new(
        r.GetString(0),
        Int64(r, 1),
        (byte[])r.GetValue(2),
        (KeyScope)(int)Int64(r, 3),
        NullableString(r, 4),
        StoreTime.FromNanos(Int64(r, 5)),
        r.IsDBNull(6) ? null : StoreTime.FromNanos(Int64(r, 6)));

    // Integer widths differ between the engines (SQLite: always 64-bit; PostgreSQL: int4/int8/numeric for SUM), so read through one converter.
    protected static long Int64(DbDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? 0 : Convert.ToInt64(reader.GetValue(ordinal), CultureInfo.InvariantCulture);

    protected static string? NullableString(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    protected static byte[]? NullableBytes(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : (byte[])reader.GetValue(ordinal);

    protected static int? NullableInt32(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : (int)Int64(reader, ordinal);
}

/// <summary>A span with its stored forms computed (compressed bodies, search text), ready for either store's bulk insert.</summary>
internal sealed class EncodedSpan
{
    private EncodedSpan(StoredSpan span)
    {
        Span = span;
    }

    public StoredSpan Span { get; }

    public long StartNs { get; private init; }

    public long EndNs { get; private init; }

    public byte[]? RequestHeaders { get; private init; }

    public byte[]? ResponseHeaders { get; private init; }

    public byte[]? RequestBody { get; private init; }

    public byte[]? ResponseBody { get; private init; }

    public byte[]? Attributes { get; private init; }

    public byte[]? Model { get; private init; }

    public long StoredBytes { get; set; }

    /// <summary>The span's search text (<see cref="Storage.SearchText"/>) when the batch was encoded with it; null otherwise or when it has none.</summary>
    public string? SearchText { get; private init; }

    /// <summary>
    /// Encodes a batch (with the tenant's dictionary when it has one); compression is the costly
    /// part of ingest, so large batches use both cores. <paramref name="searchText"/> also builds
    /// each span's search text there, from the bodies at hand, so the indexer need not read and
    /// decompress them again. <paramref name="jsonColumns"/> false keeps JSON values to plain zstd
    /// (<see cref="SqlSpanStore.JsonColumnValues"/>).
    /// </summary>
    public static EncodedSpan[] EncodeAll(IReadOnlyList<StoredSpan> spans, CodecDictionary? dictionary = null, bool searchText = false, bool jsonColumns = true)
    {
        var result = new EncodedSpan[spans.Count];
        if (spans.Count >= 64)
        {
            Parallel.For(0, spans.Count, i => result[i] = Encode(spans[i], dictionary, searchText, jsonColumns));
        }
        else
        {
            for (int i = 0; i < spans.Count; i++)
            {
                result[i] = Encode(spans[i], dictionary, searchText, jsonColumns);
            }
        }

        return result;
    }

    /// <summary>Encodes one span (see <see cref="EncodeAll"/>).</summary>
    internal static EncodedSpan Encode(StoredSpan span, CodecDictionary? dictionary, bool searchText, bool jsonColumns)
    {
        ArgumentNullException.ThrowIfNull(span);
        var encoded = new EncodedSpan(span)
        {
            StartNs = StoreTime.ToNanos(span.StartTime),
            EndNs = StoreTime.ToNanos(span.EndTime),
            RequestHeaders = BodyCodec.EncodeString(span.RequestHeadersJson, dictionary, jsonColumns),
            ResponseHeaders = BodyCodec.EncodeString(span.ResponseHeadersJson, dictionary, jsonColumns),
            RequestBody = BodyCodec.Encode(span.RequestBody.Span, dictionary, jsonColumns),
            ResponseBody = BodyCodec.Encode(span.ResponseBody.Span, dictionary, jsonColumns),
            Attributes = span.AttributesJson is "{}" or "" ? null : BodyCodec.EncodeString(span.AttributesJson, dictionary, jsonColumns),
            Model = BodyCodec.EncodeString(span.ModelJson, dictionary, jsonColumns),
            SearchText = searchText ? Storage.SearchText.Build(span) : null,
        };
        encoded.StoredBytes = StoredSizeOf(encoded);
        return encoded;
    }

    private static long StoredSizeOf(EncodedSpan span) =>
        // The text index is written after the commit (SqlSpanStore.Search.cs); its share is estimated from what it indexes.
        160 + Math.Min(span.Span.RequestBody.Length, Storage.SearchText.MaxBodyBytes) + Math.Min(span.Span.ResponseBody.Length, Storage.SearchText.MaxBodyBytes) + Len(span.RequestHeaders) + Len(span.ResponseHeaders) + Len(span.RequestBody) + Len(span.ResponseBody) + Len(span.Attributes) + Len(span.Model)
        + (span.Span.Path?.Length ?? 0) + (span.Span.Authority?.Length ?? 0) + (span.Span.Query?.Length ?? 0) + span.Span.Name.Length;

    private static int Len(byte[]? value) => value?.Length ?? 0;
}
