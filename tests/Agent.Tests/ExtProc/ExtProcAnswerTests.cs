using Google.Protobuf;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;
using SpIstio.Agent.ExtProc.Proto.Filter;
using SpIstio.Core.Model;
using SpIstio.Core.Tracing;
using AppendAction = SpIstio.Agent.ExtProc.Proto.Core.HeaderValueOption.Types.HeaderAppendAction;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;
using HeaderSendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.HeaderSendMode;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>
/// The answers the agent writes without the generated serializer, against the generated types: each
/// must be the bytes the generated serializer writes for the message Envoy is meant to read.
/// </summary>
public sealed class ExtProcAnswerTests
{
    // The CONTINUE answer to each message type, by type (ExtProcRequest.Type: the field number less 2).
    private static readonly ProcessingResponse[] _continue =
    [
        new() { RequestHeaders = new HeadersResponse { Response = new CommonResponse() } },
        new() { ResponseHeaders = new HeadersResponse { Response = new CommonResponse() } },
        new() { RequestBody = new BodyResponse { Response = new CommonResponse() } },
        new() { ResponseBody = new BodyResponse { Response = new CommonResponse() } },
        new() { RequestTrailers = new TrailersResponse() },
        new() { ResponseTrailers = new TrailersResponse() },
    ];

    private static readonly Dictionary<string, (byte[]? Bytes, ProcessingMode? Mode)> _modes = new()
    {
        ["none"] = (null, null),
        ["skip rest"] = (ExtProcResponses.SkipRestBytes, Mode(HeaderSendMode.Skip, BodySendMode.None, HeaderSendMode.Skip, HeaderSendMode.Skip, BodySendMode.None, HeaderSendMode.Skip)),
        ["gRPC streamed"] = (ExtProcResponses.GrpcStreamedBytes, Mode(HeaderSendMode.Send, BodySendMode.Streamed, HeaderSendMode.Send, HeaderSendMode.Send, BodySendMode.Streamed, HeaderSendMode.Send)),
        ["upgrade handshake"] = (ExtProcResponses.UpgradeHandshakeOnlyBytes, Mode(HeaderSendMode.Send, BodySendMode.None, HeaderSendMode.Skip, HeaderSendMode.Send, BodySendMode.None, HeaderSendMode.Skip)),
    };

    // traceparent, tracestate and x-sp-num values of shapes the lengths test does not try.
    private static readonly Dictionary<string, (string TraceParent, string TraceState, string HopCount)> _values = new()
    {
        ["empty tracestate"] = ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "", "1"),
        ["empty traceparent and hop count"] = ("", "k=v", ""),
        // Multi-byte UTF-8 is counted in bytes; an unpaired surrogate encodes as U+FFFD in both encoders.
        ["not ASCII"] = ("00-\u00e9-\u00fc", "k=\u00e9\u4e2d\U0001F600", "\ud800x"),
    };

    public static TheoryData<int> MessageTypes() => [0, 1, 2, 3, 4, 5];

    public static TheoryData<string> ModeOverrides() => [.. _modes.Keys];

    public static TheoryData<string> HeaderValues() => [.. _values.Keys];

    [Theory]
    [MemberData(nameof(MessageTypes))]
    public void Continue_IsTheGeneratedContinueOfItsMessageType(int messageType)
    {
        var expected = _continue[messageType];

        var bytes = ExtProcResponses.Continue(messageType).ToByteArray();

        Assert.Equal(expected, ProcessingResponse.Parser.ParseFrom(bytes));
        Assert.Equal(expected.ToByteArray(), bytes);
    }

    [Fact]
    public void SkipRequestHeaders_ContinuesAndSkipsEverythingAfter()
    {
        var expected = new ProcessingResponse
        {
            RequestHeaders = new HeadersResponse { Response = new CommonResponse() },
            ModeOverride = Mode(HeaderSendMode.Skip, BodySendMode.None, HeaderSendMode.Skip, HeaderSendMode.Skip, BodySendMode.None, HeaderSendMode.Skip),
        };

        var bytes = ExtProcResponses.SkipRequestHeaders.ToByteArray();

        Assert.Equal(expected, ProcessingResponse.Parser.ParseFrom(bytes));
        Assert.Equal(expected.ToByteArray(), bytes);
    }

    [Fact]
    public void EventStreamResponseHeaders_ContinuesAndStreamsTheResponseBody()
    {
        var expected = new ProcessingResponse
        {
            ResponseHeaders = new HeadersResponse { Response = new CommonResponse() },
            ModeOverride = Mode(HeaderSendMode.Send, BodySendMode.None, HeaderSendMode.Skip, HeaderSendMode.Send, BodySendMode.Streamed, HeaderSendMode.Send),
        };

        var bytes = ExtProcResponses.EventStreamResponseHeaders.ToByteArray();

        Assert.Equal(expected, ProcessingResponse.Parser.ParseFrom(bytes));
        Assert.Equal(expected.ToByteArray(), bytes);
    }

    [Theory]
    [MemberData(nameof(ModeOverrides))]
    public void TraceHeaders_FromAPropagatedTrace_AreTheGeneratedAnswer(string modeOverride)
    {
        var (modeBytes, mode) = _modes[modeOverride];
        var incoming = new HeaderList
        {
            { "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
            { "tracestate", "vendor=a1b2,other=" + new string('x', 180) },
            { "x-sp-num", "41" },
        };
        var trace = TraceContextPropagator.Propagate(incoming);

        var bytes = new ExtProcAnswer.TraceHeaders(trace, modeBytes).ToByteArray();

        var expected = Generated(trace.TraceParent, trace.TraceState, "42", mode);
        Assert.Equal(expected, ProcessingResponse.Parser.ParseFrom(bytes));
        Assert.Equal(expected.ToByteArray(), bytes);
    }

    [Theory]
    [MemberData(nameof(HeaderValues))]
    public void TraceHeaders_OfAnyLength_AreTheGeneratedAnswer(string values)
    {
        var (traceParent, traceState, hopCount) = _values[values];
        foreach (var modeOverride in _modes.Keys)
        {
            var (modeBytes, mode) = _modes[modeOverride];
            var answer = new ExtProcAnswer.TraceHeaders(traceParent, traceState, hopCount, modeBytes);

            var bytes = answer.ToByteArray();

            var expected = Generated(traceParent, traceState, hopCount, mode);
            Assert.Equal(expected.CalculateSize(), answer.CalculateSize());
            Assert.Equal(expected, ProcessingResponse.Parser.ParseFrom(bytes));
            Assert.Equal(expected.ToByteArray(), bytes);
        }
    }

    [Fact]
    public void TraceHeaders_AroundEveryVarintLimit_AreTheGeneratedAnswer()
    {
        // Every length prefix (header value, option, mutation, common response, headers response)
        // crosses 127 and 16,383 bytes somewhere in these tracestate lengths.
        var traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        var lengths = Enumerable.Range(0, 400).Concat(Enumerable.Range(16_200, 300));
        foreach (var length in lengths)
        {
            var traceState = new string('s', length);
            var answer = new ExtProcAnswer.TraceHeaders(traceParent, traceState, "2", ExtProcResponses.SkipRestBytes);

            var expected = Generated(traceParent, traceState, "2", _modes["skip rest"].Mode);
            Assert.Equal(expected.ToByteArray(), answer.ToByteArray());
        }
    }

    [Fact]
    public void Message_WritesTheGeneratedBytes_AndAnImmediateResponseEndsTheStream()
    {
        var immediate = new ProcessingResponse
        {
            ImmediateResponse = new ImmediateResponse { Body = ByteString.CopyFromUtf8("cached"), Details = "sp_agent_cache_hit" },
        };

        var answer = new ExtProcAnswer.Message(immediate);

        Assert.Equal(immediate.ToByteArray(), answer.ToByteArray());
        Assert.True(answer.EndsStream);
        Assert.False(ExtProcResponses.Continue(0).EndsStream);
        Assert.False(new ExtProcAnswer.TraceHeaders("a", "b", "1", null).EndsStream);
    }

    // The request-headers answer as the generated types build it (as the agent built it before it wrote the bytes itself).
    private static ProcessingResponse Generated(string traceParent, string traceState, string hopCount, ProcessingMode? mode)
    {
        var mutation = new HeaderMutation();
        mutation.SetHeaders.Add(Option("traceparent", traceParent));
        mutation.SetHeaders.Add(Option("tracestate", traceState));
        mutation.SetHeaders.Add(Option("x-sp-num", hopCount));
        var response = new ProcessingResponse { RequestHeaders = new HeadersResponse { Response = new CommonResponse { HeaderMutation = mutation } } };
        if (mode is not null)
        {
            response.ModeOverride = mode;
        }

        return response;
    }

    private static HeaderValueOption Option(string name, string value) => new()
    {
        Header = new HeaderValue { Key = name, RawValue = ByteString.CopyFromUtf8(value) },
        AppendAction = AppendAction.OverwriteIfExistsOrAdd,
    };

    private static ProcessingMode Mode(
        HeaderSendMode requestHeaders,
        BodySendMode requestBody,
        HeaderSendMode requestTrailers,
        HeaderSendMode responseHeaders,
        BodySendMode responseBody,
        HeaderSendMode responseTrailers) => new()
        {
            RequestHeaderMode = requestHeaders,
            RequestBodyMode = requestBody,
            RequestTrailerMode = requestTrailers,
            ResponseHeaderMode = responseHeaders,
            ResponseBodyMode = responseBody,
            ResponseTrailerMode = responseTrailers,
        };
}
