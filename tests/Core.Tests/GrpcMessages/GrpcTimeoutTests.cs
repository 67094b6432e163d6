using SpIstio.Core.GrpcMessages;

namespace SpIstio.Core.Tests.GrpcMessages;

public sealed class GrpcTimeoutTests
{
    [Theory]
    [InlineData("1H", 3_600_000.0)]
    [InlineData("2M", 120_000.0)]
    [InlineData("30S", 30_000.0)]
    [InlineData("499m", 499.0)]
    [InlineData("2500u", 2.5)]
    [InlineData("99999999n", 99.9999)]
    public void Parse_EveryUnit(string header, double milliseconds)
    {
        Assert.Equal(milliseconds, GrpcTimeout.Parse(header)!.Value.TotalMilliseconds, 4);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("S")]
    [InlineData("10")]
    [InlineData("10s")]
    [InlineData("-1S")]
    [InlineData("123456789S")]
    [InlineData("1.5S")]
    public void Parse_Malformed_IsNull(string? header)
    {
        Assert.Null(GrpcTimeout.Parse(header));
    }
}
