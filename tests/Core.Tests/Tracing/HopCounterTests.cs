using SpIstio.Core.Tracing;

namespace SpIstio.Core.Tests.Tracing;

public class HopCounterTests
{
    [Theory]
    [InlineData(null, 0)]
    [InlineData("", 0)]
    [InlineData("3", 3)]
    [InlineData(" 7 ", 7)]
    [InlineData("-1", 0)]
    [InlineData("+2", 0)]
    [InlineData("abc", 0)]
    [InlineData("99999999999", 0)]
    public void Parse_ReadsNonNegativeIntegersAndTreatsTheRestAsZero(string? value, int expected)
    {
        Assert.Equal(expected, HopCounter.Parse(value));
    }

    [Theory]
    [InlineData(null, 1)]
    [InlineData("4", 5)]
    [InlineData("2147483647", int.MaxValue)]
    public void Next_AddsOneWithoutOverflowing(string? incoming, int expected)
    {
        Assert.Equal(expected, HopCounter.Next(incoming));
    }

    [Theory]
    [InlineData(0, "0")]
    [InlineData(31, "31")]
    [InlineData(1234, "1234")]
    public void Format_WritesDecimal(int count, string expected)
    {
        Assert.Equal(expected, HopCounter.Format(count));
    }
}
