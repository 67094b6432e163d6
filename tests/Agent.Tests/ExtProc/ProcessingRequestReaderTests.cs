using System.Buffers;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>
/// <see cref="ProcessingRequestReader"/> against its oracle, the generated ProcessingRequest parser:
/// the same bytes go to both and what the agent uses of the message must be the same, or both
/// must refuse the bytes.
/// </summary>
public sealed class ProcessingRequestReaderTests
{
    public static TheoryData<string> Shapes() => [.. _shapes.Keys];

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Read_GivesWhatTheGeneratedParserGives(string shape)
    {
        var bytes = _shapes[shape]();

        var expected = Oracle(bytes);
        var actual = View(ProcessingRequestReader.Read(bytes));

        Assert.NotNull(expected);
        Assert.Equal(expected, actual);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Read_OfEveryPrefix_AgreesWithTheGeneratedParser_OrBothRefuse(string shape)
    {
        var bytes = _shapes[shape]();

        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes.AsSpan(0, length).ToArray();
            var expected = Oracle(prefix);
            var actual = ReadOrNull(prefix, out var error);

            Assert.True(expected == actual, $"prefix of {length} bytes: oracle {expected ?? "refused"}, reader {actual ?? "refused: " + error}");
        }
    }

    [Fact]
    public void Read_OfMutatedBytes_AgreesWithTheGeneratedParser_OrBothRefuse()
    {
        var random = new Random(13);
        var sources = _shapes.Values.Select(build => build()).ToArray();
        var refused = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = (byte[])sources[random.Next(sources.Length)].Clone();
            for (var flips = random.Next(1, 4); flips > 0 && bytes.Length > 0; flips--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            var expected = Oracle(bytes);
            var actual = ReadOrNull(bytes, out var error);
            refused += actual is null ? 1 : 0;

            Assert.True(expected == actual, $"{Convert.ToHexString(bytes)}: oracle {expected ?? "refused"}, reader {actual ?? "refused: " + error}");
        }

        // The mutations must exercise both outcomes, or the comparison proves little.
        Assert.InRange(refused, 1_000, 19_000);
    }

    [Fact]
    public void Read_IntoTheStreamsReusedRequest_GivesWhatTheGeneratedParserGives_WhateverCameBefore()
    {
        // An ext_proc stream reads each of its messages into one request object (ExtProcFrames):
        // nothing of a message may show through in the next, whichever shapes follow each other.
        var reused = new ExtProcRequest();
        foreach (var (previousName, previous) in _shapes)
        {
            foreach (var (name, shape) in _shapes)
            {
                ProcessingRequestReader.Read(new ReadOnlySequence<byte>(previous()), reused);
                var bytes = shape();

                var actual = View(ProcessingRequestReader.Read(new ReadOnlySequence<byte>(bytes), reused));

                Assert.True(Oracle(bytes) == actual, $"{name} after {previousName}: oracle {Oracle(bytes)}, reader {actual}");
            }
        }
    }

    public static TheoryData<string> RefusedShapes() => [.. _refused.Keys];

    [Theory]
    [MemberData(nameof(RefusedShapes))]
    public void Read_OfBytesTheGeneratedParserRefuses_RefusesWithInvalidArgument(string shape)
    {
        var bytes = _refused[shape]();

        var error = Assert.Throws<RpcException>(() => ProcessingRequestReader.Read(bytes));

        Assert.Null(Oracle(bytes));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith("Malformed ext_proc ProcessingRequest: ", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_OfTruncatedBody_NamesTheField()
    {
        var bytes = Envoy.RequestBody("{\"order\":1}", true).ToByteArray();

        var error = Assert.Throws<RpcException>(() => ProcessingRequestReader.Read(bytes.AsSpan(0, bytes.Length - 3)));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("request_body", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("truncated", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_OfTooManyHeaderFields_Refuses()
    {
        var map = new HeaderMap();
        for (var i = 0; i <= ProcessingRequestReader.MaxHeaderFields; i++)
        {
            map.Headers.Add(new HeaderValue { Key = "x" });
        }

        var bytes = new ProcessingRequest { RequestHeaders = new HttpHeaders { Headers = map } }.ToByteArray();

        var error = Assert.Throws<RpcException>(() => ProcessingRequestReader.Read(bytes));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("header fields", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_OfCommonHeaderNames_SharesTheirStrings()
    {
        var first = ProcessingRequestReader.Read(Envoy.RequestHeaders("GET", "/a", true, ("content-type", "text/plain"), ("x-custom", "1")).ToByteArray());
        var second = ProcessingRequestReader.Read(Envoy.RequestHeaders("GET", "/b", true, ("content-type", "text/plain"), ("x-custom", "1")).ToByteArray());

        Assert.Same(first.Headers[4].Key, second.Headers[4].Key);
        Assert.Equal("x-custom", second.Headers[5].Key);
    }

    private static readonly Dictionary<string, Func<byte[]>> _shapes = new()
    {
        ["request headers, raw_value"] = () => Envoy.RequestHeaders("POST", "/api/orders?id=1", false, ("content-type", "application/json"), ("x-request-id", "abc")).ToByteArray(),
        ["request headers, value only (old Envoy)"] = () => new ProcessingRequest
        {
            RequestHeaders = new HttpHeaders
            {
                Headers = Map(new HeaderValue { Key = ":method", Value = "GET" }, new HeaderValue { Key = ":path", Value = "/é" }, new HeaderValue { Key = "accept", Value = "*/*" }),
                EndOfStream = true,
            },
        }.ToByteArray(),
        ["request headers, value and raw_value, empty fields"] = () => new ProcessingRequest
        {
            RequestHeaders = new HttpHeaders
            {
                Headers = Map(
                    new HeaderValue { Key = "a", Value = "text", RawValue = ByteString.CopyFromUtf8("raw") },
                    new HeaderValue { Key = "b", Value = "text" },
                    new HeaderValue { Key = "c" },
                    new HeaderValue(),
                    new HeaderValue { Key = "latin", RawValue = ByteString.CopyFrom(0x63, 0x61, 0x66, 0xE9) },
                    new HeaderValue { Key = "utf8", RawValue = ByteString.CopyFromUtf8("naïve ✓") }),
            },
        }.ToByteArray(),
        ["request headers, no header map"] = () => new ProcessingRequest { RequestHeaders = new HttpHeaders { EndOfStream = true } }.ToByteArray(),
        ["request headers, attributes, protocol config, observability"] = () => Envoy.RequestHeaders("GET", "/", true)
            .WithAttribute("xds.cluster_name", "inbound|8080||orders.shop.svc.cluster.local")
            .WithAttribute("request.id", "r-1")
            .WithBodyModes(BodySendMode.BufferedPartial, BodySendMode.Streamed)
            .Observed()
            .ToByteArray(),
        ["attribute kinds and other namespaces"] = () =>
        {
            var request = Envoy.RequestHeaders("GET", "/", true);
            var values = new Struct();
            values.Fields["s"] = Value.ForString("text");
            values.Fields["n"] = Value.ForNumber(42.5);
            values.Fields["i"] = Value.ForNumber(8080);
            values.Fields["t"] = Value.ForBool(true);
            values.Fields["f"] = Value.ForBool(false);
            values.Fields["null"] = Value.ForNull();
            values.Fields["struct"] = Value.ForStruct(new Struct { Fields = { ["x"] = Value.ForString("y") } });
            values.Fields["list"] = Value.ForList(Value.ForString("a"), Value.ForNumber(1));
            values.Fields["empty"] = new Value();
            request.Attributes[Envoy.FilterAttributes] = values;
            request.Attributes["other.filter"] = new Struct { Fields = { ["s"] = Value.ForString("not read") } };
            request.MetadataContext = new SpIstio.Agent.ExtProc.Proto.Core.Metadata { FilterMetadata = { ["envoy.lb"] = new Struct { Fields = { ["canary"] = Value.ForBool(true) } } } };
            return request.ToByteArray();
        },
        ["deprecated HttpHeaders.attributes"] = () =>
        {
            var request = Envoy.RequestHeaders("GET", "/", true);
#pragma warning disable CS0612 // What Envoys before 1.31 send.
            request.RequestHeaders.Attributes[Envoy.FilterAttributes] = new Struct { Fields = { ["xds.cluster_name"] = Value.ForString("outbound|80||a.b.svc.cluster.local") } };
#pragma warning restore CS0612
            return request.ToByteArray();
        },
        ["response headers"] = () => Envoy.ResponseHeaders(201, false, ("content-type", "application/json"), ("set-cookie", "a=1"), ("set-cookie", "b=2"))
            .WithAttribute("response.code", "201")
            .ToByteArray(),
        ["response headers, end of stream"] = () => Envoy.ResponseHeaders(204, true).ToByteArray(),
        ["request body"] = () => Envoy.RequestBody("{\"card\":\"4111 1111 1111 1111\"}", false).ToByteArray(),
        ["request body, empty, end of stream"] = () => Envoy.RequestBody("", true).ToByteArray(),
        ["response body, 3 KiB"] = () => Envoy.ResponseBody(new string('x', 3 * 1024), true).ToByteArray(),
        ["response body, empty"] = () => new ProcessingRequest { ResponseBody = new HttpBody() }.ToByteArray(),
        ["request trailers"] = () => Envoy.RequestTrailers(("x-checksum", "abc")).ToByteArray(),
        ["response trailers"] = () => Envoy.ResponseTrailers(("grpc-status", "0"), ("grpc-message", "")).ToByteArray(),
        ["trailers, empty map"] = () => new ProcessingRequest { ResponseTrailers = new HttpTrailers { Trailers = new HeaderMap() } }.ToByteArray(),
        ["trailers, no map"] = () => new ProcessingRequest { RequestTrailers = new HttpTrailers() }.ToByteArray(),
        ["no request field"] = () => new ProcessingRequest { ObservabilityMode = true }.ToByteArray(),
        ["unknown fields of every wire type, everywhere"] = () => Concat(
            Field(1, Varint(7)),
            Field(12, Fixed32()),
            Field(2, Concat(
                Field(1, Concat(
                    Field(1, Concat(Field(1, Utf8(":method")), Field(3, Utf8("PUT")), Field(9, Varint(1)), Field(10, Fixed64()))),
                    Field(2, Varint(3)),
                    Field(1, Concat(Field(1, Utf8("x-a")), Field(3, Utf8("1")))))),
                Field(7, Utf8("unknown")),
                Field(3, Varint(1)))),
            Group(20, Concat(Field(1, Varint(1)), Group(21, Field(2, Utf8("nested"))))),
            Field(100_000, Utf8("far")),
            Field(10, Varint(1))),
        ["known numbers with other wire types"] = () => Concat(
            Field(10, Utf8("not a bool")),
            Field(2, Varint(5)),
            Field(4, Concat(Field(1, Varint(1)), Field(2, Utf8("x")), Field(1, Utf8("body")))),
            Field(11, Fixed64())),
        ["repeated request field merges, another replaces"] = () => Concat(
            Field(4, Concat(Field(1, Utf8("dropped")), Field(2, Varint(1)))),
            Envoy.RequestHeaders("GET", "/first", true).ToByteArray(),
            Field(2, Field(1, Field(1, Concat(Field(1, Utf8("x-more")), Field(3, Utf8("yes")))))),
            Field(10, Varint(1)),
            Field(10, Varint(0))),
        ["body set twice, last wins"] = () => Concat(
            Field(5, Concat(Field(1, Utf8("first")), Field(2, Varint(1)))),
            Field(5, Field(1, Utf8("second")))),
        ["attributes entry repeated, struct keys repeated"] = () => Concat(
            Envoy.RequestHeaders("GET", "/", true).WithAttribute("gone", "1").ToByteArray(),
            Field(9, Concat(
                Field(1, Utf8(Envoy.FilterAttributes)),
                Field(2, Concat(
                    Field(1, Concat(Field(1, Utf8("k")), Field(2, Field(3, Utf8("first"))))),
                    Field(1, Concat(Field(1, Utf8("j")), Field(2, Field(3, Utf8("kept"))))),
                    Field(1, Concat(Field(1, Utf8("k")), Field(2, Field(1, Varint(0))))),
                    Field(1, Concat(Field(1, Utf8("v")), Field(2, Concat(Field(3, Utf8("s")), Field(4, Varint(1)))))))))),
            Field(9, Concat(Field(1, Utf8("other")), Field(2, Field(1, Concat(Field(1, Utf8("z")), Field(2, Field(3, Utf8("z"))))))))),
        ["large varints"] = () => Concat(
            Field(11, Concat(Field(1, Varint(ulong.MaxValue)), Field(2, Varint(0x1_0000_0002)))),
            Field(6, Field(1, Field(1, Concat(Field(1, Utf8("t")), Field(3, Utf8("v")))))),
            Field(10, Varint(0x100))),
    };

    private static readonly Dictionary<string, Func<byte[]>> _refused = new()
    {
        ["invalid UTF-8 in a header name"] = () => Field(2, Field(1, Field(1, Concat(Field(1, [0x78, 0xC3]), Field(3, Utf8("v")))))),
        ["invalid UTF-8 in a value beside raw_value"] = () => Field(2, Field(1, Field(1, Concat(Field(1, Utf8("k")), Field(2, [0xFF]), Field(3, Utf8("v")))))),
        ["invalid UTF-8 in an attribute name"] = () => Field(9, Concat(Field(1, Utf8(Envoy.FilterAttributes)), Field(2, Field(1, Concat(Field(1, [0xE2, 0x82]), Field(2, Field(3, Utf8("v")))))))),
        ["invalid UTF-8 in an attribute value"] = () => Field(9, Concat(Field(1, Utf8(Envoy.FilterAttributes)), Field(2, Field(1, Concat(Field(1, Utf8("k")), Field(2, Field(3, [0xC0, 0x80]))))))),
        ["invalid UTF-8 in an unused metadata key"] = () => Field(8, Field(1, Concat(Field(1, [0xFE]), Field(2, Array.Empty<byte>())))),
        ["malformed unused nested value"] = () => Field(9, Concat(Field(1, Utf8("other")), Field(2, Field(1, Concat(Field(1, Utf8("k")), Field(2, Field(5, [0x0A, 0x05]))))))),
        ["truncated body"] = () => Concat(Varint(4 << 3 | 2), Varint(10), Utf8("short")),
        ["varint of 11 bytes"] = () => Concat(Varint(10 << 3), new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 }),
        ["field number 0"] = () => Concat(Varint(0), Varint(1)),
        ["wire type 6"] = () => Concat(Varint(99 << 3 | 6), Varint(1)),
        ["end of a group never started"] = () => Varint(20 << 3 | 4).Item2,
        ["group ended by another number"] = () => Concat(Varint(20 << 3 | 3), Varint(21 << 3 | 4)),
        ["unterminated group"] = () => Concat(Varint(20 << 3 | 3), Field(1, Varint(1))),
    };

    // What ExtProcStream uses of a message, as text: equal texts mean the stream cannot tell the
    // readers apart. Null when the generated parser refuses the bytes.
    private static string? Oracle(byte[] bytes)
    {
        ProcessingRequest request;
        try
        {
            request = ProcessingRequest.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }

        var type = request.RequestCase == ProcessingRequest.RequestOneofCase.None
            ? ExtProcRequest.NoType
            : (int)request.RequestCase - (int)ProcessingRequest.RequestOneofCase.RequestHeaders;
        HeaderMap? map = null;
        var endOfStream = false;
        ByteString body = ByteString.Empty;
        string? headerAttributes = null;
        switch (request.RequestCase)
        {
            case ProcessingRequest.RequestOneofCase.RequestHeaders:
            case ProcessingRequest.RequestOneofCase.ResponseHeaders:
                var headers = request.RequestHeaders ?? request.ResponseHeaders;
                (map, endOfStream) = (headers.Headers, headers.EndOfStream);
#pragma warning disable CS0612 // Envoys before 1.31 send attributes inside HttpHeaders.
                headerAttributes = Attributes(headers.Attributes);
#pragma warning restore CS0612
                break;
            case ProcessingRequest.RequestOneofCase.RequestBody:
            case ProcessingRequest.RequestOneofCase.ResponseBody:
                var httpBody = request.RequestBody ?? request.ResponseBody;
                (body, endOfStream) = (httpBody.Body, httpBody.EndOfStream);
                break;
            case ProcessingRequest.RequestOneofCase.RequestTrailers:
            case ProcessingRequest.RequestOneofCase.ResponseTrailers:
                map = (request.RequestTrailers ?? request.ResponseTrailers).Trailers;
                break;
        }

        var fields = map is null
            ? ""
            : string.Join("\n", map.Headers.Select(h => h.Key + ": " + (h.RawValue.IsEmpty ? h.Value : HeaderText.DecodeRaw(h.RawValue.Span))));
        var protocol = request.ProtocolConfig;
        return Text(
            type,
            endOfStream,
            request.ObservabilityMode,
            protocol is null ? "none" : (int)protocol.RequestBodyMode + "/" + (int)protocol.ResponseBodyMode,
            map is not null,
            fields,
            body.Span,
            Attributes(request.Attributes),
            headerAttributes);
    }

    private static string View(ExtProcRequest request)
    {
        var fields = string.Join("\n", request.Headers.ToArray().Select(h => h.Key + ": " + h.Value));
        return Text(
            request.Type,
            request.EndOfStream,
            request.ObservabilityMode,
            request.HasProtocolConfig ? (int)request.RequestBodyMode + "/" + (int)request.ResponseBodyMode : "none",
            request.HasHeaderMap,
            fields,
            request.Body.Span,
            Attributes(request.Attributes),
            Attributes(request.HeaderAttributes));
    }

    private static string? ReadOrNull(byte[] bytes, out string? error)
    {
        try
        {
            error = null;
            return View(ProcessingRequestReader.Read(bytes));
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.InvalidArgument)
        {
            error = ex.Status.Detail;
            return null;
        }
    }

    private static string Text(int type, bool endOfStream, bool observability, string protocol, bool hasMap, string fields, ReadOnlySpan<byte> body, string? attributes, string? headerAttributes) =>
        string.Create(CultureInfo.InvariantCulture, $"type {type}, eos {endOfStream}, obs {observability}, protocol {protocol}, map {hasMap}\n{fields}\nbody {Convert.ToHexString(body)}\nattributes {attributes}\nheader attributes {headerAttributes}");

    // The stream records the scalar fields of the filter's struct (last value of a name wins).
    private static string? Attributes(Google.Protobuf.Collections.MapField<string, Struct> map)
    {
        if (!map.TryGetValue(Envoy.FilterAttributes, out var values) || values is null)
        {
            return null;
        }

        return Recorded(values.Fields.Select(f => new KeyValuePair<string, string?>(f.Key, f.Value?.KindCase switch
        {
            Value.KindOneofCase.StringValue => f.Value.StringValue,
            Value.KindOneofCase.NumberValue => f.Value.NumberValue.ToString(CultureInfo.InvariantCulture),
            Value.KindOneofCase.BoolValue => f.Value.BoolValue ? "true" : "false",
            _ => null,
        })));
    }

    private static string? Attributes(List<KeyValuePair<string, string?>>? fields) => fields is null ? null : Recorded(fields);

    private static string Recorded(IEnumerable<KeyValuePair<string, string?>> fields)
    {
        var recorded = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, text) in fields)
        {
            if (text is not null)
            {
                recorded[key] = text;
            }
        }

        return string.Join(", ", recorded.Select(f => f.Key + "=" + f.Value));
    }

    private static HeaderMap Map(params HeaderValue[] fields)
    {
        var map = new HeaderMap();
        map.Headers.Add(fields);
        return map;
    }

    // Protobuf wire encoding by hand, for what the generated writer never produces.
    private static byte[] Field(int number, byte[] lengthDelimited) => Concat(Varint((ulong)number << 3 | 2), Varint((ulong)lengthDelimited.Length), lengthDelimited);

    private static byte[] Field(int number, (int WireType, byte[] Bytes) value) => Concat(Varint((ulong)number << 3 | (uint)value.WireType), value.Bytes);

    private static byte[] Group(int number, byte[] content) => Concat(Varint((ulong)number << 3 | 3), content, Varint((ulong)number << 3 | 4));

    private static (int, byte[]) Varint(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? b : (byte)(b | 0x80));
        }
        while (value != 0);

        return (0, bytes.ToArray());
    }

    private static (int, byte[]) Fixed64() => (1, [1, 2, 3, 4, 5, 6, 7, 8]);

    private static (int, byte[]) Fixed32() => (5, [1, 2, 3, 4]);

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Concat(params object[] parts) =>
        [.. parts.SelectMany(part => part switch
        {
            byte[] bytes => bytes,
            ValueTuple<int, byte[]> varint => varint.Item2,
            _ => throw new ArgumentException("bytes or a varint", nameof(parts)),
        })];
}
