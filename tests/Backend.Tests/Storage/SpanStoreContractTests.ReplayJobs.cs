using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Storage.Retention;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>Replay jobs: tenant-scoped reads, one claim per job, progress under a lease, abandoned jobs failed.</summary>
public abstract partial class SpanStoreContractTests
{
    private IReplayJobStore Jobs => (IReplayJobStore)Store;

    private static ReplayJob NewJob(string session, DateTimeOffset at) => new() { SessionId = session, Target = "http://target.test/", CreatedAt = at };

    [Fact]
    public async Task Replay_jobs_are_scoped_to_their_tenant_and_each_is_claimed_once()
    {
        long acme = await TenantAsync();
        long globex = await TenantAsync("globex");
        var now = DateTimeOffset.UtcNow;
        var first = await Jobs.AddReplayJobAsync(acme, NewJob("s-1", now), None);
        var second = await Jobs.AddReplayJobAsync(globex, NewJob("s-2", now), None);

        Assert.Equal(ReplayJobStatus.Queued, (await Jobs.GetReplayJobAsync(acme, first.Id, None))!.Status);
        Assert.Null(await Jobs.GetReplayJobAsync(globex, first.Id, None));
        Assert.Equal([first.Id], (await Jobs.ListReplayJobsAsync(acme, 10, None)).Select(j => j.Id));
        Assert.Equal([second.Id], (await Jobs.ListReplayJobsAsync(globex, 10, None)).Select(j => j.Id));

        var claimed = await Jobs.ClaimReplayJobAsync("worker-a", now, now.AddMinutes(1), None);
        var next = await Jobs.ClaimReplayJobAsync("worker-b", now, now.AddMinutes(1), None);
        var none = await Jobs.ClaimReplayJobAsync("worker-c", now, now.AddMinutes(1), None);

        Assert.Equal(first.Id, claimed!.Id);
        Assert.Equal(acme, claimed.TenantId);
        Assert.Equal(ReplayJobStatus.Running, claimed.Status);
        Assert.Equal(second.Id, next!.Id);
        Assert.Equal(globex, next.TenantId);
        Assert.Null(none);
    }

    [Fact]
    public async Task A_claimed_job_reports_progress_only_from_its_owner_and_ends_with_its_report()
    {
        long acme = await TenantAsync();
        var now = DateTimeOffset.UtcNow;
        var job = await Jobs.AddReplayJobAsync(acme, NewJob("s-1", now), None);
        var claimed = (await Jobs.ClaimReplayJobAsync("worker-a", now, now.AddMinutes(1), None))!;

        Assert.True(await Jobs.UpdateReplayJobProgressAsync(job.Id, "worker-a", claimed with { Total = 3, Completed = 1, Passed = 1 }, now.AddMinutes(2), None));
        Assert.False(await Jobs.UpdateReplayJobProgressAsync(job.Id, "worker-b", claimed with { Total = 3, Completed = 3 }, now.AddMinutes(2), None));
        var running = (await Jobs.GetReplayJobAsync(acme, job.Id, None))!;
        Assert.Equal((3, 1, 1), (running.Total, running.Completed, running.Passed));

        var report = "{\"sessionId\":\"s-1\",\"results\":[" + string.Join(',', Enumerable.Repeat("{\"name\":\"GET /x\"}", 500)) + "]}";
        Assert.False(await Jobs.FinishReplayJobAsync(job.Id, "worker-b", claimed with { Status = ReplayJobStatus.Done }, now, None));
        Assert.True(await Jobs.FinishReplayJobAsync(job.Id, "worker-a", claimed with { Status = ReplayJobStatus.Done, Total = 3, Completed = 3, Passed = 2, Regressions = 1, ReportJson = report }, now, None));

        var done = (await Jobs.GetReplayJobAsync(acme, job.Id, None))!;
        Assert.Equal(ReplayJobStatus.Done, done.Status);
        Assert.Equal((3, 3, 2, 1, 0), (done.Total, done.Completed, done.Passed, done.Regressions, done.Errors));
        Assert.Equal(report, done.ReportJson);
        Assert.NotNull(done.FinishedAt);
        Assert.Null((await Jobs.ListReplayJobsAsync(acme, 10, None)).Single().ReportJson);
        Assert.False(await Jobs.UpdateReplayJobProgressAsync(job.Id, "worker-a", done, now.AddMinutes(2), None));
    }

    [Fact]
    public async Task A_running_job_whose_lease_ran_out_is_failed_and_not_claimed_again()
    {
        long acme = await TenantAsync();
        var now = DateTimeOffset.UtcNow;
        var job = await Jobs.AddReplayJobAsync(acme, NewJob("s-1", now), None);
        var claimed = (await Jobs.ClaimReplayJobAsync("worker-a", now, now.AddSeconds(30), None))!;

        Assert.Equal(0, await Jobs.FailAbandonedReplayJobsAsync(now.AddSeconds(10), None));
        Assert.Equal(1, await Jobs.FailAbandonedReplayJobsAsync(now.AddSeconds(31), None));

        var failed = (await Jobs.GetReplayJobAsync(acme, job.Id, None))!;
        Assert.Equal(ReplayJobStatus.Failed, failed.Status);
        Assert.Contains("lease ran out", failed.Error, StringComparison.Ordinal);
        Assert.False(await Jobs.UpdateReplayJobProgressAsync(job.Id, "worker-a", claimed with { Completed = 1 }, now.AddMinutes(1), None));
        Assert.Null(await Jobs.ClaimReplayJobAsync("worker-b", now.AddMinutes(1), now.AddMinutes(2), None));
    }

    [Fact]
    public async Task Retention_deletes_each_tenants_replay_jobs_older_than_its_retention_with_their_reports_but_not_a_running_one()
    {
        long acme = await TenantAsync();
        long globex = await TenantAsync("globex");
        await Store.SetRetentionAsync(acme, TimeSpan.FromDays(1), None);
        var now = DateTimeOffset.UtcNow;
        var running = await Jobs.AddReplayJobAsync(acme, NewJob("s-running", now.AddDays(-2)), None);
        Assert.Equal(running.Id, (await Jobs.ClaimReplayJobAsync("worker-a", now, now.AddMinutes(5), None))!.Id);
        var done = await Jobs.AddReplayJobAsync(acme, NewJob("s-done", now.AddDays(-2)), None);
        var claimed = (await Jobs.ClaimReplayJobAsync("worker-a", now, now.AddMinutes(5), None))!;
        Assert.True(await Jobs.FinishReplayJobAsync(done.Id, "worker-a", claimed with { Status = ReplayJobStatus.Done, ReportJson = "{\"sessionId\":\"s-done\"}" }, now, None));
        var queued = await Jobs.AddReplayJobAsync(acme, NewJob("s-queued", now.AddDays(-2)), None);
        var recent = await Jobs.AddReplayJobAsync(acme, NewJob("s-recent", now.AddHours(-1)), None);
        // Two days old is within globex's default retention (7 days).
        var other = await Jobs.AddReplayJobAsync(globex, NewJob("s-other", now.AddDays(-2)), None);

        var result = await new RetentionService(Store, new RetentionOptions(), TimeProvider.System, NullLogger<RetentionService>.Instance).RunOnceAsync(None);

        Assert.Equal(2, result.DeletedReplayJobs);
        Assert.Null(await Jobs.GetReplayJobAsync(acme, done.Id, None));
        Assert.Null(await Jobs.GetReplayJobAsync(acme, queued.Id, None));
        Assert.Equal([running.Id, recent.Id], (await Jobs.ListReplayJobsAsync(acme, 10, None)).Select(j => j.Id).Order());
        Assert.Equal(ReplayJobStatus.Running, (await Jobs.GetReplayJobAsync(acme, running.Id, None))!.Status);
        Assert.Equal([other.Id], (await Jobs.ListReplayJobsAsync(globex, 10, None)).Select(j => j.Id));

        // Once it has ended, the next pass deletes it too.
        Assert.True(await Jobs.FinishReplayJobAsync(running.Id, "worker-a", running with { Status = ReplayJobStatus.Failed, Error = "stopped" }, now, None));
        Assert.Equal(1, await Jobs.DeleteReplayJobsOlderThanAsync(acme, now.AddDays(-1), None));
        Assert.Equal([recent.Id], (await Jobs.ListReplayJobsAsync(acme, 10, None)).Select(j => j.Id));
    }
}
