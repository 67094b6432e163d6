using System.Diagnostics;
using FsCheck.Xunit;
using SpIstio.Core.Tracing;

namespace SpIstio.Core.Tests.Tracing;

public class TraceParentTests
{
    [Theory]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true)]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false)]
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", true)]
    [InlineData("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", true)]
    [InlineData("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true)]
    public void TryParse_ValidSpecExamples_ReadsIdsAndSampledFlag(string value, string traceId, string spanId, bool sampled)
    {
        var ok = TraceParent.TryParse(value, out var parsed);

        Assert.True(ok);
        Assert.Equal(traceId, parsed.TraceId.ToHexString());
        Assert.Equal(spanId, parsed.SpanId.ToHexString());
        Assert.Equal(sampled, parsed.Sampled);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    [InlineData("00-00000000000000000000000000000000-00f067aa0ba902b7-01")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")]
    [InlineData("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")]
    [InlineData("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01")]
    [InlineData("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x")]
    [InlineData("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-will-be-like")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7")]
    public void TryParse_InvalidValues_AreRefused(string value)
    {
        Assert.False(TraceParent.TryParse(value, out _));
    }

    [Fact]
    public void ToString_WritesVersion00EvenForAHigherVersionRead()
    {
        TraceParent.TryParse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", out var parsed);

        Assert.Equal("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", parsed.ToString());
    }

    [Fact]
    public void ToString_ThenTryParse_RoundTripsASpecExample()
    {
        const string value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";

        TraceParent.TryParse(value, out var parsed);

        Assert.Equal(value, parsed.ToString());
        Assert.Equal(0x03, parsed.Flags);
    }

    [Property(MaxTest = 500)]
    public bool ToString_ThenTryParse_RoundTripsRandomIds(ulong traceHigh, ulong traceLow, ulong span, byte flags)
    {
        // All-zero ids are invalid by spec; a set low bit keeps every generated id legal.
        Span<byte> traceBytes = stackalloc byte[16];
        BitConverter.TryWriteBytes(traceBytes, traceHigh);
        BitConverter.TryWriteBytes(traceBytes[8..], traceLow | 1);
        Span<byte> spanBytes = stackalloc byte[8];
        BitConverter.TryWriteBytes(spanBytes, span | 1);
        var original = new TraceParent(ActivityTraceId.CreateFromBytes(traceBytes), ActivitySpanId.CreateFromBytes(spanBytes), flags);

        var text = original.ToString();
        var ok = TraceParent.TryParse(text, out var parsed);

        return ok && parsed == original && text.Length == TraceParent.Length;
    }
}
