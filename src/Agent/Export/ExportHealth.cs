using SpIstio.Core.Metrics;

namespace SpIstio.Agent.Export;

/// <summary>
/// What the exporter last heard from the backend, for <c>/status</c> and as metrics
/// (<c>sp_backend_up</c>, <c>sp_export_last_success_timestamp_seconds</c>). One fact, one owner:
/// whether the backend is up is what the last request to it (an export, a retry or a re-send from
/// the disk buffer) got back, and both <c>/status</c> and the gauge read it from here. The exporter
/// records every request and every finished batch here; nothing else writes to it.
/// </summary>
public sealed class ExportHealth
{
    private readonly TimeProvider _time;
    private readonly Gauge _up;
    private readonly Gauge _lastSuccess;
    private readonly Lock _lock = new();
    private DateTimeOffset? _lastSuccessAt;
    private DateTimeOffset? _lastAttemptAt;
    private bool? _isReachable;
    private string? _lastError;
    private long _delivered;

    /// <summary>Creates the tracker and registers its two gauges.</summary>
    public ExportHealth(MetricRegistry registry, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _up = registry.Gauge("sp_backend_up", "1 when the backend answered the last export (or re-send) request, 0 when it failed (network error, timeout, 408/429/5xx); -1 before the first request.").WithLabels();
        _up.Set(-1);
        _lastSuccess = registry.Gauge("sp_export_last_success_timestamp_seconds", "Unix time of the last export the backend accepted (0: none yet).").WithLabels();
    }

    /// <summary>A consistent copy of what is known.</summary>
    public ExportHealthSnapshot Snapshot()
    {
        lock (_lock)
        {
            return new ExportHealthSnapshot(_isReachable, _lastSuccessAt, _lastAttemptAt, _lastError, _delivered);
        }
    }

    /// <summary>The backend accepted <paramref name="spans"/> spans.</summary>
    public void RecordDelivered(int spans)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            _lastSuccessAt = now;
            _lastAttemptAt = now;
            _lastError = null;
            _delivered += spans;
        }

        _lastSuccess.Set(now.ToUnixTimeMilliseconds() / 1000.0);
    }

    /// <summary>The backend answered but refused the batch (400/401/403): reachable, yet nothing was delivered.</summary>
    public void RecordRefused(string reason)
    {
        lock (_lock)
        {
            _lastAttemptAt = _time.GetUtcNow();
            _lastError = reason;
        }
    }

    /// <summary>The batch could not be delivered (no connection, timeout, 5xx, the circuit open).</summary>
    public void RecordFailed(string reason)
    {
        lock (_lock)
        {
            _lastAttemptAt = _time.GetUtcNow();
            _lastError = reason;
        }
    }

    /// <summary>
    /// A request to the backend finished: <paramref name="up"/> when it answered (any status but
    /// 408/429/5xx), false after a network error, a timeout or such a status.
    /// </summary>
    public void ObserveBackend(bool up)
    {
        lock (_lock)
        {
            _isReachable = up;
        }

        _up.Set(up ? 1 : 0);
    }
}

/// <summary>A copy of <see cref="ExportHealth"/>'s state.</summary>
/// <param name="BackendReachable">What the last request to the backend found (<c>sp_backend_up</c>): true after an answer, false after a failure, null before the first.</param>
/// <param name="LastSuccess">When the backend last accepted a batch.</param>
/// <param name="LastAttempt">When an export request last finished.</param>
/// <param name="LastError">What went wrong last, null after a success.</param>
/// <param name="DeliveredSpans">Spans the backend accepted since start.</param>
public sealed record ExportHealthSnapshot(bool? BackendReachable, DateTimeOffset? LastSuccess, DateTimeOffset? LastAttempt, string? LastError, long DeliveredSpans);
