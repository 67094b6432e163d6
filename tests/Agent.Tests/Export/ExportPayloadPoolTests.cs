using SpIstio.Agent.Export;

namespace SpIstio.Agent.Tests.Export;

public sealed class ExportPayloadPoolTests
{
    [Fact]
    public void Rent_AfterReturn_ReusesTheArrayForABatchItFits()
    {
        var pool = new ExportPayloadPool(8L * 1024 * 1024);
        var first = pool.Rent(4 * 1024 * 1024);
        pool.Return(first);

        var second = pool.Rent((4 * 1024 * 1024) - 1000);

        Assert.Same(first, second);
        Assert.Equal(0, pool.RetainedBytes);
    }

    [Fact]
    public void Trim_LetsEveryKeptArrayGo_SoTheNextRentIsANewArray()
    {
        var pool = new ExportPayloadPool(8L * 1024 * 1024);
        var first = pool.Rent(4 * 1024 * 1024);
        pool.Return(first);

        Assert.Equal(first.Length, pool.Trim());

        Assert.Equal(0, pool.RetainedBytes);
        Assert.NotSame(first, pool.Rent(4 * 1024 * 1024));
    }

    [Fact]
    public void Rent_SmallBatch_IsExactAndNeverKept()
    {
        var pool = new ExportPayloadPool(8L * 1024 * 1024);
        var small = pool.Rent(1000);
        pool.Return(small);

        Assert.Equal(1000, small.Length);
        Assert.Equal(0, pool.RetainedBytes);
    }

    [Fact]
    public void Return_BeyondTheBound_KeepsAtMostMaxRetainedBytes()
    {
        var pool = new ExportPayloadPool(3L * 1024 * 1024);
        var arrays = Enumerable.Range(0, 5).Select(_ => pool.Rent(1024 * 1024)).ToList();
        Assert.All(arrays, a => Assert.True(a.Length >= 1024 * 1024));
        foreach (var array in arrays)
        {
            pool.Return(array);
        }

        Assert.InRange(pool.RetainedBytes, 1024 * 1024, 3L * 1024 * 1024);

        // A larger array replaces smaller ones rather than being turned away.
        var large = new byte[2 * 1024 * 1024];
        pool.Return(large);
        Assert.InRange(pool.RetainedBytes, 2L * 1024 * 1024, 3L * 1024 * 1024);
        Assert.Same(large, pool.Rent((2 * 1024 * 1024) - 5));
    }

    [Fact]
    public void Return_WithOtherBatchesInFlight_KeepsAnArrayForEachWithinTheBound()
    {
        // Three batches in flight, each a little over 1 MiB (a batch passes max_batch_bytes by its
        // last span), so each array is rounded up to 1.25 MiB.
        var pool = new ExportPayloadPool(4L * 1024 * 1024);
        var batch = (1024 * 1024) + (60 * 1024);
        var inFlight = Enumerable.Range(0, 3).Select(_ => pool.Rent(batch)).ToList();
        foreach (var array in inFlight)
        {
            pool.Return(array);
        }

        // Every one of them serves the next three batches: none is allocated anew.
        var next = Enumerable.Range(0, 3).Select(_ => pool.Rent(batch)).ToList();
        Assert.All(next, array => Assert.Contains(array, inFlight));
        Assert.Equal(3, next.Distinct().Count());
        Assert.Equal(0, pool.RetainedBytes);
    }

    [Fact]
    public void Return_WhileOthersAreRentedOut_KeepsNoMoreThanTheBoundLeaves()
    {
        var pool = new ExportPayloadPool(3L * 1024 * 1024);
        var arrays = Enumerable.Range(0, 3).Select(_ => pool.Rent((1024 * 1024) + 1)).ToList();
        Assert.All(arrays, a => Assert.Equal(1280 * 1024, a.Length));

        // 3.75 MiB rented: the first back would make rented and kept 3.75 MiB again, over the bound.
        pool.Return(arrays[0]);
        Assert.Equal(0, pool.RetainedBytes);

        pool.Return(arrays[1]);
        pool.Return(arrays[2]);
        Assert.Equal(2L * 1280 * 1024, pool.RetainedBytes);
    }
}
