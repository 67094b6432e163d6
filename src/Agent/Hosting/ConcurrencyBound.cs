using SpIstio.Core.Metrics;

namespace SpIstio.Agent.Hosting;

/// <summary>
/// The count under <see cref="ConnectionLimit"/> and <see cref="StreamLimit"/>: at most
/// <see cref="Max"/> places taken at once, the taken ones in a gauge, each refusal in a counter, and
/// the first refusal of an episode (from the bound being reached until a place is given back below
/// it) told apart, so that a flood of refusals logs one warning, not one each.
/// </summary>
internal sealed class ConcurrencyBound
{
    private readonly Gauge _open;
    private readonly Counter _refused;
    private int _count;

    // 1 from the first refusal until a place is given back below the bound.
    private int _refusing;

    public ConcurrencyBound(int max, Gauge open, Counter refused)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        Max = max;
        _open = open;
        _refused = refused;
    }

    /// <summary>The bound.</summary>
    public int Max { get; }

    /// <summary>
    /// Takes a place, or counts a refusal when <see cref="Max"/> are taken; <paramref name="firstRefusal"/>
    /// says that this refusal starts an episode (the one to log).
    /// </summary>
    public bool TryEnter(out bool firstRefusal)
    {
        if (Interlocked.Increment(ref _count) > Max)
        {
            Interlocked.Decrement(ref _count);
            _refused.Inc();
            firstRefusal = Interlocked.Exchange(ref _refusing, 1) == 0;
            return false;
        }

        _open.Inc();
        firstRefusal = false;
        return true;
    }

    /// <summary>Gives back a place <see cref="TryEnter"/> took.</summary>
    public void Exit()
    {
        _open.Dec();
        if (Interlocked.Decrement(ref _count) < Max)
        {
            Volatile.Write(ref _refusing, 0);
        }
    }
}
