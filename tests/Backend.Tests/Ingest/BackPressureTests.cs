using System.Diagnostics;
using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using static SpIstio.Backend.Tests.Infrastructure.OtlpRequests;

namespace SpIstio.Backend.Tests.Ingest;

/// <summary>A full write queue answers 503 + Retry-After; an acknowledged export is committed.</summary>
public sealed class BackPressureTests
{
    [Fact]
    public async Task FullQueue_Answers503WithRetryAfter_AndTheQueuedRequestIsAnsweredOnlyAfterItsCommit()
    {
        var gate = new GatedStore.Gate();
        await using var backend = await BackendFixture.StartAsync(o => o with { QueueCapacity = 2 }, real => new GatedStore(real, gate));
        var first = ActivityTraceId.CreateRandom();
        var firstBody = Wrap("svc", GenericSpan(first, ActivitySpanId.CreateRandom()), GenericSpan(first, ActivitySpanId.CreateRandom())).ToByteArray();

        var firstExport = backend.PostAsync("/v1/traces", backend.AcmeKey, firstBody, "application/x-protobuf");
        await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using var refused = await backend.PostAsync("/v1/traces", backend.AcmeKey, Wrap("svc", GenericSpan(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom())).ToByteArray(), "application/x-protobuf");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter!.Delta);
        Assert.False(firstExport.IsCompleted); // not acknowledged while its commit is held
        Assert.Equal(2, backend.Server.Metrics.QueueDepth.Value);

        gate.Open();
        using var acknowledged = await firstExport;

        Assert.Equal(HttpStatusCode.OK, acknowledged.StatusCode);
        Assert.Equal(2, (await backend.Store.GetTraceAsync(backend.AcmeId, first.ToHexString(), CancellationToken.None)).Count);
        Assert.Equal(1, backend.Server.Metrics.SpansFailed.Value);
    }

    [Fact]
    public async Task FullQueue_OverGrpc_IsUnavailable()
    {
        var gate = new GatedStore.Gate();
        await using var backend = await BackendFixture.StartAsync(o => o with { QueueCapacity = 1 }, real => new GatedStore(real, gate));
        using var channel = GrpcChannel.ForAddress(backend.Server.GrpcAddress!);
        var client = new TraceService.TraceServiceClient(channel);
        var headers = new Metadata { { "x-public-key", backend.AcmeKey } };
        var held = client.ExportAsync(Wrap("svc", GenericSpan(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom())), headers).ResponseAsync;
        await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var error = await Assert.ThrowsAsync<RpcException>(() => client.ExportAsync(Wrap("svc", GenericSpan(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom())), headers).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        gate.Open();
        await held;
    }

    [Fact]
    public async Task FailedCommit_Answers503_SoTheExporterRetries()
    {
        await using var backend = await BackendFixture.StartAsync(wrap: real => new GatedStore(real, null) { FailInserts = true });

        using var response = await backend.PostAsync("/v1/traces", backend.AcmeKey, Wrap("svc", GenericSpan(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom())).ToByteArray(), "application/x-protobuf");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
    }

    [Fact]
    public async Task GrpcKeys_UnknownIsUnauthenticated_ReadOnlyIsPermissionDenied()
    {
        await using var backend = await BackendFixture.StartAsync();
        using var channel = GrpcChannel.ForAddress(backend.Server.GrpcAddress!);
        var client = new TraceService.TraceServiceClient(channel);
        var trace = ActivityTraceId.CreateRandom();
        var request = Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom()));

        var none = await Assert.ThrowsAsync<RpcException>(() => client.ExportAsync(request).ResponseAsync);
        var readOnly = await Assert.ThrowsAsync<RpcException>(() => client.ExportAsync(request, new Metadata { { "x-public-key", backend.AcmeReadOnlyKey } }).ResponseAsync);

        Assert.Equal(StatusCode.Unauthenticated, none.StatusCode);
        Assert.Equal(StatusCode.PermissionDenied, readOnly.StatusCode);
        Assert.Empty(await backend.Store.GetTraceAsync(backend.AcmeId, trace.ToHexString(), CancellationToken.None));
    }

    [Fact]
    public async Task GrpcPartialSuccess_ReportsRejectedSpans()
    {
        await using var backend = await BackendFixture.StartAsync();
        using var channel = GrpcChannel.ForAddress(backend.Server.GrpcAddress!);
        var client = new TraceService.TraceServiceClient(channel);
        var bad = GenericSpan(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom());
        bad.TraceId = ByteString.CopyFrom(1, 2, 3);

        var response = await client.ExportAsync(Wrap("svc", bad, GenericSpan(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom())), new Metadata { { "authorization", "Bearer " + backend.AcmeKey } });

        Assert.Equal(1, response.PartialSuccess.RejectedSpans);
        Assert.Contains("trace_id", response.PartialSuccess.ErrorMessage, StringComparison.Ordinal);
    }
}

/// <summary>
/// The real store with its inserts held at a gate (or failing), to make a commit slow or fail on
/// purpose; every other call goes straight through.
/// </summary>
internal sealed class GatedStore(ISpanStore inner, GatedStore.Gate? gate) : ISpanStore
{
    public bool FailInserts { get; init; }

    /// <summary>When set, every full span read waits for it (reads in flight hold their read-budget share).</summary>
    public Gate? ReadGate { get; init; }

    /// <summary>When set, the first request's encoding (<see cref="PrepareSpansAsync"/>) waits for it; later ones go through.</summary>
    public Gate? FirstPrepareGate { get; init; }

    private int _prepares;

    public string Kind => inner.Kind;

    public async ValueTask<PreparedSpans> PrepareSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken)
    {
        if (FirstPrepareGate is { } held && Interlocked.Increment(ref _prepares) == 1)
        {
            held.Enter();
            await held.Released.Task;
        }

        return PreparedSpans.Unprepared(tenantId, spans);
    }

    /// <summary>The group commits ingest may run at once: the real store's unless a test says otherwise.</summary>
    public int IngestWriters { get; init; } = inner.IngestWriters;

    public async Task<int> InsertSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken)
    {
        if (FailInserts)
        {
            throw new IOException("disk full");
        }

        if (gate is null)
        {
            return await inner.InsertSpansAsync(tenantId, spans, cancellationToken);
        }

        gate.Enter();
        try
        {
            await gate.Released.Task;
            return await inner.InsertSpansAsync(tenantId, spans, cancellationToken);
        }
        finally
        {
            gate.Leave();
        }
    }

    public Task MigrateAsync(CancellationToken cancellationToken) => inner.MigrateAsync(cancellationToken);
    public Task<Tenant> EnsureTenantAsync(string name, CancellationToken cancellationToken) => inner.EnsureTenantAsync(name, cancellationToken);
    public Task<Tenant?> FindTenantAsync(string name, CancellationToken cancellationToken) => inner.FindTenantAsync(name, cancellationToken);
    public Task<IReadOnlyList<Tenant>> ListTenantsAsync(CancellationToken cancellationToken) => inner.ListTenantsAsync(cancellationToken);
    public Task SetRetentionAsync(long tenantId, TimeSpan? retention, CancellationToken cancellationToken) => inner.SetRetentionAsync(tenantId, retention, cancellationToken);
    public Task AddApiKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken) => inner.AddApiKeyAsync(key, cancellationToken);
    public Task<ApiKeyRecord?> FindApiKeyAsync(byte[] keyHash, CancellationToken cancellationToken) => inner.FindApiKeyAsync(keyHash, cancellationToken);
    public Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(long tenantId, CancellationToken cancellationToken) => inner.ListApiKeysAsync(tenantId, cancellationToken);
    public Task AddTraceViewSessionAsync(TraceViewSessionRecord session, CancellationToken cancellationToken) => inner.AddTraceViewSessionAsync(session, cancellationToken);
    public Task<TraceViewSessionRecord?> FindTraceViewSessionAsync(byte[] idHash, CancellationToken cancellationToken) => inner.FindTraceViewSessionAsync(idHash, cancellationToken);
    public Task TouchTraceViewSessionAsync(byte[] idHash, DateTimeOffset seenAt, CancellationToken cancellationToken) => inner.TouchTraceViewSessionAsync(idHash, seenAt, cancellationToken);
    public Task<bool> DeleteTraceViewSessionAsync(byte[] idHash, CancellationToken cancellationToken) => inner.DeleteTraceViewSessionAsync(idHash, cancellationToken);
    public Task<long> DeleteTraceViewSessionsIdleSinceAsync(DateTimeOffset cutoff, CancellationToken cancellationToken) => inner.DeleteTraceViewSessionsIdleSinceAsync(cutoff, cancellationToken);
    public Task<IReadOnlyList<string>> ListDataProtectionKeysAsync(CancellationToken cancellationToken) => inner.ListDataProtectionKeysAsync(cancellationToken);
    public Task AddDataProtectionKeyAsync(string name, string xml, CancellationToken cancellationToken) => inner.AddDataProtectionKeyAsync(name, xml, cancellationToken);
    public Task<bool> RevokeApiKeyAsync(long tenantId, string keyId, CancellationToken cancellationToken) => inner.RevokeApiKeyAsync(tenantId, keyId, cancellationToken);
    public Task<MockRecord> AddMockAsync(long tenantId, MockRecord mock, CancellationToken cancellationToken) => inner.AddMockAsync(tenantId, mock, cancellationToken);
    public Task<MockRecord?> GetMockAsync(long tenantId, long id, CancellationToken cancellationToken) => inner.GetMockAsync(tenantId, id, cancellationToken);
    public Task<Page<MockRecord>> ListMocksAsync(long tenantId, MockQuery query, CancellationToken cancellationToken) => inner.ListMocksAsync(tenantId, query, cancellationToken);
    public Task<bool> UpdateMockAsync(long tenantId, MockRecord mock, CancellationToken cancellationToken) => inner.UpdateMockAsync(tenantId, mock, cancellationToken);
    public Task<bool> DeleteMockAsync(long tenantId, long id, CancellationToken cancellationToken) => inner.DeleteMockAsync(tenantId, id, cancellationToken);
    public Task<MockRecord?> FindMockAsync(long tenantId, IReadOnlyList<string> matchKeys, string service, string? environment, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.FindMockAsync(tenantId, matchKeys, service, environment, now, cancellationToken);
    public Task<Page<SessionSummary>> ListSessionsAsync(long tenantId, SessionQuery query, CancellationToken cancellationToken) => inner.ListSessionsAsync(tenantId, query, cancellationToken);
    public Task<IReadOnlyList<SpanSummary>?> GetSessionAsync(long tenantId, string sessionId, CancellationToken cancellationToken) => inner.GetSessionAsync(tenantId, sessionId, cancellationToken);
    public Task<IReadOnlyList<SpanSummary>> GetTraceAsync(long tenantId, string traceId, CancellationToken cancellationToken) => inner.GetTraceAsync(tenantId, traceId, cancellationToken);
    public async Task<StoredSpan?> GetSpanAsync(long tenantId, string traceId, string spanId, CancellationToken cancellationToken)
    {
        if (ReadGate is not null)
        {
            ReadGate.Entered.TrySetResult();
            await ReadGate.Released.Task;
        }

        return await inner.GetSpanAsync(tenantId, traceId, spanId, cancellationToken);
    }

    public Task<long?> GetSpanSizeAsync(long tenantId, string traceId, string spanId, CancellationToken cancellationToken) => inner.GetSpanSizeAsync(tenantId, traceId, spanId, cancellationToken);
    public Task<IReadOnlyList<ServiceHealth>> GetServiceHealthAsync(long tenantId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) => inner.GetServiceHealthAsync(tenantId, from, to, cancellationToken);
    public Task<TracePage> SearchTracesAsync(long tenantId, TraceQuery query, CancellationToken cancellationToken) => inner.SearchTracesAsync(tenantId, query, cancellationToken);
    public Task<IReadOnlyList<StoredSpan>> GetTraceSpansAsync(long tenantId, string traceId, CancellationToken cancellationToken) => inner.GetTraceSpansAsync(tenantId, traceId, cancellationToken);
    public Task<IReadOnlyList<ServiceEdge>> GetServiceGraphAsync(long tenantId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) => inner.GetServiceGraphAsync(tenantId, from, to, cancellationToken);
    public Task<IReadOnlyList<EndpointStats>> GetEndpointsAsync(long tenantId, string? service, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) => inner.GetEndpointsAsync(tenantId, service, from, to, cancellationToken);
    public Task<long> DeleteOlderThanAsync(long tenantId, DateTimeOffset cutoff, CancellationToken cancellationToken) => inner.DeleteOlderThanAsync(tenantId, cutoff, cancellationToken);

    public Task<long> DeleteSessionAsync(long tenantId, string sessionId, CancellationToken cancellationToken) => inner.DeleteSessionAsync(tenantId, sessionId, cancellationToken);

    public Task<IReadOnlyList<TenantTableRows>> CountTenantDataAsync(long tenantId, CancellationToken cancellationToken) => inner.CountTenantDataAsync(tenantId, cancellationToken);

    public Task<IReadOnlyList<TenantTableRows>> PurgeTenantAsync(long tenantId, bool removeTenant, IProgress<TenantTableRows>? progress, CancellationToken cancellationToken) =>
        inner.PurgeTenantAsync(tenantId, removeTenant, progress, cancellationToken);
    public Task<long> GetStoredBytesAsync(CancellationToken cancellationToken) => inner.GetStoredBytesAsync(cancellationToken);
    public Task<long> DeleteOldestAsync(long bytes, CancellationToken cancellationToken) => inner.DeleteOldestAsync(bytes, cancellationToken);
    public ValueTask DisposeAsync() => inner.DisposeAsync();

    /// <summary>Holds inserts until opened; disposing opens it (declared after the backend, so a failed assertion does not leave the backend's drain waiting).</summary>
    internal sealed class Gate : IDisposable
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Set once two inserts are inside at the same time (held at the gate or inserting).</summary>
        public TaskCompletionSource TwoInside { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private int _inside;

        public void Open() => Released.TrySetResult();

        public void Dispose() => Open();

        public void Enter()
        {
            if (Interlocked.Increment(ref _inside) >= 2)
            {
                TwoInside.TrySetResult();
            }

            Entered.TrySetResult();
        }

        public void Leave() => Interlocked.Decrement(ref _inside);
    }
}
