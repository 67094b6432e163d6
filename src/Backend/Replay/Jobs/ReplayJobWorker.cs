using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Replay.Jobs;

/// <summary>
/// Runs replay jobs recorded in the store, one at a time per backend: claims the oldest queued job
/// of any tenant (exclusively, under a lease, so with several backends on one PostgreSQL each job
/// runs once), loads the session from the store, runs the replay engine (<see cref="ReplayRunner"/>)
/// against the job's target, writes progress after every exchange and the report at the end.
/// </summary>
public sealed class ReplayJobWorker(
    IReplayJobStore jobs, ISpanQueryStore spans, ReplayJobs starter, ReplayJobOptions options, TimeProvider time, ILogger<ReplayJobWorker> logger) : BackgroundService
{
    // One id per backend process: the lease names who holds a job.
    private readonly string _owner = Environment.MachineName + "/" + Environment.ProcessId + "/" + Guid.NewGuid().ToString("N")[..8];

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var abandoned = await jobs.FailAbandonedReplayJobsAsync(time.GetUtcNow(), stoppingToken).ConfigureAwait(false);
                if (abandoned > 0)
                {
                    ReplayJobLog.Abandoned(logger, abandoned);
                }

                while (!stoppingToken.IsCancellationRequested
                    && await jobs.ClaimReplayJobAsync(_owner, time.GetUtcNow(), time.GetUtcNow() + options.Lease, stoppingToken).ConfigureAwait(false) is { } job)
                {
                    await RunAsync(job, stoppingToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                ReplayJobLog.StoreFailed(logger, ex);
            }

            await starter.WaitForWorkAsync(options.PollInterval, time, stoppingToken).ConfigureAwait(false);
        }
    }

    private async Task RunAsync(ReplayJob job, CancellationToken stoppingToken)
    {
        ReplayJobLog.Started(logger, job.Id, job.TenantId, job.SessionId, job.Target);
        using var run = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        RecordedSession loaded;
        try
        {
            loaded = await SessionRecording.LoadAsync(spans, job.TenantId, job.SessionId, job.Service, options.MaxExchanges, run.Token).ConfigureAwait(false);
            if (loaded.Exchanges.Count == 0)
            {
                throw new ReplayException("session '" + job.SessionId + "' has no recorded inbound exchange" + (job.Service is null ? "" : " of service '" + job.Service + "'") + " to replay");
            }
        }
        catch (Exception ex) when (ex is ReplayException || stoppingToken.IsCancellationRequested)
        {
            await FailAsync(job, ex is ReplayException ? ex.Message : "the backend stopped while the job ran; start the replay again").ConfigureAwait(false);
            return;
        }

        var total = loaded.Exchanges.Count;
        var progress = Channel.CreateUnbounded<ReplayResult>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var writer = WriteProgressAsync(job, total, progress.Reader, run);
        using var target = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false, AllowAutoRedirect = false })
        {
            BaseAddress = new Uri(job.Target),
            Timeout = Timeout.InfiniteTimeSpan,
        };
        var runner = new ReplayRunner(target, new ReplayOptions
        {
            Ignore = job.IgnoreRules?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [],
            Timeout = options.RequestTimeout,
            KeepResponseBytes = options.KeepResponseBytes,
        });

        ReplayReport report;
        try
        {
            var learned = runner.LearnValues(loaded.Exchanges);
            report = await runner.RunAsync(job.SessionId, loaded.Service, loaded.Exchanges, learned, new ChannelProgress(progress.Writer), run.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || run.IsCancellationRequested)
        {
            progress.Writer.TryComplete();
            var held = await writer.ConfigureAwait(false);
            if (!held)
            {
                // The lease was lost: the store already says what happened to the job.
                ReplayJobLog.LostLease(logger, job.Id);
            }
            else
            {
                await FailAsync(job, stoppingToken.IsCancellationRequested
                    ? "the backend stopped while the job ran; start the replay again"
                    : "the replay failed: " + ex.Message).ConfigureAwait(false);
            }

            return;
        }
        finally
        {
            progress.Writer.TryComplete();
        }

        if (!await writer.ConfigureAwait(false))
        {
            ReplayJobLog.LostLease(logger, job.Id);
            return;
        }

        var outcome = job with
        {
            Status = ReplayJobStatus.Done,
            Total = total,
            Completed = report.Results.Count,
            Passed = report.Passed,
            Regressions = report.Regressions,
            Errors = report.Errors,
            ReportJson = JsonSerializer.Serialize(report, ReplayJsonContext.Default.ReplayReport),
        };
        if (!await jobs.FinishReplayJobAsync(job.Id, _owner, outcome, time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false))
        {
            ReplayJobLog.LostLease(logger, job.Id);
            return;
        }

        ReplayJobLog.Finished(logger, job.Id, report.Passed, report.Regressions, report.Errors);
    }

    /// <summary>Writes the counts after each exchange (extending the lease); false, with the run cancelled, once the lease is lost.</summary>
    private async Task<bool> WriteProgressAsync(ReplayJob job, int total, ChannelReader<ReplayResult> results, CancellationTokenSource run)
    {
        var counts = job with { Total = total };
        if (!await jobs.UpdateReplayJobProgressAsync(job.Id, _owner, counts, time.GetUtcNow() + options.Lease, CancellationToken.None).ConfigureAwait(false))
        {
            await run.CancelAsync().ConfigureAwait(false);
            return false;
        }

        await foreach (var result in results.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            counts = counts with
            {
                Completed = counts.Completed + 1,
                Passed = counts.Passed + (result.Verdict == ReplayVerdict.Passed ? 1 : 0),
                Regressions = counts.Regressions + (result.Verdict == ReplayVerdict.Regression ? 1 : 0),
                Errors = counts.Errors + (result.Verdict == ReplayVerdict.Error ? 1 : 0),
            };

            // Results that arrived meanwhile are folded into one write.
            if (results.TryPeek(out _))
            {
                continue;
            }

            if (!await jobs.UpdateReplayJobProgressAsync(job.Id, _owner, counts, time.GetUtcNow() + options.Lease, CancellationToken.None).ConfigureAwait(false))
            {
                await run.CancelAsync().ConfigureAwait(false);
                return false;
            }
        }

        return true;
    }

    private async Task FailAsync(ReplayJob job, string reason)
    {
        ReplayJobLog.Failed(logger, job.Id, reason);
        await jobs.FinishReplayJobAsync(job.Id, _owner, job with { Status = ReplayJobStatus.Failed, Error = reason }, time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Hands each result to the progress writer without blocking the replay.</summary>
    private sealed class ChannelProgress(ChannelWriter<ReplayResult> writer) : IProgress<ReplayResult>
    {
        public void Report(ReplayResult value) => writer.TryWrite(value);
    }
}
