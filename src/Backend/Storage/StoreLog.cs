using Microsoft.Extensions.Logging;

namespace SpIstio.Backend.Storage;

/// <summary>Store and retention log messages (event ids 5100–5199).</summary>
internal static partial class StoreLog
{
    [LoggerMessage(5100, LogLevel.Information, "{Store} store: applied schema migration {Version}")]
    public static partial void MigrationApplied(ILogger logger, string store, int version);

    [LoggerMessage(5101, LogLevel.Information, "{Store} store: schema at version {Version} ({Applied} migrations applied now)")]
    public static partial void SchemaReady(ILogger logger, string store, int version, int applied);

    [LoggerMessage(5102, LogLevel.Information, "{Store} store opened: {Location}")]
    public static partial void Opened(ILogger logger, string store, string location);

    [LoggerMessage(5103, LogLevel.Information, "{Store} store: values compressed with {Zstd}")]
    public static partial void Compression(ILogger logger, string store, string zstd);

    [LoggerMessage(5110, LogLevel.Information, "Retention: deleted {Count} spans of tenant {Tenant} older than {Cutoff:o}")]
    public static partial void DeletedByAge(ILogger logger, long count, string tenant, DateTimeOffset cutoff);

    [LoggerMessage(5111, LogLevel.Information, "Retention: store holds {Bytes} bytes over the {Limit}-byte limit; deleted the {Count} oldest spans")]
    public static partial void DeletedBySize(ILogger logger, long bytes, long limit, long count);

    [LoggerMessage(5120, LogLevel.Information, "Deleted session on request: {Count} spans of tenant {TenantId}")]
    public static partial void SessionDeleted(ILogger logger, long count, long tenantId);

    [LoggerMessage(5121, LogLevel.Information, "Purged tenant {TenantId} on request (tenant removed: {Removed}): {Rows}")]
    public static partial void TenantPurged(ILogger logger, long tenantId, bool removed, string rows);

    [LoggerMessage(5113, LogLevel.Information, "Retention: deleted {Count} replay jobs (with their reports) of tenant {Tenant} created before {Cutoff:o}")]
    public static partial void ReplayJobsDeletedByAge(ILogger logger, long count, string tenant, DateTimeOffset cutoff);

    [LoggerMessage(5112, LogLevel.Error, "Retention pass failed; retrying at the next interval")]
    public static partial void RetentionFailed(ILogger logger, Exception exception);

    [LoggerMessage(5140, LogLevel.Information, "Compression: trained dictionary {DictionaryId} for tenant {TenantId} ({Bytes} bytes from {Samples} sampled values)")]
    public static partial void DictionaryTrained(ILogger logger, long tenantId, long dictionaryId, int bytes, int samples);

    [LoggerMessage(5141, LogLevel.Warning, "Compression: training a dictionary for tenant {TenantId} failed; its values are stored without one")]
    public static partial void DictionaryTrainingFailed(ILogger logger, long tenantId, Exception exception);

    [LoggerMessage(5150, LogLevel.Information, "Search index: {Found} buckets common in a sample of {Sampled} spans; the store's text index now leaves out {Total}")]
    public static partial void CommonBucketsLearned(ILogger logger, int found, int sampled, int total);

    [LoggerMessage(5151, LogLevel.Warning, "Search index: reading or extending the common buckets failed; spans keep every bucket in the text index")]
    public static partial void CommonBucketsFailed(ILogger logger, Exception exception);

    [LoggerMessage(5160, LogLevel.Warning, "SQLite: a WAL checkpoint beside the writer failed; the writer checkpoints past its bound meanwhile")]
    public static partial void CheckpointFailed(ILogger logger, Exception exception);

    [LoggerMessage(5130, LogLevel.Error, "Search indexer: indexing spans failed; retrying")]
    public static partial void IndexingFailed(ILogger logger, Exception exception);
}
