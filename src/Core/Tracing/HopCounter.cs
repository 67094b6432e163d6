using System.Globalization;

namespace SpIstio.Core.Tracing;

/// <summary>
/// The <c>x-sp-num</c> hop counter: how many agent-seen hops a request has travelled. Each hop
/// reads the incoming value and forwards it plus one.
/// </summary>
public static class HopCounter
{
    /// <summary>The header name.</summary>
    public const string HeaderName = "x-sp-num";

    // Most traces are a handful of hops deep: their header values are formatted once.
    private static readonly string[] _smallValues = CreateSmallValues(32);

    /// <summary>The incoming count: a non-negative decimal integer; missing, negative or invalid means 0.</summary>
    public static int Parse(string? value)
    {
        if (value is null)
        {
            return 0;
        }

        return int.TryParse(value.AsSpan().Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var count)
            ? count
            : 0;
    }

    /// <summary>The count to forward: incoming plus one, saturating instead of overflowing.</summary>
    public static int Next(string? incoming)
    {
        var count = Parse(incoming);
        return count == int.MaxValue ? count : count + 1;
    }

    /// <summary>The header value for <paramref name="count"/>.</summary>
    public static string Format(int count) =>
        (uint)count < (uint)_smallValues.Length ? _smallValues[count] : count.ToString(CultureInfo.InvariantCulture);

    private static string[] CreateSmallValues(int count)
    {
        var values = new string[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = i.ToString(CultureInfo.InvariantCulture);
        }

        return values;
    }
}
