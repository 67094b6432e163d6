namespace SpIstio.Backend.Storage;

/// <summary>
/// Percentiles computed the way PostgreSQL's <c>percentile_cont</c> does (linear interpolation
/// between the closest ranks), so both stores report identical figures for the same data.
/// </summary>
internal sealed class LatencyStats
{
    private readonly List<double> _durationsMs = [];

    public long Count => _durationsMs.Count;

    public long Errors { get; private set; }

    /// <summary>4xx answers: counted beside errors, never as errors (<see cref="ErrorDefinition"/>).</summary>
    public long ClientErrors { get; private set; }

    public void Add(double durationMs, bool isError, bool isClientError = false)
    {
        _durationsMs.Add(durationMs);
        if (isError)
        {
            Errors++;
        }

        if (isClientError)
        {
            ClientErrors++;
        }
    }

    /// <summary>Sorts once; call before <see cref="Percentile"/>.</summary>
    public void Seal() => _durationsMs.Sort();

    public double Percentile(double p)
    {
        if (_durationsMs.Count == 0)
        {
            return 0;
        }

        double rank = p * (_durationsMs.Count - 1);
        int lower = (int)Math.Floor(rank);
        int upper = (int)Math.Ceiling(rank);
        return _durationsMs[lower] + ((_durationsMs[upper] - _durationsMs[lower]) * (rank - lower));
    }

    public static double NanosToMs(long nanos) => nanos / 1_000_000.0;
}
