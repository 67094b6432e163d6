using System.Runtime.InteropServices;
using SpIstio.Core.Capture;
using SpIstio.Core.Model;

namespace SpIstio.Core.Tests.Capture;

/// <summary>
/// A capture budget's body arrays are kept for the next bodies while the budget has room for them,
/// so a proxy with many large exchanges waiting for export reuses them instead of allocating.
/// </summary>
public sealed class CaptureArrayPoolTests
{
    private const int Body = 64 * 1024;

    [Fact]
    public void ReturnedLargeArrays_AreRentedAgain_AsManyAsCameBack()
    {
        var pool = new CaptureByteBudget(4 * 1024 * 1024).Arrays;

        // More than the shared pool keeps of one size on a small machine (32 a core).
        var arrays = Enumerable.Range(0, 48).Select(_ => pool.Rent(Body)).ToList();
        foreach (var array in arrays)
        {
            pool.Return(array);
        }

        Assert.Equal(48L * Body, pool.KeptBytes);
        var again = Enumerable.Range(0, 48).Select(_ => pool.Rent(Body)).ToList();
        Assert.All(again, array => Assert.Contains(array, arrays));
        Assert.Equal(48, again.Distinct().Count());
        Assert.Equal(0, pool.KeptBytes);
    }

    [Fact]
    public void Trim_LetsEveryKeptArrayGo_SoTheNextRentIsANewArray()
    {
        var pool = new CaptureByteBudget(4 * 1024 * 1024).Arrays;

        // Arrays of the test's own, never in the shared pool: the rent below falls back to the shared
        // pool, which this process's other tests use at the same time, so an array rented from it
        // here could come back from it through them; these can come back only if Trim handed them on.
        var arrays = Enumerable.Range(0, 4).Select(_ => new byte[Body]).ToList();
        arrays.ForEach(array => pool.Return(array));
        Assert.Equal(4L * Body, pool.KeptBytes);

        Assert.Equal(4L * Body, pool.Trim());

        Assert.Equal(0, pool.KeptBytes);
        Assert.DoesNotContain(pool.Rent(Body), arrays);
        Assert.Equal(0, pool.Trim());
    }

    [Fact]
    public void ArraysKept_StayWithinWhatTheBudgetLeavesFree()
    {
        var budget = new CaptureByteBudget(4 * Body);
        var pool = budget.Arrays;
        Assert.True(budget.TryReserve(2 * Body));
        var arrays = Enumerable.Range(0, 3).Select(_ => pool.Rent(Body)).ToList();

        foreach (var array in arrays)
        {
            pool.Return(array);
        }

        // Two fit beside the reservation; the third went to the shared pool.
        Assert.Equal(2L * Body, pool.KeptBytes);
        Assert.True(budget.Held + pool.KeptBytes <= budget.Limit);
    }

    [Fact]
    public void SmallArrays_GoToTheSharedPool()
    {
        var pool = new CaptureByteBudget(1024 * 1024).Arrays;

        pool.Return(pool.Rent(4096));

        Assert.Equal(0, pool.KeptBytes);
    }

    [Fact]
    public void ExportedBodysArray_IsTheNextBodysBuffer()
    {
        var budget = new CaptureByteBudget(1024 * 1024);
        var first = CompleteBody(budget, out var firstArray);
        Assert.Equal(0, budget.Arrays.KeptBytes);

        first.ReturnBodyArrays();
        Assert.Equal(Body, budget.Arrays.KeptBytes);
        CompleteBody(budget, out var secondArray);

        Assert.Same(firstArray, secondArray);
        Assert.Equal(0, budget.Arrays.KeptBytes);
    }

    // An exchange holding a 64 KiB body captured under the budget, and the array it refers to.
    private static Exchange CompleteBody(CaptureByteBudget budget, out byte[] array)
    {
        var buffer = new BodyCaptureBuffer(Body, budget, expectedLength: Body);
        var bytes = new byte[Body];
        bytes.AsSpan().Fill((byte)'x');
        buffer.Append(bytes);
        var body = buffer.Complete("application/json", null, 1024, out var lease);
        Assert.NotNull(lease);
        Assert.True(MemoryMarshal.TryGetArray(body.Content, out var segment));
        array = segment.Array!;
        var exchange = new Exchange { ResponseBody = body };
        exchange.HoldBodyArray(lease);
        return exchange;
    }
}
