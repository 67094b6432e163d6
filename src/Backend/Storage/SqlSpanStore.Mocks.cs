using System.Data.Common;
using System.Globalization;
using System.Text;

namespace SpIstio.Backend.Storage;

/// <summary>Mocks: the same portable SQL on SQLite and PostgreSQL (parameters, <c>RETURNING</c>, <c>LIMIT</c>).</summary>
internal abstract partial class SqlSpanStore
{
    private const string MockColumns =
        "id, service, environment, method, authority, path, query, request_body, match_key, status_code, response_headers, response_body, " +
        "description, source_trace_id, source_span_id, created_ns, updated_ns, expires_ns";

    public Task<MockRecord> AddMockAsync(long tenantId, MockRecord mock, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(mock);
        return WriteAsync(async connection =>
        {
            await using var command = Command(connection, null,
                "INSERT INTO mocks (tenant_id, service, environment, method, authority, path, query, request_body, match_key, status_code, " +
                "response_headers, response_body, description, source_trace_id, source_span_id, created_ns, updated_ns, expires_ns) " +
                "VALUES (@t, @service, @env, @method, @authority, @path, @query, @reqbody, @key, @status, @headers, @resbody, @description, @trace, @span, @created, @updated, @expires) " +
                "RETURNING id");
            Add(command, "t", tenantId);
            AddMockValues(command, mock);
            Add(command, "created", StoreTime.ToNanos(mock.CreatedAt));
            var id = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
            return mock with { Id = id };
        }, cancellationToken);
    }

    public Task<MockRecord?> GetMockAsync(long tenantId, long id, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT " + MockColumns + " FROM mocks WHERE tenant_id = @t AND id = @id");
        Add(command, "t", tenantId);
        Add(command, "id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadMock(reader) : null;
    }, cancellationToken);

    public Task<Page<MockRecord>> ListMocksAsync(long tenantId, MockQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var limit = Math.Clamp(query.Limit, 1, MockQuery.MaxLimit);
        return ReadAsync(async connection =>
        {
            var sql = new StringBuilder("SELECT " + MockColumns + " FROM mocks WHERE tenant_id = @t");
            await using var command = Command(connection, null, "");
            Add(command, "t", tenantId);
            if (query.Service is not null)
            {
                sql.Append(query.IncludeAnyService ? " AND (service = @service OR service = '')" : " AND service = @service");
                Add(command, "service", query.Service);
            }

            if (query.Environment is not null)
            {
                sql.Append(" AND (environment = @env OR environment = '')");
                Add(command, "env", query.Environment);
            }

            if (query.LiveAt is { } now)
            {
                sql.Append(" AND (expires_ns IS NULL OR expires_ns > @now)");
                Add(command, "now", StoreTime.ToNanos(now));
            }

            if (query.AfterId is { } after)
            {
                sql.Append(" AND id > @after");
                Add(command, "after", after);
            }

            // One more than asked tells whether there is a next page.
            sql.Append(" ORDER BY id LIMIT @limit");
            Add(command, "limit", limit + 1);
            command.CommandText = sql.ToString();
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            var list = new List<MockRecord>();
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                list.Add(ReadMock(reader));
            }

            if (list.Count <= limit)
            {
                return new Page<MockRecord>(list, null);
            }

            list.RemoveAt(limit);
            return new Page<MockRecord>(list, list[^1].Id.ToString(CultureInfo.InvariantCulture));
        }, cancellationToken);
    }

    public Task<bool> UpdateMockAsync(long tenantId, MockRecord mock, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(mock);
        return WriteAsync(async connection =>
        {
            await using var command = Command(connection, null,
                "UPDATE mocks SET service = @service, environment = @env, method = @method, authority = @authority, path = @path, query = @query, " +
                "request_body = @reqbody, match_key = @key, status_code = @status, response_headers = @headers, response_body = @resbody, " +
                "description = @description, source_trace_id = @trace, source_span_id = @span, updated_ns = @updated, expires_ns = @expires " +
                "WHERE tenant_id = @t AND id = @id");
            Add(command, "t", tenantId);
            Add(command, "id", mock.Id);
            AddMockValues(command, mock);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
        }, cancellationToken);
    }

    public Task<bool> DeleteMockAsync(long tenantId, long id, CancellationToken cancellationToken) => WriteAsync(async connection =>
    {
        await using var command = Command(connection, null, "DELETE FROM mocks WHERE tenant_id = @t AND id = @id");
        Add(command, "t", tenantId);
        Add(command, "id", id);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }, cancellationToken);

    public Task<MockRecord?> FindMockAsync(long tenantId, IReadOnlyList<string> matchKeys, string service, string? environment, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(matchKeys);
        ArgumentNullException.ThrowIfNull(service);
        if (matchKeys.Count == 0)
        {
            return Task.FromResult<MockRecord?>(null);
        }

        return ReadAsync(async connection =>
        {
            await using var command = Command(connection, null, "");
            var sql = new StringBuilder("SELECT " + MockColumns + " FROM mocks WHERE tenant_id = @t AND match_key IN (");
            Add(command, "t", tenantId);
            for (var i = 0; i < matchKeys.Count; i++)
            {
                var name = "k" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                sql.Append(i == 0 ? "@" : ", @").Append(name);
                Add(command, name, matchKeys[i]);
            }

            sql.Append(") AND (service = @service OR service = '') AND (expires_ns IS NULL OR expires_ns > @now)");
            Add(command, "service", service);
            Add(command, "now", StoreTime.ToNanos(now));
            if (environment is not null)
            {
                sql.Append(" AND (environment = @env OR environment = '')");
                Add(command, "env", environment);
            }

            // Specific beats general: a host-specific, service-specific, environment-specific mock wins.
            sql.Append(" ORDER BY CASE WHEN authority = '' THEN 1 ELSE 0 END, CASE WHEN service = '' THEN 1 ELSE 0 END, ")
                .Append("CASE WHEN environment = '' THEN 1 ELSE 0 END, updated_ns DESC, id DESC LIMIT 1");
            command.CommandText = sql.ToString();
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadMock(reader) : null;
        }, cancellationToken);
    }

    private static void AddMockValues(DbCommand command, MockRecord mock)
    {
        Add(command, "service", mock.Service);
        Add(command, "env", mock.Environment);
        Add(command, "method", mock.Method);
        Add(command, "authority", mock.Authority);
        Add(command, "path", mock.Path);
        Add(command, "query", mock.Query);
        Add(command, "reqbody", mock.RequestBody.IsEmpty ? null : mock.RequestBody.ToArray());
        Add(command, "key", mock.MatchKey);
        Add(command, "status", mock.StatusCode);
        Add(command, "headers", mock.ResponseHeadersJson);
        Add(command, "resbody", mock.ResponseBody.IsEmpty ? null : mock.ResponseBody.ToArray());
        Add(command, "description", mock.Description);
        Add(command, "trace", mock.SourceTraceId);
        Add(command, "span", mock.SourceSpanId);
        Add(command, "updated", StoreTime.ToNanos(mock.UpdatedAt));
        Add(command, "expires", mock.ExpiresAt is { } expires ? StoreTime.ToNanos(expires) : null);
    }

    private static MockRecord ReadMock(DbDataReader r) => new()
    {
        Id = Int64(r, 0),
        Service = r.GetString(1),
        Environment = r.GetString(2),
        Method = r.GetString(3),
        Authority = r.GetString(4),
        Path = r.GetString(5),
        Query = NullableString(r, 6),
        RequestBody = NullableBytes(r, 7) ?? [],
        MatchKey = r.GetString(8),
        StatusCode = Convert.ToInt32(r.GetValue(9), System.Globalization.CultureInfo.InvariantCulture),
        ResponseHeadersJson = r.GetString(10),
        ResponseBody = NullableBytes(r, 11) ?? [],
        Description = NullableString(r, 12),
        SourceTraceId = NullableString(r, 13),
        SourceSpanId = NullableString(r, 14),
        CreatedAt = StoreTime.FromNanos(Int64(r, 15)),
        UpdatedAt = StoreTime.FromNanos(Int64(r, 16)),
        ExpiresAt = r.IsDBNull(17) ? null : StoreTime.FromNanos(Int64(r, 17)),
    };
}
