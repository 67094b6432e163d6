using System.Diagnostics;
using SpIstio.Core.Tracing;

namespace SpIstio.Core.Tests.Tracing;

public class TraceSamplerTests
{
    private static ActivityTraceId[] RandomIds(int count)
    {
        var ids = new ActivityTraceId[count];
        for (var i = 0; i < count; i++)
        {
            ids[i] = ActivityTraceId.CreateRandom();
        }

        return ids;
    }

    private static int CountSampled(ActivityTraceId[] ids, double ratio)
    {
        var sampled = 0;
        foreach (var id in ids)
        {
            if (TraceSampler.ShouldSample(id, ratio))
            {
                sampled++;
            }
        }

        return sampled;
    }

    [Fact]
    public void RatioZero_NeverSamples()
    {
        Assert.Equal(0, CountSampled(RandomIds(1_000), 0));
    }

    [Fact]
    public void RatioOne_AlwaysSamples()
    {
        Assert.Equal(1_000, CountSampled(RandomIds(1_000), 1));
    }

    [Fact]
    public void NaNRatio_NeverSamples()
    {
        Assert.Equal(0, CountSampled(RandomIds(100), double.NaN));
    }

    [Fact]
    public void QuarterRatio_SamplesAboutAQuarterOfRandomTraces()
    {
        var sampled = CountSampled(RandomIds(10_000), 0.25);

        Assert.InRange(sampled, 2_200, 2_800);
    }

    [Fact]
    public void SameTraceId_AlwaysGetsTheSameDecision()
    {
        foreach (var id in RandomIds(200))
        {
            var first = TraceSampler.ShouldSample(id, 0.5);
            var copy = ActivityTraceId.CreateFromString(id.ToHexString());

            Assert.Equal(first, TraceSampler.ShouldSample(copy, 0.5));
        }
    }

    [Fact]
    public void Decision_DependsOnTheLastEightBytes()
    {
        var low = ActivityTraceId.CreateFromString("ffffffffffffffff0000000000000001");
        var high = ActivityTraceId.CreateFromString("0000000000000001ffffffffffffff00");

        Assert.True(TraceSampler.ShouldSample(low, 0.01));
        Assert.False(TraceSampler.ShouldSample(high, 0.99));
    }
}
