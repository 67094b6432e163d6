using SpIstio.Core.Metrics;

namespace SpIstio.Agent.Export;

/// <summary>
/// What the exporter last heard from the backend, for <c>/status</c> and as metrics
/// (<c>sp_backend_reachable</c>, <c>sp_export_last_success_timestamp_seconds</c>). The exporter
/// records every finished export request here; nothing else writes to it.
/// </summary>
public sealed class ExportHealth
{
    private readonly TimeProvider _time;
    private readonly Gauge _reachable;
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
        _reachable = registry.Gauge("sp_backend_reachable", "1 when the last export request got an answer from the backend, 0 when it failed to connect or got 5xx; -1 before the first export.").WithLabels();
        _reachable.Set(-1);
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
            _isReachable = true;
            _lastSuccessAt = now;
            _lastAttemptAt = now;
            _lastError = null;
            _delivered += spans;
        }

        _reachable.Set(1);
        _lastSuccess.Set(now.ToUnixTimeMilliseconds() / 1000.0);
    }

    /// <summary>The backend answered but refused the batch (400/401/403): reachable, yet nothing was delivered.</summary>
    public void RecordRefused(string reason)
    {
        lock (_lock)
        {
            _isReachable = true;
            _lastAttemptAt = _time.GetUtcNow();
            _lastError = reason;
        }

        _reachable.Set(1);
    }

    /// <summary>The request failed (no connection, timeout, 5xx): the backend is not reachable as far as the agent knows.</summary>
    public void RecordFailed(string reason)
    {
        lock (_lock)
        {
            _isReachable = false;
            _lastAttemptAt = _time.GetUtcNow();
            _lastError = reason;
        }

        _reachable.Set(0);
    }
}

/// <summary>A copy of <see cref="ExportHealth"/>'s state.</summary>
/// <param name="BackendReachable">True after an answer, false after a failure, null before the first export.</param>
/// <param name="LastSuccess">When the backend last accepted a batch.</param>
/// <param name="LastAttempt">When an export request last finished.</param>
/// <param name="LastError">What went wrong last, null after a success.</param>
/// <param name="DeliveredSpans">Spans the backend accepted since start.</param>
public sealed record ExportHealthSnapshot(bool? BackendReachable, DateTimeOffset? LastSuccess, DateTimeOffset? LastAttempt, string? LastError, long DeliveredSpans);
