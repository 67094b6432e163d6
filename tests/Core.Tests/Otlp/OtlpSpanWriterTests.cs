using System.Diagnostics;
using System.Globalization;
using System.Text;
using FsCheck.Xunit;
using Google.Protobuf;
using SpIstio.Core.Capture;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Core.Tests.Otlp;

/// <summary>
/// The generated OTLP types are the oracle: the writer's bytes must parse to exactly the message
/// <see cref="ExchangeSpanMapper.ToExportRequest"/> builds (and, written in the same field order,
/// be the very bytes protobuf writes for it).
/// </summary>
public class OtlpSpanWriterTests
{
    private static readonly ActivityTraceId _traceId = ActivityTraceId.CreateFromString("0af7651916cd43dd8448eb211c80319c");
    private static readonly ActivitySpanId _spanId = ActivitySpanId.CreateFromString("b7ad6b7169203331");
    private static readonly ActivitySpanId _parentId = ActivitySpanId.CreateFromString("00f067aa0ba902b7");
    private static readonly DateTimeOffset _start = new(2024, 5, 6, 7, 8, 9, TimeSpan.Zero);

    public static TheoryData<string> Cases => [.. CaseExchanges().Keys];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Write_EdgeCaseExchange_ParsesToTheReferenceRequest(string name)
    {
        var exchange = CaseExchanges()[name];

        AssertSameAsReference([exchange], "pk-123", "1.2.3");
        AssertSameAsReference([exchange], null, "1.2.3");
    }

    [Fact]
    public void Write_AllEdgeCasesInOneBatch_GroupsResourcesLikeTheReference()
    {
        var batch = CaseExchanges().Values.ToList();

        AssertSameAsReference(batch, "pk", "");
    }

    [Fact]
    public void Write_InterleavedServices_OneResourcePerServiceInFirstSeenOrder()
    {
        var batch = new List<Exchange>();
        foreach (var service in new[] { "b", "a", "b", "c", "a", "b" })
        {
            var exchange = Basic();
            exchange.ServiceName = service;
            exchange.Path = "/" + service + batch.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            batch.Add(exchange);
        }

        var parsed = AssertSameAsReference(batch, "pk", "1.0");

        Assert.Equal(["b", "a", "c"], parsed.ResourceSpans.Select(r => r.Resource.Attributes[0].Value.StringValue));
        Assert.Equal(["/b0", "/b2", "/b5"], parsed.ResourceSpans[0].ScopeSpans[0].Spans.Select(s => s.Attributes.First(a => a.Key == "url.path").Value.StringValue));
    }

    [Fact]
    public void Write_ExchangeWithBinaryIds_CarriesTheSameIdBytesAsTheReference()
    {
        var exchange = Basic();
        exchange.SetTraceIds(
            UInt128.Parse("0af7651916cd43dd8448eb211c80319c", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture),
            0xb7ad6b7169203331,
            0x00f067aa0ba902b7);
        var root = Basic();
        root.SetTraceIds(UInt128.MaxValue, 1, 0);

        var parsed = AssertSameAsReference([exchange, root], "pk", "1.0");

        var spans = parsed.ResourceSpans[0].ScopeSpans[0].Spans;
        Assert.Equal(Convert.FromHexString("0af7651916cd43dd8448eb211c80319c"), spans[0].TraceId.ToByteArray());
        Assert.Equal(Convert.FromHexString("b7ad6b7169203331"), spans[0].SpanId.ToByteArray());
        Assert.Equal(Convert.FromHexString("00f067aa0ba902b7"), spans[0].ParentSpanId.ToByteArray());
        Assert.Equal(Convert.FromHexString("0000000000000001"), spans[1].SpanId.ToByteArray());
        Assert.True(spans[1].ParentSpanId.IsEmpty);
    }

    [Fact]
    public void Write_EmptyBatch_IsAnEmptyRequest()
    {
        AssertSameAsReference([], "pk", "1.0");
    }

    [Fact]
    public void Write_LargeUtf8Body_CarriesTheBytesUnchanged()
    {
        var exchange = Basic();
        var text = string.Concat(Enumerable.Repeat("{\"city\":\"Zürich\",\"note\":\"中文😀\"}", 4000));
        exchange.ResponseBody = new CapturedBody(Encoding.UTF8.GetBytes(text), 200_000, true, BodyKind.Text, "application/json");

        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var body = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0].Attributes.First(a => a.Key == OtlpAttributes.ResponseBody);
        Assert.Equal(text, body.Value.StringValue);
    }

    [Fact]
    public void Write_CapturedTextBodyCutMidCharacter_IsTextLikeTheReference()
    {
        var exchange = Basic();
        var wire = Encoding.UTF8.GetBytes("{\"city\":\"Zürich\",\"note\":\"中");
        exchange.ResponseBody = BodyCapture.Create(wire.AsMemory(0, wire.Length - 1), 40, true, "application/json", null, 0);

        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var body = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0].Attributes.First(a => a.Key == OtlpAttributes.ResponseBody);
        Assert.Equal("{\"city\":\"Zürich\",\"note\":\"", body.Value.StringValue);
    }

    [Fact]
    public void Write_CapturedTextBodyWhoseContentWasReplaced_ChecksTheNewContent()
    {
        // BodyCapture's UTF-8 verdict is for the bytes it checked: content put in their place
        // (a rewrite) is checked again, so invalid bytes go out as the reference sends them, never as a broken string.
        var exchange = Basic();
        var captured = BodyCapture.Create(Encoding.UTF8.GetBytes("{\"a\":\"b\"}"), 9, false, "application/json", null, 0);
        exchange.ResponseBody = captured with { Content = new byte[] { 0x7B, 0xC3, 0x28, 0x7D } };

        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var attributes = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0].Attributes;
        Assert.Equal("e8MofQ==", attributes.First(a => a.Key == OtlpAttributes.ResponseBody).Value.StringValue);
        Assert.Contains(attributes, a => a.Value.StringValue == OtlpAttributes.Base64);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TryWriteSpan_UnderAnyLimit_FailsOrWritesTheMeasuredSpanAndNeverPastTheLimit(string name)
    {
        var exchange = CaseExchanges()[name];
        var measured = OtlpSpanWriter.MeasureSpan(exchange, "pk");
        var expected = new byte[measured.Length];
        OtlpSpanWriter.WriteSpan(exchange, "pk", measured, expected, 0);
        var fitted = false;

        // Every limit around the span's length, a sample of the others up to the largest bound (3 bytes a char).
        var limits = Enumerable.Range(0, 200).Select(i => measured.Length * i / 200)
            .Concat(Enumerable.Range(Math.Max(0, measured.Length - 64), 256))
            .Concat(Enumerable.Range(1, 64).Select(i => measured.Length + 192 + (i * ((2 * measured.Length) + 1024) / 64)))
            .Order();
        foreach (var limit in limits)
        {
            var buffer = new byte[limit + 64];
            Array.Fill(buffer, (byte)0xA5);

            var ok = OtlpSpanWriter.TryWriteSpan(exchange, "pk", buffer, 0, limit, out var written);

            Assert.All(buffer.AsSpan(limit).ToArray(), b => Assert.Equal(0xA5, b));
            if (ok)
            {
                Assert.Equal(measured, written);
                Assert.Equal(expected, buffer.AsSpan(0, written.Length).ToArray());
                fitted = true;
            }
            else
            {
                // Smaller than the span never fits; a field's upper bound may refuse a little more.
                Assert.True(limit < measured.Length || !fitted, $"a limit of {limit} failed after a smaller one fitted");
            }
        }

        Assert.True(fitted);
        Assert.True(OtlpSpanWriter.TryWriteSpan(exchange, "pk", new byte[4 * (measured.Length + 256)], 0, 4 * (measured.Length + 256), out _));
    }

    [Fact]
    public void Write_ToStream_WritesTheSameBytesAsToByteArray()
    {
        var batch = CaseExchanges().Values.ToList();
        using var stream = new MemoryStream();

        OtlpSpanWriter.Write(batch, "pk", "1.0", stream);

        Assert.Equal(OtlpSpanWriter.ToByteArray(batch, "pk", "1.0"), stream.ToArray());
    }

    [Property(Arbitrary = [typeof(ExchangeGenerators)], MaxTest = 200)]
    public void Write_AnyBatch_ParsesToTheReferenceRequest(Exchange[] batch, bool withKey)
    {
        AssertSameAsReference(batch, withKey ? "pk-prop" : null, "9.9.9");
    }

    [Fact]
    public void Write_GrpcStatusCode_IsAnIntAttributeAndReadsBackAsTheExchangeHad()
    {
        var exchange = Basic();
        exchange.Attributes["rpc.system"] = "grpc";
        exchange.Attributes["rpc.grpc.status_code"] = "5";

        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var attributes = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0].Attributes;
        var status = Assert.Single(attributes, a => a.Key == "rpc.grpc.status_code");
        Assert.Equal(5, status.Value.IntValue);
        Assert.Equal("grpc", Assert.Single(attributes, a => a.Key == "rpc.system").Value.StringValue);
        var back = ExchangeSpanMapper.FromSpan(parsed.ResourceSpans[0].ScopeSpans[0].Spans[0], parsed.ResourceSpans[0].Resource);
        Assert.Equal("5", back.Attributes["rpc.grpc.status_code"]);
    }

    [Fact]
    public void Write_GrpcBodiesThatAreTheirListsFrames_CarryEachMessageOnceAndReadBackWhole()
    {
        var exchange = Basic();
        exchange.Method = "POST";
        exchange.Path = "/sp.bench.Bench/Unary";
        byte[] request = [0x0a, 0x03, (byte)'a', (byte)'b', (byte)'c'];
        byte[] reply1 = [0x08, 0x01];
        byte[] reply2 = [];
        exchange.RequestBody = GrpcBody(request);
        exchange.ResponseBody = GrpcBody(reply1, reply2);
        exchange.GrpcCall = new GrpcCallMessages(List(request), List(reply1, reply2));

        GrpcCallMessages.Seal(exchange);
        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var span = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0];
        Assert.DoesNotContain(span.Attributes, a => a.Key == OtlpAttributes.RequestBody || a.Key == OtlpAttributes.ResponseBody);
        Assert.Equal(
            [OtlpAttributes.GrpcMessageFrames, OtlpAttributes.GrpcMessageFrames],
            span.Attributes.Where(a => a.Key.EndsWith("." + OtlpAttributes.BodyEncodingSuffix, StringComparison.Ordinal)).Select(a => a.Value.StringValue));
        var back = ExchangeSpanMapper.FromSpan(span, parsed.ResourceSpans[0].Resource);
        Assert.Equal(exchange.RequestBody.Content.ToArray(), back.RequestBody.Content.ToArray());
        Assert.Equal(exchange.ResponseBody.Content.ToArray(), back.ResponseBody.Content.ToArray());
        Assert.Equal(BodyKind.Binary, back.ResponseBody.Kind);
        Assert.Equal(exchange.ResponseBody.OriginalSize, back.ResponseBody.OriginalSize);
        Assert.Equal("application/grpc", back.ResponseBody.ContentType);
    }

    [Fact]
    public void Write_GrpcBodyThatIsNotItsListsFrames_CarriesItsOwnBytes()
    {
        var exchange = Basic();
        byte[] request = [0x0a, 0x01, (byte)'x'];
        exchange.RequestBody = GrpcBody(request);

        // The list was cut at the limits: it no longer holds every byte of the body.
        exchange.GrpcCall = new GrpcCallMessages(new GrpcMessageList(2, true, List(request).Messages), null);

        GrpcCallMessages.Seal(exchange);
        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var span = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0];
        Assert.Equal(Convert.ToBase64String(exchange.RequestBody.Content.Span), Assert.Single(span.Attributes, a => a.Key == OtlpAttributes.RequestBody).Value.StringValue);
        var back = ExchangeSpanMapper.FromSpan(span, parsed.ResourceSpans[0].Resource);
        Assert.Equal(exchange.RequestBody.Content.ToArray(), back.RequestBody.Content.ToArray());
    }

    [Fact]
    public void Write_GrpcBodiesCutInsideTheirListedMessages_CarryEachMessageOnceAndReadBackByteForByte()
    {
        // The 64 KiB call in small: each body is cut by its limit inside a message the list holds
        // more of (cut by the message limit too), so the body is the start of the list's frames.
        var exchange = Basic();
        exchange.Method = "POST";
        exchange.Path = "/sp.bench.Bench/Unary";
        byte[] request = [0x0a, 0x08, .. "abcdefgh"u8];
        byte[] reply = [0x08, 0x01, 0x12, 0x04, .. "wxyz"u8];
        var requestWire = GrpcSpanAttributes.Frames(List(request));
        var replyWire = GrpcSpanAttributes.Frames(List(reply));
        exchange.RequestBody = new CapturedBody(requestWire[..9], requestWire.Length, true, BodyKind.Binary, "application/grpc");
        exchange.ResponseBody = new CapturedBody(replyWire[..3], replyWire.Length, true, BodyKind.Binary, "application/grpc");
        exchange.GrpcCall = new GrpcCallMessages(CutList(request, 6), CutList(reply, 4));

        GrpcCallMessages.Seal(exchange);
        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var span = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0];
        Assert.DoesNotContain(span.Attributes, a => a.Key == OtlpAttributes.RequestBody || a.Key == OtlpAttributes.ResponseBody);
        Assert.Equal(
            [OtlpAttributes.GrpcMessageFramesPrefix, OtlpAttributes.GrpcMessageFramesPrefix],
            span.Attributes.Where(a => a.Key.EndsWith("." + OtlpAttributes.BodyEncodingSuffix, StringComparison.Ordinal)).Select(a => a.Value.StringValue));
        Assert.Equal([9L, 3L], span.Attributes.Where(a => a.Key.EndsWith("." + OtlpAttributes.BodyFramesLengthSuffix, StringComparison.Ordinal)).Select(a => a.Value.IntValue));
        var back = ExchangeSpanMapper.FromSpan(span, parsed.ResourceSpans[0].Resource);
        Assert.Equal(requestWire[..9], back.RequestBody.Content.ToArray());
        Assert.Equal(replyWire[..3], back.ResponseBody.Content.ToArray());
        Assert.True(back.RequestBody.Truncated);
        Assert.Equal(BodyKind.Binary, back.ResponseBody.Kind);
        Assert.Equal(replyWire.Length, back.ResponseBody.OriginalSize);
        Assert.Equal("application/grpc", back.ResponseBody.ContentType);
    }

    [Fact]
    public void Write_CutGrpcBodyWhoseMessageIsCompressed_CarriesItsOwnBytes()
    {
        var exchange = Basic();
        byte[] message = [0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03, 0x04];
        var wire = GrpcSpanAttributes.Frames(List(message));
        wire[0] = 1;
        exchange.RequestBody = new CapturedBody(wire[..9], wire.Length, true, BodyKind.Binary, "application/grpc");
        exchange.GrpcCall = new GrpcCallMessages(
            new GrpcMessageList(1, true, [new GrpcMessage(0, TimeSpan.Zero, true, message.Length, message[..6], true, false)]), null);

        GrpcCallMessages.Seal(exchange);
        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var span = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0];
        Assert.Equal(Convert.ToBase64String(wire.AsSpan(0, 9)), Assert.Single(span.Attributes, a => a.Key == OtlpAttributes.RequestBody).Value.StringValue);
        Assert.Equal(wire[..9], ExchangeSpanMapper.FromSpan(span, parsed.ResourceSpans[0].Resource).RequestBody.Content.ToArray());
    }

    [Fact]
    public void Write_GrpcMessageLists_CarryThePayloadsAsBytes_AndAreStoredAsTheListsJsonText()
    {
        byte[] first = [0x0a, 0x03, (byte)'a', (byte)'b', (byte)'c'];
        byte[] cut = [.. Enumerable.Range(0, 300).Select(i => (byte)i)];
        var exchange = Basic();
        var request = new GrpcMessageList(4, true, [
            new GrpcMessage(0, TimeSpan.FromTicks(12_345), false, first.Length, first, false, false),
            new GrpcMessage(1, TimeSpan.FromTicks(10_005), true, 4_000_000_000, cut, true, true),
            new GrpcMessage(2, TimeSpan.FromTicks(-15_000), false, 0, Array.Empty<byte>(), false, false)]);
        var response = new GrpcMessageList(0, false, []);
        exchange.GrpcCall = new GrpcCallMessages(request, response);
        GrpcCallMessages.Seal(exchange);

        var parsed = AssertSameAsReference([exchange], "pk", "1.0");

        var span = parsed.ResourceSpans[0].ScopeSpans[0].Spans[0];
        var requestValue = Assert.Single(span.Attributes, a => a.Key == GrpcSpanAttributes.RequestMessages).Value;
        var responseValue = Assert.Single(span.Attributes, a => a.Key == GrpcSpanAttributes.ResponseMessages).Value;
        var messages = requestValue.KvlistValue.Values.Single(e => e.Key == "messages").Value.ArrayValue.Values;
        Assert.Equal([first, cut, []], messages.Select(m => m.KvlistValue.Values.Single(e => e.Key == "data").Value.BytesValue.ToByteArray()));

        // What every backend that reads message lists stores for a structured attribute (its JSON)
        // is the text of the list's JSON form, so it reads the list back the same.
        Assert.Equal(GrpcSpanAttributes.EncodeMessages(request), ExchangeSpanMapper.AsString(requestValue));
        Assert.Equal(GrpcSpanAttributes.EncodeMessages(response), ExchangeSpanMapper.AsString(responseValue));
        var back = ExchangeSpanMapper.FromSpan(span, parsed.ResourceSpans[0].Resource);
        Assert.Equal(GrpcSpanAttributes.EncodeMessages(request), back.Attributes[GrpcSpanAttributes.RequestMessages]);
    }

    [Fact]
    public void ToArray_WithDeferredBytes_LeavesLargeGrpcPayloadsInTheirOwnArrays_AndSendsTheReferenceBytes()
    {
        // The 64 KiB call: both bodies cut inside their message, each message carried once from its array.
        var random = new Random(18);
        var request = new byte[64 * 1024];
        var reply = new byte[64 * 1024];
        var small = new byte[DeferredBytes.MinBytes - 1];
        random.NextBytes(request);
        random.NextBytes(reply);
        random.NextBytes(small);
        var requestWire = GrpcSpanAttributes.Frames(List(request));
        var replyWire = GrpcSpanAttributes.Frames(List(reply, small));
        var exchange = Basic();
        exchange.RequestBody = new CapturedBody(requestWire[..(64 * 1024)], requestWire.Length, true, BodyKind.Binary, "application/grpc");
        exchange.ResponseBody = new CapturedBody(replyWire[..(64 * 1024)], replyWire.Length, true, BodyKind.Binary, "application/grpc");
        exchange.GrpcCall = new GrpcCallMessages(List(request), new GrpcMessageList(2, false, List(reply, small).Messages));
        GrpcCallMessages.Seal(exchange);

        var parsed = AssertSameAsReference([exchange], "pk", "1.0");
        Gathered([exchange], "pk", "1.0", out var gaps);

        // Only payloads of at least MinBytes are left out, each the list's own bytes, not a copy.
        Assert.Equal(2, gaps.Count);
        Assert.Contains(gaps, g => g.Content.Equals(exchange.GrpcCall.Request.Messages[0].Payload));
        Assert.Contains(gaps, g => g.Content.Equals(exchange.GrpcCall.Response!.Messages[0].Payload));
        var back = ExchangeSpanMapper.FromSpan(parsed.ResourceSpans[0].ScopeSpans[0].Spans[0], parsed.ResourceSpans[0].Resource);
        Assert.Equal(requestWire[..(64 * 1024)], back.RequestBody.Content.ToArray());
        Assert.Equal(replyWire[..(64 * 1024)], back.ResponseBody.Content.ToArray());
    }

    [Fact]
    public void FromSpan_FramesPrefixLongerThanItsList_KeepsTheBodyEmptyWithItsSizeAndFlag()
    {
        // What an older backend does with a form it does not know, and what this one does with a
        // length its list cannot give back: no bytes, the size and the truncation flag kept.
        var exchange = Basic();
        byte[] request = [0x0a, 0x08, .. "abcdefgh"u8];
        var wire = GrpcSpanAttributes.Frames(List(request));
        exchange.RequestBody = new CapturedBody(wire[..9], wire.Length, true, BodyKind.Binary, "application/grpc");
        exchange.GrpcCall = new GrpcCallMessages(CutList(request, 6), null);
        GrpcCallMessages.Seal(exchange);
        var span = ExchangeSpanMapper.ToExportRequest([exchange], "pk", "1.0").ResourceSpans[0].ScopeSpans[0].Spans[0];
        span.Attributes.Single(a => a.Key == OtlpAttributes.RequestBodyMetaPrefix + OtlpAttributes.BodyFramesLengthSuffix).Value.IntValue = 5 + 6 + 1;

        var back = ExchangeSpanMapper.FromSpan(span, null);

        Assert.True(back.RequestBody.IsEmpty);
        Assert.True(back.RequestBody.Truncated);
        Assert.Equal(wire.Length, back.RequestBody.OriginalSize);
    }

    // A one-message list that kept the first `kept` bytes of the message.
    private static GrpcMessageList CutList(byte[] payload, int kept) =>
        new(1, true, [new GrpcMessage(0, TimeSpan.Zero, false, payload.Length, payload[..kept], true, false)]);

    private static GrpcMessageList List(params byte[][] payloads) =>
        new(payloads.Length, false, [.. payloads.Select((p, i) => new GrpcMessage(i, TimeSpan.FromMilliseconds(i), false, p.Length, p, false, false))]);

    private static CapturedBody GrpcBody(params byte[][] payloads)
    {
        var frames = GrpcSpanAttributes.Frames(List(payloads));
        return new CapturedBody(frames, frames.Length, false, BodyKind.Binary, "application/grpc");
    }

    private static ExportTraceServiceRequest AssertSameAsReference(IReadOnlyList<Exchange> batch, string? publicKey, string scopeVersion)
    {
        var expected = ExchangeSpanMapper.ToExportRequest(batch, publicKey, scopeVersion);

        var bytes = OtlpSpanWriter.ToByteArray(batch, publicKey, scopeVersion);

        var parsed = ExportTraceServiceRequest.Parser.ParseFrom(bytes);
        Assert.Equal(expected, parsed);
        Assert.Equal(expected.ToByteArray(), bytes);
        Assert.Equal(bytes, PreEncoded(batch, publicKey, scopeVersion));
        Assert.Equal(bytes, WrittenInOnePass(batch, publicKey, scopeVersion));
        Assert.Equal(bytes, Gathered(batch, publicKey, scopeVersion, out _));
        return parsed;
    }

    [Fact]
    public void ToArray_WithDeferredBytes_LeavesLargeTextBodiesInTheirOwnArrays_AndSendsTheReferenceBytes()
    {
        static CapturedBody Text(int length, char fill) =>
            new(Encoding.UTF8.GetBytes(new string(fill, length)), length, false, BodyKind.Text, "application/json");

        var large = Basic();
        large.RequestBody = Text(DeferredBytes.MinBytes, 'q');
        large.ResponseBody = Text(64 * 1024, 'r');
        var small = Basic();
        small.ResponseBody = Text(DeferredBytes.MinBytes - 1, 's');
        var binary = Basic();
        binary.ResponseBody = new CapturedBody(new byte[32 * 1024], 32 * 1024, false, BodyKind.Binary, "application/octet-stream");
        var other = Basic();
        other.ServiceName = "other";
        other.ResponseBody = Text(20_000, 'o');
        var batch = new List<Exchange> { large, small, binary, other };

        var parsed = AssertSameAsReference(batch, "pk", "1.0");
        Gathered(batch, "pk", "1.0", out var gaps);

        // Only UTF-8 bodies of at least MinBytes are left out, and each gap is the exchange's own bytes, not a copy.
        Assert.Equal(3, gaps.Count);
        Assert.Contains(gaps, g => g.Content.Equals(large.RequestBody.Content));
        Assert.Contains(gaps, g => g.Content.Equals(large.ResponseBody.Content));
        Assert.Contains(gaps, g => g.Content.Equals(other.ResponseBody.Content));
        Assert.Equal(2, parsed.ResourceSpans.Count);
    }

    // The exporter's path for large bodies: spans written when the batch is, their large UTF-8 bodies
    // left as gaps in the array (whose bytes there stay untouched); the array's pieces and the bodies in
    // turn are what is sent, and the array after FillInto is what the disk buffer keeps: both must be the request.
    private static byte[] Gathered(IReadOnlyList<Exchange> batch, string? publicKey, string scopeVersion, out List<DeferredBytes.Gap> gaps)
    {
        const byte Untouched = 0xA5;
        var spans = batch.Select(e => new ExchangeSpan(e, publicKey, OtlpSpanWriter.MeasureSpan(e, publicKey))).ToList();
        var deferred = new DeferredBytes();
        var array = OtlpSpanWriter.ToArray(spans, scopeVersion, length => Enumerable.Repeat(Untouched, length + 5).ToArray(), out var total, deferred);
        gaps = [.. deferred.Gaps];
        Assert.Equal(gaps.Sum(g => (long)g.Content.Length), deferred.Bytes);

        var sent = new List<byte>(total);
        var position = 0;
        foreach (var gap in gaps)
        {
            Assert.All(array.AsSpan(gap.Offset, gap.Content.Length).ToArray(), b => Assert.Equal(Untouched, b));
            sent.AddRange(array.AsSpan(position, gap.Offset - position).ToArray());
            sent.AddRange(gap.Content.ToArray());
            position = gap.Offset + gap.Content.Length;
        }

        sent.AddRange(array.AsSpan(position, total - position).ToArray());
        deferred.FillInto(array);
        Assert.Empty(deferred.Gaps);
        Assert.Equal(sent, array.AsSpan(0, total).ToArray());
        return [.. sent];
    }

    private sealed record ExchangeSpan(Exchange Exchange, string? PublicKey, MeasuredSpan Measured) : IEncodedSpan
    {
        public string ServiceName => Exchange.ServiceName;

        public int Length => Measured.Length;

        public void WriteTo(byte[] destination, int offset, DeferredBytes? deferred) =>
            OtlpSpanWriter.WriteSpan(Exchange, PublicKey, Measured, destination, offset, deferred);
    }

    // The exporter's path since the measuring pass went: each span written once against a limit
    // (at an offset, after bytes that must stay), its length learnt from the writing.
    private static byte[] WrittenInOnePass(IReadOnlyList<Exchange> batch, string? publicKey, string scopeVersion)
    {
        var spans = new List<SpanBytes>();
        foreach (var exchange in batch)
        {
            var length = OtlpSpanWriter.MeasureSpan(exchange, publicKey).Length;
            var slab = new byte[length + 1024 + (3 * length)];
            Assert.True(OtlpSpanWriter.TryWriteSpan(exchange, publicKey, slab, 5, slab.Length, out var written));
            Assert.Equal(length, written.Length);
            Assert.Equal(OtlpSpanWriter.MeasureSpan(exchange, publicKey), written);
            spans.Add(new SpanBytes(exchange.ServiceName, slab, 5, written.Length));
        }

        var array = OtlpSpanWriter.ToArray(spans, scopeVersion, length => new byte[length], out var total);
        return array.AsSpan(0, total).ToArray();
    }

    // The exporter's path: each span written on its own (at an offset inside a larger array, as in
    // a slab) when its exchange is queued, the batch framed around them later.
    private static byte[] PreEncoded(IReadOnlyList<Exchange> batch, string? publicKey, string scopeVersion)
    {
        var spans = new List<SpanBytes>();
        foreach (var exchange in batch)
        {
            var measured = OtlpSpanWriter.MeasureSpan(exchange, publicKey);
            var slab = new byte[measured.Length + 7];
            OtlpSpanWriter.WriteSpan(exchange, publicKey, measured, slab, 3);
            spans.Add(new SpanBytes(exchange.ServiceName, slab, 3, measured.Length));
        }

        var array = OtlpSpanWriter.ToArray(spans, scopeVersion, length => new byte[length + 5], out var total);
        return array.AsSpan(0, total).ToArray();
    }

    private readonly record struct SpanBytes(string ServiceName, byte[] Slab, int Offset, int Length) : IEncodedSpan
    {
        public void WriteTo(byte[] destination, int offset, DeferredBytes? deferred) => Slab.AsSpan(Offset, Length).CopyTo(destination.AsSpan(offset));
    }

    private static Exchange Basic() => new()
    {
        Direction = TrafficDirection.Inbound,
        ServiceName = "checkout",
        Method = "GET",
        Scheme = "http",
        Authority = "checkout:8080",
        Path = "/cart",
        StatusCode = 200,
        StartTime = _start,
        EndTime = _start.AddMilliseconds(12.3456),
        TraceId = _traceId,
        SpanId = _spanId,
        ParentSpanId = _parentId,
        SessionId = "sess-1",
    };

    private static Dictionary<string, Exchange> CaseExchanges()
    {
        var cases = new Dictionary<string, Exchange>(StringComparer.Ordinal);

        void Add(string name, Action<Exchange> change)
        {
            var exchange = Basic();
            change(exchange);
            cases.Add(name, exchange);
        }

        Add("plain", _ => { });
        Add("default model", e =>
        {
            var fresh = new Exchange();
            e.Direction = fresh.Direction;
            e.ServiceName = fresh.ServiceName;
            e.Method = fresh.Method;
            e.Scheme = fresh.Scheme;
            e.Authority = fresh.Authority;
            e.Path = fresh.Path;
            e.StatusCode = null;
            e.StartTime = fresh.StartTime;
            e.EndTime = fresh.EndTime;
            e.TraceId = default;
            e.SpanId = default;
            e.ParentSpanId = default;
            e.SessionId = null;
        });
        Add("outbound client 404", e =>
        {
            e.Direction = TrafficDirection.Outbound;
            e.StatusCode = 404;
        });
        Add("inbound 503", e => e.StatusCode = 503);
        Add("no session", e => e.SessionId = null);
        Add("empty session", e => e.SessionId = "");
        Add("parent span id zero", e => e.ParentSpanId = default);
        Add("query null", e => e.Query = null);
        Add("query empty", e => e.Query = "");
        Add("query with non-ascii", e => e.Query = "q=é&x=%20😀");
        Add("empty authority", e => e.Authority = "");
        Add("ipv6 authority", e => e.Authority = "[::1]:8443");
        Add("authority without port", e => e.Authority = "example.com");
        Add("authority with bad port", e => e.Authority = "example.com:99999");
        Add("before epoch", e => e.StartTime = DateTimeOffset.UnixEpoch.AddDays(-1));
        Add("repeated headers", e =>
        {
            e.RequestHeaders.Add("accept", "text/html");
            e.RequestHeaders.Add("x-a", "1");
            e.RequestHeaders.Add("accept", "application/json");
            e.RequestHeaders.Add("cookie", "");
            e.RequestHeaders.Add("accept", "*/*");
            e.RequestHeaders.Add(":authority", "pseudo");
            e.ResponseHeaders.Add("set-cookie", "a=1");
            e.ResponseHeaders.Add("set-cookie", "b=ü");
            e.ResponseHeaders.Add(":status", "200");
        });
        Add("empty text body with size", e => e.RequestBody = new CapturedBody(ReadOnlyMemory<byte>.Empty, 0, false, BodyKind.Text, "text/plain"));
        Add("empty binary body", e => e.ResponseBody = new CapturedBody(ReadOnlyMemory<byte>.Empty, 5, true, BodyKind.Binary));
        Add("seen not captured", e => e.ResponseBody = new CapturedBody(ReadOnlyMemory<byte>.Empty, 4096, true, BodyKind.Empty, "image/png"));
        Add("unknown size", e => e.ResponseBody = new CapturedBody(Encoding.UTF8.GetBytes("ok"), -1, false, BodyKind.Text));
        Add("binary bodies of every base64 padding", e =>
        {
            e.RequestBody = new CapturedBody(new byte[] { 0, 1, 255, 128 }, 4, false, BodyKind.Binary, "application/octet-stream");
            e.ResponseBody = new CapturedBody(new byte[] { 0xFF, 0xFE, 0xFD, 0xFC, 0xFB }, 5, false, BodyKind.Binary);
        });
        Add("truncated decoded text", e =>
        {
            e.RequestBody = new CapturedBody(Encoding.UTF8.GetBytes("{\"a\":\"é中😀\"}"), 9000, true, BodyKind.Text, "application/json", "gzip", true);
            e.ResponseBody = new CapturedBody(Encoding.UTF8.GetBytes("<p>hi</p>"), 300, true, BodyKind.Text, "text/html", "br", false);
        });
        Add("text in another charset", e => e.ResponseBody = new CapturedBody(new byte[] { 0x63, 0x61, 0x66, 0xE9 }, 4, false, BodyKind.Text, "text/plain; charset=iso-8859-1"));
        Add("truncated mid-character", e => e.ResponseBody = new CapturedBody(Encoding.UTF8.GetBytes("ab中").AsMemory(0, 4), 5, true, BodyKind.Text, "text/plain"));
        Add("redacted", e =>
        {
            e.RequestHeaders.Add("authorization", "[REDACTED]");
            e.Query = "token=[REDACTED]";
            e.RequestBody = new CapturedBody(Encoding.UTF8.GetBytes("{\"password\":\"[REDACTED]\"}"), 40, false, BodyKind.Text, "application/json");
            e.Attributes["sp.redacted"] = "3";
        });
        Add("cache hit", e => e.Cache = CacheOutcome.Hit);
        Add("cache miss", e => e.Cache = CacheOutcome.Miss);
        Add("failed with error", e =>
        {
            e.Outcome = ExchangeOutcome.Failed;
            e.Error = "upstream reset";
            e.StatusCode = null;
        });
        Add("cancelled without error", e => e.Outcome = ExchangeOutcome.Cancelled);
        Add("timed out with empty error", e =>
        {
            e.Outcome = ExchangeOutcome.TimedOut;
            e.Error = "";
        });
        Add("error without failure", e => e.Error = "odd");
        Add("attributes", e =>
        {
            e.Attributes["envoy.route"] = "payments";
            e.Attributes["sp.span.type"] = "inject";
            e.Attributes["error.type"] = "SocketException";
            e.Attributes["http.request.header.x-shadow"] = "reserved, dropped";
            e.Attributes["url.path"] = "reserved, dropped";
            e.Attributes[""] = "empty key";
            e.Attributes["app.empty"] = "";
        });
        Add("error.type attribute beside a derived one", e =>
        {
            e.StatusCode = 500;
            e.Attributes["error.type"] = "SocketException";
        });
        Add("non-ascii everywhere", e =>
        {
            e.ServiceName = "dienst-ü";
            e.Method = "GET";
            e.Path = "/städte/中文/😀";
            e.Authority = "bücher.example:80";
            e.SessionId = "sitzung-ä";
            e.Error = "fehler: ß";
            e.RequestHeaders.Add("x-name", "Zoë 😀");
            e.RequestHeaders.Add("x-größe", "1");
            e.Attributes["app.größe"] = "2";
        });
        Add("a head longer than the encoder marks on the stack", e =>
        {
            // 200 fields, every name three times: the repeats are found over the rented marks.
            for (var i = 0; i < 200; i++)
            {
                e.ResponseHeaders.Add("x-h" + (i % 67).ToString(CultureInfo.InvariantCulture), i.ToString(CultureInfo.InvariantCulture));
            }
        });
        Add("long strings", e =>
        {
            e.Path = "/" + new string('p', 300);
            e.RequestHeaders.Add("x-long", new string('v', 20_000));
        });
        return cases;
    }
}
