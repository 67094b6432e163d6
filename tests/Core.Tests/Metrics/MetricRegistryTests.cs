using SpIstio.Core.Metrics;

namespace SpIstio.Core.Tests.Metrics;

public sealed class MetricRegistryTests
{
    [Fact]
    public void Render_CounterWithLabels_WritesHelpTypeAndOneSamplePerLabelSet()
    {
        var registry = new MetricRegistry();
        var family = registry.Counter("sp_requests_total", "Exchanges seen.", "direction", "outcome");
        family.WithLabels("inbound", "captured").Add(3);
        family.WithLabels("outbound", "excluded").Inc();

        var text = registry.Render();

        Assert.Contains("# HELP sp_requests_total Exchanges seen.\n# TYPE sp_requests_total counter\n", text);
        Assert.Contains("sp_requests_total{direction=\"inbound\",outcome=\"captured\"} 3\n", text);
        Assert.Contains("sp_requests_total{direction=\"outbound\",outcome=\"excluded\"} 1\n", text);
    }

    [Fact]
    public void Render_Histogram_BucketsAreCumulativeAndValueOnABoundCountsInThatBucket()
    {
        var registry = new MetricRegistry();
        var histogram = registry.Histogram("sp_x_seconds", "x.", [0.1, 1]).WithLabels();
        histogram.Observe(0.05);
        histogram.Observe(0.1);
        histogram.Observe(0.5);
        histogram.Observe(7);

        var text = registry.Render();

        Assert.Contains("sp_x_seconds_bucket{le=\"0.1\"} 2\n", text);
        Assert.Contains("sp_x_seconds_bucket{le=\"1\"} 3\n", text);
        Assert.Contains("sp_x_seconds_bucket{le=\"+Inf\"} 4\n", text);
        Assert.Contains("sp_x_seconds_sum 7.65\n", text);
        Assert.Contains("sp_x_seconds_count 4\n", text);
    }

    [Fact]
    public void Render_LabelValueWithQuoteAndBackslash_IsEscaped()
    {
        var registry = new MetricRegistry();
        registry.Gauge("sp_g", "g.", "kind").WithLabels("a\"b\\c").Set(1.5);

        Assert.Contains("sp_g{kind=\"a\\\"b\\\\c\"} 1.5\n", registry.Render());
    }

    [Fact]
    public void WithLabels_WrongNumberOfValues_ThrowsNamingTheMetric()
    {
        var family = new MetricRegistry().Counter("sp_c_total", "c.", "a");

        var error = Assert.Throws<ArgumentException>(() => family.WithLabels("x", "y"));

        Assert.Contains("sp_c_total", error.Message);
    }

    [Fact]
    public void Counter_ConcurrentIncrements_AreAllCounted()
    {
        var counter = new MetricRegistry().Counter("sp_c_total", "c.").WithLabels();

        Parallel.For(0, 10_000, _ => counter.Inc());

        Assert.Equal(10_000, counter.Value);
    }

    [Fact]
    public void Render_ProcessMetrics_ReportsResidentMemory()
    {
        var registry = new MetricRegistry();
        ProcessMetrics.Register(registry);

        var line = registry.Render().Split('\n').Single(l => l.StartsWith("process_resident_memory_bytes ", StringComparison.Ordinal));

        Assert.True(double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) > 1_000_000);
    }

    [Fact]
    public void Render_ProcessMetrics_CountsTheTimeCollectionsPaused()
    {
        var registry = new MetricRegistry();
        ProcessMetrics.Register(registry);
        var before = GcPauseSeconds(registry);

        // A blocking, compacting collection of every generation pauses the process however small the heap.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);

        Assert.True(GcPauseSeconds(registry) > before);
    }

    [Fact]
    public async Task Render_ProcessMetrics_ReportsTheThreadPool()
    {
        var registry = new MetricRegistry();
        ProcessMetrics.Register(registry);

        // A work item the pool has run: it has at least the thread that ran it.
        await Task.Run(() => { });
        var rendered = registry.Render().Split('\n');

        Assert.True(Value(rendered, "dotnet_threadpool_threads") >= 1);
        Assert.True(Value(rendered, "dotnet_threadpool_queue_length") >= 0);
        Assert.True(Value(rendered, "dotnet_threadpool_completed_items_total") >= 1);
    }

    private static double Value(string[] rendered, string name) =>
        double.Parse(rendered.Single(l => l.StartsWith(name + " ", StringComparison.Ordinal)).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);

    private static double GcPauseSeconds(MetricRegistry registry)
    {
        var line = registry.Render().Split('\n').Single(l => l.StartsWith("dotnet_gc_pause_seconds_total ", StringComparison.Ordinal));
        return double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }
}
