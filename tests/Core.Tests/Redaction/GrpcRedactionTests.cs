using System.Buffers.Binary;
using System.IO.Compression;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;
using SpIstio.Core.Tests.Redaction.Generated;

namespace SpIstio.Core.Tests.Redaction;

// The generated types build each message and parse the redacted bytes back: a redaction that broke
// the protobuf encoding (a length not rewritten) fails the parse.
public sealed class GrpcRedactionTests
{
    private const string Jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFkYSJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    private const string Path = "/sp.test.redaction.Accounts/SignIn";

    private static readonly GrpcDescriptorSet _descriptors = GrpcDescriptorSet.Load([("test", DescriptorSetBytes())]);

    private static SignInRequest Request() => new()
    {
        User = "ada@example.com",
        Password = "hunter2-plain",
        Note = "call me on +44 20 7946 0958 about ORD-2024-000123",
        Card = new Card { Number = "4111 1111 1111 1111", Holder = "Ada Lovelace" },
        Cvv = 737,
        Tags = { "vip", Jwt },
        OrderRef = "4111111111111112",
        Mobile = "07700900123",
        Blob = ByteString.CopyFrom(0xFF, 0x00, 0x01),
    };

    [Fact]
    public void Schemaless_PatternsInStrings_AreMaskedAndTheMessageStillParses()
    {
        var redactor = Redactor.Create(new RedactionOptions());

        var bytes = redactor.RedactProtobuf(Request().ToByteArray(), type: null, truncated: false, out var count);

        var parsed = SignInRequest.Parser.ParseFrom(bytes);
        Assert.Equal(Redactor.MaskValue, parsed.User);
        Assert.Equal(Redactor.MaskValue, parsed.Card.Number);
        Assert.Equal(["vip", Redactor.MaskValue], parsed.Tags);
        Assert.Equal("call me on [REDACTED] about ORD-2024-000123", parsed.Note);

        // Look-alikes stay: an order number glued to letters, a 16-digit run that fails Luhn.
        Assert.Equal("4111111111111112", parsed.OrderRef);
        Assert.Equal("Ada Lovelace", parsed.Card.Holder);
        Assert.Equal(ByteString.CopyFrom(0xFF, 0x00, 0x01), parsed.Blob);

        // Without descriptors a field's name is unknown: only values that look secret are found.
        Assert.Equal("hunter2-plain", parsed.Password);
        Assert.Equal(737, parsed.Cvv);
        Assert.Equal(4, count);
    }

    [Fact]
    public void WithDescriptors_FieldsNamedLikeSecretsOrPersonalData_AreReplacedWhole()
    {
        var redactor = Redactor.Create(new RedactionOptions(), _descriptors);
        var type = _descriptors.FindMethod(Path)!.InputType;

        var bytes = redactor.RedactProtobuf(Request().ToByteArray(), type, truncated: false, out _);

        var parsed = SignInRequest.Parser.ParseFrom(bytes);
        Assert.Equal(Redactor.MaskValue, parsed.Password);
        Assert.Equal(Redactor.MaskValue, parsed.Mobile);

        // A number cannot hold the marker: the field is removed and reads as its default.
        Assert.Equal(0, parsed.Cvv);
        Assert.Equal(Redactor.MaskValue, parsed.User);
        Assert.Equal("4111111111111112", parsed.OrderRef);
        Assert.Equal("Ada Lovelace", parsed.Card.Holder);
    }

    [Fact]
    public void HashMode_ReplacesWithKeyedHashes_EqualValuesJoin()
    {
        var redactor = Redactor.Create(new RedactionOptions { Mode = RedactionMode.Hash, Pii = PiiMode.Hash, HashKey = "k1" }, _descriptors);
        var type = _descriptors.FindMethod(Path)!.InputType;
        var other = Request();
        other.User = "ADA@example.com";

        var first = SignInRequest.Parser.ParseFrom(redactor.RedactProtobuf(Request().ToByteArray(), type, truncated: false, out _));
        var second = SignInRequest.Parser.ParseFrom(redactor.RedactProtobuf(other.ToByteArray(), type, truncated: false, out _));

        Assert.StartsWith("[REDACTED:hmac-sha256:", first.Password, StringComparison.Ordinal);
        Assert.StartsWith("[REDACTED:hmac-sha256:", first.User, StringComparison.Ordinal);
        Assert.StartsWith("[REDACTED:hmac-sha256:", first.Tags[1], StringComparison.Ordinal);
        Assert.Equal(first.Password, second.Password);

        // Addresses are hashed lower-cased, so the same mailbox joins however it was written.
        Assert.Equal(first.User, second.User);
        Assert.NotEqual(first.Password, first.User);
    }

    [Fact]
    public void Redact_GrpcExchange_RedactsTheMessageAttributesAndTheFramedBodies()
    {
        var redactor = Redactor.Create(new RedactionOptions(), _descriptors);
        var request = Request().ToByteArray();
        var reply = new SignInReply { Session = Jwt, AccessToken = "opaque-token-value", ExpiresIn = 3600 }.ToByteArray();
        var exchange = new Exchange { Path = Path };
        exchange.RequestHeaders.Add("content-type", "application/grpc");
        exchange.ResponseHeaders.Add("content-type", "application/grpc");
        exchange.ResponseHeaders.Add("grpc-encoding", "gzip");
        var requestBody = Frame(request, compressed: false);
        var responseBody = Frame(Gzip(reply), compressed: true);
        exchange.RequestBody = new CapturedBody(requestBody, requestBody.Length, false, BodyKind.Binary, "application/grpc");
        exchange.ResponseBody = new CapturedBody(responseBody, responseBody.Length, false, BodyKind.Binary, "application/grpc");
        exchange.Attributes[GrpcSpanAttributes.RpcSystem] = "grpc";
        exchange.Attributes[GrpcSpanAttributes.RequestMessages] = Messages(requestBody, null);
        exchange.Attributes[GrpcSpanAttributes.ResponseMessages] = Messages(responseBody, "gzip");

        var count = redactor.Redact(exchange);

        var requestMessage = SignInRequest.Parser.ParseFrom(GrpcSpanAttributes.DecodeMessages(exchange.Attributes[GrpcSpanAttributes.RequestMessages])!.Messages[0].Payload.Span);
        var replyMessage = SignInReply.Parser.ParseFrom(GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.ResponseMessages))!.Messages[0].Payload.Span);
        Assert.Equal(Redactor.MaskValue, requestMessage.Password);
        Assert.Equal(Redactor.MaskValue, replyMessage.Session);
        Assert.Equal(Redactor.MaskValue, replyMessage.AccessToken);
        Assert.Equal(3600, replyMessage.ExpiresIn);

        // The framed bodies are redacted the same way; the gzip frame is written back uncompressed.
        var (requestFlag, requestPayload) = SingleFrame(exchange.RequestBody.Content.ToArray());
        var (responseFlag, responsePayload) = SingleFrame(exchange.ResponseBody.Content.ToArray());
        Assert.Equal(0, requestFlag);
        Assert.Equal(0, responseFlag);
        Assert.Equal(requestMessage, SignInRequest.Parser.ParseFrom(requestPayload));
        Assert.Equal(replyMessage, SignInReply.Parser.ParseFrom(responsePayload));
        Assert.Equal(count.ToString(System.Globalization.CultureInfo.InvariantCulture), exchange.Attributes[Redactor.CountAttribute]);
    }

    [Fact]
    public void Redact_GrpcCallCapturedAsBytes_EndsAsTheAttributePathDoes_WalkingEachMessageOnce()
    {
        var redactor = Redactor.Create(new RedactionOptions(), _descriptors);
        var request = Frame(Request().ToByteArray(), compressed: false);
        var reply = Frame(Gzip(new SignInReply { Session = Jwt, AccessToken = "opaque-token-value", ExpiresIn = 3600 }.ToByteArray()), compressed: true);
        var viaAttributes = GrpcExchange(request, reply);
        viaAttributes.Attributes[GrpcSpanAttributes.RequestMessages] = Messages(request, null);
        viaAttributes.Attributes[GrpcSpanAttributes.ResponseMessages] = Messages(reply, "gzip");
        var captured = GrpcExchange(request, reply);
        captured.GrpcCall = new GrpcCallMessages(List(request, null), List(reply, "gzip"));

        var expectedCount = redactor.Redact(viaAttributes);
        var count = redactor.Redact(captured);
        GrpcCallMessages.Seal(captured);

        // The same values replaced (the framed request reused its listed message's result; the gzip
        // frame was inflated and walked, as before), the same bytes in the lists and the bodies.
        Assert.Equal(expectedCount, count);
        Assert.True(captured.GrpcCall!.Sealed);
        foreach (var key in new[] { GrpcSpanAttributes.RequestMessages, GrpcSpanAttributes.ResponseMessages })
        {
            Assert.Equal(
                GrpcSpanAttributes.DecodeMessages(viaAttributes.Attributes[key])!.Messages.Select(m => Convert.ToBase64String(m.Payload.Span)),
                GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(captured, key))!.Messages.Select(m => Convert.ToBase64String(m.Payload.Span)));
        }

        Assert.Equal(viaAttributes.RequestBody.Content.ToArray(), captured.RequestBody.Content.ToArray());
        Assert.Equal(viaAttributes.ResponseBody.Content.ToArray(), captured.ResponseBody.Content.ToArray());
        Assert.Equal(Redactor.MaskValue, SignInRequest.Parser.ParseFrom(SingleFrame(captured.RequestBody.Content.ToArray()).Payload).Password);
        Assert.Equal(viaAttributes.Attributes[Redactor.CountAttribute], captured.Attributes[Redactor.CountAttribute]);
    }

    [Fact]
    public void Redact_BodyCutFiveBytesShorterThanItsListedMessage_EndsAsTheAttributePathDoes()
    {
        // The list keeps up to max_message_bytes of a message, the body up to its limit of the stream,
        // the 5-byte frame header included: the body's frame is the listed message less its last 5 bytes,
        // and its verdict comes from the list's pre-scan. Values placed across that cut (a card whose
        // digits run on past it, a JWT, an e-mail, a name whose closing quote lies past it, an escape)
        // decide differently there; the body must end as its own redaction leaves it.
        var redactor = Redactor.Create(new RedactionOptions());
        string[] values = [" 41111111111111111234 ", " 4111 1111 1111 1111 ", " +44 20 7946 0958 1234 ", " " + Jwt + " ", " ada@example.com ", "{\"password\": \"x\"}", "\\u0040", " ghp_" + new string('a', 36) + " "];
        var random = new Random(18);
        var prefixOnly = 0;
        var sentAsFrames = 0;
        foreach (var value in values)
        {
            for (var shift = -24; shift <= 8; shift++)
            {
                // One string field: tag, two-byte length, text; the value ends `shift` bytes after the body's cut.
                var text = new char[300];
                for (var i = 0; i < text.Length; i++)
                {
                    text[i] = (char)('a' + random.Next(26));
                }

                var message = new byte[] { 0x0A, 0xAC, 0x02 }.Concat(System.Text.Encoding.ASCII.GetBytes(text)).ToArray();
                var listKeeps = message.Length - 4;
                var cutAt = listKeeps - 5;
                var end = Math.Min(cutAt + shift, message.Length);
                System.Text.Encoding.ASCII.GetBytes(value).AsSpan()[..Math.Min(value.Length, end - 3)].CopyTo(message.AsSpan(Math.Max(3, end - value.Length)));

                var frame = Frame(message, compressed: false);
                var limits = GrpcCaptureLimits.Default with { MaxMessageBytes = listKeeps };
                var body = new CapturedBody(frame[..listKeeps], frame.Length, true, BodyKind.Binary, "application/grpc");
                var reply = Frame(new SignInReply { ExpiresIn = 1 }.ToByteArray(), compressed: false);
                var viaAttributes = GrpcExchange(body.Content.ToArray(), reply);
                viaAttributes.RequestBody = body;
                viaAttributes.Attributes[GrpcSpanAttributes.RequestMessages] = GrpcSpanAttributes.EncodeMessages(List(frame, null, limits));
                var captured = GrpcExchange(body.Content.ToArray(), reply);
                captured.RequestBody = body;
                captured.GrpcCall = new GrpcCallMessages(List(frame, null, limits), List(reply, null, limits));
                if (redactor.RedactProtobuf(message.AsSpan(0, listKeeps), null, truncated: true, out _) is null
                    && redactor.RedactProtobuf(message.AsSpan(0, cutAt), null, truncated: true, out _) is not null)
                {
                    prefixOnly++;
                }

                redactor.Redact(viaAttributes);
                redactor.Redact(captured);
                GrpcCallMessages.Seal(captured);

                Assert.Equal(viaAttributes.RequestBody.Content.ToArray(), captured.RequestBody.Content.ToArray());
                Assert.Equal(viaAttributes.Attributes[GrpcSpanAttributes.RequestMessages], GrpcCallMessages.Text(captured, GrpcSpanAttributes.RequestMessages));
                Assert.Equal(viaAttributes.Attributes.GetValueOrDefault(Redactor.CountAttribute), captured.Attributes.GetValueOrDefault(Redactor.CountAttribute));
                sentAsFrames += AssertSentAsFramesOnlyWhenTheyRebuildIt(captured.RequestBody, captured.GrpcCall!.Request);
            }
        }

        // Some cuts leave a value in the body's part that the listed message's whole run hides.
        Assert.True(prefixOnly > 0);
        Assert.True(sentAsFrames > 0);
    }

    [Fact]
    public void LargeMessageMostlyBinary_StringsBesideTheBytes_AreStillRedacted()
    {
        // 60 KiB of random bytes in the bytes field, which the walk does not read as text: the
        // message is walked without a pre-scan, and its strings must still meet the detectors.
        var redactor = Redactor.Create(new RedactionOptions());
        var blob = new byte[60 * 1024];
        new Random(18).NextBytes(blob);
        blob[0] = 0x07; // no field starts so (field 0): not the start of a message either
        var request = new SignInRequest { User = "ada@example.com", Note = "call me on +44 20 7946 0958", Tags = { "vip", Jwt }, Blob = ByteString.CopyFrom(blob) };

        var bytes = redactor.RedactProtobuf(request.ToByteArray(), type: null, truncated: false, out var count);

        var parsed = SignInRequest.Parser.ParseFrom(bytes);
        Assert.Equal(Redactor.MaskValue, parsed.User);
        Assert.Equal("call me on [REDACTED]", parsed.Note);
        Assert.Equal(["vip", Redactor.MaskValue], parsed.Tags);
        Assert.Equal(blob, parsed.Blob.ToByteArray());
        Assert.Equal(3, count);
    }

    [Fact]
    public void Redact_SixtyFourKiBRandomCallCutByBothLimits_MasksItsStringInListAndBody_AsTheAttributePathDoes()
    {
        // The proxy bench's 64 KiB random call with a string field before its bytes: the message
        // (65,562 bytes) is listed to 65,536 and its body cut at 65,536 bytes of stream, 5 fewer
        // of the message. Both copies are walked without a pre-scan (mostly random bytes); the
        // e-mail is masked in each, and the call ends as the attribute path leaves it.
        var redactor = Redactor.Create(new RedactionOptions());
        var random = new byte[65536];
        new Random(64).NextBytes(random);
        random[0] = 0x07; // no field starts so (field 0): not the start of a message either
        var message = new byte[] { 0x0A, 0x14 }.Concat("mail ada@example.com"u8.ToArray())
            .Concat(new byte[] { 0x12, 0x80, 0x80, 0x04 }).Concat(random).ToArray();
        var frame = Frame(message, compressed: false);
        var body = new CapturedBody(frame[..65536], frame.Length, true, BodyKind.Binary, "application/grpc");
        var reply = Frame(new SignInReply { ExpiresIn = 1 }.ToByteArray(), compressed: false);
        var viaAttributes = GrpcExchange(body.Content.ToArray(), reply);
        viaAttributes.RequestBody = body;
        viaAttributes.Attributes[GrpcSpanAttributes.RequestMessages] = GrpcSpanAttributes.EncodeMessages(List(frame, null));
        var captured = GrpcExchange(body.Content.ToArray(), reply);
        captured.RequestBody = body;
        captured.GrpcCall = new GrpcCallMessages(List(frame, null), List(reply, null));

        var expectedCount = redactor.Redact(viaAttributes);
        var count = redactor.Redact(captured);
        GrpcCallMessages.Seal(captured);

        Assert.Equal(2, count);
        Assert.Equal(expectedCount, count);
        var listed = GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(captured, GrpcSpanAttributes.RequestMessages))!.Messages[0];
        Assert.True(listed.Truncated);
        Assert.Equal(viaAttributes.Attributes[GrpcSpanAttributes.RequestMessages], GrpcCallMessages.Text(captured, GrpcSpanAttributes.RequestMessages));
        Assert.Equal(viaAttributes.RequestBody.Content.ToArray(), captured.RequestBody.Content.ToArray());
        AssertSentAsFramesOnlyWhenTheyRebuildIt(captured.RequestBody, captured.GrpcCall!.Request);
        foreach (var redacted in new[] { listed.Payload.ToArray(), captured.RequestBody.Content.ToArray() })
        {
            var text = System.Text.Encoding.Latin1.GetString(redacted);
            Assert.DoesNotContain("ada@example", text, StringComparison.Ordinal);
            Assert.Contains(System.Text.Encoding.Latin1.GetString(random, 0, 4096), text, StringComparison.Ordinal);
        }

        // The bench's call itself, random bytes only: nothing to mask, so the cut body goes out as a
        // reference to its list's frames and is rebuilt from them as it was.
        var plainFrame = Frame([0x0A, 0x80, 0x80, 0x04, .. random], compressed: false);
        var plainBody = new CapturedBody(plainFrame[..65536], plainFrame.Length, true, BodyKind.Binary, "application/grpc");
        var plain = GrpcExchange(plainBody.Content.ToArray(), reply);
        plain.RequestBody = plainBody;
        plain.GrpcCall = new GrpcCallMessages(List(plainFrame, null), List(reply, null));

        Assert.Equal(0, redactor.Redact(plain));
        GrpcCallMessages.Seal(plain);

        Assert.Equal(1, AssertSentAsFramesOnlyWhenTheyRebuildIt(plain.RequestBody, plain.GrpcCall.Request));
        Assert.Equal(plainFrame[..65536], plain.RequestBody.Content.ToArray());
    }

    [Fact]
    public void OperatorPattern_InAMessageOfAnUndescribedCall_IsRedacted()
    {
        // Patterns are matched on the whole message before any field is walked: no pre-scan shortcut.
        var redactor = Redactor.Create(new RedactionOptions { Patterns = ["ORD-[0-9]{6}"] });
        var payload = new SignInReply { Session = "order ORD-123456 shipped", ExpiresIn = 5 }.ToByteArray();
        var body = Frame(payload, compressed: false);
        var exchange = GrpcExchange(Frame([], compressed: false), body);
        exchange.Path = "/unknown.Service/Call";
        exchange.GrpcCall = new GrpcCallMessages(List(Frame([], compressed: false), null), List(body, null));

        Assert.True(redactor.Redact(exchange) >= 2);
        GrpcCallMessages.Seal(exchange);

        Assert.DoesNotContain("ORD-123456", System.Text.Encoding.UTF8.GetString(GrpcSpanAttributes.DecodeMessages(GrpcCallMessages.Text(exchange, GrpcSpanAttributes.ResponseMessages))!.Messages[0].Payload.Span), StringComparison.Ordinal);
        Assert.DoesNotContain("ORD-123456", System.Text.Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span), StringComparison.Ordinal);
    }

    [Fact]
    public void TruncatedMessage_TheCutStringIsStillRedacted()
    {
        var redactor = Redactor.Create(new RedactionOptions());
        var whole = new SignInReply { ExpiresIn = 5, Session = "token for ada@example.com and more text after it" }.ToByteArray();
        var cut = whole.AsSpan(0, whole.Length - 10);

        var bytes = redactor.RedactProtobuf(cut, type: null, truncated: true, out var count);

        Assert.Equal(1, count);
        Assert.DoesNotContain("ada@example.com", System.Text.Encoding.UTF8.GetString(bytes!), StringComparison.Ordinal);
    }

    [Fact]
    public void TruncatedMessage_TextCutInsideACharacter_IsStillRedactedAsText()
    {
        var redactor = Redactor.Create(new RedactionOptions());
        var whole = new SignInReply { Session = "token for ada@example.com, café" }.ToByteArray();

        // The cut falls between the two bytes of the final "é": the value is no longer valid UTF-8.
        var bytes = redactor.RedactProtobuf(whole.AsSpan(0, whole.Length - 1), type: null, truncated: true, out var count);

        Assert.Equal(1, count);
        Assert.DoesNotContain("ada@example.com", System.Text.Encoding.UTF8.GetString(bytes!), StringComparison.Ordinal);
    }

    [Fact]
    public void TruncatedNestedMessage_HoldingBinary_HasItsStringsRedacted()
    {
        var redactor = Redactor.Create(new RedactionOptions());

        // Field 1 of an undescribed message holds a SignInRequest whose bytes field (not UTF-8) the cut
        // falls inside: the nested value is neither text nor a whole message, but the start of one.
        var inner = new SignInRequest { User = "ada@example.com", Blob = ByteString.CopyFrom(Enumerable.Repeat((byte)0xFF, 64).ToArray()) }.ToByteArray();
        var outer = new byte[] { 0x0A, (byte)inner.Length }.Concat(inner).ToArray();

        var bytes = redactor.RedactProtobuf(outer.AsSpan(0, outer.Length - 32), type: null, truncated: true, out var count);

        Assert.Equal(1, count);
        Assert.DoesNotContain("ada@example.com", System.Text.Encoding.Latin1.GetString(bytes!), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[] { 0x0A, 0x05, 0x61, 0x62 }, false, true)] // a string whose length runs past the cut
    [InlineData(new byte[] { 0x08, 0x96 }, false, true)] // a varint cut inside
    [InlineData(new byte[] { 0x08, 0x01, 0x0D, 0x01, 0x02 }, false, true)] // a fixed32 cut inside
    [InlineData(new byte[] { 0x08, 0x01, 0x0A, 0x01, 0x61 }, true, true)] // whole fields
    [InlineData(new byte[] { 0x0B, 0x01 }, false, false)] // a group tag: not the start of a message either way
    [InlineData(new byte[] { 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, false, false)] // a varint over 10 bytes
    public void ProtoWire_IsWellFormed_AcceptsACutLastFieldOnlyWhenCut(byte[] data, bool whole, bool cut)
    {
        Assert.Equal(whole, ProtoWire.IsWellFormed(data));
        Assert.Equal(cut, ProtoWire.IsWellFormed(data, cut: true));
    }

    [Fact]
    public void NothingToRedact_ReturnsNull()
    {
        var redactor = Redactor.Create(new RedactionOptions(), _descriptors);
        var type = _descriptors.FindMethod(Path)!.InputType;
        var clean = new SignInRequest { User = "ada", Note = "nothing here", Card = new Card { Holder = "Ada" }, Tags = { "a", "b" } }.ToByteArray();

        Assert.Null(redactor.RedactProtobuf(clean, type, truncated: false, out var count));
        Assert.Equal(0, count);
    }

    // A body sent as a reference to its message list (Seal) is rebuilt from the list by ingest: it must
    // come back byte for byte. 1 when it was sent so, else 0.
    private static int AssertSentAsFramesOnlyWhenTheyRebuildIt(CapturedBody body, GrpcMessageList list)
    {
        if (!body.MessageFrames)
        {
            return 0;
        }

        Assert.Equal(body.Content.ToArray(), GrpcSpanAttributes.FramesPrefix(list, body.Content.Length));
        return 1;
    }

    private static byte[] DescriptorSetBytes()
    {
        var set = new FileDescriptorSet();
        set.File.Add(FileDescriptorProto.Parser.ParseFrom(GrpcRedactionTestReflection.Descriptor.SerializedData));
        return set.ToByteArray();
    }

    private static byte[] Frame(byte[] payload, bool compressed)
    {
        var frame = new byte[5 + payload.Length];
        frame[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(frame, 5);
        return frame;
    }

    private static (byte Flag, byte[] Payload) SingleFrame(byte[] body)
    {
        var length = BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(1));
        Assert.Equal(body.Length, 5 + (int)length);
        return (body[0], body[5..]);
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    private static Exchange GrpcExchange(byte[] requestBody, byte[] responseBody)
    {
        var exchange = new Exchange { Path = Path };
        exchange.RequestHeaders.Add("content-type", "application/grpc");
        exchange.ResponseHeaders.Add("content-type", "application/grpc");
        exchange.ResponseHeaders.Add("grpc-encoding", "gzip");
        exchange.RequestBody = new CapturedBody(requestBody, requestBody.Length, false, BodyKind.Binary, "application/grpc");
        exchange.ResponseBody = new CapturedBody(responseBody, responseBody.Length, false, BodyKind.Binary, "application/grpc");
        return exchange;
    }

    private static GrpcMessageList List(byte[] body, string? encoding, GrpcCaptureLimits? limits = null)
    {
        using var reader = new GrpcFrameReader(limits ?? GrpcCaptureLimits.Default, encoding);
        reader.Append(body, TimeSpan.Zero);
        reader.Complete();
        return new GrpcMessageList(reader.MessageCount, reader.Truncated, [.. reader.Messages]);
    }

    private static string Messages(byte[] body, string? encoding)
    {
        using var reader = new GrpcFrameReader(GrpcCaptureLimits.Default, encoding);
        reader.Append(body, TimeSpan.Zero);
        reader.Complete();
        return GrpcSpanAttributes.EncodeMessages(reader);
    }
}
