namespace SpIstio.Backend.Storage;

/// <summary>A tenant: the unit of data isolation.</summary>
/// <param name="Id">Store-assigned id.</param>
/// <param name="Name">Unique name (<c>default</c>, <c>acme</c>).</param>
/// <param name="Retention">How long spans are kept; null means the server default (7 days).</param>
/// <param name="CreatedAt">When it was created.</param>
public sealed record Tenant(long Id, string Name, TimeSpan? Retention, DateTimeOffset CreatedAt);

/// <summary>What a key allows. Admin implies read and ingest.</summary>
[Flags]
public enum KeyScope
{
    /// <summary>Nothing.</summary>
    None = 0,

    /// <summary>Send spans (<c>/v1/traces</c>, lookups).</summary>
    Ingest = 1,

    /// <summary>Query the API and the UI.</summary>
    Read = 2,

    /// <summary>Manage keys, mocks and retention.</summary>
    Admin = 4,
}

/// <summary>An API key as stored: never the key itself, only its SHA-256 hash.</summary>
/// <param name="KeyId">Short public identifier (the key's prefix), shown in lists.</param>
/// <param name="TenantId">The tenant the key belongs to.</param>
/// <param name="KeyHash">SHA-256 of the whole key.</param>
/// <param name="Scopes">What the key allows.</param>
/// <param name="Description">Free text.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="RevokedAt">When it was revoked, or null.</param>
public sealed record ApiKeyRecord(
    string KeyId,
    long TenantId,
    byte[] KeyHash,
    KeyScope Scopes,
    string? Description,
    DateTimeOffset CreatedAt,
    DateTimeOffset? RevokedAt);

/// <summary>
/// One span as stored. Exchange spans (ours or the original agent's) fill the HTTP fields;
/// generic OpenTelemetry spans leave them null and keep their attributes in <see cref="AttributesJson"/>.
/// </summary>
public sealed record StoredSpan
{
    /// <summary>32 lower-case hex digits.</summary>
    public required string TraceId { get; init; }

    /// <summary>16 lower-case hex digits.</summary>
    public required string SpanId { get; init; }

    /// <summary>16 lower-case hex digits, or null for a root span.</summary>
    public string? ParentSpanId { get; init; }

    /// <summary>The span name.</summary>
    public required string Name { get; init; }

    /// <summary>OTLP span kind number (2 SERVER, 3 CLIENT, …).</summary>
    public int Kind { get; init; }

    /// <summary>The resource's (or sp.service.name) service.</summary>
    public required string ServiceName { get; init; }

    /// <summary>Start time.</summary>
    public DateTimeOffset StartTime { get; init; }

    /// <summary>End time.</summary>
    public DateTimeOffset EndTime { get; init; }

    /// <summary>True when the span failed: OTLP status ERROR, or an HTTP status of 500 or more, or an agent-recorded failure.</summary>
    public bool IsError { get; init; }

    /// <summary>True for spans carrying the exchange attributes.</summary>
    public bool IsExchange { get; init; }

    /// <summary>The business session, or null.</summary>
    public string? SessionId { get; init; }

    /// <summary><c>inbound</c> or <c>outbound</c> for exchanges, else null.</summary>
    public string? Direction { get; init; }

    /// <summary>HTTP method.</summary>
    public string? Method { get; init; }

    /// <summary>Scheme.</summary>
    public string? Scheme { get; init; }

    /// <summary>Host and optional port.</summary>
    public string? Authority { get; init; }

    /// <summary>Path without query.</summary>
    public string? Path { get; init; }

    /// <summary>Query without '?', or null.</summary>
    public string? Query { get; init; }

    /// <summary>The route template (<c>/api/flights/{id}</c>) derived from the path, for endpoint statistics.</summary>
    public string? Route { get; init; }

    /// <summary>HTTP response status, or null when none was seen.</summary>
    public int? StatusCode { get; init; }

    /// <summary>For a gRPC call (<c>rpc.system = grpc</c>) its status code (<c>rpc.grpc.status_code</c>), -1 when it ended without one; null for any other span.</summary>
    public int? GrpcStatus { get; init; }

    /// <summary>Request headers as a JSON array of [name, value] pairs.</summary>
    public string? RequestHeadersJson { get; init; }

    /// <summary>Response headers as a JSON array of [name, value] pairs.</summary>
    public string? ResponseHeadersJson { get; init; }

    /// <summary>Captured request body bytes (as captured: decoded when the agent decoded it). The store compresses them.</summary>
    public ReadOnlyMemory<byte> RequestBody { get; init; }

    /// <summary>Captured response body bytes. The store compresses them.</summary>
    public ReadOnlyMemory<byte> ResponseBody { get; init; }

    /// <summary>
    /// Body metadata and every other attribute, as a JSON object keeping the OTLP value types
    /// (<see cref="SpanModelJson"/> describes the encoding: an int is a JSON integer, a double always
    /// carries a fraction or exponent, arrays and maps are JSON arrays and objects).
    /// </summary>
    public string AttributesJson { get; init; } = "{}";

    /// <summary>
    /// The rest of the OpenTelemetry span model, as a JSON object (<see cref="SpanModelJson"/>):
    /// resource attributes, instrumentation scope, status, events, links, trace state, flags and
    /// dropped counts. Null when the span had none of them (old rows, or a span built in code).
    /// </summary>
    public string? ModelJson { get; init; }

    /// <summary>Duration.</summary>
    public TimeSpan Duration => EndTime - StartTime;
}

/// <summary>A span without its bodies and headers: what lists, timelines and waterfalls need.</summary>
public sealed record SpanSummary(
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Name,
    int Kind,
    string ServiceName,
    DateTimeOffset StartTime,
    DateTimeOffset EndTime,
    bool IsError,
    bool IsExchange,
    string? SessionId,
    string? Direction,
    string? Method,
    string? Authority,
    string? Path,
    int? StatusCode)
{
    /// <summary>For a gRPC call its status code, -1 when it ended without one; null for any other span (<see cref="StoredSpan.GrpcStatus"/>).</summary>
    public int? GrpcStatus { get; init; }
}

/// <summary>Filters of the sessions list.</summary>
public sealed record SessionQuery
{
    /// <summary>Only sessions touching this service.</summary>
    public string? Service { get; init; }

    /// <summary>Only sessions with an exchange whose status is in this class (2 = 2xx, 4 = 4xx, 5 = 5xx).</summary>
    public int? StatusClass { get; init; }

    /// <summary>Activity at or after this time.</summary>
    public DateTimeOffset? From { get; init; }

    /// <summary>Activity before this time.</summary>
    public DateTimeOffset? To { get; init; }

    /// <summary>Full-text search over URL, path and body text.</summary>
    public string? Text { get; init; }

    /// <summary>Opaque cursor from the previous page.</summary>
    public string? Cursor { get; init; }

    /// <summary>Page size, 1–500.</summary>
    public int Limit { get; init; } = 50;
}

/// <summary>One page of results and the cursor of the next one (null on the last page).</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);

/// <summary>A session in the list.</summary>
public sealed record SessionSummary(
    string SessionId,
    DateTimeOffset FirstSeen,
    DateTimeOffset LastSeen,
    int SpanCount,
    int TraceCount,
    int ErrorCount,
    IReadOnlyList<string> Services);

/// <summary>Calls from one service to another over a time range; errors and client errors as <see cref="ErrorDefinition"/> says.</summary>
public sealed record ServiceEdge(
    string Caller,
    string Callee,
    long Calls,
    long Errors,
    double P50Ms,
    double P95Ms,
    double P99Ms,
    long ClientErrors = 0);

/// <summary>Statistics of one method + route of one service; errors and client errors as <see cref="ErrorDefinition"/> says.</summary>
public sealed record EndpointStats(
    string Service,
    string Method,
    string Route,
    long Count,
    long Errors,
    double P50Ms,
    double P95Ms,
    double P99Ms,
    long ClientErrors = 0);

/// <summary>One service's own traffic in a range: what it served and how that went, and when it was seen.</summary>
/// <param name="Service">The service.</param>
/// <param name="Spans">Every span of it in the range.</param>
/// <param name="Served">Its server-side spans (not CLIENT, not outbound): the requests it answered.</param>
/// <param name="Errors">Served requests that are errors.</param>
/// <param name="ClientErrors">Served requests answered with a 4xx.</param>
/// <param name="FirstSeen">Its earliest span start in the range.</param>
/// <param name="LastSeen">Its latest span start in the range.</param>
public sealed record ServiceHealth(string Service, long Spans, long Served, long Errors, long ClientErrors, DateTimeOffset FirstSeen, DateTimeOffset LastSeen);

/// <summary>How many rows of one table belong to a tenant (what a purge deletes or deleted).</summary>
/// <param name="Table">The table (<c>spans</c>, <c>sessions</c>, <c>mocks</c>, <c>replay_jobs</c>, <c>api_keys</c>, <c>ui_sessions</c>, <c>codec_dictionaries</c>, <c>tenants</c>).</param>
/// <param name="Rows">Its rows of the tenant.</param>
public sealed record TenantTableRows(string Table, long Rows)
{
    /// <summary>True for what identifies the tenant rather than what it captured (keys, sign-in sessions, codec dictionaries): a purge keeps it unless the tenant is removed.</summary>
    public bool IdentifiesTenant => SqlSpanStore.TenantIdentityTables.Any(t => t.Table == Table);
}
