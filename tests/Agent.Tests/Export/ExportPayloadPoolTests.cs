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
}
