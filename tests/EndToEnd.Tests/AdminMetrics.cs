using System.Globalization;
using SpIstio.Agent.Tests.Infrastructure;

namespace SpIstio.EndToEnd.Tests;

/// <summary>Reads one series from an agent's <c>/metrics</c>, and waits on it (a signal, polled).</summary>
internal static class AdminMetrics
{
    public static async Task<double> ValueAsync(Uri admin, string series)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri(admin, "/metrics"));
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException(series + " is not exposed at " + admin);
    }

    public static async Task WaitForAsync(Uri admin, string series, Func<double, bool> condition, TimeSpan deadline)
    {
        var value = double.NaN;
        await OtlpReceiver.WaitUntilAsync(
            async () => condition(value = await ValueAsync(admin, series)),
            deadline,
            () => $"{series} stayed at {value}",
            TimeSpan.FromMilliseconds(50));
    }
}
