using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace SpIstio.Core.Metrics;

/// <summary>
/// A small Prometheus registry: counters, gauges and histograms with fixed, low-cardinality
/// label sets, rendered in the text exposition format (version 0.0.4).
/// </summary>
/// <remarks>
/// Hand-written rather than built on OpenTelemetry's Prometheus exporter because that one is
/// only published as a beta, and because the data path needs increments that are one
/// interlocked add on a child resolved once at start-up (callers keep the child).
/// </remarks>
public sealed class MetricRegistry
{
    private readonly ConcurrentDictionary<string, MetricFamily> _families = new(StringComparer.Ordinal);
    private readonly List<Action<MetricRegistry>> _collectors = [];

    /// <summary>The content type of <see cref="WriteTo"/>'s output.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Declares (or returns the already declared) counter family.</summary>
    public CounterFamily Counter(string name, string help, params string[] labelNames) =>
        (CounterFamily)_families.GetOrAdd(name, n => new CounterFamily(n, help, labelNames));

    /// <summary>Declares (or returns the already declared) gauge family.</summary>
    public GaugeFamily Gauge(string name, string help, params string[] labelNames) =>
        (GaugeFamily)_families.GetOrAdd(name, n => new GaugeFamily(n, help, labelNames));

    /// <summary>
    /// Declares a counter whose value is read at each scrape from a source that only grows (CPU seconds
    /// of the process): a fractional value, set rather than incremented, but typed counter as its
    /// <c>_total</c> name promises (promtool rejects a gauge named <c>_total</c>).
    /// </summary>
    public GaugeFamily SampledCounter(string name, string help, params string[] labelNames) =>
        (GaugeFamily)_families.GetOrAdd(name, n => new GaugeFamily(n, help, "counter", labelNames));

    /// <summary>Declares (or returns the already declared) histogram family with the given upper bounds.</summary>
    public HistogramFamily Histogram(string name, string help, double[] buckets, params string[] labelNames) =>
        (HistogramFamily)_families.GetOrAdd(name, n => new HistogramFamily(n, help, buckets, labelNames));

    /// <summary>Runs <paramref name="collector"/> before each scrape, to refresh gauges read from elsewhere.</summary>
    public void OnCollect(Action<MetricRegistry> collector)
    {
        lock (_collectors)
        {
            _collectors.Add(collector);
        }
    }

    /// <summary>Renders every family, sorted by name, in the Prometheus text format.</summary>
    public void WriteTo(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Action<MetricRegistry>[] collectors;
        lock (_collectors)
        {
            collectors = [.. _collectors];
        }

        foreach (var collect in collectors)
        {
            collect(this);
        }

        foreach (var family in _families.Values.OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            family.WriteTo(writer);
        }
    }

    /// <summary>The whole exposition as a string (scrapes and tests).</summary>
    public string Render()
    {
        var writer = new StringWriter(CultureInfo.InvariantCulture);
        WriteTo(writer);
        return writer.ToString();
    }

    /// <summary>Exponential bucket bounds: <paramref name="start"/>, start×factor, … (<paramref name="count"/> of them).</summary>
    public static double[] ExponentialBuckets(double start, double factor, int count)
    {
        var buckets = new double[count];
        var value = start;
        for (var i = 0; i < count; i++)
        {
            buckets[i] = value;
            value *= factor;
        }

        return buckets;
    }

    internal static string FormatValue(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf"
        : double.IsNaN(value) ? "NaN"
        : value.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>One metric name with its help text and children per label-value set.</summary>
public abstract class MetricFamily
{
    private readonly ConcurrentDictionary<string, object> _children = new(StringComparer.Ordinal);

    private protected MetricFamily(string name, string help, string type, string[] labelNames)
    {
        Name = name;
        Help = help;
        Type = type;
        LabelNames = labelNames;
    }

    /// <summary>The metric name, <c>sp_</c>-prefixed by convention.</summary>
    public string Name { get; }

    /// <summary>The HELP text.</summary>
    public string Help { get; }

    /// <summary>counter, gauge or histogram.</summary>
    public string Type { get; }

    /// <summary>The label names, in order.</summary>
    public IReadOnlyList<string> LabelNames { get; }

    private protected T GetChild<T>(string[] labelValues, Func<string, T> create)
        where T : class
    {
        if (labelValues.Length != LabelNames.Count)
        {
            throw new ArgumentException(
                $"Metric {Name} has labels [{string.Join(", ", LabelNames)}] but {labelValues.Length} values were given.",
                nameof(labelValues));
        }

        var key = Labels(labelValues);
        return (T)_children.GetOrAdd(key, create);
    }

    private string Labels(string[] values)
    {
        if (values.Length == 0)
        {
            return string.Empty;
        }

        var builder = new StringBuilder();
        for (var i = 0; i < values.Length; i++)
        {
            builder.Append(i == 0 ? "" : ",").Append(LabelNames[i]).Append("=\"");
            foreach (var c in values[i])
            {
                _ = c switch
                {
                    '\\' => builder.Append("\\\\"),
                    '"' => builder.Append("\\\""),
                    '\n' => builder.Append("\\n"),
                    _ => builder.Append(c),
                };
            }

            builder.Append('"');
        }

        return builder.ToString();
    }

    internal void WriteTo(TextWriter writer)
    {
        writer.Write("# HELP ");
        writer.Write(Name);
        writer.Write(' ');
        writer.Write(Help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal));
        writer.Write('\n');
        writer.Write("# TYPE ");
        writer.Write(Name);
        writer.Write(' ');
        writer.Write(Type);
        writer.Write('\n');
        foreach (var (labels, child) in _children.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            WriteChild(writer, labels, child);
        }
    }

    private protected abstract void WriteChild(TextWriter writer, string labels, object child);

    private protected static void WriteSample(TextWriter writer, string name, string labels, string value)
    {
        writer.Write(name);
        if (labels.Length > 0)
        {
            writer.Write('{');
            writer.Write(labels);
            writer.Write('}');
        }

        writer.Write(' ');
        writer.Write(value);
        writer.Write('\n');
    }
}

/// <summary>A monotonically increasing count.</summary>
public sealed class Counter
{
    private long _value;

    /// <summary>The current value.</summary>
    public long Value => Interlocked.Read(ref _value);

    /// <summary>Adds one.</summary>
    public void Inc() => Interlocked.Increment(ref _value);

    /// <summary>Adds <paramref name="amount"/> (never negative).</summary>
    public void Add(long amount)
    {
        if (amount > 0)
        {
            Interlocked.Add(ref _value, amount);
        }
    }
}

/// <summary>Counters sharing a name, one per label-value set.</summary>
public sealed class CounterFamily : MetricFamily
{
    internal CounterFamily(string name, string help, string[] labelNames)
        : base(name, help, "counter", labelNames)
    {
    }

    /// <summary>The child for these label values; resolve once and keep it on hot paths.</summary>
    public Counter WithLabels(params string[] labelValues) => GetChild(labelValues, static _ => new Counter());

    private protected override void WriteChild(TextWriter writer, string labels, object child) =>
        WriteSample(writer, Name, labels, ((Counter)child).Value.ToString(CultureInfo.InvariantCulture));
}

/// <summary>A value that goes up and down.</summary>
public sealed class Gauge
{
    private long _bits;

    /// <summary>The current value.</summary>
    public double Value => BitConverter.Int64BitsToDouble(Interlocked.Read(ref _bits));

    /// <summary>Sets the value.</summary>
    public void Set(double value) => Interlocked.Exchange(ref _bits, BitConverter.DoubleToInt64Bits(value));

    /// <summary>Adds <paramref name="delta"/> (may be negative).</summary>
    public void Add(double delta)
    {
        long current, next;
        do
        {
            current = Interlocked.Read(ref _bits);
            next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + delta);
        }
        while (Interlocked.CompareExchange(ref _bits, next, current) != current);
    }

    /// <summary>Adds one.</summary>
    public void Inc() => Add(1);

    /// <summary>Subtracts one.</summary>
    public void Dec() => Add(-1);
}

/// <summary>Gauges sharing a name, one per label-value set.</summary>
public sealed class GaugeFamily : MetricFamily
{
    internal GaugeFamily(string name, string help, string[] labelNames)
        : base(name, help, "gauge", labelNames)
    {
    }

    internal GaugeFamily(string name, string help, string type, string[] labelNames)
        : base(name, help, type, labelNames)
    {
    }

    /// <summary>The child for these label values; resolve once and keep it on hot paths.</summary>
    public Gauge WithLabels(params string[] labelValues) => GetChild(labelValues, static _ => new Gauge());

    private protected override void WriteChild(TextWriter writer, string labels, object child) =>
        WriteSample(writer, Name, labels, MetricRegistry.FormatValue(((Gauge)child).Value));
}

/// <summary>A distribution of observed values over fixed upper bounds.</summary>
public sealed class Histogram
{
    private readonly double[] _bounds;
    private readonly long[] _counts;
    private long _sumBits;
    private long _count;

    internal Histogram(double[] bounds)
    {
        _bounds = bounds;
        _counts = new long[bounds.Length + 1];
    }

    /// <summary>Records one observation.</summary>
    public void Observe(double value)
    {
        var index = Array.BinarySearch(_bounds, value);

        // A value equal to a bound belongs to that bucket (le = "less than or equal").
        if (index < 0)
        {
            index = ~index;
        }

        Interlocked.Increment(ref _counts[index]);
        Interlocked.Increment(ref _count);
        long current, next;
        do
        {
            current = Interlocked.Read(ref _sumBits);
            next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value);
        }
        while (Interlocked.CompareExchange(ref _sumBits, next, current) != current);
    }

    /// <summary>Number of observations.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>Sum of observations.</summary>
    public double Sum => BitConverter.Int64BitsToDouble(Interlocked.Read(ref _sumBits));

    internal void WriteTo(TextWriter writer, string name, string labels)
    {
        long cumulative = 0;
        var prefix = labels.Length == 0 ? "" : labels + ",";
        for (var i = 0; i < _counts.Length; i++)
        {
            cumulative += Interlocked.Read(ref _counts[i]);
            var le = i < _bounds.Length ? MetricRegistry.FormatValue(_bounds[i]) : "+Inf";
            writer.Write(name);
            writer.Write("_bucket{");
            writer.Write(prefix);
            writer.Write("le=\"");
            writer.Write(le);
            writer.Write("\"} ");
            writer.Write(cumulative.ToString(CultureInfo.InvariantCulture));
            writer.Write('\n');
        }

        WriteSumAndCount(writer, name, labels);
    }

    private void WriteSumAndCount(TextWriter writer, string name, string labels)
    {
        var suffix = labels.Length == 0 ? " " : "{" + labels + "} ";
        writer.Write(name);
        writer.Write("_sum");
        writer.Write(suffix);
        writer.Write(MetricRegistry.FormatValue(Sum));
        writer.Write('\n');
        writer.Write(name);
        writer.Write("_count");
        writer.Write(suffix);
        writer.Write(Count.ToString(CultureInfo.InvariantCulture));
        writer.Write('\n');
    }
}

/// <summary>Histograms sharing a name and bounds, one per label-value set.</summary>
public sealed class HistogramFamily : MetricFamily
{
    private readonly double[] _buckets;

    internal HistogramFamily(string name, string help, double[] buckets, string[] labelNames)
        : base(name, help, "histogram", labelNames)
    {
        for (var i = 1; i < buckets.Length; i++)
        {
            if (!(buckets[i] > buckets[i - 1]))
            {
                throw new ArgumentException($"Histogram {name}: bucket bounds must increase strictly.", nameof(buckets));
            }
        }

        _buckets = buckets;
    }

    /// <summary>The child for these label values; resolve once and keep it on hot paths.</summary>
    public Histogram WithLabels(params string[] labelValues) => GetChild(labelValues, _ => new Histogram(_buckets));

    private protected override void WriteChild(TextWriter writer, string labels, object child) =>
        ((Histogram)child).WriteTo(writer, Name, labels);
}
