namespace SpIstio.Backend.Storage.Retention;

/// <summary>How long and how much the backend keeps.</summary>
public sealed record RetentionOptions
{
    /// <summary>Age limit of tenants without their own retention. Default 7 days (the default).</summary>
    public TimeSpan DefaultRetention { get; init; } = TimeSpan.FromDays(7);

    /// <summary>
    /// <c>max_store_bytes</c>: when the store holds more, the oldest spans of all tenants are
    /// deleted down to <see cref="LowWatermark"/> of it. Null (the default) means no size limit.
    /// </summary>
    public long? MaxStoreBytes { get; init; }

    /// <summary>
    /// Fraction of <see cref="MaxStoreBytes"/> to delete down to. Below 1 so that a store at its
    /// limit is not trimmed by a sliver on every pass. Default 0.9.
    /// </summary>
    public double LowWatermark { get; init; } = 0.9;

    /// <summary>Time between passes. Default 5 minutes: retention is coarse, deleting is not free.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Throws <see cref="ArgumentException"/> naming every invalid value.</summary>
    public void Validate()
    {
        var problems = new List<string>();
        if (DefaultRetention <= TimeSpan.Zero)
        {
            problems.Add($"retention must be positive (got {DefaultRetention})");
        }

        if (MaxStoreBytes is <= 0)
        {
            problems.Add($"max_store_bytes must be positive (got {MaxStoreBytes})");
        }

        if (LowWatermark is <= 0 or > 1)
        {
            problems.Add($"the low watermark must be in (0, 1] (got {LowWatermark})");
        }

        if (Interval <= TimeSpan.Zero)
        {
            problems.Add($"the retention interval must be positive (got {Interval})");
        }

        if (problems.Count > 0)
        {
            throw new ArgumentException("Invalid retention options: " + string.Join("; ", problems) + ".");
        }
    }
}

/// <summary>What one retention pass deleted.</summary>
/// <param name="DeletedByAge">Spans older than their tenant's retention.</param>
/// <param name="DeletedBySize">Oldest spans deleted to bring the store under its size limit.</param>
public sealed record RetentionResult(long DeletedByAge, long DeletedBySize)
{
    /// <summary>True when another backend on the same store held the pass, so this one did nothing.</summary>
    public bool Skipped { get; init; }

    /// <summary>Replay jobs (and their reports) created before their tenant's retention.</summary>
    public long DeletedReplayJobs { get; init; }
}
