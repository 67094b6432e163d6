namespace SpIstio.Backend.Storage;

/// <summary>Where a replay job is in its life.</summary>
public enum ReplayJobStatus
{
    /// <summary>Waiting for a backend's worker to claim it.</summary>
    Queued,

    /// <summary>A worker holds it under a lease and is replaying.</summary>
    Running,

    /// <summary>Every exchange was replayed; the report is stored.</summary>
    Done,

    /// <summary>It could not run to the end (no such session, target refused, the worker's backend stopped); <see cref="ReplayJob.Error"/> says why.</summary>
    Failed,
}

/// <summary>
/// A "replay this session against a target" request, recorded in the store so that any backend
/// sharing the store shows its progress and report, and exactly one backend's worker runs it.
/// </summary>
public sealed record ReplayJob
{
    /// <summary>Store-assigned id (0 before it is stored).</summary>
    public long Id { get; init; }

    /// <summary>The tenant whose session it replays: every read of the job is scoped to it.</summary>
    public long TenantId { get; init; }

    /// <summary>The recorded session.</summary>
    public required string SessionId { get; init; }

    /// <summary>The service whose inbound requests are replayed; null for the session's entry service.</summary>
    public string? Service { get; init; }

    /// <summary>The base URL the requests are sent to.</summary>
    public required string Target { get; init; }

    /// <summary>Body paths or field names never compared (the replay engine's ignore rules), comma-separated.</summary>
    public string? IgnoreRules { get; init; }

    /// <summary>Where the job is.</summary>
    public ReplayJobStatus Status { get; init; }

    /// <summary>How many exchanges the job replays (0 until the recording is loaded).</summary>
    public int Total { get; init; }

    /// <summary>How many have been replayed so far.</summary>
    public int Completed { get; init; }

    /// <summary>Replayed exchanges that passed.</summary>
    public int Passed { get; init; }

    /// <summary>Replayed exchanges that regressed.</summary>
    public int Regressions { get; init; }

    /// <summary>Replayed exchanges that could not be compared.</summary>
    public int Errors { get; init; }

    /// <summary>Why a failed job failed.</summary>
    public string? Error { get; init; }

    /// <summary>The engine's report as JSON (<c>ReplayJsonContext</c>) once done; null in lists and before.</summary>
    public string? ReportJson { get; init; }

    /// <summary>When it was asked for.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When a worker claimed it.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>When it ended.</summary>
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>True while it is queued or running.</summary>
    public bool IsActive => Status is ReplayJobStatus.Queued or ReplayJobStatus.Running;
}

/// <summary>
/// Replay jobs in the store. Reads and creation are tenant-scoped; claiming is store-wide (a
/// worker serves every tenant) and exclusive: among backends sharing a PostgreSQL, one claim wins
/// each job (<c>FOR UPDATE SKIP LOCKED</c>), and the winner holds it under a lease it renews with
/// every progress write.
/// </summary>
public interface IReplayJobStore
{
    /// <summary>Records a queued job for the tenant; returns it with its id.</summary>
    Task<ReplayJob> AddReplayJobAsync(long tenantId, ReplayJob job, CancellationToken cancellationToken);

    /// <summary>The tenant's job with this id (with its report), or null.</summary>
    Task<ReplayJob?> GetReplayJobAsync(long tenantId, long id, CancellationToken cancellationToken);

    /// <summary>The tenant's most recent jobs, newest first, without reports.</summary>
    Task<IReadOnlyList<ReplayJob>> ListReplayJobsAsync(long tenantId, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Claims the oldest queued job of any tenant for <paramref name="owner"/> until
    /// <paramref name="leaseUntil"/> and marks it running; null when none is queued (or every
    /// queued one is being claimed by another backend right now).
    /// </summary>
    Task<ReplayJob?> ClaimReplayJobAsync(string owner, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken);

    /// <summary>
    /// Records progress of a job <paramref name="owner"/> holds and extends its lease; false when
    /// the owner no longer holds it (the lease ran out and the job was failed), so it must stop.
    /// </summary>
    Task<bool> UpdateReplayJobProgressAsync(long id, string owner, ReplayJob progress, DateTimeOffset leaseUntil, CancellationToken cancellationToken);

    /// <summary>Ends a job <paramref name="owner"/> holds: done with its report, or failed with a reason. False when it no longer holds it.</summary>
    Task<bool> FinishReplayJobAsync(long id, string owner, ReplayJob outcome, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Fails every running job whose lease ran out before <paramref name="now"/> (its backend
    /// stopped mid-run). They are not re-run: a replay sends requests that change the target's
    /// state, so running part of it twice would report on a different journey. Returns how many.
    /// </summary>
    Task<int> FailAbandonedReplayJobsAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes the tenant's jobs created before <paramref name="cutoff"/>, with their reports
    /// (retention: a report holds recorded and replayed bodies). A running job is left to finish
    /// or to fail when its lease runs out; the next pass deletes it. Returns how many.
    /// </summary>
    Task<long> DeleteReplayJobsOlderThanAsync(long tenantId, DateTimeOffset cutoff, CancellationToken cancellationToken);
}
