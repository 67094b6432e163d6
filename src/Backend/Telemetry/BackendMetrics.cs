using System.Collections.Concurrent;
using System.Globalization;
using SpIstio.Core.Metrics;

namespace SpIstio.Backend.Telemetry;

/// <summary>
/// Every backend metric, declared once; the data path keeps the resolved children.
/// </summary>
public sealed class BackendMetrics
{
    private readonly CounterFamily _requests;
    private readonly ConcurrentDictionary<(string Protocol, int Code), Counter> _requestChildren = new();
    private readonly HistogramFamily _httpDuration;
    private readonly CounterFamily _ingestBudgetRefused;
    private readonly ConcurrentDictionary<string, Counter> _ingestBudgetRefusedChildren = new();
    private readonly ConcurrentDictionary<(string Route, int Code), Histogram> _httpChildren = new();

    /// <summary>Declares the backend metrics (and the process metrics) on <paramref name="registry"/>.</summary>
    public BackendMetrics(MetricRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        Registry = registry;
        ProcessMetrics.Register(registry);
        _requests = registry.Counter("sp_ingest_requests_total", "OTLP export requests by protocol (http, grpc) and answer (the HTTP status code, or the gRPC status code number).", "protocol", "code");
        var spans = registry.Counter("sp_ingest_spans_total", "Spans received, by result: stored (committed), rejected (invalid ids), failed (refused under back-pressure or by a store error).", "result");
        SpansStored = spans.WithLabels("stored");
        SpansRejected = spans.WithLabels("rejected");
        SpansFailed = spans.WithLabels("failed");
        QueueDepth = registry.Gauge("sp_ingest_queue_depth", "Spans waiting in the write queue or being committed.").WithLabels();
        CommitDuration = registry.Histogram(
            "sp_ingest_commit_duration_seconds",
            "Time of one group commit (many requests' spans in one transaction).",
            MetricRegistry.ExponentialBuckets(0.001, 2, 14)).WithLabels();
        CommitSpans = registry.Histogram(
            "sp_ingest_commit_spans",
            "Spans per group commit.",
            MetricRegistry.ExponentialBuckets(1, 4, 9)).WithLabels();
        StoreBytes = registry.Gauge("sp_store_bytes", "Bytes the stored spans take, as the store engine reports them.").WithLabels();
        IngestBudgetInFlightBytes = registry.Gauge("sp_ingest_budget_in_flight_bytes", "Bytes reserved by export requests in flight (their bodies times the ingest amplification) out of the ingest budget.").WithLabels();
        _ingestBudgetRefused = registry.Counter("sp_ingest_budget_refused_total", "Export requests refused with 503 + Retry-After (gRPC: UNAVAILABLE) because the ingest budget was spent, by protocol (http, grpc).", "protocol");
        ReadBudgetInFlightBytes = registry.Gauge("sp_read_budget_in_flight_bytes", "Bytes reserved by large span reads in flight (API, HAR, exchange page) out of the shared read budget.").WithLabels();
        ReadBudgetWaiting = registry.Gauge("sp_read_budget_waiting", "Large span reads waiting for the shared read budget.").WithLabels();
        SearchIndexLag = registry.Gauge("sp_search_index_lag_seconds", "Age of the oldest span this backend committed (or found unindexed: a previous run's backlog, another replica's commits) that text search (q) does not find yet; 0 when the post-commit search indexer has caught up.").WithLabels();
        SearchIndexBehind = registry.Gauge("sp_search_index_behind_spans", "Spans (row ids) between the search index's watermark and the last span this backend committed or found unindexed; 0 when the indexer has caught up.").WithLabels();
        ReadsRefused = registry.Counter("sp_read_budget_refused_total", "Large span reads refused with 503 + Retry-After because too many already waited for the read budget.").WithLabels();
        _httpDuration = registry.Histogram(
            "sp_http_request_duration_seconds",
            "Time to answer an HTTP request (query API, UI, ingest), by route template and status code.",
            MetricRegistry.ExponentialBuckets(0.0005, 2, 16),
            "route",
            "code");
    }

    /// <summary>The registry rendered at <c>/metrics</c>.</summary>
    public MetricRegistry Registry { get; }

    /// <summary>Spans committed.</summary>
    public Counter SpansStored { get; }

    /// <summary>Spans refused for invalid ids.</summary>
    public Counter SpansRejected { get; }

    /// <summary>Spans refused under back-pressure or lost to a store error (the exporter retries them).</summary>
    public Counter SpansFailed { get; }

    /// <summary>Spans in the write queue (queued or being committed).</summary>
    public Gauge QueueDepth { get; }

    /// <summary>Duration of each group commit.</summary>
    public Histogram CommitDuration { get; }

    /// <summary>Spans in each group commit.</summary>
    public Histogram CommitSpans { get; }

    /// <summary>Stored bytes, refreshed by the retention job and at scrape.</summary>
    public Gauge StoreBytes { get; }

    /// <summary>Bytes reserved out of the ingest budget now.</summary>
    public Gauge IngestBudgetInFlightBytes { get; }

    /// <summary>Bytes reserved out of the read budget now.</summary>
    public Gauge ReadBudgetInFlightBytes { get; }

    /// <summary>Reads waiting for the read budget now.</summary>
    public Gauge ReadBudgetWaiting { get; }

    /// <summary>Age of the oldest commit not yet searchable by text, refreshed at scrape.</summary>
    public Gauge SearchIndexLag { get; }

    /// <summary>Spans committed but not yet in the text index, refreshed at scrape.</summary>
    public Gauge SearchIndexBehind { get; }

    /// <summary>Refreshes the search-index gauges from <paramref name="progress"/> before each scrape.</summary>
    internal void TrackSearchIndex(Storage.ISearchIndexProgress progress) => Registry.OnCollect(_ =>
    {
        var lag = progress.Lag;
        SearchIndexLag.Set(lag.OldestUnindexed.TotalSeconds);
        SearchIndexBehind.Set(lag.SpansBehind);
    });

    /// <summary>Reads refused because too many waited.</summary>
    public Counter ReadsRefused { get; }

    /// <summary>
    /// The request-duration histogram of a route template (never a raw path: the label must stay
    /// low-cardinality) and status code, resolved once per pair.
    /// </summary>
    public Histogram HttpRequestDuration(string route, int code) =>
        _httpChildren.TryGetValue((route, code), out var histogram)
            ? histogram
            : _httpChildren.GetOrAdd((route, code), static (k, family) => family.WithLabels(k.Route, k.Code.ToString(CultureInfo.InvariantCulture)), _httpDuration);

    /// <summary>The counter of export requests of a protocol refused by the ingest budget.</summary>
    public Counter IngestBudgetRefused(string protocol) =>
        _ingestBudgetRefusedChildren.TryGetValue(protocol, out var counter)
            ? counter
            : _ingestBudgetRefusedChildren.GetOrAdd(protocol, static (p, family) => family.WithLabels(p), _ingestBudgetRefused);

    /// <summary>The request counter of a protocol and answer code, resolved once per pair.</summary>
    public Counter IngestRequests(string protocol, int code) =>
        _requestChildren.TryGetValue((protocol, code), out var counter)
            ? counter
            : _requestChildren.GetOrAdd((protocol, code), static (k, family) => family.WithLabels(k.Protocol, k.Code.ToString(CultureInfo.InvariantCulture)), _requests);
}
