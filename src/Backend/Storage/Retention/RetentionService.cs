using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace SpIstio.Backend.Storage.Retention;

/// <summary>
/// Enforces retention in the background: every <see cref="RetentionOptions.Interval"/> (first
/// pass at start), each tenant's spans older than its retention are deleted, then, when the
/// store exceeds <see cref="RetentionOptions.MaxStoreBytes"/>, the oldest spans of all tenants.
/// Replay jobs (their reports hold recorded and replayed bodies) follow the same per-tenant age.
/// Time comes from the injected <see cref="TimeProvider"/>.
/// </summary>
public sealed class RetentionService : BackgroundService
{
    private readonly ISpanStore _store;
    private readonly IReplayJobStore? _replayJobs;
    private readonly RetentionOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RetentionService> _logger;

    /// <summary>Creates the service; validates <paramref name="options"/>.</summary>
    public RetentionService(ISpanStore store, RetentionOptions options, TimeProvider timeProvider, ILogger<RetentionService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _store = store;

        // Both shipped stores keep replay jobs; a test's wrapper around one may not.
        _replayJobs = store as IReplayJobStore;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>One pass: age per tenant, then size; skipped while another backend on the same store runs one.</summary>
    public async Task<RetentionResult> RunOnceAsync(CancellationToken cancellationToken)
    {
        var claim = await _store.TryClaimRetentionAsync(cancellationToken).ConfigureAwait(false);
        if (claim is null)
        {
            return new RetentionResult(0, 0) { Skipped = true };
        }

        await using (claim.ConfigureAwait(false))
        {
            return await RunClaimedAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<RetentionResult> RunClaimedAsync(CancellationToken cancellationToken)
    {
        long byAge = 0;
        long replayJobs = 0;
        var now = _timeProvider.GetUtcNow();
        foreach (var tenant in await _store.ListTenantsAsync(cancellationToken).ConfigureAwait(false))
        {
            var cutoff = now - (tenant.Retention ?? _options.DefaultRetention);
            long deleted = await _store.DeleteOlderThanAsync(tenant.Id, cutoff, cancellationToken).ConfigureAwait(false);
            if (deleted > 0)
            {
                StoreLog.DeletedByAge(_logger, deleted, tenant.Name, cutoff);
            }

            byAge += deleted;
            if (_replayJobs is not null)
            {
                long jobs = await _replayJobs.DeleteReplayJobsOlderThanAsync(tenant.Id, cutoff, cancellationToken).ConfigureAwait(false);
                if (jobs > 0)
                {
                    StoreLog.ReplayJobsDeletedByAge(_logger, jobs, tenant.Name, cutoff);
                }

                replayJobs += jobs;
            }
        }

        long bySize = 0;
        if (_options.MaxStoreBytes is { } max)
        {
            long stored = await _store.GetStoredBytesAsync(cancellationToken).ConfigureAwait(false);
            if (stored > max)
            {
                long target = (long)(max * _options.LowWatermark);
                bySize = await _store.DeleteOldestAsync(stored - target, cancellationToken).ConfigureAwait(false);
                StoreLog.DeletedBySize(_logger, stored, max, bySize);
            }
        }

        return new RetentionResult(byAge, bySize) { DeletedReplayJobs = replayJobs };
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A failed pass (store briefly unavailable) must not stop retention for good.
                StoreLog.RetentionFailed(_logger, e);
            }

            try
            {
                await Task.Delay(_options.Interval, _timeProvider, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
