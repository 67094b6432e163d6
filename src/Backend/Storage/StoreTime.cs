namespace SpIstio.Backend.Storage;

/// <summary>
/// Timestamps are stored as Unix nanoseconds in 64-bit integers: exact for OTLP's nanosecond
/// times (PostgreSQL's timestamptz would round to microseconds) and the same in both stores.
/// </summary>
internal static class StoreTime
{
    public static long ToNanos(DateTimeOffset value) => (value.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;

    public static DateTimeOffset FromNanos(long nanos) => new(DateTimeOffset.UnixEpoch.UtcTicks + (nanos / 100), TimeSpan.Zero);
}
