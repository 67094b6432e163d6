using Google.Protobuf;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Tests.GrpcMessages.Generated;

namespace SpIstio.Core.Tests.GrpcMessages;

public sealed class GrpcSpanAttributesTests
{
    [Theory]
    [InlineData("application/grpc", true)]
    [InlineData("application/grpc+proto", true)]
    [InlineData("Application/GRPC+json; charset=utf-8", true)]
    [InlineData("application/grpc-web", false)]
    [InlineData("application/grpc-web+proto", false)]
    [InlineData("application/json", false)]
    [InlineData(null, false)]
    public void IsGrpc_TellsGrpcFromGrpcWebAndTheRest(string? contentType, bool expected) =>
        Assert.Equal(expected, GrpcSpanAttributes.IsGrpc(contentType));

    [Theory]
    [InlineData("/sp.test.grpc.Orders/Get", "sp.test.grpc.Orders", "Get")]
    [InlineData("/Health/Check", "Health", "Check")]
    public void ParsePath_ServiceAndMethod(string path, string service, string method) =>
        Assert.Equal((service, method), GrpcSpanAttributes.ParsePath(path));

    [Theory]
    [InlineData("/orders/ord-1/items")]
    [InlineData("/orders/")]
    [InlineData("//Get")]
    [InlineData("Get")]
    [InlineData("")]
    public void ParsePath_NotAGrpcPath_IsNull(string path) => Assert.Null(GrpcSpanAttributes.ParsePath(path));

    [Fact]
    public void ParsePath_PathsSharingACacheSlot_EachGetTheirOwnNames()
    {
        // Lengths 16 and 24 (and a non-gRPC path of 16) share a slot of the eight-entry table of
        // paths already split: every call still gets its own path's names, in any order.
        (string Path, (string, string)? Names)[] calls =
        [
            ("/a.Orders/Getter", ("a.Orders", "Getter")),
            ("/a.Orders/CancelTheOrder", ("a.Orders", "CancelTheOrder")),
            ("/b.Orders/Getter", ("b.Orders", "Getter")),
            ("/orders/1/items/", null),
            ("/a.Orders/" + new string('x', 1014), ("a.Orders", new string('x', 1014))),
            ("/a.Orders/Getter", ("a.Orders", "Getter")),
        ];
        for (var round = 0; round < 3; round++)
        {
            foreach (var (path, names) in calls)
            {
                Assert.Equal(names, GrpcSpanAttributes.ParsePath(new string(path.AsSpan())));
            }
        }
    }

    [Fact]
    public void EncodeMessages_RoundTripsWhatWasKeptAndTheCount()
    {
        var reply = new OrderReply { OrderId = "ord-1", TotalCents = 1234 }.ToByteArray();
        using var reader = new GrpcFrameReader(new GrpcCaptureLimits(1024, 1, 10_000), null);
        reader.Append(GrpcFrameReaderTests.Frame(reply), TimeSpan.FromMilliseconds(1.5));
        reader.Append(GrpcFrameReaderTests.Frame(reply), TimeSpan.FromMilliseconds(3));
        reader.Complete();

        var decoded = GrpcSpanAttributes.DecodeMessages(GrpcSpanAttributes.EncodeMessages(reader));

        Assert.NotNull(decoded);
        Assert.Equal(2, decoded.Count);
        Assert.True(decoded.Truncated);
        var message = Assert.Single(decoded.Messages);
        Assert.Equal(reply, message.Payload.ToArray());
        Assert.Equal(TimeSpan.FromMilliseconds(1.5), message.Offset);
        Assert.Equal(reply.Length, message.WireLength);
    }

    [Theory]
    [InlineData(0L, "0")]
    [InlineData(10L, "0.001")]
    [InlineData(14L, "0.001")]
    [InlineData(16L, "0.002")]
    [InlineData(15L, "0.002")]
    [InlineData(25L, "0.002")]
    [InlineData(5_000L, "0.5")]
    [InlineData(12_340_000L, "1234")]
    [InlineData(12_345_670L, "1234.567")]
    [InlineData(10_500L, "1.05")]
    [InlineData(-15_000L, "-1.5")]
    [InlineData(-4L, "0")]
    public void FormatOffset_MillisecondsToTheMicrosecondInShortestForm(long ticks, string expected)
    {
        Span<byte> buffer = stackalloc byte[32];
        var written = GrpcSpanAttributes.FormatOffset(TimeSpan.FromTicks(ticks), buffer);
        Assert.Equal(expected, System.Text.Encoding.ASCII.GetString(buffer[..written]));
    }

    [Fact]
    public void FormatOffset_WritesWhatTheRoundedDoubleWrites()
    {
        // The JSON the backend and older agents read: Utf8Formatter of Math.Round(ms, 3), for every
        // offset that is not an exact half microsecond (where the double's own rounding decides).
        var random = new Random(18);
        Span<byte> expected = stackalloc byte[64];
        Span<byte> actual = stackalloc byte[64];
        for (var i = 0; i < 100_000; i++)
        {
            var ticks = i < 50_000 ? random.NextInt64(0, 100_000) : random.NextInt64(0, TimeSpan.TicksPerDay * 30);
            if (ticks % 10 == 5)
            {
                continue;
            }

            var offset = TimeSpan.FromTicks(ticks);
            Assert.True(System.Buffers.Text.Utf8Formatter.TryFormat(Math.Round(offset.TotalMilliseconds, 3), expected, out var length));
            var written = GrpcSpanAttributes.FormatOffset(offset, actual);
            Assert.True(expected[..length].SequenceEqual(actual[..written]), $"{ticks} ticks: {System.Text.Encoding.ASCII.GetString(actual[..written])}");
        }
    }

    [Fact]
    public void ToAnyValue_IsStoredAsTheTextOfTheJsonForm()
    {
        // A backend stores the structured list as its JSON (AsString); readers of the stored text
        // (the Trace View, HAR, mocks, replay, the body rebuilt from the frames) must see what the
        // JSON form gave them: offsets to the microsecond at every magnitude and tie, any flags and sizes.
        var random = new Random(18);
        for (var round = 0; round < 2_000; round++)
        {
            var messages = new List<GrpcMessage>();
            for (var i = random.Next(0, 4); i > 0; i--)
            {
                var ticks = random.Next(4) switch
                {
                    0 => random.NextInt64(-100, 100_000),
                    1 => (random.NextInt64(0, 1_000_000) * 10) + 5,
                    2 => random.NextInt64(0, TimeSpan.TicksPerDay * 30),
                    _ => -random.NextInt64(0, TimeSpan.TicksPerDay),
                };
                var payload = new byte[random.Next(0, 70)];
                random.NextBytes(payload);
                messages.Add(new GrpcMessage(random.Next(0, 1_000), TimeSpan.FromTicks(ticks), random.Next(2) == 0, random.NextInt64(0, 5_000_000_000), payload, random.Next(2) == 0, random.Next(2) == 0));
            }

            var list = new GrpcMessageList(random.Next(0, 100_000), random.Next(2) == 0, messages);

            Assert.Equal(GrpcSpanAttributes.EncodeMessages(list), ExchangeSpanMapper.AsString(GrpcSpanAttributes.ToAnyValue(list)));
        }
    }

    [Theory]
    [InlineData("whole", true)]
    [InlineData("list truncated", false)]
    [InlineData("message compressed", false)]
    [InlineData("message cut", false)]
    [InlineData("a byte differs", false)]
    [InlineData("flag set", false)]
    [InlineData("body longer", false)]
    [InlineData("body truncated", false)]
    public void IsFramesOf_OnlyABodyThatIsExactlyTheListsFrames(string change, bool expected)
    {
        byte[] first = [0x0a, 0x02, (byte)'h', (byte)'i'];
        byte[] second = [0x08, 0x2a];
        var messages = new List<GrpcMessage>
        {
            new(0, TimeSpan.Zero, false, first.Length, first, false, false),
            new(1, TimeSpan.FromMilliseconds(1), change == "message compressed", second.Length, second, change == "message cut", change == "message compressed"),
        };
        var list = new GrpcMessageList(2, change == "list truncated", messages);
        var frames = GrpcSpanAttributes.Frames(new GrpcMessageList(2, false, messages));
        switch (change)
        {
            case "a byte differs": frames[^1] ^= 1; break;
            case "flag set": frames[0] = 1; break;
            case "body longer": frames = [.. frames, 0]; break;
            default: break;
        }

        var body = new CapturedBody(frames, frames.Length, change == "body truncated", BodyKind.Binary, "application/grpc");

        Assert.Equal(expected, GrpcSpanAttributes.IsFramesOf(body, list));
    }

    [Theory]
    [InlineData("cut inside the last message", 5 + 4 + 5 + 1, true)]
    [InlineData("cut inside a frame header", 5 + 4 + 3, true)]
    [InlineData("a listed message past the cut", 5 + 4, false)]
    [InlineData("cut where the list's bytes end", 5 + 4 + 5 + 3, true)]
    [InlineData("body not truncated", 5 + 4 + 5 + 1, false)]
    [InlineData("body longer than the list holds", 5 + 4 + 5 + 4, false)]
    [InlineData("message compressed", 5 + 4 + 5 + 1, false)]
    [InlineData("an earlier message cut", 5 + 4 + 5 + 1, false)]
    [InlineData("a byte differs", 5 + 4 + 5 + 1, false)]
    [InlineData("flag set", 5 + 4 + 5 + 1, false)]
    [InlineData("length differs", 5 + 4 + 5 + 1, false)]
    [InlineData("body decoded", 5 + 4 + 5 + 1, false)]
    public void IsFramesPrefixOf_OnlyACutBodyThatIsTheStartOfTheListsFrames(string change, int length, bool expected)
    {
        // A 4-byte message, then one of 9 bytes on the wire of which the list kept 3 (its frame declares 9).
        byte[] first = [0x0a, 0x02, (byte)'h', (byte)'i'];
        byte[] second = [0x0a, 0x07, (byte)'a', (byte)'b', (byte)'c', (byte)'d', (byte)'e', (byte)'f', (byte)'g'];
        var wire = GrpcSpanAttributes.Frames(List(first, second));
        var list = new GrpcMessageList(2, true,
        [
            new(0, TimeSpan.Zero, false, first.Length, first, change == "an earlier message cut", false),
            new(1, TimeSpan.FromMilliseconds(1), change == "message compressed", second.Length, second[..3], true, false),
        ]);
        var content = change == "body longer than the list holds" ? wire[..length] : wire[..Math.Min(length, 5 + 4 + 5 + 3)];
        switch (change)
        {
            case "a byte differs": content[^1] ^= 1; break;
            case "flag set": content[9] = 1; break;
            case "length differs": content[13]++; break;
            default: break;
        }

        var body = new CapturedBody(content, wire.Length, change != "body not truncated", BodyKind.Binary, "application/grpc", Decoded: change == "body decoded");

        Assert.Equal(expected, GrpcSpanAttributes.IsFramesPrefixOf(body, list));
        Assert.False(GrpcSpanAttributes.IsFramesOf(body, list));
        if (expected)
        {
            Assert.Equal(content, GrpcSpanAttributes.FramesPrefix(list, content.Length));
        }
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(5 + 4 + 5 + 3 + 1)]
    public void FramesPrefix_LongerThanTheListHolds_IsNull(long length)
    {
        // A span is the caller's: a length past what its list can give back builds nothing.
        byte[] first = [0x0a, 0x02, (byte)'h', (byte)'i'];
        var list = new GrpcMessageList(2, true,
        [
            new(0, TimeSpan.Zero, false, first.Length, first, false, false),
            new(1, TimeSpan.Zero, false, 9, new byte[3], true, false),
        ]);

        Assert.Null(GrpcSpanAttributes.FramesPrefix(list, length));
    }

    private static GrpcMessageList List(params byte[][] payloads) =>
        new(payloads.Length, false, [.. payloads.Select((p, i) => new GrpcMessage(i, TimeSpan.Zero, false, p.Length, p, false, false))]);

    [Theory]
    [InlineData("")]
    [InlineData("{}")]
    [InlineData("{\"count\":1,\"truncated\":false,\"messages\":[{\"index\":0}]}")]
    [InlineData("not json")]
    public void DecodeMessages_NotTheShape_IsNull(string json) => Assert.Null(GrpcSpanAttributes.DecodeMessages(json));

    [Fact]
    public void Render_KnownMethod_ShowsProto3JsonOfTheRightDirection()
    {
        var set = GrpcDescriptorSet.Load([("test.pb", ProtobufDecodingTests.DescriptorSetOf(GrpcCaptureTestReflection.Descriptor))]);
        var request = Message(new OrderRequest { OrderId = "ord-7" }.ToByteArray());
        var reply = Message(new OrderReply { OrderId = "ord-7", TotalCents = 990 }.ToByteArray());

        var requestView = GrpcMessageView.Render(set, "/sp.test.grpc.Orders/Get", request: true, request);
        var replyView = GrpcMessageView.Render(set, "/sp.test.grpc.Orders/Get", request: false, reply);

        Assert.Equal("sp.test.grpc.OrderRequest", requestView["type"]!.GetValue<string>());
        Assert.Equal("""{"orderId":"ord-7"}""", requestView["json"]!.ToJsonString());
        Assert.Equal("""{"orderId":"ord-7","totalCents":"990"}""", replyView["json"]!.ToJsonString());
    }

    [Fact]
    public void Render_UnknownMethodOrTruncatedMessage_FallsBackToFieldsThenBytes()
    {
        var bytes = new OrderReply { OrderId = "ord-7", TotalCents = 990 }.ToByteArray();

        var unknown = GrpcMessageView.Render(GrpcDescriptorSet.Empty, "/sp.test.grpc.Orders/Get", request: false, Message(bytes));
        var truncated = GrpcMessageView.Render(GrpcDescriptorSet.Empty, "/sp.test.grpc.Orders/Get", request: false, Message(bytes[..4]) with { Truncated = true });

        Assert.Equal("ord-7", unknown["fields"]![0]!["string"]!.GetValue<string>());
        Assert.Null(unknown["json"]);
        Assert.Equal(Convert.ToBase64String(bytes[..4]), truncated["base64"]!.GetValue<string>());
    }

    private static GrpcMessage Message(byte[] payload) =>
        new(0, TimeSpan.Zero, false, payload.Length, payload, false, false);
}
