using SpIstio.Core.Metrics;
using SpIstio.Core.Model;
using SpIstio.Core.Rules;

namespace SpIstio.Agent.Metrics;

/// <summary>
/// Every metric the agent exposes on its admin port, declared once. Children used per request
/// are resolved here at start-up so the data path only does interlocked adds.
/// </summary>
public sealed class AgentMetrics
{
    /// <summary>Outcome label of a captured and queued exchange.</summary>
    public const string OutcomeCaptured = "captured";

    /// <summary>Outcome label of an exchange whose trace was not sampled.</summary>
    public const string OutcomeSampledOut = "sampled_out";

    /// <summary>Outcome label of an exchange that was captured but dropped because the export queue was full.</summary>
    public const string OutcomeDropped = "dropped";

    /// <summary>ext_proc message type labels, in ProcessingRequest oneof order.</summary>
    public static readonly string[] MessageTypes =
        ["request_headers", "response_headers", "request_body", "response_body", "request_trailers", "response_trailers"];

    // Seconds; per-message processing is expected in the tens of microseconds.
    private static readonly double[] _processingBuckets = MetricRegistry.ExponentialBuckets(0.00001, 2, 16);
    private static readonly double[] _batchBuckets = MetricRegistry.ExponentialBuckets(0.001, 2, 14);

    private readonly Counter[,] _requests;
    private readonly Counter[] _messages;
    private readonly Histogram[] _processing;
    private readonly CounterFamily _faults;
    private readonly CounterFamily _exportSpans;
    private readonly CounterFamily _lookupFailures;

    private readonly Dictionary<string, (Counter Messages, Counter Bytes)> _streams;

    /// <summary>Declares the agent's metrics on <paramref name="registry"/> (a new one when null).</summary>
    public AgentMetrics(MetricRegistry? registry = null)
    {
        Registry = registry ?? new MetricRegistry();
        ProcessMetrics.Register(Registry);

        var requests = Registry.Counter(
            "sp_requests_total",
            "Exchanges seen, by direction and outcome (captured, sampled_out, dropped, or the rule decision that skipped it).",
            "direction", "outcome");
        var decisions = Enum.GetValues<CaptureDecision>();
        _requests = new Counter[2, decisions.Length + 2];
        foreach (var direction in new[] { TrafficDirection.Inbound, TrafficDirection.Outbound })
        {
            var d = DirectionLabel(direction);
            var row = (int)direction;
            for (var i = 0; i < decisions.Length; i++)
            {
                _requests[row, i] = requests.WithLabels(d, decisions[i] == CaptureDecision.Capture ? OutcomeCaptured : decisions[i].ToLabel());
            }

            _requests[row, decisions.Length] = requests.WithLabels(d, OutcomeSampledOut);
            _requests[row, decisions.Length + 1] = requests.WithLabels(d, OutcomeDropped);
        }

        ExtProcStreamsActive = Registry.Gauge("sp_extproc_streams_active", "ext_proc streams open now.").WithLabels();
        ExtProcStreamsOpen = Registry.Gauge("sp_extproc_streams_open", "Streams the ext_proc server serves now over all its connections, health checks included (at most extproc.max_streams).").WithLabels();
        ExtProcStreamsRefused = Registry.Counter("sp_extproc_streams_refused_total", "ext_proc streams answered UNAVAILABLE because extproc.max_streams were open (health checks included).").WithLabels();
        ExtProcConnectionsOpen = Registry.Gauge("sp_extproc_connections_open", "Connections the ext_proc server holds open now (at most extproc.max_connections).").WithLabels();
        ExtProcConnectionsRefused = Registry.Counter("sp_extproc_connections_refused_total", "Connections the ext_proc server closed at once because extproc.max_connections were open.").WithLabels();
        var messages = Registry.Counter("sp_extproc_messages_total", "ext_proc messages received, by type.", "type");
        var processing = Registry.Histogram(
            "sp_processing_duration_seconds",
            "Server time spent on one ext_proc message (or one proxied request's capture work), by message type.",
            _processingBuckets,
            "type");
        _messages = new Counter[MessageTypes.Length];
        _processing = new Histogram[MessageTypes.Length];
        for (var i = 0; i < MessageTypes.Length; i++)
        {
            _messages[i] = messages.WithLabels(MessageTypes[i]);
            _processing[i] = processing.WithLabels(MessageTypes[i]);
        }

        CapturesActive = Registry.Gauge("sp_captures_active", "Exchanges being captured now, from their request head until the front end releases their buffers.").WithLabels();
        CaptureBytes = Registry.Counter("sp_capture_bytes_total", "Body bytes copied into captures (after the per-exchange limit).").WithLabels();
        BodyTruncated = Registry.Counter("sp_body_truncated_total", "Bodies cut at the configured capture limit.").WithLabels();
        CaptureBudgetExceeded = Registry.Counter("sp_capture_budget_exceeded_total", "Bodies cut short because the capture byte budget (export.max_inflight_bytes) was full: the rest was counted, not kept.").WithLabels();
        CaptureDeferredQueued = Registry.Gauge("sp_capture_deferred_exchanges", "Finished exchanges waiting for a capture worker (capture.worker_threads) to redact, encode and queue them for export.").WithLabels();
        CaptureDeferredBytes = Registry.Gauge("sp_capture_deferred_bytes", "Bytes the exchanges waiting for a capture worker reserve in export.max_inflight_bytes.").WithLabels();
        CaptureDeferredDropped = Registry.Counter("sp_capture_deferred_dropped_total", "Finished exchanges a capture worker dropped: shutdown's flush deadline passed, or their redaction failed (also counted in sp_export_dropped_total).").WithLabels();
        CaptureDeferredInline = Registry.Counter("sp_capture_deferred_inline_total", "Finished exchanges redacted and queued for export on the thread that finished them, because the capture workers' queue held a quarter of export.max_inflight_bytes (the workers did not get enough idle CPU) or they were stopped.").WithLabels();
        var streamMessages = Registry.Counter(
            "sp_stream_messages_total",
            "Messages of the streams the capture followed, kept or not, by kind (grpc: length-prefixed messages of both directions; sse: events; websocket: messages of both directions), counted when the exchange finishes.",
            "kind");
        var streamBytes = Registry.Counter(
            "sp_stream_bytes_total",
            "Body bytes of the streams the capture followed (both directions; kept or not), by kind (grpc, sse, websocket), counted when the exchange finishes.",
            "kind");
        _streams = new Dictionary<string, (Counter Messages, Counter Bytes)>(StringComparer.Ordinal)
        {
            [StreamKinds.Grpc] = (streamMessages.WithLabels(StreamKinds.Grpc), streamBytes.WithLabels(StreamKinds.Grpc)),
            [StreamKinds.Sse] = (streamMessages.WithLabels(StreamKinds.Sse), streamBytes.WithLabels(StreamKinds.Sse)),
            [StreamKinds.WebSocket] = (streamMessages.WithLabels(StreamKinds.WebSocket), streamBytes.WithLabels(StreamKinds.WebSocket)),
        };

        _exportSpans = Registry.Counter("sp_export_spans_total", "Spans the exporter finished with, by result (exported, rejected, failed; buffered: written to the disk buffer, counted again when re-sent).", "result");
        ExportSpansExported = _exportSpans.WithLabels("exported");
        ExportSpansRejected = _exportSpans.WithLabels("rejected");
        ExportSpansFailed = _exportSpans.WithLabels("failed");
        ExportQueueDepth = Registry.Gauge("sp_export_queue_depth", "Exchanges waiting in the export queue.").WithLabels();
        ExportDropped = Registry.Counter("sp_export_dropped_total", "Exchanges dropped because the export queue or export.max_inflight_bytes was full, or the exporter stopped.").WithLabels();
        ExportBatchDuration = Registry.Histogram(
            "sp_export_batch_duration_seconds",
            "Time to deliver one export batch, retries included.",
            _batchBuckets).WithLabels();
        BackendCircuitOpen = Registry.Gauge("sp_backend_circuit_open", "1 while the circuit breaker to the backend is open.").WithLabels();
        ExportSpansBuffered = _exportSpans.WithLabels("buffered");
        ExportBufferBytes = Registry.Gauge("sp_export_buffer_bytes", "Bytes of undeliverable export batches held in the disk buffer (export.buffer_path).").WithLabels();
        ExportBufferOldestAge = Registry.Gauge("sp_export_buffer_oldest_age_seconds", "Age of the oldest batch in the disk buffer; 0 when it is empty.").WithLabels();
        ExportInflightBytes = Registry.Gauge("sp_export_inflight_bytes", "Bytes held for captured exchanges not yet exported: body buffers being filled, exchanges queued or being sent (bounded by export.max_inflight_bytes).").WithLabels();
        ExportBufferDroppedSpans = Registry.Counter("sp_export_buffer_dropped_spans_total", "Spans of the oldest buffered batches deleted because the disk buffer reached export.buffer_max_bytes.").WithLabels();
        ExportLoopFaults = Registry.Counter("sp_export_loop_faults_total", "Times one of the exporter's loops (batching and sending, or re-sending the disk buffer) failed unexpectedly, out of memory included, and was restarted; each is logged once with its exception.").WithLabels();

        _faults = Registry.Counter(
            "sp_agent_faults_total",
            "Faults the agent recovered from by letting traffic through unchanged (fail open), by kind.",
            "kind");

        ProxyUpstreamErrors = Registry.Counter("sp_proxy_upstream_errors_total", "Proxied requests whose upstream failed (unreachable, reset, timeout).").WithLabels();
        ProxyConnectTunnels = Registry.Counter("sp_proxy_connect_tunnels_total", "CONNECT tunnels passed through uncaptured by the forward proxy.").WithLabels();
        ProxyConnectionsOpen = Registry.Gauge("sp_proxy_connections_open", "Client connections the capture proxy holds open now, its HTTP and gRPC listeners together (at most proxy.max_connections).").WithLabels();
        ProxyConnectionsRefused = Registry.Counter("sp_proxy_connections_refused_total", "Client connections the capture proxy refused because proxy.max_connections were open (HTTP/1.1: 503 with Retry-After; HTTP/2: closed).").WithLabels();
        ProxyGrpcStreamsOpen = Registry.Gauge("sp_proxy_grpc_streams_open", "gRPC streams the capture proxy's gRPC listener serves now, over all its connections (at most proxy.max_grpc_streams).").WithLabels();
        ProxyGrpcStreamsRefused = Registry.Counter("sp_proxy_grpc_streams_refused_total", "gRPC calls the capture proxy answered UNAVAILABLE because proxy.max_grpc_streams were open.").WithLabels();

        CacheHits = Registry.Counter("sp_cache_hits_total", "Requests answered by the agent from a recorded response (local cache or backend lookup).").WithLabels();
        CacheMisses = Registry.Counter("sp_cache_misses_total", "Requests a cache rule matched that went to their upstream.").WithLabels();
        CacheStrictMisses = Registry.Counter("sp_cache_strict_misses_total", "Requests refused with x-sp-cache: miss-strict in cache.mode replay_only: nothing recorded answered them, and nothing was sent upstream.").WithLabels();
        var evictions = Registry.Counter("sp_cache_evictions_total", "Responses removed from the local cache, by reason (size: LRU over max_cache_size_mb; expired: past cache_ttl_seconds).", "reason");
        CacheEvictionsSize = evictions.WithLabels("size");
        CacheEvictionsExpired = evictions.WithLabels("expired");
        CacheBytes = Registry.Gauge("sp_cache_bytes", "Bytes held by the local response cache (bodies, headers and keys).").WithLabels();
        CacheEntries = Registry.Gauge("sp_cache_entries", "Responses held by the local response cache.").WithLabels();
        LookupDuration = Registry.Histogram(
            "sp_lookup_duration_seconds",
            "Time of one remote cache lookup (POST /v1/agent/lookup), failures included.",
            _batchBuckets).WithLabels();
        _lookupFailures = Registry.Counter(
            "sp_lookup_failures_total",
            "Remote cache lookups that gave no answer, by reason (timeout, error, circuit_open, bad_response); each was a miss.",
            "reason");
        var pulls = Registry.Counter(
            "sp_mock_pulls_total",
            "Pulls of the service's mock set (cache.pull_mocks), by result (updated, not_modified, failed; a failed pull keeps the last good set).",
            "result");
        MockPullsUpdated = pulls.WithLabels("updated");
        MockPullsNotModified = pulls.WithLabels("not_modified");
        MockPullsFailed = pulls.WithLabels("failed");
        MockSetSize = Registry.Gauge("sp_mock_set_mocks", "Mocks in the pulled mock set the agent answers from locally.").WithLabels();
    }

    /// <summary>The registry rendered at <c>/metrics</c>.</summary>
    public MetricRegistry Registry { get; }

    /// <summary><c>sp_extproc_streams_active</c>.</summary>
    public Gauge ExtProcStreamsActive { get; }

    /// <summary><c>sp_extproc_streams_open</c>.</summary>
    public Gauge ExtProcStreamsOpen { get; }

    /// <summary><c>sp_extproc_streams_refused_total</c>.</summary>
    public Counter ExtProcStreamsRefused { get; }

    /// <summary><c>sp_extproc_connections_open</c>.</summary>
    public Gauge ExtProcConnectionsOpen { get; }

    /// <summary><c>sp_extproc_connections_refused_total</c>.</summary>
    public Counter ExtProcConnectionsRefused { get; }

    /// <summary><c>sp_captures_active</c>: back to 0 when traffic stops, else an exchange's buffers leaked.</summary>
    public Gauge CapturesActive { get; }

    /// <summary><c>sp_capture_bytes_total</c>.</summary>
    public Counter CaptureBytes { get; }

    /// <summary><c>sp_body_truncated_total</c>.</summary>
    public Counter BodyTruncated { get; }

    /// <summary><c>sp_capture_budget_exceeded_total</c>: bodies cut short for the byte budget.</summary>
    public Counter CaptureBudgetExceeded { get; }

    /// <summary><c>sp_capture_deferred_exchanges</c>: the capture workers' queue, in exchanges.</summary>
    public Gauge CaptureDeferredQueued { get; }

    /// <summary><c>sp_capture_deferred_bytes</c>: the capture workers' queue, in reserved bytes (set when scraped).</summary>
    public Gauge CaptureDeferredBytes { get; }

    /// <summary><c>sp_capture_deferred_dropped_total</c>.</summary>
    public Counter CaptureDeferredDropped { get; }

    /// <summary><c>sp_capture_deferred_inline_total</c>: a steady rise means the workers lack idle CPU.</summary>
    public Counter CaptureDeferredInline { get; }

    /// <summary><c>sp_stream_messages_total{kind}</c>; kinds are <see cref="StreamKinds"/>.</summary>
    public Counter StreamMessages(string kind) => _streams[kind].Messages;

    /// <summary><c>sp_stream_bytes_total{kind}</c>; kinds are <see cref="StreamKinds"/>.</summary>
    public Counter StreamBytes(string kind) => _streams[kind].Bytes;

    /// <summary>Counts one finished stream of <paramref name="kind"/>: its messages and body bytes.</summary>
    public void CountStream(string kind, long messages, long bytes)
    {
        var (messageCounter, byteCounter) = _streams[kind];
        messageCounter.Add(messages);
        byteCounter.Add(bytes);
    }

    /// <summary><c>sp_export_spans_total{result="exported"}</c>.</summary>
    public Counter ExportSpansExported { get; }

    /// <summary><c>sp_export_spans_total{result="rejected"}</c>: refused by the backend (400/401/403, partial success).</summary>
    public Counter ExportSpansRejected { get; }

    /// <summary><c>sp_export_spans_total{result="failed"}</c>: given up after retries or while the circuit was open.</summary>
    public Counter ExportSpansFailed { get; }

    /// <summary><c>sp_export_queue_depth</c>.</summary>
    public Gauge ExportQueueDepth { get; }

    /// <summary><c>sp_export_dropped_total</c>.</summary>
    public Counter ExportDropped { get; }

    /// <summary><c>sp_export_batch_duration_seconds</c>.</summary>
    public Histogram ExportBatchDuration { get; }

    /// <summary><c>sp_backend_circuit_open</c>.</summary>
    public Gauge BackendCircuitOpen { get; }

    /// <summary><c>sp_export_spans_total{result="buffered"}</c>: written to the disk buffer; counted again as exported (or dropped) when re-sent.</summary>
    public Counter ExportSpansBuffered { get; }

    /// <summary><c>sp_export_buffer_bytes</c>.</summary>
    public Gauge ExportBufferBytes { get; }

    /// <summary><c>sp_export_buffer_oldest_age_seconds</c>.</summary>
    public Gauge ExportBufferOldestAge { get; }

    /// <summary><c>sp_export_inflight_bytes</c>.</summary>
    public Gauge ExportInflightBytes { get; }

    /// <summary><c>sp_export_buffer_dropped_spans_total</c>.</summary>
    public Counter ExportBufferDroppedSpans { get; }

    /// <summary><c>sp_export_loop_faults_total</c>: an exporter loop that faulted and was restarted.</summary>
    public Counter ExportLoopFaults { get; }

    /// <summary><c>sp_proxy_upstream_errors_total</c>.</summary>
    public Counter ProxyUpstreamErrors { get; }

    /// <summary><c>sp_proxy_connect_tunnels_total</c>.</summary>
    public Counter ProxyConnectTunnels { get; }

    /// <summary><c>sp_proxy_connections_open</c>.</summary>
    public Gauge ProxyConnectionsOpen { get; }

    /// <summary><c>sp_proxy_connections_refused_total</c>.</summary>
    public Counter ProxyConnectionsRefused { get; }

    /// <summary><c>sp_proxy_grpc_streams_open</c>.</summary>
    public Gauge ProxyGrpcStreamsOpen { get; }

    /// <summary><c>sp_proxy_grpc_streams_refused_total</c>.</summary>
    public Counter ProxyGrpcStreamsRefused { get; }

    /// <summary><c>sp_cache_hits_total</c>.</summary>
    public Counter CacheHits { get; }

    /// <summary><c>sp_cache_strict_misses_total</c>.</summary>
    public Counter CacheStrictMisses { get; }

    /// <summary><c>sp_cache_misses_total</c>.</summary>
    public Counter CacheMisses { get; }

    /// <summary><c>sp_cache_evictions_total{reason="size"}</c>.</summary>
    public Counter CacheEvictionsSize { get; }

    /// <summary><c>sp_cache_evictions_total{reason="expired"}</c>.</summary>
    public Counter CacheEvictionsExpired { get; }

    /// <summary><c>sp_cache_bytes</c>.</summary>
    public Gauge CacheBytes { get; }

    /// <summary><c>sp_cache_entries</c>.</summary>
    public Gauge CacheEntries { get; }

    /// <summary><c>sp_lookup_duration_seconds</c>.</summary>
    public Histogram LookupDuration { get; }

    /// <summary><c>sp_lookup_failures_total{reason}</c>; reasons are timeout, error, circuit_open, bad_response.</summary>
    public Counter LookupFailures(string reason) => _lookupFailures.WithLabels(reason);

    /// <summary>Mock-set pulls that replaced the local set (HTTP 200).</summary>
    public Counter MockPullsUpdated { get; }

    /// <summary>Mock-set pulls answered 304: the set is unchanged.</summary>
    public Counter MockPullsNotModified { get; }

    /// <summary>Mock-set pulls that failed (backend down, 5xx, refused, unreadable); the last good set stays.</summary>
    public Counter MockPullsFailed { get; }

    /// <summary>Mocks in the pulled set.</summary>
    public Gauge MockSetSize { get; }

    /// <summary>The <c>sp_requests_total</c> child for a rule decision.</summary>
    public Counter Requests(TrafficDirection direction, CaptureDecision decision) => _requests[(int)direction, (int)decision];

    /// <summary>The <c>sp_requests_total</c> child for a sampled-out exchange.</summary>
    public Counter RequestsSampledOut(TrafficDirection direction) => _requests[(int)direction, _requests.GetLength(1) - 2];

    /// <summary>The <c>sp_requests_total</c> child for a captured exchange dropped at the export queue.</summary>
    public Counter RequestsDropped(TrafficDirection direction) => _requests[(int)direction, _requests.GetLength(1) - 1];

    /// <summary><c>sp_extproc_messages_total</c> for a message type index (see <see cref="MessageTypes"/>).</summary>
    public Counter Messages(int messageType) => _messages[messageType];

    /// <summary><c>sp_processing_duration_seconds</c> for a message type index (see <see cref="MessageTypes"/>).</summary>
    public Histogram Processing(int messageType) => _processing[messageType];

    /// <summary><c>sp_agent_faults_total{kind}</c>; kinds are a short fixed vocabulary chosen by the caller.</summary>
    public Counter Faults(string kind) => _faults.WithLabels(kind);

    /// <summary>The <c>direction</c> label value.</summary>
    public static string DirectionLabel(TrafficDirection direction) =>
        direction == TrafficDirection.Inbound ? "inbound" : "outbound";
}

/// <summary>The <c>kind</c> label of <c>sp_stream_messages_total</c> and <c>sp_stream_bytes_total</c>.</summary>
public static class StreamKinds
{
    /// <summary>A gRPC call's length-prefixed messages.</summary>
    public const string Grpc = "grpc";

    /// <summary>A server-sent event stream's events.</summary>
    public const string Sse = "sse";

    /// <summary>A WebSocket's messages.</summary>
    public const string WebSocket = "websocket";
}
