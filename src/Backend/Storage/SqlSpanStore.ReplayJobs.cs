using System.Data.Common;
using System.Globalization;

namespace SpIstio.Backend.Storage;

/// <summary>Replay jobs: portable SQL on both engines; only the claim's row lock differs.</summary>
internal abstract partial class SqlSpanStore : IReplayJobStore
{
    private const string JobColumns =
        "id, tenant_id, session_id, service, target, ignore_rules, status, total, completed, passed, regressions, errors, error, created_ns, started_ns, finished_ns";

    /// <summary>
    /// Appended to the claim's inner <c>SELECT</c>: PostgreSQL locks the row it picks and skips rows
    /// another backend's claim has locked, so two replicas never claim one job. SQLite has one
    /// writer, which serialises claims already.
    /// </summary>
    protected virtual string SkipLockedSql => "";

    public Task<ReplayJob> AddReplayJobAsync(long tenantId, ReplayJob job, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        return WriteAsync(async connection =>
        {
            await using var command = Command(connection, null,
                "INSERT INTO replay_jobs (tenant_id, session_id, service, target, ignore_rules, status, total, completed, passed, regressions, errors, created_ns) " +
                "VALUES (@t, @session, @service, @target, @ignore, @status, 0, 0, 0, 0, 0, @created) RETURNING id");
            Add(command, "t", tenantId);
            Add(command, "session", job.SessionId);
            Add(command, "service", job.Service);
            Add(command, "target", job.Target);
            Add(command, "ignore", job.IgnoreRules);
            Add(command, "status", StatusText(ReplayJobStatus.Queued));
            Add(command, "created", StoreTime.ToNanos(job.CreatedAt));
            var id = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            return job with { Id = id, TenantId = tenantId, Status = ReplayJobStatus.Queued, Total = 0, Completed = 0, Passed = 0, Regressions = 0, Errors = 0 };
        }, cancellationToken);
    }

    public Task<ReplayJob?> GetReplayJobAsync(long tenantId, long id, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT " + JobColumns + ", report FROM replay_jobs WHERE tenant_id = @t AND id = @id");
        Add(command, "t", tenantId);
        Add(command, "id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? ReadJob(reader) with { ReportJson = BodyCodec.DecodeString(NullableBytes(reader, 16)) }
            : null;
    }, cancellationToken);

    public Task<IReadOnlyList<ReplayJob>> ListReplayJobsAsync(long tenantId, int limit, CancellationToken cancellationToken) => ReadAsync<IReadOnlyList<ReplayJob>>(async connection =>
    {
        await using var command = Command(connection, null, "SELECT " + JobColumns + " FROM replay_jobs WHERE tenant_id = @t ORDER BY id DESC LIMIT @limit");
        Add(command, "t", tenantId);
        Add(command, "limit", Math.Clamp(limit, 1, 1000));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<ReplayJob>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(ReadJob(reader));
        }

        return list;
    }, cancellationToken);

    public Task<ReplayJob?> ClaimReplayJobAsync(string owner, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(owner);
        return WriteAsync(async connection =>
        {
            // One statement: the pick and the mark cannot be split by another backend's claim.
            await using var command = Command(connection, null,
                "UPDATE replay_jobs SET status = @running, owner = @owner, lease_ns = @lease, started_ns = @now " +
                "WHERE id = (SELECT id FROM replay_jobs WHERE status = @queued ORDER BY id LIMIT 1" + SkipLockedSql + ") AND status = @queued " +
                "RETURNING " + JobColumns);
            Add(command, "running", StatusText(ReplayJobStatus.Running));
            Add(command, "queued", StatusText(ReplayJobStatus.Queued));
            Add(command, "owner", owner);
            Add(command, "lease", StoreTime.ToNanos(leaseUntil));
            Add(command, "now", StoreTime.ToNanos(now));
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadJob(reader) : null;
        }, cancellationToken);
    }

    public Task<bool> UpdateReplayJobProgressAsync(long id, string owner, ReplayJob progress, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(progress);
        return WriteAsync(async connection =>
        {
            await using var command = Command(connection, null,
                "UPDATE replay_jobs SET total = @total, completed = @completed, passed = @passed, regressions = @regressions, errors = @errors, lease_ns = @lease " +
                "WHERE id = @id AND owner = @owner AND status = @running");
            AddCounts(command, progress);
            Add(command, "lease", StoreTime.ToNanos(leaseUntil));
            Add(command, "id", id);
            Add(command, "owner", owner);
            Add(command, "running", StatusText(ReplayJobStatus.Running));
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
        }, cancellationToken);
    }

    public Task<bool> FinishReplayJobAsync(long id, string owner, ReplayJob outcome, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        var report = BodyCodec.EncodeString(outcome.ReportJson);
        return WriteAsync(async connection =>
        {
            await using var command = Command(connection, null,
                "UPDATE replay_jobs SET status = @status, total = @total, completed = @completed, passed = @passed, regressions = @regressions, errors = @errors, " +
                "error = @error, report = @report, finished_ns = @now, lease_ns = NULL " +
                "WHERE id = @id AND owner = @owner AND status = @running");
            Add(command, "status", StatusText(outcome.Status));
            AddCounts(command, outcome);
            Add(command, "error", outcome.Error);
            Add(command, "report", report);
            Add(command, "now", StoreTime.ToNanos(now));
            Add(command, "id", id);
            Add(command, "owner", owner);
            Add(command, "running", StatusText(ReplayJobStatus.Running));
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
        }, cancellationToken);
    }

    public Task<int> FailAbandonedReplayJobsAsync(DateTimeOffset now, CancellationToken cancellationToken) => WriteAsync(async connection =>
    {
        await using var command = Command(connection, null,
            "UPDATE replay_jobs SET status = @failed, finished_ns = @now, lease_ns = NULL, " +
            "error = 'the backend running this job stopped before it finished (its lease ran out); start the replay again' " +
            "WHERE status = @running AND lease_ns < @now");
        Add(command, "failed", StatusText(ReplayJobStatus.Failed));
        Add(command, "running", StatusText(ReplayJobStatus.Running));
        Add(command, "now", StoreTime.ToNanos(now));
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }, cancellationToken);

    public Task<long> DeleteReplayJobsOlderThanAsync(long tenantId, DateTimeOffset cutoff, CancellationToken cancellationToken) => WriteAsync(async connection =>
    {
        await using var command = Command(connection, null, "DELETE FROM replay_jobs WHERE tenant_id = @t AND created_ns < @cutoff AND status <> @running");
        Add(command, "t", tenantId);
        Add(command, "cutoff", StoreTime.ToNanos(cutoff));
        Add(command, "running", StatusText(ReplayJobStatus.Running));
        return (long)await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }, cancellationToken);

    private static void AddCounts(DbCommand command, ReplayJob job)
    {
        Add(command, "total", job.Total);
        Add(command, "completed", job.Completed);
        Add(command, "passed", job.Passed);
        Add(command, "regressions", job.Regressions);
        Add(command, "errors", job.Errors);
    }

    private static string StatusText(ReplayJobStatus status) => status switch
    {
        ReplayJobStatus.Queued => "queued",
        ReplayJobStatus.Running => "running",
        ReplayJobStatus.Done => "done",
        _ => "failed",
    };

    private static ReplayJob ReadJob(DbDataReader r) => new()
    {
        Id = Int64(r, 0),
        TenantId = Int64(r, 1),
        SessionId = r.GetString(2),
        Service = NullableString(r, 3),
        Target = r.GetString(4),
        IgnoreRules = NullableString(r, 5),
        Status = r.GetString(6) switch
        {
            "queued" => ReplayJobStatus.Queued,
            "running" => ReplayJobStatus.Running,
            "done" => ReplayJobStatus.Done,
            _ => ReplayJobStatus.Failed,
        },
        Total = (int)Int64(r, 7),
        Completed = (int)Int64(r, 8),
        Passed = (int)Int64(r, 9),
        Regressions = (int)Int64(r, 10),
        Errors = (int)Int64(r, 11),
        Error = NullableString(r, 12),
        CreatedAt = StoreTime.FromNanos(Int64(r, 13)),
        StartedAt = r.IsDBNull(14) ? null : StoreTime.FromNanos(Int64(r, 14)),
        FinishedAt = r.IsDBNull(15) ? null : StoreTime.FromNanos(Int64(r, 15)),
    };
}
