using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Tests.GrpcMessages.Generated.Rpc;
using RpcStatus = SpIstio.Core.Tests.GrpcMessages.Generated.Rpc.Status;

namespace SpIstio.Core.Tests.GrpcMessages;

public sealed class GrpcCallStatusTests
{
    [Fact]
    public void Parse_StatusAndPercentEncodedMessage_GivesNameAndDecodedText()
    {
        var status = GrpcCallStatus.Parse("5", "order%20ord-9%20not%20found%3A%20%E2%9C%93", null);

        Assert.NotNull(status);
        Assert.Equal(5, status.Code);
        Assert.Equal("NOT_FOUND", status.Name);
        Assert.Equal("order ord-9 not found: \u2713", status.Message);
        Assert.Null(status.Details);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(123)]
    public void CodeText_IsTheDecimalCode(int code) =>
        Assert.Equal(code.ToString(System.Globalization.CultureInfo.InvariantCulture), GrpcCallStatus.CodeText(code));

    [Theory]
    [InlineData("0", 0)]
    [InlineData("14", 14)]
    [InlineData("99", 99)]
    public void Parse_StatusWithoutMessageOrDetails_HasNeither(string value, int code)
    {
        var status = GrpcCallStatus.Parse(value, null, null);

        Assert.Equal(new GrpcCallStatus(code, null, null), status);
        // A status with a message parsed after a plain one of the same code keeps its own message.
        Assert.Equal("down", GrpcCallStatus.Parse(value, "down", null)?.Message);
        Assert.Null(GrpcCallStatus.Parse(value, "", null)?.Message);
    }

    [Theory]
    [InlineData("0", "OK")]
    [InlineData("4", "DEADLINE_EXCEEDED")]
    [InlineData("16", "UNAUTHENTICATED")]
    [InlineData("42", "42")]
    public void Name_EveryCode_IsTheCanonicalName(string code, string name) =>
        Assert.Equal(name, GrpcCallStatus.Parse(code, null, null)!.Name);

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("OK")]
    [InlineData("-1")]
    public void Parse_NoNumericStatus_IsNoGrpcStatus(string? value) =>
        Assert.Null(GrpcCallStatus.Parse(value, "x", null));

    [Fact]
    public void PercentDecode_MalformedSequence_IsKeptAsItIs() =>
        Assert.Equal("100%zz done %", GrpcCallStatus.PercentDecode("100%zz done %"));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Parse_StatusDetailsBin_DecodesCodeMessageAndDetails(bool padded)
    {
        var info = new ErrorInfo { Reason = "STOCK_OUT", Domain = "orders.example", Metadata = { ["sku"] = "A-1" } };
        var details = new RpcStatus { Code = 9, Message = "no stock", Details = { Any.Pack(info) } };
        var base64 = Convert.ToBase64String(details.ToByteArray());
        if (!padded)
        {
            base64 = base64.TrimEnd('=');
        }

        var status = GrpcCallStatus.Parse("9", "no stock", base64);

        Assert.NotNull(status?.Details);
        Assert.Equal(9, status.Details.Code);
        Assert.Equal("no stock", status.Details.Message);
        var detail = Assert.Single(status.Details.Details);
        Assert.Equal("type.googleapis.com/google.rpc.ErrorInfo", detail.TypeUrl);
        Assert.Equal("google.rpc.ErrorInfo", detail.TypeName);
        Assert.Equal(info, ErrorInfo.Parser.ParseFrom(detail.Value.ToArray()));
    }

    [Theory]
    [InlineData("not base64!")]
    [InlineData("/////w")]
    public void Parse_BadStatusDetailsBin_KeepsTheStatusWithoutDetails(string value)
    {
        var status = GrpcCallStatus.Parse("13", null, value);

        Assert.NotNull(status);
        Assert.Equal("INTERNAL", status.Name);
        Assert.Null(status.Details);
    }
}
