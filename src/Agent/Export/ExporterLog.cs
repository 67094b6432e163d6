using Microsoft.Extensions.Logging;

namespace SpIstio.Agent.Export;

/// <summary>
/// The exporter's log messages. The exporter logs changes (a new kind of failure, the circuit
/// opening or closing, recovery), never one line per batch: a down backend must not flood the
/// pod's logs at the batch rate.
/// </summary>
internal static partial class ExporterLog
{
    [LoggerMessage(100, LogLevel.Information, "Exporting to {Endpoint}: queue {QueueCapacity}, batches of up to {MaxBatchSpans} spans / {MaxBatchBytes} bytes every {BatchDelayMs} ms, {MaxConcurrent} requests in flight")]
    public static partial void Started(ILogger logger, Uri endpoint, int queueCapacity, int maxBatchSpans, int maxBatchBytes, int batchDelayMs, int maxConcurrent);

    [LoggerMessage(101, LogLevel.Warning, "Export to the backend failed ({Reason}); {Spans} spans dropped. Further failures of this kind are not logged until exports recover.")]
    public static partial void ExportFailing(ILogger logger, string reason, int spans);

    [LoggerMessage(102, LogLevel.Information, "Export to the backend recovered")]
    public static partial void ExportRecovered(ILogger logger);

    [LoggerMessage(103, LogLevel.Error, "The backend rejected an export with HTTP {Status}; spans rejected with this status are dropped without retry. Check sp_backend_url and public_key. Body: {Body}")]
    public static partial void ExportRejected(ILogger logger, int status, string body);

    [LoggerMessage(104, LogLevel.Warning, "The backend accepted an export partially: {Rejected} of {Spans} spans rejected ({Message})")]
    public static partial void PartialSuccess(ILogger logger, long rejected, int spans, string message);

    [LoggerMessage(105, LogLevel.Warning, "Circuit to the backend opened: exports fail fast for {BreakSeconds} s, then one trial export")]
    public static partial void CircuitOpened(ILogger logger, double breakSeconds);

    [LoggerMessage(106, LogLevel.Information, "Circuit to the backend half-open: sending one trial export")]
    public static partial void CircuitHalfOpen(ILogger logger);

    [LoggerMessage(107, LogLevel.Information, "Circuit to the backend closed")]
    public static partial void CircuitClosed(ILogger logger);

    [LoggerMessage(108, LogLevel.Information, "Exporter stopped; {Dropped} queued exchanges dropped at the flush deadline")]
    public static partial void Stopped(ILogger logger, long dropped);

    [LoggerMessage(110, LogLevel.Error, "Export batch failed unexpectedly; {Spans} spans dropped")]
    public static partial void UnexpectedFailure(ILogger logger, Exception exception, int spans);

    [LoggerMessage(111, LogLevel.Warning, "Export to the backend failed ({Reason}); {Spans} spans written to the disk buffer, re-sent once the backend answers. Further failures of this kind are not logged until exports recover.")]
    public static partial void ExportBuffering(ILogger logger, string reason, int spans);

    [LoggerMessage(112, LogLevel.Warning, "The disk export buffer reached export.buffer_max_bytes ({MaxBytes} bytes): the oldest batches were deleted ({Spans} spans). Not logged again until exports recover.")]
    public static partial void BufferFull(ILogger logger, long maxBytes, int spans);

    [LoggerMessage(113, LogLevel.Error, "Cannot write to the disk export buffer at {Directory} ({Reason}); {Spans} spans dropped")]
    public static partial void BufferWriteFailed(ILogger logger, string directory, string reason, int spans);

    [LoggerMessage(114, LogLevel.Information, "The disk export buffer at {Directory} holds {Batches} batches ({Bytes} bytes) from an earlier run; re-sending them")]
    public static partial void BufferFound(ILogger logger, string directory, int batches, long bytes);

    [LoggerMessage(115, LogLevel.Error, "The exporter's {Loop} loop failed unexpectedly and was restarted; {Spans} spans it held were dropped")]
    public static partial void LoopFaulted(ILogger logger, Exception exception, string loop, int spans);
}
