using System.Globalization;

namespace SpIstio.Agent.Benchmarks;

/// <summary>
/// <c>sp_processing_duration_seconds</c> scraped from the agent, summed over message types;
/// quantiles interpolated inside a bucket as Prometheus' histogram_quantile does.
/// </summary>
internal sealed class Histogram(SortedDictionary<double, double> cumulative)
{
    private const string Prefix = "sp_processing_duration_seconds_bucket{";

    public static Histogram Parse(string metrics)
    {
        var buckets = new SortedDictionary<double, double>();
        foreach (var line in metrics.Split('\n'))
        {
            if (!line.StartsWith(Prefix, StringComparison.Ordinal))
            {
                continue;
            }

            var le = line.IndexOf("le=\"", StringComparison.Ordinal) + 4;
            var bound = line[le..line.IndexOf('"', le)];
            var upper = bound == "+Inf" ? double.PositiveInfinity : double.Parse(bound, CultureInfo.InvariantCulture);
            var count = double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            buckets[upper] = buckets.GetValueOrDefault(upper) + count;
        }

        return new Histogram(buckets);
    }

    public static string Line(string metrics, string series)
    {
        foreach (var line in metrics.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return line[(series.Length + 1)..];
            }
        }

        return "?";
    }

    public Histogram Minus(Histogram earlier)
    {
        var diff = new SortedDictionary<double, double>();
        foreach (var (bound, count) in cumulative)
        {
            diff[bound] = count - earlier.Cumulative.GetValueOrDefault(bound);
        }

        return new Histogram(diff);
    }

    public double Quantile(double q)
    {
        if (cumulative.Count == 0)
        {
            return double.NaN;
        }

        var total = cumulative[double.PositiveInfinity];
        var rank = q * total;
        var lower = 0.0;
        var below = 0.0;
        foreach (var (bound, count) in cumulative)
        {
            if (count >= rank)
            {
                if (double.IsPositiveInfinity(bound))
                {
                    return lower;
                }

                var fraction = count > below ? (rank - below) / (count - below) : 0;
                return lower + ((bound - lower) * fraction);
            }

            lower = bound;
            below = count;
        }

        return lower;
    }

    private SortedDictionary<double, double> Cumulative => cumulative;
}
