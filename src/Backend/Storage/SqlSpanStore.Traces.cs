using System.Data.Common;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SpIstio.Backend.Storage;

/// <summary>
/// Trace search (<c>GET /api/traces</c>): finds spans matching every span-level filter, newest first,
/// and lists their traces once each. The walk follows <c>spans (tenant_id, start_ns)</c> — or
/// <c>(tenant_id, service, start_ns)</c> with a service filter — in pages of <see cref="ScanBatch"/>
/// rows and stops after <see cref="MaxScannedSpans"/> rows, answering with what it found and a
/// cursor that continues where it stopped: what one request costs is bounded whatever the filters.
/// </summary>
internal abstract partial class SqlSpanStore
{
    /// <summary>Rows read per scan query.</summary>
    private const int ScanBatch = 500;

    private const int MaxScannedSpans = TraceQuery.MaxScannedSpans;

    /// <summary>A condition on spans aliased <c>x</c> (of tenant <c>@t</c>) that holds when its search text matches these terms (bound by <see cref="AddTextQuery"/>).</summary>
    protected abstract string SpanTextCondition(string[] terms);

    /// <summary>
    /// Of these spans, which the text condition matched, the ones whose match was only a "maybe"
    /// and whose search text does not hold every term: none for a store whose condition is exact.
    /// </summary>
    protected virtual Task<IReadOnlySet<long>> FalseTextMatchesAsync(
        DbConnection connection, long tenantId, string[] terms, IReadOnlyCollection<long> spanIds, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlySet<long>>(new HashSet<long>());

    public Task<TracePage> SearchTracesAsync(long tenantId, TraceQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        int limit = Math.Clamp(query.Limit, 1, 500);
        (long Nanos, long Id)? cursor = query.Cursor is { Length: > 0 } c ? ParseTraceCursor(c) : null;
        string[] terms = SearchText.Terms(query.Text);
        bool needsAttributes = query.Attributes.Count > 0;

        return ReadAsync(async connection =>
        {
            // The order in which traces first appear (at their newest matching span) and where.
            var found = new List<(string TraceId, long Nanos, long Id)>(limit + 1);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var position = cursor;
            int scanned = 0;
            bool exhausted = false;
            while (found.Count <= limit && scanned < MaxScannedSpans)
            {
                await using var command = connection.CreateCommand();
                var sql = new StringBuilder("SELECT x.id, " + IdSql("x.trace_id") + ", x.start_ns, x.route, x.path");
                sql.Append(needsAttributes ? ", x.attributes, x.span_model" : "");
                sql.Append(" FROM spans x WHERE x.tenant_id = @t");
                Add(command, "t", tenantId);
                AppendRange(sql, command, query);
                if (position is { } p)
                {
                    sql.Append(" AND (x.start_ns < @cn OR (x.start_ns = @cn AND x.id < @ci))");
                    Add(command, "cn", p.Nanos);
                    Add(command, "ci", p.Id);
                }

                AppendSpanFilters(sql, command, tenantId, query, terms);
                sql.Append(" ORDER BY x.start_ns DESC, x.id DESC LIMIT @lim");
                Add(command, "lim", ScanBatch);
                command.CommandText = sql.ToString();

                int rows = 0;
                bool full = false;
                var batchNew = new List<(string TraceId, long Nanos, long Id)>();
                await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        rows++;
                        scanned++;
                        long id = reader.GetInt64(0);
                        string traceId = reader.GetString(1);
                        long nanos = Int64(reader, 2);
                        position = (nanos, id);
                        if (!seen.Contains(traceId) && MatchesInProcess(reader, query, needsAttributes))
                        {
                            seen.Add(traceId);
                            batchNew.Add((traceId, nanos, id));
                            if (found.Count + batchNew.Count > limit)
                            {
                                full = true;
                                break;
                            }
                        }
                    }
                }

                if (terms.Length > 0 && batchNew.Count > 0)
                {
                    var falseMatches = await FalseTextMatchesAsync(connection, tenantId, terms, batchNew.ConvertAll(f => f.Id), cancellationToken).ConfigureAwait(false);
                    int wrong = batchNew.FindIndex(f => falseMatches.Contains(f.Id));
                    if (wrong >= 0)
                    {
                        // Later spans of the traces listed from here on were skipped as seen: the
                        // scan goes on from just after the span that did not hold the words.
                        for (int i = wrong; i < batchNew.Count; i++)
                        {
                            seen.Remove(batchNew[i].TraceId);
                        }

                        position = (batchNew[wrong].Nanos, batchNew[wrong].Id);
                        batchNew.RemoveRange(wrong, batchNew.Count - wrong);
                        full = true;
                    }
                }

                if (cursor is { } after && batchNew.Count > 0)
                {
                    // A trace listed on an earlier page (at a newer matching span) is not listed again.
                    var earlier = await TracesMatchingSinceAsync(connection, tenantId, query, terms, after, batchNew, cancellationToken).ConfigureAwait(false);
                    batchNew.RemoveAll(f => earlier.Contains(f.TraceId));
                }

                found.AddRange(batchNew);
                if (!full && rows < ScanBatch)
                {
                    exhausted = true;
                    break;
                }

                if (full && found.Count <= limit)
                {
                    // Pruning made room: go on from the span where this batch stopped.
                    continue;
                }
            }

            string? next = null;
            bool scanLimited = false;
            if (found.Count > limit)
            {
                found.RemoveRange(limit, found.Count - limit);
                next = FormatTraceCursor(found[^1].Nanos, found[^1].Id);
            }
            else if (!exhausted && position is { } stop)
            {
                // The scan bound was reached: continue from the last span examined.
                next = FormatTraceCursor(stop.Nanos, stop.Id);
                scanLimited = true;
            }

            var items = await SummariseTracesAsync(connection, tenantId, found, cancellationToken).ConfigureAwait(false);
            return new TracePage(items, next, scanLimited);
        }, cancellationToken);
    }

    public Task<IReadOnlyList<ServiceHealth>> GetServiceHealthAsync(long tenantId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<ServiceHealth>>(async connection =>
    {
        // Served = the server side of the service (what Endpoints lists); errors per ErrorDefinition.
        const string Served = "(x.kind <> 3 AND (x.direction IS NULL OR x.direction <> 'outbound'))";
        await using var command = Command(connection, null,
            "SELECT x.service, COUNT(*), SUM(CASE WHEN " + Served + " THEN 1 ELSE 0 END), " +
            "SUM(CASE WHEN " + Served + " THEN " + ErrorDefinition.Sql("x") + " ELSE 0 END), " +
            "SUM(CASE WHEN " + Served + " THEN " + ErrorDefinition.ClientSql("x") + " ELSE 0 END), MIN(x.start_ns), MAX(x.start_ns) " +
            "FROM spans x WHERE x.tenant_id = @t AND x.start_ns >= @f AND x.start_ns < @to GROUP BY x.service ORDER BY x.service");
        Add(command, "t", tenantId);
        Add(command, "f", StoreTime.ToNanos(from));
        Add(command, "to", StoreTime.ToNanos(to));
        var list = new List<ServiceHealth>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(new ServiceHealth(reader.GetString(0), Int64(reader, 1), Int64(reader, 2), Int64(reader, 3), Int64(reader, 4),
                StoreTime.FromNanos(Int64(reader, 5)), StoreTime.FromNanos(Int64(reader, 6))));
        }

        return (IReadOnlyList<ServiceHealth>)list;
    }, cancellationToken);

    private static void AppendRange(StringBuilder sql, DbCommand command, TraceQuery query)
    {
        if (query.From is { } from)
        {
            sql.Append(" AND x.start_ns >= @f");
            Add(command, "f", StoreTime.ToNanos(from));
        }

        if (query.To is { } to)
        {
            sql.Append(" AND x.start_ns < @to");
            Add(command, "to", StoreTime.ToNanos(to));
        }
    }

    private void AppendSpanFilters(StringBuilder sql, DbCommand command, long tenantId, TraceQuery query, string[] terms)
    {
        if (query.Service is not null)
        {
            sql.Append(" AND x.service = @svc");
            Add(command, "svc", query.Service);
        }

        if (query.Operation is not null)
        {
            sql.Append(" AND ").Append(NameSql("x.")).Append(" = @op");
            Add(command, "op", query.Operation);
        }

        if (query.Route is not null)
        {
            // Narrowed in SQL (a placeholder as a LIKE wildcard), made exact per segment in process.
            sql.Append(" AND (x.route LIKE @rl ESCAPE '\\' OR x.path LIKE @rl ESCAPE '\\')");
            Add(command, "rl", RouteTemplate.LikePattern(query.Route));
        }

        switch (query.Status)
        {
            case TraceStatusFilter.Error:
                sql.Append(" AND ").Append(ErrorDefinition.Sql("x")).Append(" = 1");
                break;
            case TraceStatusFilter.ClientError:
                sql.Append(" AND ").Append(ErrorDefinition.ClientSql("x")).Append(" = 1");
                break;
            case TraceStatusFilter.Ok:
                sql.Append(" AND ").Append(ErrorDefinition.Sql("x")).Append(" = 0 AND ").Append(ErrorDefinition.ClientSql("x"))
                    .Append(" = 0 AND (x.grpc_status IS NOT NULL OR x.status_code IS NULL OR x.status_code < 400)");
                break;
        }

        if (query.StatusClass is { } cls)
        {
            sql.Append(" AND x.status_code >= @slo AND x.status_code < @shi");
            Add(command, "slo", cls * 100);
            Add(command, "shi", (cls + 1) * 100);
        }

        if (query.MinDuration is { } min)
        {
            sql.Append(" AND x.end_ns - x.start_ns >= @dmin");
            Add(command, "dmin", min.Ticks * 100);
        }

        if (query.MaxDuration is { } max)
        {
            sql.Append(" AND x.end_ns - x.start_ns <= @dmax");
            Add(command, "dmax", max.Ticks * 100);
        }

        if (terms.Length > 0)
        {
            sql.Append(" AND ").Append(SpanTextCondition(terms));
            AddTextQuery(command, tenantId, terms);
        }
    }

    /// <summary>The filters SQL cannot evaluate: a route's placeholders match exactly one segment; attributes live in compressed JSON.</summary>
    private bool MatchesInProcess(DbDataReader reader, TraceQuery query, bool needsAttributes)
    {
        if (query.Route is not null
            && !RouteTemplate.Matches(query.Route, NullableString(reader, 3))
            && !RouteTemplate.Matches(query.Route, NullableString(reader, 4)))
        {
            return false;
        }

        if (!needsAttributes)
        {
            return true;
        }

        string? attributes = BodyCodec.DecodeString(NullableBytes(reader, 5), Dictionaries);
        string? model = BodyCodec.DecodeString(NullableBytes(reader, 6), Dictionaries);
        using var spanAttributes = JsonDocument.Parse(attributes ?? "{}");
        using var modelDocument = JsonDocument.Parse(model ?? "{}");
        var resource = modelDocument.RootElement.TryGetProperty("resource", out var r) ? r : default;
        foreach (var (key, expected) in query.Attributes)
        {
            if (!(spanAttributes.RootElement.TryGetProperty(key, out var value) && ValueEquals(value, expected))
                && !(resource.ValueKind == JsonValueKind.Object && resource.TryGetProperty(key, out value) && ValueEquals(value, expected)))
            {
                return false;
            }
        }

        return true;
    }

    private static bool ValueEquals(JsonElement value, string expected) => value.ValueKind switch
    {
        JsonValueKind.String => string.Equals(value.GetString(), expected, StringComparison.Ordinal),
        JsonValueKind.True => string.Equals(expected, "true", StringComparison.OrdinalIgnoreCase),
        JsonValueKind.False => string.Equals(expected, "false", StringComparison.OrdinalIgnoreCase),
        JsonValueKind.Number => string.Equals(value.GetRawText(), expected, StringComparison.Ordinal)
            || (value.TryGetDouble(out var d) && double.TryParse(expected, NumberStyles.Float, CultureInfo.InvariantCulture, out var e) && d == e),
        _ => string.Equals(value.GetRawText(), expected, StringComparison.Ordinal),
    };

    /// <summary>Which of <paramref name="found"/> also have a matching span at or after <paramref name="after"/>: those were listed on an earlier page.</summary>
    private async Task<HashSet<string>> TracesMatchingSinceAsync(
        DbConnection connection, long tenantId, TraceQuery query, string[] terms, (long Nanos, long Id) after,
        List<(string TraceId, long Nanos, long Id)> found, CancellationToken cancellationToken)
    {
        bool needsAttributes = query.Attributes.Count > 0;
        await using var command = connection.CreateCommand();
        var sql = new StringBuilder("SELECT x.id, " + IdSql("x.trace_id") + ", x.start_ns, x.route, x.path");
        sql.Append(needsAttributes ? ", x.attributes, x.span_model" : "");
        sql.Append(" FROM spans x WHERE x.tenant_id = @t AND (x.start_ns > @cn OR (x.start_ns = @cn AND x.id >= @ci))");
        Add(command, "t", tenantId);
        AppendRange(sql, command, query);
        sql.Append(" AND x.trace_id IN (");
        Add(command, "cn", after.Nanos);
        Add(command, "ci", after.Id);
        for (int i = 0; i < found.Count; i++)
        {
            string name = "tr" + i.ToString(CultureInfo.InvariantCulture);
            sql.Append(i == 0 ? "" : ", ").Append(IdParameterSql(name));
            Add(command, name, found[i].TraceId);
        }

        sql.Append(')');
        AppendSpanFilters(sql, command, tenantId, query, terms);
        command.CommandText = sql.ToString();
        var matches = new List<(long Id, string TraceId)>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (MatchesInProcess(reader, query, needsAttributes))
                {
                    matches.Add((reader.GetInt64(0), reader.GetString(1)));
                }
            }
        }

        var falseMatches = terms.Length > 0 && matches.Count > 0
            ? await FalseTextMatchesAsync(connection, tenantId, terms, matches.ConvertAll(m => m.Id), cancellationToken).ConfigureAwait(false)
            : new HashSet<long>();
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (id, traceId) in matches)
        {
            if (!falseMatches.Contains(id))
            {
                result.Add(traceId);
            }
        }

        return result;
    }

    private async Task<IReadOnlyList<TraceSummary>> SummariseTracesAsync(
        DbConnection connection, long tenantId, List<(string TraceId, long Nanos, long Id)> found, CancellationToken cancellationToken)
    {
        if (found.Count == 0)
        {
            return [];
        }

        await using var command = connection.CreateCommand();
        var sql = new StringBuilder(
            "SELECT " + IdSql("trace_id") + ", " + IdSql("span_id") + ", " + IdSql("parent_span_id") + ", " + NameSql("") + ", service, start_ns, end_ns, is_error, status_code, method, route, session_id, grpc_status " +
            "FROM spans WHERE tenant_id = @t AND trace_id IN (");
        Add(command, "t", tenantId);
        for (int i = 0; i < found.Count; i++)
        {
            string name = "tr" + i.ToString(CultureInfo.InvariantCulture);
            sql.Append(i == 0 ? "" : ", ").Append(IdParameterSql(name));
            Add(command, name, found[i].TraceId);
        }

        sql.Append(") ORDER BY start_ns, id");
        command.CommandText = sql.ToString();
        var traces = new Dictionary<string, TraceAccumulator>(found.Count, StringComparer.Ordinal);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                string traceId = reader.GetString(0);
                if (!traces.TryGetValue(traceId, out var t))
                {
                    traces[traceId] = t = new TraceAccumulator();
                }

                t.Add(new TraceRow(
                    reader.GetString(1), NullableString(reader, 2), reader.GetString(3), reader.GetString(4), Int64(reader, 5), Int64(reader, 6),
                    Int64(reader, 7) != 0, NullableInt32(reader, 8), NullableString(reader, 9), NullableString(reader, 10),
                    NullableString(reader, 11), NullableInt32(reader, 12)));
            }
        }

        var items = new List<TraceSummary>(found.Count);
        foreach (var (traceId, _, _) in found)
        {
            if (traces.TryGetValue(traceId, out var t))
            {
                items.Add(t.Summary(traceId));
            }
        }

        return items;
    }

    private static string FormatTraceCursor(long nanos, long id) => SessionCursor.Format(nanos, id.ToString(CultureInfo.InvariantCulture));

    private static (long Nanos, long Id) ParseTraceCursor(string cursor)
    {
        var (nanos, text) = SessionCursor.Parse(cursor);
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id)
            ? (nanos, id)
            : throw new ArgumentException($"Invalid traces cursor '{cursor}': pass the nextCursor of a previous page unchanged.", nameof(cursor));
    }

    private sealed record TraceRow(string SpanId, string? ParentSpanId, string Name, string Service, long StartNs, long EndNs, bool IsError, int? Status, string? Method, string? Route, string? Session, int? GrpcStatus);

    private sealed class TraceAccumulator
    {
        private readonly List<TraceRow> _rows = [];

        public void Add(TraceRow row) => _rows.Add(row);

        public TraceSummary Summary(string traceId)
        {
            var ids = new HashSet<string>(StringComparer.Ordinal);
            var services = new SortedSet<string>(StringComparer.Ordinal);
            long start = long.MaxValue, end = long.MinValue;
            int errors = 0, clientErrors = 0;
            string? session = null;
            foreach (var r in _rows)
            {
                ids.Add(r.SpanId);
            }

            TraceRow? root = null;
            foreach (var r in _rows)
            {
                services.Add(r.Service);
                start = Math.Min(start, r.StartNs);
                end = Math.Max(end, r.EndNs);
                errors += ErrorDefinition.FromStored(r.IsError, r.Status, r.GrpcStatus) ? 1 : 0;
                clientErrors += ErrorDefinition.IsClientError(r.Status, r.GrpcStatus) ? 1 : 0;
                session ??= r.Session;

                // Rows are in start order: the first span without a stored parent is the root.
                if (root is null && (r.ParentSpanId is null || !ids.Contains(r.ParentSpanId)))
                {
                    root = r;
                }
            }

            root ??= _rows[0];
            return new TraceSummary(traceId, StoreTime.FromNanos(start), StoreTime.FromNanos(end), root.Service, root.Name, root.Method, root.Route,
                root.Status, _rows.Count, errors, clientErrors, [.. services], session) { RootGrpcStatus = root.GrpcStatus };
        }
    }
}
