using FsCheck;
using FsCheck.Xunit;
using SpIstio.Core.Capture;
using SpIstio.Core.Model;

namespace SpIstio.Core.Tests.Capture;

public sealed class BodyCaptureBufferTests
{
    [Fact]
    public void Complete_BodyOverLimit_KeepsLimitAndRecordsTruncationAndWireSize()
    {
        using var buffer = new BodyCaptureBuffer(10);
        buffer.Append("hello "u8);
        buffer.Append("world, and more"u8);

        var body = buffer.Complete("text/plain", null, 1024);

        Assert.Equal("hello worl", System.Text.Encoding.UTF8.GetString(body.Content.Span));
        Assert.True(body.Truncated);
        Assert.Equal(21, body.OriginalSize);
        Assert.Equal(BodyKind.Text, body.Kind);
    }

    [Fact]
    public void Complete_BodyUnderLimit_IsWholeAndNotTruncated()
    {
        using var buffer = new BodyCaptureBuffer(64 * 1024);
        buffer.Append("{\"a\":1}"u8);

        var body = buffer.Complete("application/json", null, 1024);

        Assert.Equal("{\"a\":1}"u8.ToArray(), body.Content.ToArray());
        Assert.False(body.Truncated);
        Assert.Equal(7, body.OriginalSize);
    }

    [Fact]
    public void Append_FiftyMebibytesInChunks_NeverHoldsMoreThanTheLimit()
    {
        const int limit = 64 * 1024;
        using var buffer = new BodyCaptureBuffer(limit);
        var chunk = new byte[16 * 1024];
        Array.Fill(chunk, (byte)'x');
        var maxCapacity = 0;

        for (var i = 0; i < 50 * 64; i++)
        {
            buffer.Append(chunk);
            maxCapacity = Math.Max(maxCapacity, buffer.Capacity);
        }

        Assert.Equal(50L * 1024 * 1024, buffer.TotalBytes);
        Assert.Equal(limit, buffer.Length);
        Assert.True(buffer.Truncated);
        Assert.True(maxCapacity <= limit, $"rented {maxCapacity} bytes for a {limit}-byte limit");
    }

    [Fact]
    public void Append_SmallBody_DoesNotRentTheWholeLimit()
    {
        using var buffer = new BodyCaptureBuffer(1024 * 1024);

        buffer.Append(new byte[200]);

        Assert.InRange(buffer.Capacity, 200, 8192);
    }

    [Fact]
    public void Append_DeclaredLength_RentsOnceForTheWholeBodyAndReservesIt()
    {
        var budget = new CaptureByteBudget(1024 * 1024);
        using var buffer = new BodyCaptureBuffer(64 * 1024, budget, expectedLength: 40_000);

        buffer.Append(new byte[100]);
        var first = buffer.Capacity;
        for (var i = 0; i < 399; i++)
        {
            buffer.Append(new byte[100]);
        }

        // One array large enough for the announced body from the first chunk on, and held in the budget.
        Assert.InRange(first, 40_000, 64 * 1024);
        Assert.Equal(first, buffer.Capacity);
        Assert.Equal(first, budget.Held);
        Assert.Equal(40_000, buffer.Length);
    }

    [Fact]
    public void Append_DeclaredLengthAboveLimitOrWrong_KeepsTheLimitAndEveryByteSeen()
    {
        var budget = new CaptureByteBudget(1024 * 1024);
        using (var over = new BodyCaptureBuffer(8192, budget, expectedLength: 10L * 1024 * 1024 * 1024))
        {
            over.Append(new byte[100]);
            Assert.InRange(over.Capacity, 100, 8192);
        }

        // An announcement shorter than the body only means growing later.
        using (var under = new BodyCaptureBuffer(64 * 1024, budget, expectedLength: 10))
        {
            var body = Enumerable.Range(0, 30_000).Select(i => (byte)i).ToArray();
            under.Append(body.AsSpan(0, 10));
            under.Append(body.AsSpan(10));
            Assert.True(under.Captured.SequenceEqual(body));
            Assert.Equal(under.Capacity, budget.Held);
        }

        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public void Append_AfterComplete_Throws()
    {
        var buffer = new BodyCaptureBuffer(16);
        buffer.Append("abc"u8);
        buffer.Complete(null, null, 16);

        Assert.Throws<ObjectDisposedException>(() => buffer.Append("d"u8));
    }

    [Fact]
    public void Complete_NothingAppended_IsEmpty()
    {
        using var buffer = new BodyCaptureBuffer(16);

        var body = buffer.Complete("application/json", null, 16);

        Assert.Equal(BodyKind.Empty, body.Kind);
        Assert.Equal(0, body.OriginalSize);
        Assert.False(body.Truncated);
    }

    [Property]
    public bool Captured_IsThePrefixOfEverythingAppended_InAnyChunking(byte[][] chunks, NonNegativeInt limitArb)
    {
        var limit = limitArb.Get % 300;
        using var buffer = new BodyCaptureBuffer(limit);
        var all = new List<byte>();
        foreach (var chunk in chunks)
        {
            var bytes = chunk ?? [];
            buffer.Append(bytes);
            all.AddRange(bytes);
        }

        var expected = all.Take(Math.Min(limit, all.Count)).ToArray();
        return buffer.Captured.SequenceEqual(expected)
            && buffer.TotalBytes == all.Count
            && buffer.Truncated == (all.Count > limit);
    }

    [Fact]
    public void Complete_WithLease_FullArrayKeptAsCaptured_IsHandedOverNotCopied_AndTheBudgetIsReleased()
    {
        var budget = new CaptureByteBudget(1024 * 1024);
        var buffer = new BodyCaptureBuffer(64 * 1024, budget, expectedLength: 64 * 1024);
        var bytes = new byte[64 * 1024];
        bytes.AsSpan().Fill((byte)'x');
        buffer.Append(bytes);
        var array = buffer.Captured.ToArray();

        var body = buffer.Complete("text/plain", null, 1024, out var lease);

        Assert.NotNull(lease);
        Assert.False(lease.Returned);
        Assert.Equal(array, body.Content.ToArray());
        Assert.Equal(BodyKind.Text, body.Kind);
        Assert.False(body.Truncated);
        Assert.Equal(0, budget.Held);

        // The exchange owns it; the first return gives it back, later ones do nothing.
        var exchange = new Exchange();
        exchange.HoldBodyArray(lease);
        Assert.Equal(1, exchange.BodyArraysHeld);
        exchange.ReturnBodyArrays();
        exchange.ReturnBodyArrays();
        Assert.True(lease.Returned);
        Assert.Equal(0, exchange.BodyArraysHeld);
    }

    [Fact]
    public void Complete_WithLease_SmallBodyInTheFirstArray_IsHandedOver_AndTheExchangeCountsTheUnusedPart()
    {
        var budget = new CaptureByteBudget(1024 * 1024);
        var buffer = new BodyCaptureBuffer(64 * 1024, budget);
        var bytes = new byte[1029];
        bytes.AsSpan().Fill((byte)'z');
        buffer.Append(bytes);

        var body = buffer.Complete("application/grpc", null, 64 * 1024, out var lease);

        Assert.NotNull(lease);
        Assert.Equal(bytes, body.Content.ToArray());
        Assert.Equal(0, budget.Held);
        var exchange = new Exchange { RequestBody = body };
        exchange.HoldBodyArray(lease);
        Assert.Equal(lease.Length - bytes.Length, exchange.BodyArraySlack);
        exchange.ReturnBodyArrays();
        Assert.Equal(0, exchange.BodyArraySlack);
    }

    [Theory]
    [InlineData(5000, "text/plain", null)] // an 8 KiB array (grown past the first) not 7/8 used: copied, the array goes back
    [InlineData(4096, "text/plain", "gzip")] // decoded (here: kept raw as not gzip): a new array anyway
    [InlineData(4096, "text/plain; charset=iso-8859-1", null)] // transcoded to UTF-8
    public void Complete_WithLease_BodyNotKeptInTheArray_IsCopied_AndNothingIsLeased(int size, string contentType, string? contentEncoding)
    {
        var budget = new CaptureByteBudget(1024 * 1024);
        var buffer = new BodyCaptureBuffer(64 * 1024, budget);
        var bytes = new byte[size];
        bytes.AsSpan().Fill((byte)'y');
        buffer.Append(bytes);

        var body = buffer.Complete(contentType, contentEncoding, 64 * 1024, out var lease);

        Assert.Null(lease);
        Assert.Equal(size, body.Content.Length);
        Assert.Equal(0, budget.Held);
    }
}
