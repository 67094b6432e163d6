using SpIstio.Backend.Telemetry;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Backend.Ingest;

/// <summary>What became of an export request after authentication and parsing.</summary>
public enum IngestStatus
{
    /// <summary>Every valid span is committed (the answer may still report rejected spans).</summary>
    Accepted,

    /// <summary>The write queue is full; nothing was stored; the exporter should retry later.</summary>
    QueueFull,

    /// <summary>The store failed the commit; nothing was stored; the exporter should retry later.</summary>
    StoreFailed,
}

/// <summary>The protocol-independent part of ingest: convert, queue, await the commit, build the answer.</summary>
public sealed class IngestService
{
    private readonly IngestQueue _queue;
    private readonly BackendMetrics _metrics;
    private readonly TimeProvider _timeProvider;
    private readonly int _maxAttributeBytes;

    /// <summary>Creates the service over a write queue.</summary>
    /// <param name="queue">Commits the spans.</param>
    /// <param name="metrics">Rejection and failure counters.</param>
    /// <param name="timeProvider">The clock span times are checked against.</param>
    /// <param name="maxAttributeBytes">The most one attribute value may hold; longer ones are truncated and flagged.</param>
    public IngestService(IngestQueue queue, BackendMetrics metrics, TimeProvider timeProvider, int maxAttributeBytes)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _queue = queue;
        _metrics = metrics;
        _timeProvider = timeProvider;
        _maxAttributeBytes = maxAttributeBytes;
    }

    /// <summary>How long an exporter refused under back-pressure is asked to wait, in seconds.</summary>
    public const int RetryAfterSeconds = 1;

    /// <summary>What an export over the body limit is told (HTTP 413, gRPC RESOURCE_EXHAUSTED).</summary>
    internal static string OverLimitMessage(long maxBodyBytes) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the body exceeds the limit of {maxBodyBytes} bytes (counted after decompression)");

    /// <summary>
    /// Converts <paramref name="request"/>'s spans for <paramref name="tenantId"/> and queues the valid
    /// ones; <see cref="IngestSubmission.CompleteAsync"/> waits for their commit. Synchronous, so a
    /// caller that drops the request (and the body it was parsed from) as soon as this returns holds
    /// nothing of it while the spans wait for their commit.
    /// </summary>
    public IngestSubmission Submit(long tenantId, ExportTraceServiceRequest request)
    {
        var result = SpanConverter.Convert(request, new ConversionLimits(_maxAttributeBytes, _timeProvider.GetUtcNow()));
        var response = new ExportTraceServiceResponse();
        if (result.Rejected > 0)
        {
            _metrics.SpansRejected.Add(result.Rejected);
            // The spec: partial_success is set only when something was rejected.
            response.PartialSuccess = new ExportTracePartialSuccess { RejectedSpans = result.Rejected, ErrorMessage = result.ErrorMessage };
        }

        if (result.Spans.Count == 0)
        {
            return new IngestSubmission(IngestStatus.Accepted, response, null);
        }

        if (!_queue.TryEnqueue(tenantId, result.Spans, out var committed))
        {
            _metrics.SpansFailed.Add(result.Spans.Count);
            return new IngestSubmission(IngestStatus.QueueFull, response, null);
        }

        return new IngestSubmission(IngestStatus.Accepted, response, committed);
    }
}

/// <summary>An export request's spans converted and, unless refused, queued for their commit (<see cref="IngestService.Submit"/>).</summary>
public sealed class IngestSubmission
{
    private readonly IngestStatus _status;
    private readonly Task? _committed;

    internal IngestSubmission(IngestStatus status, ExportTraceServiceResponse response, Task? committed)
    {
        _status = status;
        Response = response;
        _committed = committed;
    }

    /// <summary>The OTLP answer (partial success names the spans refused one by one).</summary>
    public ExportTraceServiceResponse Response { get; }

    /// <summary>Waits for the queued spans' commit: what became of the request.</summary>
    public async Task<IngestStatus> CompleteAsync()
    {
        if (_committed is null)
        {
            return _status;
        }

        try
        {
            await _committed.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Already logged and counted by the writer; the exporter retries the whole request.
            return IngestStatus.StoreFailed;
        }

        return IngestStatus.Accepted;
    }
}
