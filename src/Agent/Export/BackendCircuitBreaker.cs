using Polly;
using Polly.CircuitBreaker;

namespace SpIstio.Agent.Export;

/// <summary>State of the circuit to the backend.</summary>
public enum BackendCircuitState
{
    /// <summary>Calls go through; consecutive failures are counted.</summary>
    Closed,

    /// <summary>Calls fail fast until the break duration has passed.</summary>
    Open,

    /// <summary>The break is over; one trial call is in flight and decides whether the circuit closes.</summary>
    HalfOpen,
}

/// <summary>
/// A consecutive-failure circuit breaker, run as a Polly strategy between the retry and the
/// per-attempt timeout so that every attempt counts. Polly's own breaker opens on a failure
/// ratio over a sampling window, where one success minutes ago keeps a dead backend "healthy";
/// the agent's contract (the original plugin's <c>circuit_breaker.max_failures</c>) is N failed
/// calls in a row, so the counting lives here while timing comes from the pipeline's TimeProvider.
/// The break is probed, not sat out: the first break lasts one second, each failed trial doubles
/// it up to <c>circuit_breaker.timeout_seconds</c>, so a backend that is back after a short
/// outage gets traffic (and the disk buffer's re-sends) within seconds, while a long outage
/// costs one trial call per <c>timeout_seconds</c>.
/// </summary>
internal sealed class BackendCircuitBreaker
{
    private readonly Lock _lock = new();
    private readonly int _maxFailures;
    private static readonly TimeSpan _firstBreak = TimeSpan.FromSeconds(1);

    private readonly TimeSpan _maxBreak;
    private TimeSpan _breakDuration;
    private readonly TimeProvider _timeProvider;
    private readonly Action<BackendCircuitState> _onStateChanged;
    private BackendCircuitState _state;
    private int _consecutiveFailures;
    private long _openedAt;
    private bool _trialInFlight;

    /// <param name="maxFailures">Consecutive failed calls that open the circuit.</param>
    /// <param name="breakDuration">Longest it stays open before one trial call (the first break is one second, or this when shorter).</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="onStateChanged">Told of every transition, under the breaker's lock: keep it quick.</param>
    public BackendCircuitBreaker(int maxFailures, TimeSpan breakDuration, TimeProvider timeProvider, Action<BackendCircuitState> onStateChanged)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFailures, 1);
        _maxFailures = maxFailures;
        _maxBreak = breakDuration;
        _breakDuration = breakDuration < _firstBreak ? breakDuration : _firstBreak;
        _timeProvider = timeProvider;
        _onStateChanged = onStateChanged;
    }

    /// <summary>The current state; an open circuit whose break is over reports half-open.</summary>
    public BackendCircuitState State
    {
        get
        {
            lock (_lock)
            {
                return _state == BackendCircuitState.Open && BreakIsOver() ? BackendCircuitState.HalfOpen : _state;
            }
        }
    }

    /// <summary>
    /// Asks to make a call. False while open (or while the half-open trial is in flight), with the
    /// time left until a trial may go.
    /// </summary>
    public bool TryAcquire(out bool isTrial, out TimeSpan retryAfter)
    {
        lock (_lock)
        {
            isTrial = false;
            retryAfter = TimeSpan.Zero;
            if (_state == BackendCircuitState.Closed)
            {
                return true;
            }

            if (_state == BackendCircuitState.Open)
            {
                if (!BreakIsOver())
                {
                    retryAfter = _breakDuration - _timeProvider.GetElapsedTime(_openedAt);
                    return false;
                }

                _state = BackendCircuitState.HalfOpen;
                _onStateChanged(_state);
            }

            if (_trialInFlight)
            {
                return false;
            }

            _trialInFlight = true;
            isTrial = true;
            return true;
        }
    }

    /// <summary>Records how an acquired call ended.</summary>
    public void Record(bool isTrial, CallResult result)
    {
        lock (_lock)
        {
            if (isTrial)
            {
                _trialInFlight = false;
            }

            switch (result)
            {
                case CallResult.Success:
                    _consecutiveFailures = 0;
                    if (_state != BackendCircuitState.Closed && isTrial)
                    {
                        _state = BackendCircuitState.Closed;
                        _breakDuration = _maxBreak < _firstBreak ? _maxBreak : _firstBreak;
                        _onStateChanged(_state);
                    }

                    break;
                case CallResult.Failure:
                    if (_state == BackendCircuitState.HalfOpen && isTrial)
                    {
                        // Still down: probe less often, up to the configured break.
                        var doubled = _breakDuration * 2;
                        _breakDuration = doubled > _maxBreak ? _maxBreak : doubled;
                        Open();
                    }
                    else if (_state == BackendCircuitState.Closed && ++_consecutiveFailures >= _maxFailures)
                    {
                        Open();
                    }

                    break;
                default:
                    // Cancelled by shutdown: says nothing about the backend. A trial that was cut
                    // short simply lets the next call be the trial.
                    break;
            }
        }
    }

    /// <summary>How long the current (or next) break lasts.</summary>
    public TimeSpan BreakDuration
    {
        get
        {
            lock (_lock)
            {
                return _breakDuration;
            }
        }
    }

    /// <summary>Wraps the breaker as a Polly strategy; <paramref name="isFailure"/> classifies outcomes.</summary>
    public ResilienceStrategy<HttpResponseMessage> AsStrategy(Func<Outcome<HttpResponseMessage>, bool> isFailure) =>
        new Strategy(this, isFailure);

    // Under the lock, so the gauge and log follow transitions in the order they happen.
    private void Open()
    {
        _state = BackendCircuitState.Open;
        _openedAt = _timeProvider.GetTimestamp();
        _consecutiveFailures = 0;
        _onStateChanged(_state);
    }

    private bool BreakIsOver() => _timeProvider.GetElapsedTime(_openedAt) >= _breakDuration;

    /// <summary>How a call ended, as far as the breaker cares.</summary>
    internal enum CallResult
    {
        Success,
        Failure,
        Cancelled,
    }

    private sealed class Strategy(BackendCircuitBreaker breaker, Func<Outcome<HttpResponseMessage>, bool> isFailure)
        : ResilienceStrategy<HttpResponseMessage>
    {
        protected override async ValueTask<Outcome<HttpResponseMessage>> ExecuteCore<TState>(
            Func<ResilienceContext, TState, ValueTask<Outcome<HttpResponseMessage>>> callback,
            ResilienceContext context,
            TState state)
        {
            if (!breaker.TryAcquire(out var isTrial, out var retryAfter))
            {
                return Outcome.FromException<HttpResponseMessage>(
                    new BrokenCircuitException("The circuit to the backend is open.", retryAfter));
            }

            Outcome<HttpResponseMessage> outcome;
            try
            {
                outcome = await callback(context, state).ConfigureAwait(context.ContinueOnCapturedContext);
            }
            catch (Exception ex)
            {
                outcome = Outcome.FromException<HttpResponseMessage>(ex);
            }

            var result = outcome.Exception is OperationCanceledException && context.CancellationToken.IsCancellationRequested
                ? CallResult.Cancelled
                : isFailure(outcome) ? CallResult.Failure : CallResult.Success;
            breaker.Record(isTrial, result);
            return outcome;
        }
    }
}
