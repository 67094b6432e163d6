using Microsoft.Extensions.Logging;

namespace SpIstio.Backend.Ingest;

/// <summary>Log messages of ingest (event ids 100–199).</summary>
internal static partial class IngestLog
{
    [LoggerMessage(100, LogLevel.Error, "Committing {SpanCount} span(s) of tenant {TenantId} failed; the exporters are told to retry")]
    public static partial void CommitFailed(ILogger logger, int spanCount, long tenantId, Exception exception);

    [LoggerMessage(101, LogLevel.Debug, "OTLP {Protocol} export refused with {StatusCode}: {Reason}")]
    public static partial void ExportRefused(ILogger logger, string protocol, int statusCode, string reason);
}
