using SpIstio.Core.Model;

namespace SpIstio.Core.Configuration;

/// <summary>
/// The agent's configuration. Keys are the original SP-Istio plugin's <c>pluginConfig</c> keys,
/// verbatim, so an existing configuration loads unchanged; options this project adds use the same
/// snake_case style. Defaults are the original plugin's unless a comment says otherwise.
/// </summary>
public sealed class AgentOptions
{
    [ConfigKey("sp_backend_url", "Base URL of the backend that receives spans (POST {url}/v1/traces) and answers cache lookups. Default http://127.0.0.1:8090, the self-hosted backend's default listen address (the original pointed at its SaaS).")]
    public Uri SpBackendUrl { get; set; } = new("http://127.0.0.1:8090");

    [ConfigKey("public_key", "Key sent as x-public-key with every export; the backend maps it to a tenant. Default empty: the backend rejects unauthenticated exports, so set it.")]
    public string PublicKey { get; set; } = "";

    [ConfigKey("service_name", "Name of the service this agent captures for. Default 'default-service', which means: detect it (x-sp-service-name header, Envoy node metadata, Istio cluster names).")]
    public string ServiceName { get; set; } = ServiceNames.Default;

    [ConfigKey("traffic_direction", "inbound|outbound|server|client|auto. server = inbound, client = outbound. Default auto: decided per stream from Envoy's cluster name (inbound|… / outbound|…).")]
    public DirectionSetting TrafficDirection { get; set; } = DirectionSetting.Auto;

    [ConfigKey("collectionRules", "Which exchanges are captured. Empty rules capture everything.")]
    public CollectionRulesOptions CollectionRules { get; set; } = new();

    [ConfigKey("exemptionRules", "Exchanges never captured, whatever the collection rules say. Default: the OTLP ingest paths, so the agent never captures its own exports.")]
    public List<ExemptionRule> ExemptionRules { get; set; } = ExemptionRule.Defaults();

    [ConfigKey("cache_ttl_seconds", "How long a recorded response may answer a matching request. Default 300 s (the original's).")]
    public int CacheTtlSeconds { get; set; } = 300;

    [ConfigKey("max_cache_size_mb", "Upper bound of the local response cache in MiB, counted in bytes of stored responses. Default 100 (the original's production guide value).")]
    public int MaxCacheSizeMb { get; set; } = 100;

    [ConfigKey("async_timeout_ms", "Timeout of one export request and, when fallback_timeout_ms is not set, of a cache lookup. Default 5000 ms (the original's).")]
    public int AsyncTimeoutMs { get; set; } = 5000;

    [ConfigKey("max_concurrent_requests", "Most export or lookup requests in flight to the backend at once. Default 100 (the original's).")]
    public int MaxConcurrentRequests { get; set; } = 100;

    [ConfigKey("enable_detailed_logging", "Log every exchange at debug level. Default false: per-request logs cost more than the capture itself.")]
    public bool EnableDetailedLogging { get; set; }

    [ConfigKey("fallback_enabled", "On a slow or failed cache lookup, let the request go to its upstream. Default true: an agent fault must never fail traffic.")]
    public bool FallbackEnabled { get; set; } = true;

    [ConfigKey("fallback_timeout_ms", "Hard deadline of asking the cache for a recorded answer, in both front ends (ext_proc never waits past 150 ms, below Envoy's message timeout); past it the request is a miss and goes upstream. Default unset: async_timeout_ms applies.")]
    public int? FallbackTimeoutMs { get; set; }

    [ConfigKey("circuit_breaker", "Stops calling a failing backend for a while.")]
    public CircuitBreakerOptions CircuitBreaker { get; set; } = new();

    [ConfigKey("capture", "Body capture limits and filters (added by this project).")]
    public CaptureOptions Capture { get; set; } = new();

    [ConfigKey("redaction", "What is masked before anything leaves the process (added by this project). On by default.")]
    public RedactionOptions Redaction { get; set; } = new();

    [ConfigKey("sampling", "Which share of traces is captured (added by this project).")]
    public SamplingOptions Sampling { get; set; } = new();

    [ConfigKey("export", "How captured exchanges are queued, batched and sent to the backend (added by this project).")]
    public ExportOptions Export { get; set; } = new();

    [ConfigKey("cache", "Transparent response cache and replay (added by this project). Opt-in: nothing is cached unless a rule matches.")]
    public CacheOptions Cache { get; set; } = new();

    [ConfigKey("proxy", "Limits of the standalone capture proxy, sp agent proxy (added by this project). Envoy's defaults.")]
    public ProxyOptions Proxy { get; set; } = new();

    [ConfigKey("extproc", "Limits of the ext_proc server, sp agent extproc (added by this project): the connections and streams it holds at once.")]
    public ExtProcServerOptions ExtProc { get; set; } = new();
}

/// <summary>The configured traffic direction.</summary>
public enum DirectionSetting
{
    /// <summary>Decide per exchange from what Envoy tells (cluster name, metadata).</summary>
    Auto,

    /// <summary>Every exchange is inbound (also accepted as <c>server</c>).</summary>
    Inbound,

    /// <summary>Every exchange is outbound (also accepted as <c>client</c>).</summary>
    Outbound,
}

/// <summary><c>collectionRules</c>.</summary>
public sealed class CollectionRulesOptions
{
    [ConfigKey("http", "HTTP collection rules.")]
    public HttpCollectionRules Http { get; set; } = new();
}

/// <summary><c>collectionRules.http</c>.</summary>
public sealed class HttpCollectionRules
{
    [ConfigKey("server", "Rules for inbound exchanges: captured when any path regex matches. Empty: all.")]
    public List<ServerRule> Server { get; set; } = [];

    [ConfigKey("client", "Rules for outbound exchanges, first match wins; a matching rule with exclude: true drops the exchange. Empty: all.")]
    public List<ClientRule> Client { get; set; } = [];
}

/// <summary><c>collectionRules.http.server[]</c>.</summary>
public sealed class ServerRule
{
    [ConfigKey("path", "Regex matched against the whole request path (anchored).")]
    public string Path { get; set; } = "";
}

/// <summary><c>collectionRules.http.client[]</c>.</summary>
public sealed class ClientRule
{
    [ConfigKey("host", "Regex matched against the whole host (anchored, port removed). Default '.*'.")]
    public string Host { get; set; } = ".*";

    [ConfigKey("paths", "Regexes matched against the whole path (anchored). Empty: any path.")]
    public List<string> Paths { get; set; } = [];

    [ConfigKey("methods", "HTTP methods, case-insensitive. Empty: any method.")]
    public List<string> Methods { get; set; } = [];

    [ConfigKey("exclude", "When true, a match means: do not capture. Default false.")]
    public bool Exclude { get; set; }
}

/// <summary><c>exemptionRules[]</c>.</summary>
public sealed class ExemptionRule
{
    [ConfigKey("hostPatterns", "Regexes on the host (anchored). Empty: any host.")]
    public List<string> HostPatterns { get; set; } = [];

    [ConfigKey("pathPatterns", "Regexes on the path (anchored). Empty: any path.")]
    public List<string> PathPatterns { get; set; } = [];

    /// <summary>
    /// The OTLP ingest paths in their plain, /api and /otlp forms: an agent must not capture its
    /// own exports (or any other OTLP traffic), or every export would produce another export.
    /// </summary>
    public static List<ExemptionRule> Defaults() =>
    [
        new()
        {
            PathPatterns =
            [
                "/v1/(traces|metrics|logs)",
                "/api/v1/(traces|metrics|logs)",
                "/otlp/v1/(traces|metrics|logs)",
            ],
        },
    ];
}

/// <summary><c>circuit_breaker</c>.</summary>
public sealed class CircuitBreakerOptions
{
    [ConfigKey("max_failures", "Consecutive failed backend calls that open the circuit. Default 5 (the original's).")]
    public int MaxFailures { get; set; } = 5;

    [ConfigKey("timeout_seconds", "Longest wait between trial calls while the circuit is open: the first trial goes after 1 s, each failed one doubles the wait up to this, so a backend that is back gets traffic within seconds. Default 30 s (the original's).")]
    public int TimeoutSeconds { get; set; } = 30;
}

/// <summary><c>capture</c>: body limits and what is not captured at all.</summary>
public sealed class CaptureOptions
{
    /// <summary>64 KiB: enough for nearly every JSON API body, small enough that 1,000 concurrent exchanges stay under 128 MiB.</summary>
    public const int DefaultBodyLimit = 64 * 1024;

    [ConfigKey("max_request_body_bytes", "Most request-body bytes captured per exchange; the rest passes uncaptured and the body is marked truncated. Default 65536.")]
    public int MaxRequestBodyBytes { get; set; } = DefaultBodyLimit;

    [ConfigKey("max_response_body_bytes", "Most response-body bytes captured per exchange. Default 65536.")]
    public int MaxResponseBodyBytes { get; set; } = DefaultBodyLimit;

    [ConfigKey("max_decoded_body_bytes", "Most bytes a gzip/deflate/br body may inflate to when decoded for capture; a decompression bomb stops here. Default 1048576 (16x the capture limit).")]
    public int MaxDecodedBodyBytes { get; set; } = 1024 * 1024;

    [ConfigKey("skip_static_resources", "Do not capture requests for static files (by extension and content type). Default true: they are noise in a session.")]
    public bool SkipStaticResources { get; set; } = true;

    [ConfigKey("skip_prefetch", "Do not capture framework prefetch requests (Next.js RSC / Next-Router-Prefetch, Purpose: prefetch). Default true.")]
    public bool SkipPrefetch { get; set; } = true;

    [ConfigKey("grpc", "gRPC calls (content-type application/grpc…): each length-prefixed message is captured with its direction and time, within these limits.")]
    public GrpcCaptureOptions Grpc { get; set; } = new();

    /// <summary>
    /// Off (0) until measured on a quiet machine: on the shared 2-core machine (load average 10 to 49
    /// from other builds) the 64 KiB open-loop A/B was mixed, better p99 in one pair of rounds and worse
    /// in another, with exchanges dropped (sp_export_dropped_total) where the inline build dropped none (bench/README.md,
    /// "proxydefer"). One thread is the value to try: at 64 KiB bodies the deferred work is some 60 CPU-µs
    /// an exchange by the profiles (redaction's pre-scan ~46, the span encode ~14), far below one core at
    /// the rates the capture proxy reaches on two cores; not yet measured as a worker's own limit.
    /// </summary>
    public const int DefaultWorkerThreads = 0;

    /// <summary>Upper bound of <c>capture.worker_threads</c>: more threads than this would only contend.</summary>
    public const int MaxWorkerThreads = 64;

    [ConfigKey("worker_threads", "Dedicated threads that redact, encode and hand finished exchanges to the exporter, off the threads that serve traffic. They are fed by a queue that may hold a quarter of export.max_inflight_bytes: a burst waits there; past that share the thread that finished the exchange does the work itself, as with 0 (counted in sp_capture_deferred_inline_total), so nothing is dropped for want of idle CPU. Exchanges still queued when shutdown's export.shutdown_flush_ms ends are dropped and counted (sp_capture_deferred_dropped_total). 0: the work runs on the thread that finished the exchange. 0 to 64. Default 0 (1 is the value to try; see bench/README.md, proxydefer).")]
    public int WorkerThreads { get; set; } = DefaultWorkerThreads;

    [ConfigKey("worker_priority", "OS scheduling priority of the capture.worker_threads on Linux: idle (SCHED_IDLE: they run when a core has nothing else to do; the default), low (nice 19) or normal (the traffic's). A process may lower its threads' priority without privileges, so a non-root pod can use any of the three.")]
    public CaptureWorkerPriority WorkerPriority { get; set; } = CaptureWorkerPriority.Idle;

    [ConfigKey("streams", "Server-sent events (text/event-stream responses) and WebSocket connections: each event or message is captured with its time (and a WebSocket message with its direction and opcode), within these limits, while the stream stays live to the client.")]
    public StreamCaptureOptions Streams { get; set; } = new();
}

/// <summary><c>capture.streams</c>: what one server-sent event stream or WebSocket may make the capture hold, and for how long.</summary>
public sealed class StreamCaptureOptions
{
    [ConfigKey("max_events", "Events (SSE) or messages and control frames (WebSocket, both directions together) kept per stream; later ones are counted, not kept. Default 500.")]
    public int MaxEvents { get; set; } = 500;

    [ConfigKey("max_event_bytes", "Most bytes kept of one event's data or one message's payload; it is flagged truncated past it. Default 65536, the body limit.")]
    public int MaxEventBytes { get; set; } = CaptureOptions.DefaultBodyLimit;

    [ConfigKey("max_stream_bytes", "Bytes kept over all events or messages of one stream: a stream that never ends costs at most this. Default 1048576.")]
    public long MaxStreamBytes { get; set; } = 1024 * 1024;

    [ConfigKey("max_duration_ms", "How long a stream is followed: at this deadline the exchange is finished and exported with what was captured (end: deadline), while the stream itself goes on uncaptured. The capture proxy's deadline; ext_proc finishes when Envoy ends the stream. Default 60000.")]
    public int MaxDurationMs { get; set; } = 60_000;
}

/// <summary><c>capture.grpc</c>: what one gRPC stream may make the capture hold.</summary>
public sealed class GrpcCaptureOptions
{
    [ConfigKey("max_message_bytes", "Most bytes kept of one message (after gzip/deflate decoding); the message is flagged truncated past it. Default 65536, the body limit.")]
    public int MaxMessageBytes { get; set; } = CaptureOptions.DefaultBodyLimit;

    [ConfigKey("max_messages", "Messages kept per stream direction; later ones are counted, not kept. Default 100.")]
    public int MaxMessages { get; set; } = 100;

    [ConfigKey("max_stream_bytes", "Bytes kept over all messages of one stream direction: a stream that never ends costs at most this. Default 1048576.")]
    public long MaxStreamBytes { get; set; } = 1024 * 1024;

    [ConfigKey("descriptor_sets", "Descriptor set files (protoc --descriptor_set_out=FILE --include_imports) of the services captured: with them, redaction also replaces message fields by name (string fields named like a secret or personal data; such numeric fields are removed). Patterns in strings are redacted without them. Read at start-up; every unreadable or incomplete file is reported. Default none.")]
    public List<string> DescriptorSets { get; set; } = [];
}

/// <summary><c>redaction</c>.</summary>
public sealed class RedactionOptions
{
    [ConfigKey("enabled", "Redact before anything leaves the process. Default true: secrets never leave the pod unless the operator opts out.")]
    public bool Enabled { get; set; } = true;

    [ConfigKey("mode", "mask (replace with a fixed marker) or hash (keyed HMAC-SHA256, so equal values stay joinable without being readable). Default mask.")]
    public RedactionMode Mode { get; set; } = RedactionMode.Mask;

    [ConfigKey("hash_key", "Secret key for mode: hash and pii: hash. Required with either; keep it in a Secret.")]
    public string HashKey { get; set; } = "";

    [ConfigKey("headers", "Extra header names to redact, on top of the built-in ones (authorization, proxy-authorization, cookie, set-cookie, x-api-key, x-public-key).")]
    public List<string> Headers { get; set; } = [];

    [ConfigKey("keep_headers", "Built-in header names NOT to redact.")]
    public List<string> KeepHeaders { get; set; } = [];

    [ConfigKey("fields", "Extra JSON / form field names to redact (case-insensitive, any depth), on top of the built-in password/secret/token/api key/authorization/card number/cvv/ssn patterns.")]
    public List<string> Fields { get; set; } = [];

    [ConfigKey("keep_fields", "Field names NOT to redact even if a built-in pattern matches.")]
    public List<string> KeepFields { get; set; } = [];

    [ConfigKey("card_numbers", "Mask 13-19 digit numbers that pass the Luhn check anywhere in text bodies. Default true.")]
    public bool CardNumbers { get; set; } = true;

    [ConfigKey("pii", "Personal data (e-mail addresses, phone numbers, any value of a field named like phone/mobile/tel): mask (fixed marker), hash (keyed HMAC-SHA256 of the normalised value, so the same address joins across exchanges; needs hash_key) or keep. Default mask.")]
    public PiiMode Pii { get; set; } = PiiMode.Mask;

    [ConfigKey("pii_fields", "Extra field / header names whose values are personal data (treated as pii), on top of phone/mobile/tel/msisdn.")]
    public List<string> PiiFields { get; set; } = [];

    [ConfigKey("patterns", "Extra regular expressions (.NET syntax, run non-backtracking) whose matches are redacted as secrets in every header, query value and body.")]
    public List<string> Patterns { get; set; } = [];
}

/// <summary>How personal data (e-mail addresses, phone numbers) is treated.</summary>
public enum PiiMode
{
    /// <summary>Replaced by a fixed marker.</summary>
    Mask,

    /// <summary>Replaced by a keyed hash of the normalised value (needs <c>redaction.hash_key</c>).</summary>
    Hash,

    /// <summary>Left readable.</summary>
    Keep,
}

/// <summary>How a redacted value is replaced.</summary>
public enum RedactionMode
{
    /// <summary>Replaced by a fixed marker.</summary>
    Mask,

    /// <summary>Replaced by a keyed hash of the value.</summary>
    Hash,
}

/// <summary><c>sampling</c>.</summary>
public sealed class SamplingOptions
{
    [ConfigKey("ratio", "Share of sessions (or traces, see by) captured, 0.0 to 1.0, decided from a hash of the id so every hop agrees. Default 1.0: capture is the product.")]
    public double Ratio { get; set; } = 1.0;

    [ConfigKey("by", "session or trace: what the ratio keeps whole. session (the default): the decision is a hash of the exchange's session id (the one found on the request, or the one generated at the first hop and relayed in tracestate), so every exchange of a kept session is kept on every hop, as replay needs. trace: the decision is the trace id's, as in OpenTelemetry's TraceIdRatioBased sampler; a session may then be kept in parts.")]
    public SamplingBy By { get; set; } = SamplingBy.Session;
}

/// <summary><c>capture.worker_priority</c>: the OS priority of the capture worker threads.</summary>
public enum CaptureWorkerPriority
{
    /// <summary>SCHED_IDLE: scheduled only when nothing else wants the core.</summary>
    Idle,

    /// <summary>nice 19: the lowest of the normal priorities.</summary>
    Low,

    /// <summary>The traffic's own priority (unchanged).</summary>
    Normal,
}

/// <summary><c>sampling.by</c>: the unit the sampling ratio keeps or drops whole.</summary>
public enum SamplingBy
{
    /// <summary>Business sessions: the decision is a hash of the session id.</summary>
    Session,

    /// <summary>Traces: the decision is the trace id's.</summary>
    Trace,
}

/// <summary><c>export</c>: the exporter's queue, batches, retries and shutdown flush.</summary>
public sealed class ExportOptions
{
    /// <summary>
    /// 1 MiB: a batch's exchanges hold their bytes in <c>export.max_inflight_bytes</c> from when the
    /// first is queued until the whole batch is delivered, so the budget must hold a filling batch
    /// and every one in flight besides the bodies being captured. At 4 MiB (a quarter of the default
    /// budget) the capture proxy at 64 KiB bodies refused exchanges and cut bodies whenever a send
    /// took some tens of milliseconds; at 1 MiB the median held was 0.15 to 0.84 of that in every cell
    /// measured (issue 13, bench/README.md "proxytail"). Against a backend across a network, smaller batches also let more requests be in
    /// flight within the same budget. Small exchanges still fill a batch by count first (512 spans of
    /// 1 KiB bodies are about 0.7 MiB); OTLP receivers commonly take up to 4 MiB or more.
    /// </summary>
    public const int DefaultMaxBatchBytes = 1024 * 1024;

    [ConfigKey("queue_capacity", "Most exchanges waiting for export; when full, new captures are dropped and counted (traffic is never held). Default 10000.")]
    public int QueueCapacity { get; set; } = 10_000;

    [ConfigKey("max_batch_spans", "Most spans in one export request. Default 512 (the OpenTelemetry SDK's batch size).")]
    public int MaxBatchSpans { get; set; } = 512;

    [ConfigKey("max_batch_bytes", "Estimated size (bodies plus headers) at which a batch is sent even if not full by count. A batch holds its exchanges' bytes in export.max_inflight_bytes until it is delivered, so keep it a small part of that budget. Default 1048576 (1 MiB).")]
    public int MaxBatchBytes { get; set; } = DefaultMaxBatchBytes;

    [ConfigKey("batch_delay_ms", "Longest a captured exchange waits for its batch to fill before it is sent. Default 200 ms.")]
    public int BatchDelayMs { get; set; } = 200;

    [ConfigKey("shutdown_flush_ms", "On shutdown, how long queued exchanges may still be sent; the rest go to the disk buffer (export.buffer_path) for the next run, or without one are dropped and counted. Default 5000 ms.")]
    public int ShutdownFlushMs { get; set; } = 5000;

    [ConfigKey("max_retries", "Retries of one failed export request (408, 429, 5xx, network errors, timeouts) with exponential backoff; 400/401/403 are never retried. Default 3.")]
    public int MaxRetries { get; set; } = 3;

    [ConfigKey("ca_file", "PEM file of the certificate authorities the agent trusts for an https:// sp_backend_url, instead of the system's (a private CA outside the mesh). Default empty: the system's trust store. Read at start.")]
    public string CaFile { get; set; } = "";

    [ConfigKey("client_cert_file", "PEM certificate (chain) the agent presents to the backend for mutual TLS outside the mesh, with client_key_file. Default empty: none. Read at start.")]
    public string ClientCertFile { get; set; } = "";

    [ConfigKey("client_key_file", "PEM private key of client_cert_file.")]
    public string ClientKeyFile { get; set; } = "";
    /// <summary>128 MiB: about ten minutes of a busy pod's compressed exports, small next to a node's ephemeral storage.</summary>
    public const long DefaultBufferMaxBytes = 128L * 1024 * 1024;

    [ConfigKey("buffer_path", "Directory where export batches the backend could not take (down, circuit open, shutdown) are written as files and re-sent in order, with backoff, once it answers again, also after an agent restart. Give it a volume of its own (the manifests mount an emptyDir). Default empty: no disk buffer, undeliverable batches are counted failed.")]
    public string BufferPath { get; set; } = "";

    /// <summary>
    /// 16 MiB: 128 exchanges with 64 KiB bodies each way, or thousands of small ones, being captured,
    /// waiting or in flight; the 64 KiB bench cells held under 8 MiB at saturation. The agent's heap
    /// limit follows it (2 × the budget + 48 MiB, set by <c>sp agent</c>), so its peak RSS does too.
    /// </summary>
    public const long DefaultMaxInflightBytes = 16L * 1024 * 1024;

    [ConfigKey("compression", "Content-Encoding of export requests: none, gzip or zstd (level 1; the backend accepts all three). Default none: measured on two cores (bench/README.md, ExportCodecs), encoding a batch plain costs 4 to 20 times less CPU than either codec, and the in-cluster link to the backend is cheap. When the backend is across a metered or slow link choose zstd: it sends 0.21 to 0.25 of the plain bytes for JSON bodies (gzip 0.31 to 0.40) and still compresses incompressible bodies in a fifth of gzip's time; gzip only where a proxy in between cannot pass zstd.")]
    public ExportCompression Compression { get; set; } = ExportCompression.None;

    [ConfigKey("max_inflight_bytes", "Most bytes the agent holds for captured exchanges not yet exported, all together: body buffers being filled while the traffic flows, and exchanges queued or being sent (a small one as its encoded span, counted as the 64 KiB slabs that hold such spans; a large one as its estimated encoded size). A body that does not fit is cut short (sp_capture_budget_exceeded_total), a finished exchange that does not fit is dropped (sp_export_dropped_total); traffic is never held. Bounds capture memory whatever the number of concurrent requests and the body limits; sp agent also caps its managed heap at twice this plus 48 MiB (the capture proxy: plus 16 MiB and 256 KiB for each of proxy.max_connections, the same 48 MiB by default; unless DOTNET_GCHeapHardLimit is set or cache rules are configured). Default 16777216 (16 MiB).")]
    public long MaxInflightBytes { get; set; } = DefaultMaxInflightBytes;

    [ConfigKey("buffer_max_bytes", "Most bytes the disk buffer holds; past it the oldest batches are deleted and counted (sp_export_buffer_dropped_spans_total). At least 1048576. Default 134217728 (128 MiB).")]
    public long BufferMaxBytes { get; set; } = DefaultBufferMaxBytes;
}

/// <summary><c>export.compression</c>: how export request bodies are encoded.</summary>
public enum ExportCompression
{
    /// <summary>Sent as is (Content-Encoding omitted).</summary>
    None,

    /// <summary>gzip at the fastest level.</summary>
    Gzip,

    /// <summary>Zstandard at level 1 (Content-Encoding: zstd, RFC 8878).</summary>
    Zstd,
}

/// <summary><c>cache</c>: which requests the agent may answer from a recorded response.</summary>
public sealed class CacheOptions
{
    [ConfigKey("mode", "What the cache does with the requests its rules cover (a rule's own mode wins). replay (the default): answer from a recording (pulled mock, local store, remote lookup) when one matches, otherwise forward and record the response. record: always forward and record (refreshes recordings; nothing is answered from them). replay_only: nothing reaches an upstream, for test environments that must never call a real provider: a request without a recorded answer, a request no rule covers, a body too large to key and a failed or slow lookup all get the agent's 502 with x-sp-cache: miss-strict and the missing key (x-sp-cache-key), counted in sp_cache_strict_misses_total. Only exclude rules let a request through. ext_proc needs synchronous mode (observability mode cannot answer).")]
    public CacheMode Mode { get; set; } = CacheMode.Replay;

    [ConfigKey("rules", "Cache rules, first match wins; a matching rule with exclude: true means: never cache. Empty: nothing is cached (the cache is opt-in).")]
    public List<CacheRule> Rules { get; set; } = [];

    [ConfigKey("pull_mocks", "Pull this service's mock set (GET {sp_backend_url}/v1/agent/mocks?service=..., ETag/If-None-Match) and answer requests a cache rule matches from it locally, before any remote lookup. A failed pull keeps the last good set. Needs an ingest-scope public_key. Default false.")]
    public bool PullMocks { get; set; }

    [ConfigKey("pull_interval_seconds", "Seconds between two mock-set pulls when pull_mocks is true (1 to 86400). Default 30.")]
    public int PullIntervalSeconds { get; set; } = 30;
}

/// <summary>
/// <c>cache.rules[]</c>: the shape of a <c>collectionRules.http.client[]</c> rule (host, paths,
/// methods, exclude) plus how the request is keyed and which responses are stored.
/// </summary>
public sealed class CacheRule
{
    [ConfigKey("host", "Regex matched against the whole host (anchored, port removed, case-insensitive). Default '.*'.")]
    public string Host { get; set; } = ".*";

    [ConfigKey("paths", "Regexes matched against the whole path (anchored). Empty: any path.")]
    public List<string> Paths { get; set; } = [];

    [ConfigKey("methods", "HTTP methods, case-insensitive. Empty: any method.")]
    public List<string> Methods { get; set; } = [];

    [ConfigKey("exclude", "When true, a match means: do not cache. Default false.")]
    public bool Exclude { get; set; }

    [ConfigKey("ignore_query_params", "Query parameter names left out of the cache key (cache busters, timestamps). Case-sensitive.")]
    public List<string> IgnoreQueryParams { get; set; } = [];

    [ConfigKey("ignore_body_fields", "JSON field names left out of the cache key at any depth (timestamps, nonces, request ids). Case-sensitive.")]
    public List<string> IgnoreBodyFields { get; set; } = [];

    [ConfigKey("vary_headers", "Request header names whose values are part of the cache key (e.g. accept-language, authorization for per-user answers). Default none.")]
    public List<string> VaryHeaders { get; set; } = [];

    [ConfigKey("force", "Store and replay responses even when they say Cache-Control: no-store or private. Default false: the origin's wish is respected.")]
    public bool Force { get; set; }

    [ConfigKey("statuses", "Response status codes that are stored. Empty (the default): every 2xx.")]
    public List<int> Statuses { get; set; } = [];

    [ConfigKey("remote_lookup", "On a local miss, ask the backend (POST {sp_backend_url}/v1/agent/lookup) for a recorded mock, within fallback_timeout_ms. Default false.")]
    public bool RemoteLookup { get; set; }

    [ConfigKey("mode", "record, replay or replay_only for the requests this rule covers (see cache.mode). Default unset: cache.mode applies.")]
    public CacheMode? Mode { get; set; }
}

/// <summary><c>cache.mode</c> and <c>cache.rules[].mode</c>: what the cache does with a request it covers.</summary>
public enum CacheMode
{
    /// <summary>Always forward, and record the response (replacing an older recording).</summary>
    Record,

    /// <summary>Answer from a matching recording; otherwise forward and record.</summary>
    Replay,

    /// <summary>Answer from a matching recording; otherwise refuse with the agent's 502 (<c>x-sp-cache: miss-strict</c>). Nothing reaches an upstream.</summary>
    ReplayOnly,
}
