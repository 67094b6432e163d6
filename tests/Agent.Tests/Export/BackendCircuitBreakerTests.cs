using Microsoft.Extensions.Time.Testing;
using SpIstio.Agent.Export;
using CallResult = SpIstio.Agent.Export.BackendCircuitBreaker.CallResult;

namespace SpIstio.Agent.Tests.Export;

public sealed class BackendCircuitBreakerTests
{
    private readonly FakeTimeProvider _time = new();
    private readonly List<BackendCircuitState> _transitions = [];

    private BackendCircuitBreaker Create(int maxFailures = 2) =>
        new(maxFailures, TimeSpan.FromSeconds(10), _time, _transitions.Add);

    private static void Fail(BackendCircuitBreaker breaker)
    {
        Assert.True(breaker.TryAcquire(out var trial, out _));
        breaker.Record(trial, CallResult.Failure);
    }

    [Fact]
    public void HalfOpen_LetsExactlyOneTrialThrough_OthersFailFast()
    {
        var breaker = Create();
        Fail(breaker);
        Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(breaker.TryAcquire(out var first, out _));
        Assert.False(breaker.TryAcquire(out _, out _));
        breaker.Record(first, CallResult.Success);
        Assert.True(breaker.TryAcquire(out var after, out _));

        Assert.True(first);
        Assert.False(after);
        Assert.Equal([BackendCircuitState.Open, BackendCircuitState.HalfOpen, BackendCircuitState.Closed], _transitions);
    }

    [Fact]
    public void Open_ReportsTheTimeLeftUntilTheTrial()
    {
        var breaker = Create();
        Fail(breaker);
        Fail(breaker);
        _time.Advance(TimeSpan.FromMilliseconds(400));

        Assert.False(breaker.TryAcquire(out _, out var retryAfter));

        Assert.Equal(TimeSpan.FromMilliseconds(600), retryAfter);
    }

    [Fact]
    public void Probing_FailedTrialsDoubleTheBreakUpToTheConfiguredOne_ASuccessResetsIt()
    {
        var breaker = Create();
        Fail(breaker);
        Fail(breaker);
        var breaks = new List<TimeSpan>();
        for (var i = 0; i < 6; i++)
        {
            breaks.Add(breaker.BreakDuration);
            _time.Advance(breaker.BreakDuration);
            Fail(breaker);
        }

        _time.Advance(breaker.BreakDuration);
        Assert.True(breaker.TryAcquire(out var trial, out _));
        breaker.Record(trial, CallResult.Success);

        Assert.Equal(new[] { 1, 2, 4, 8, 10, 10 }.Select(s => TimeSpan.FromSeconds(s)), breaks);
        Assert.Equal(BackendCircuitState.Closed, breaker.State);
        Assert.Equal(TimeSpan.FromSeconds(1), breaker.BreakDuration);
    }

    [Fact]
    public void ACancelledTrial_SaysNothingAboutTheBackend_AndFreesTheTrialSlot()
    {
        var breaker = Create();
        Fail(breaker);
        Fail(breaker);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(breaker.TryAcquire(out var trial, out _));

        breaker.Record(trial, CallResult.Cancelled);

        Assert.Equal(BackendCircuitState.HalfOpen, breaker.State);
        Assert.True(breaker.TryAcquire(out var next, out _));
        Assert.True(next);
    }
}
