namespace SpIstio.Backend.Storage;

/// <summary>
/// The whole store, implemented by SQLite (the embedded default) and PostgreSQL (production): one
/// interface per concern — <see cref="ISpanQueryStore"/> (spans and queries), <see cref="IRetentionStore"/>,
/// <see cref="ITenantKeyStore"/> (tenants and keys), <see cref="IMockStore"/>, <see cref="ITraceViewSessionStore"/>
/// — which callers take one at a time. Every read and write is scoped by a tenant id: no method
/// returns another tenant's rows. Both implementations pass the same contract test suite.
/// </summary>
public interface ISpanStore : ISpanQueryStore, IRetentionStore, ITenantKeyStore, IMockStore, ITraceViewSessionStore, IAsyncDisposable
{
    /// <summary><c>sqlite</c> or <c>postgres</c>.</summary>
    string Kind { get; }

    /// <summary>Applies the versioned schema migrations not yet applied; safe to call on every start.</summary>
    Task MigrateAsync(CancellationToken cancellationToken);
}

/// <summary>Spans in and queries out (all newest first unless said otherwise): ingest's group commit and every read of the API and the Trace View.</summary>
public interface ISpanQueryStore
{

    /// <summary>
    /// Stores spans atomically and durably: when the task completes they are committed (a
    /// 200 to the exporter may follow); when it fails, none of them is stored. A span whose
    /// (trace id, span id) already exists for the tenant replaces nothing and is skipped, so a
    /// retried export does not duplicate.
    /// </summary>
    Task<int> InsertSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken);

    /// <summary>
    /// Does the part of <see cref="InsertSpansAsync"/> that needs no writer (compression, search
    /// text) ahead of it, for <see cref="InsertPreparedAsync"/>; stores nothing. Ingest prepares
    /// each request on a thread of its own, so concurrent requests encode in parallel and only
    /// insert in turn. A store with nothing to prepare returns the spans as they are.
    /// </summary>
    ValueTask<PreparedSpans> PrepareSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken) =>
        ValueTask.FromResult(PreparedSpans.Unprepared(tenantId, spans));

    /// <summary>
    /// <see cref="InsertSpansAsync"/> of prepared batches of <paramref name="tenantId"/>, in their
    /// order, in one transaction (ingest's group commit): all of them are committed, or none.
    /// </summary>
    Task<int> InsertPreparedAsync(long tenantId, IReadOnlyList<PreparedSpans> batches, CancellationToken cancellationToken) =>
        InsertSpansAsync(tenantId, PreparedSpans.Concat(batches), cancellationToken);

    /// <summary>
    /// How many group commits ingest may run at once. One where the engine has a single writer
    /// (SQLite); more where concurrent transactions commit together, so that one batch is copied
    /// while another waits for its commit's flush.
    /// </summary>
    int IngestWriters => 1;


    /// <summary>Sessions matching the query, newest activity first, with a cursor to the next page.</summary>
    Task<Page<SessionSummary>> ListSessionsAsync(long tenantId, SessionQuery query, CancellationToken cancellationToken);

    /// <summary>
    /// Traces with a span matching every filter of <paramref name="query"/>, newest matching span
    /// first, each listed once, with a cursor to the next page. Works for any trace, with or without
    /// a session. One call examines a bounded number of spans (<see cref="TracePage.ScanLimited"/>).
    /// </summary>
    Task<TracePage> SearchTracesAsync(long tenantId, TraceQuery query, CancellationToken cancellationToken);

    /// <summary>A session's spans (without bodies) in start-time order, or null when unknown.</summary>
    Task<IReadOnlyList<SpanSummary>?> GetSessionAsync(long tenantId, string sessionId, CancellationToken cancellationToken);

    /// <summary>A trace's spans (without bodies) in start-time order; empty when unknown.</summary>
    Task<IReadOnlyList<SpanSummary>> GetTraceAsync(long tenantId, string traceId, CancellationToken cancellationToken);

    /// <summary>
    /// A trace's spans in start-time order with their attributes and span model (<see cref="StoredSpan.ModelJson"/>)
    /// but without headers and bodies; empty when unknown.
    /// </summary>
    Task<IReadOnlyList<StoredSpan>> GetTraceSpansAsync(long tenantId, string traceId, CancellationToken cancellationToken);

    /// <summary>One span in full (headers, decompressed bodies, attributes, span model), or null.</summary>
    Task<StoredSpan?> GetSpanAsync(long tenantId, string traceId, string spanId, CancellationToken cancellationToken);

    /// <summary>
    /// What one span's headers, bodies and attributes decode to, in bytes, read without decoding
    /// them (readers reserve this much of the read budget first); null when the span is not stored.
    /// A store that cannot tell answers <see cref="long.MaxValue"/>: the read then runs alone.
    /// </summary>
    Task<long?> GetSpanSizeAsync(long tenantId, string traceId, string spanId, CancellationToken cancellationToken) =>
        Task.FromResult<long?>(long.MaxValue);

    /// <summary>Caller → callee edges with call counts, errors and latency percentiles in the range.</summary>
    Task<IReadOnlyList<ServiceEdge>> GetServiceGraphAsync(long tenantId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken);

    /// <summary>Every service with spans in the range (callers, callees and services that call no one), with what it served and when it was seen.</summary>
    Task<IReadOnlyList<ServiceHealth>> GetServiceHealthAsync(long tenantId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken);

    /// <summary>Per service, method and route statistics in the range; all services when <paramref name="service"/> is null.</summary>
    Task<IReadOnlyList<EndpointStats>> GetEndpointsAsync(long tenantId, string? service, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken);
}

/// <summary>Retention and deletion: what the retention job deletes, how big the store is, and deleting personal data on request (a session, a tenant).</summary>
public interface IRetentionStore
{
    /// <summary>
    /// Claims the retention pass among every backend sharing this store: null when another one
    /// holds it (that replica's pass covers every tenant, so this one skips); dispose to release.
    /// A store only one process writes (SQLite) always grants it.
    /// </summary>
    Task<IAsyncDisposable?> TryClaimRetentionAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IAsyncDisposable?>(NoClaim.Instance);


    /// <summary>Deletes a tenant's spans that started before <paramref name="cutoff"/>; returns how many.</summary>
    Task<long> DeleteOlderThanAsync(long tenantId, DateTimeOffset cutoff, CancellationToken cancellationToken);

    /// <summary>Bytes the stored spans take (bodies, headers, indexes as the engine reports them).</summary>
    Task<long> GetStoredBytesAsync(CancellationToken cancellationToken);

    /// <summary>Deletes the oldest spans of all tenants, at least <paramref name="bytes"/> worth of stored data; returns how many spans.</summary>
    Task<long> DeleteOldestAsync(long bytes, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes the tenant's spans carrying this session id (with their search entries) and the
    /// session's roll-up, in bounded transactions; returns how many spans (0: no such session).
    /// </summary>
    Task<long> DeleteSessionAsync(long tenantId, string sessionId, CancellationToken cancellationToken);

    /// <summary>How many rows each table holds for the tenant, spans first, keys last: what a purge would delete.</summary>
    Task<IReadOnlyList<TenantTableRows>> CountTenantDataAsync(long tenantId, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes everything the tenant captured (spans, search entries, session roll-ups, mocks), and
    /// with <paramref name="removeTenant"/> its keys and the tenant itself, in bounded transactions,
    /// reporting the running count per table to <paramref name="progress"/>; returns the rows deleted per table.
    /// </summary>
    Task<IReadOnlyList<TenantTableRows>> PurgeTenantAsync(long tenantId, bool removeTenant, IProgress<TenantTableRows>? progress, CancellationToken cancellationToken);
}

/// <summary>Tenants and their API keys (only hashes).</summary>
public interface ITenantKeyStore
{

    /// <summary>Returns the tenant with this name, creating it when missing.</summary>
    Task<Tenant> EnsureTenantAsync(string name, CancellationToken cancellationToken);

    /// <summary>The tenant with this name, or null.</summary>
    Task<Tenant?> FindTenantAsync(string name, CancellationToken cancellationToken);

    /// <summary>All tenants (retention job, admin).</summary>
    Task<IReadOnlyList<Tenant>> ListTenantsAsync(CancellationToken cancellationToken);

    /// <summary>Sets a tenant's retention; null means the server default.</summary>
    Task SetRetentionAsync(long tenantId, TimeSpan? retention, CancellationToken cancellationToken);

    /// <summary>Stores a new key (only its hash). Fails if the hash already exists.</summary>
    Task AddApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken);

    /// <summary>The key with this SHA-256 hash, revoked or not, or null.</summary>
    Task<ApiKeyRecord?> FindApiKeyAsync(byte[] keyHash, CancellationToken cancellationToken);

    /// <summary>A tenant's keys, newest first.</summary>
    Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(long tenantId, CancellationToken cancellationToken);

    /// <summary>Marks a key revoked; false when the tenant has no such key.</summary>
    Task<bool> RevokeApiKeyAsync(long tenantId, string keyId, CancellationToken cancellationToken);
}

/// <summary>Mocks: recorded responses the agents' lookups and mock pulls are answered from.</summary>
public interface IMockStore
{

    /// <summary>Stores a new mock for the tenant; returns it with its assigned id.</summary>
    Task<MockRecord> AddMockAsync(long tenantId, MockRecord mock, CancellationToken cancellationToken);

    /// <summary>The tenant's mock with this id, or null.</summary>
    Task<MockRecord?> GetMockAsync(long tenantId, long id, CancellationToken cancellationToken);

    /// <summary>The tenant's mocks matching the query, oldest first (ids ascending).</summary>
    Task<Page<MockRecord>> ListMocksAsync(long tenantId, MockQuery query, CancellationToken cancellationToken);

    /// <summary>Replaces the tenant's mock with <paramref name="mock"/>'s id; false when there is none.</summary>
    Task<bool> UpdateMockAsync(long tenantId, MockRecord mock, CancellationToken cancellationToken);

    /// <summary>Deletes the tenant's mock; false when there is none.</summary>
    Task<bool> DeleteMockAsync(long tenantId, long id, CancellationToken cancellationToken);

    /// <summary>
    /// The best live mock (not expired at <paramref name="now"/>) whose match key is one of
    /// <paramref name="matchKeys"/>, for <paramref name="service"/> (or any service) and, when
    /// given, <paramref name="environment"/> (or any environment): host-specific before any-host,
    /// service-specific before any-service, then the most recently updated. Null when none.
    /// </summary>
    Task<MockRecord?> FindMockAsync(long tenantId, IReadOnlyList<string> matchKeys, string service, string? environment, DateTimeOffset now, CancellationToken cancellationToken);
}


/// <summary>The claim of a store with a single writer: nothing to release.</summary>
internal sealed class NoClaim : IAsyncDisposable
{
    public static readonly NoClaim Instance = new();

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
