using SpIstio.Core.Tracing;

namespace SpIstio.Core.Tests.Tracing;

public class SessionSamplerTests
{
    private static int CountSampled(IEnumerable<string> ids, double ratio) => ids.Count(id => SessionSampler.ShouldSample(id, ratio));

    private static IEnumerable<string> SequentialIds(int count) => Enumerable.Range(0, count).Select(i => "session-" + i);

    [Fact]
    public void RatioZeroAndNaN_NeverSample_RatioOne_AlwaysSamples()
    {
        Assert.Equal(0, CountSampled(SequentialIds(500), 0));
        Assert.Equal(0, CountSampled(SequentialIds(500), double.NaN));
        Assert.Equal(500, CountSampled(SequentialIds(500), 1));
    }

    [Fact]
    public void QuarterRatio_SamplesAboutAQuarterOfSequentialAndRandomIds()
    {
        // Ids that differ in one character must spread as well as random ones.
        Assert.InRange(CountSampled(SequentialIds(10_000), 0.25), 2_200, 2_800);
        Assert.InRange(CountSampled(Enumerable.Range(0, 10_000).Select(_ => SessionIds.New()), 0.25), 2_200, 2_800);
    }

    [Fact]
    public void Decision_DependsOnTheIdAlone_AndIsMonotonicInTheRatio()
    {
        foreach (var id in SequentialIds(300))
        {
            var copy = new string(id.AsSpan());
            Assert.Equal(SessionSampler.ShouldSample(id, 0.5), SessionSampler.ShouldSample(copy, 0.5));

            // A session kept at a lower ratio is kept at every higher one (one threshold, as for traces).
            Assert.True(!SessionSampler.ShouldSample(id, 0.3) || SessionSampler.ShouldSample(id, 0.6));
        }
    }

    [Fact]
    public void Hash_IsTheFixedPublicAlgorithm()
    {
        // FNV-1a 64 of "" is its offset basis; the MurmurHash3 fmix64 of it pins the finaliser,
        // so a change of algorithm (which would split sessions across agent versions) fails here.
        var basis = 14695981039346656037UL;
        basis ^= basis >> 33;
        basis *= 0xff51afd7ed558ccdUL;
        basis ^= basis >> 33;
        basis *= 0xc4ceb9fe1a85ec53UL;
        basis ^= basis >> 33;
        Assert.Equal(basis, SessionSampler.Hash(""));
        Assert.NotEqual(SessionSampler.Hash("a"), SessionSampler.Hash("b"));
        Assert.Equal(SessionSampler.Hash(new string('é', 400)), SessionSampler.Hash(new string('é', 400)));
    }
}
