using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Tests.GrpcMessages.Generated;

namespace SpIstio.Core.Tests.GrpcMessages;

public sealed class ProtobufDecodingTests
{
    [Fact]
    public void Schemaless_FlatMessage_ShowsFieldNumbersWireTypesAndText()
    {
        var bytes = new OrderReply { OrderId = "ord-1", TotalCents = 1234 }.ToByteArray();

        var fields = SchemalessProtobuf.TryDecode(bytes);

        Assert.Equal(
            """[{"field":1,"wire":"len","string":"ord-1"},{"field":2,"wire":"varint","value":1234}]""",
            fields!.ToJsonString());
    }

    [Fact]
    public void Schemaless_NestedMessageAndShortText_AreToldApart()
    {
        // "hi" would also parse as field 13 = 105; text is the better guess.
        var bytes = new Everything { Nested = new Nested { Id = "hi", Scores = { 0.5 } }, AString = "hi" }.ToByteArray();

        var fields = SchemalessProtobuf.TryDecode(bytes)!;

        Assert.Equal("hi", fields[0]!["string"]!.GetValue<string>());
        var nested = fields[1]!["message"]!.AsArray();
        Assert.Equal(17, fields[1]!["field"]!.GetValue<int>());
        Assert.Equal("hi", nested[0]!["string"]!.GetValue<string>());
        Assert.Equal("len", nested[1]!["wire"]!.GetValue<string>());
    }

    [Fact]
    public void Schemaless_LargeVarintAndFixedValues_KeepTheirPrecision()
    {
        var bytes = new Everything { AUint64 = ulong.MaxValue, ADouble = 2.5, AFixed32 = 7 }.ToByteArray();

        var fields = SchemalessProtobuf.TryDecode(bytes)!;

        Assert.Equal(2.5, fields[0]!["double"]!.GetValue<double>());
        Assert.Equal(ulong.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture), fields[1]!["value"]!.GetValue<string>());
        Assert.Equal(7u, fields[2]!["value"]!.GetValue<uint>());
    }

    [Theory]
    [InlineData(new byte[] { 0x0A, 0x05, 0x61 })]
    [InlineData(new byte[] { 0x08 })]
    [InlineData(new byte[] { 0x00, 0x01 })]
    [InlineData(new byte[] { 0x0B, 0x0C })]
    public void Schemaless_MalformedBytes_AreNotAMessage(byte[] bytes) =>
        Assert.Null(SchemalessProtobuf.TryDecode(bytes));

    [Fact]
    public void Described_EveryFieldKind_MatchesTheProto3JsonOfTheGeneratedType()
    {
        var message = new Everything
        {
            ADouble = 3.25,
            AFloat = 1.5f,
            AnInt32 = -5,
            AnInt64 = -9_007_199_254_740_993,
            AUint32 = 4_000_000_000,
            AUint64 = ulong.MaxValue,
            ASint32 = -3,
            ASint64 = -70,
            AFixed32 = 7,
            AFixed64 = 8,
            AnSfixed32 = -9,
            AnSfixed64 = -10,
            ABool = true,
            AString = "caf\u00e9",
            SomeBytes = ByteString.CopyFrom(1, 2, 255),
            Colour = Colour.Green,
            Nested = new Nested { Id = "n-1", Scores = { 0.5, 2 } },
            PackedInts = { 1, -2, 300 },
            Names = { "a", "b" },
            Children = { new Nested { Id = "c-1" }, new Nested { Id = "c-2" } },
            Counts = { ["x"] = 1, ["y"] = 2 },
            ById = { [7] = new Nested { Id = "seven" } },
            ChoiceNested = new Nested { Id = "chosen" },
            At = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 26, 14, 30, 5, 123, TimeSpan.Zero)),
            Took = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(1500)),
            MaybeText = "wrapped",
            MaybeCount = 5,
            Extra = new Struct { Fields = { ["k"] = Value.ForString("v"), ["n"] = Value.ForNumber(2), ["none"] = Value.ForNull(), ["list"] = Value.ForList(Value.ForBool(true)) } },
            Mask = new FieldMask { Paths = { "order_id", "total_cents" } },
            Payload = Any.Pack(new OrderReply { OrderId = "in-any", TotalCents = 3 }),
            Colours = { Colour.Red, (Colour)42 },
        };
        var set = GrpcDescriptorSet.Load([("test.pb", DescriptorSetOf(GrpcCaptureTestReflection.Descriptor))]);
        var oracle = new JsonFormatter(JsonFormatter.Settings.Default.WithTypeRegistry(TypeRegistry.FromMessages(OrderReply.Descriptor)));

        var decoded = DescribedProtobuf.TryDecode(message.ToByteArray(), set.FindMessage("sp.test.grpc.Everything")!, set.FindMessage);

        AssertSameJson(oracle.Format(message), decoded!.ToJsonString());
    }

    [Fact]
    public void Described_FieldsTheDescriptorDoesNotKnow_AreKeptSchemaless()
    {
        var known = new OrderRequest { OrderId = "ord-1" }.ToByteArray();
        var extra = new byte[] { 0x98, 0x06, 0x2A }; // field 99, varint 42
        var set = GrpcDescriptorSet.Load([("test.pb", DescriptorSetOf(GrpcCaptureTestReflection.Descriptor))]);

        var decoded = DescribedProtobuf.TryDecode([.. known, .. extra], set.FindMessage("sp.test.grpc.OrderRequest")!);

        Assert.Equal("ord-1", decoded!["orderId"]!.GetValue<string>());
        Assert.Equal("""[{"field":99,"wire":"varint","value":42}]""", decoded["@unknown"]!.ToJsonString());
    }

    [Fact]
    public void Described_MalformedBytes_AreNotAMessage()
    {
        var set = GrpcDescriptorSet.Load([("test.pb", DescriptorSetOf(GrpcCaptureTestReflection.Descriptor))]);

        Assert.Null(DescribedProtobuf.TryDecode(new byte[] { 0x0A, 0x09, 0x61 }, set.FindMessage("sp.test.grpc.OrderRequest")!));
    }

    [Fact]
    public void DescriptorSet_FilesInAnyOrderAcrossSets_FindMethodsAndTheirTypes()
    {
        var withImports = DescriptorSetOf(GrpcCaptureTestReflection.Descriptor, TimestampReflection.Descriptor, AnyReflection.Descriptor);
        var set = GrpcDescriptorSet.Load([("a.pb", withImports), ("b.pb", DescriptorSetOf(GrpcCaptureTestReflection.Descriptor))]);

        var method = set.FindMethod("/sp.test.grpc.Orders/Watch");

        Assert.NotNull(method);
        Assert.Equal("sp.test.grpc.OrderRequest", method.InputType.FullName);
        Assert.Equal("sp.test.grpc.OrderReply", method.OutputType.FullName);
        Assert.True(method.IsServerStreaming);
        Assert.Null(set.FindMethod("/sp.test.grpc.Orders/Nope"));
        Assert.Equal(1, set.ServiceCount);
    }

    [Fact]
    public void DescriptorSet_MissingImport_NamesTheFileThatNeedsIt()
    {
        var status = Generated.Rpc.StatusReflection.Descriptor;
        var proto = FileDescriptorProto.Parser.ParseFrom(status.SerializedData);
        proto.Dependency.Add("orders/missing.proto");
        var set = new FileDescriptorSet { File = { proto } };

        var error = Assert.Throws<InvalidDataException>(() => GrpcDescriptorSet.Load([("rpc.pb", set.ToByteArray())]));

        Assert.Contains("rpc.pb", error.Message, StringComparison.Ordinal);
        Assert.Contains("google/rpc/status.proto imports orders/missing.proto", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DescriptorSet_NotADescriptorSet_NamesTheSource()
    {
        var error = Assert.Throws<InvalidDataException>(() => GrpcDescriptorSet.Load([("/etc/sp/orders.pb", [0xFF, 0xFF, 0xFF])]));

        Assert.StartsWith("/etc/sp/orders.pb: not a protobuf FileDescriptorSet", error.Message, StringComparison.Ordinal);
    }

    internal static byte[] DescriptorSetOf(params FileDescriptor[] files)
    {
        var set = new FileDescriptorSet();
        foreach (var file in files)
        {
            set.File.Add(FileDescriptorProto.Parser.ParseFrom(file.SerializedData));
        }

        return set.ToByteArray();
    }

    private static void AssertSameJson(string expected, string actual)
    {
        using var e = JsonDocument.Parse(expected);
        using var a = JsonDocument.Parse(actual);
        Assert.True(JsonElement.DeepEquals(e.RootElement, a.RootElement), $"expected {expected}\nactual   {actual}");
    }
}
