using SpIstio.Core.Model;
using SpIstio.Core.Tracing;

namespace SpIstio.Core.Tests.Tracing;

public class TraceContextPropagatorTests
{
    private const string IncomingTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    [Fact]
    public void Propagate_WithTraceparent_ContinuesTheTraceUnderANewSpan()
    {
        var headers = new HeaderList { { "traceparent", IncomingTraceParent } };

        var result = TraceContextPropagator.Propagate(headers);

        Assert.Equal(TraceContextSource.TraceParent, result.Source);
        Assert.Equal("4bf92f3577b34da6a3ce929d0e0e4736", result.TraceId.ToHexString());
        Assert.Equal("00f067aa0ba902b7", result.ParentSpanId.ToHexString());
        Assert.NotEqual(result.ParentSpanId, result.SpanId);
        Assert.Equal($"00-4bf92f3577b34da6a3ce929d0e0e4736-{result.SpanId.ToHexString()}-01", result.TraceParent);
        Assert.True(result.Sampled);
    }

    [Fact]
    public void Propagate_KeepsAnUnsampledFlagAndDropsUndefinedFlags()
    {
        var notSampled = TraceContextPropagator.Propagate(new HeaderList
        {
            { "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00" },
        });
        var unknownBits = TraceContextPropagator.Propagate(new HeaderList
        {
            { "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff" },
        });

        Assert.False(notSampled.Sampled);
        Assert.EndsWith("-00", notSampled.TraceParent, StringComparison.Ordinal);
        Assert.EndsWith("-03", unknownBits.TraceParent, StringComparison.Ordinal);
    }

    [Fact]
    public void Propagate_WithoutTraceparent_FallsBackToTheTracestateEntry()
    {
        var headers = new HeaderList { { "tracestate", "congo=x,x-sp-traceparent=" + IncomingTraceParent } };

        var result = TraceContextPropagator.Propagate(headers);

        Assert.Equal(TraceContextSource.TraceState, result.Source);
        Assert.Equal("4bf92f3577b34da6a3ce929d0e0e4736", result.TraceId.ToHexString());
        Assert.Equal("00f067aa0ba902b7", result.ParentSpanId.ToHexString());
    }

    [Fact]
    public void Propagate_WithInvalidTraceparentAndNoTracestate_StartsANewTrace()
    {
        var headers = new HeaderList { { "traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01" } };

        var result = TraceContextPropagator.Propagate(headers);

        Assert.Equal(TraceContextSource.New, result.Source);
        Assert.NotEqual("00000000000000000000000000000000", result.TraceId.ToHexString());
        Assert.Equal(default, result.ParentSpanId);
        Assert.True(TraceParent.TryParse(result.TraceParent, out var forwarded));
        Assert.Equal(result.TraceId, forwarded.TraceId);
        Assert.Equal(result.SpanId, forwarded.SpanId);
        Assert.Equal(result.BinaryTraceId, forwarded.BinaryTraceId);
        Assert.Equal(result.BinarySpanId, forwarded.BinarySpanId);
        Assert.Equal("00-" + result.TraceId.ToHexString() + "-" + result.SpanId.ToHexString() + "-", result.TraceParent[..53]);
    }

    [Fact]
    public void Propagate_NewTrace_SetsTheSampledFlagFromTheRatio()
    {
        var never = TraceContextPropagator.Propagate(new HeaderList(), samplingRatio: 0);
        var always = TraceContextPropagator.Propagate(new HeaderList(), samplingRatio: 1);

        Assert.False(never.Sampled);
        Assert.True(always.Sampled);
    }

    [Fact]
    public void Propagate_WithoutSession_GeneratesOneAndRelaysItInTracestate()
    {
        var result = TraceContextPropagator.Propagate(new HeaderList());

        Assert.True(result.SessionIdGenerated);
        Assert.Matches("^[0-9a-f]{32}$", result.SessionId);
        Assert.Equal(result.SessionId, TraceState.GetValue(result.TraceState, "x-sp-session-id"));
        Assert.Equal(result.TraceParent, TraceState.GetValue(result.TraceState, "x-sp-traceparent"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("s-42")]
    [InlineData("user 7%")]
    [InlineData("long")]
    public void Propagate_WithoutIncomingTracestate_WritesWhatSetEntriesWrites(string? session)
    {
        // "long": an id too long for a tracestate value, relayed in no entry.
        var headers = new HeaderList { { "traceparent", IncomingTraceParent } };
        if (session is not null)
        {
            headers.Add("x-session-id", session == "long" ? new string('s', 300) : session);
        }

        var result = TraceContextPropagator.Propagate(headers);

        var sessionValue = SessionIds.ToTraceStateValue(result.SessionId);
        KeyValuePair<string, string>[] own = sessionValue is null
            ? [new("x-sp-traceparent", result.TraceParent)]
            : [new("x-sp-traceparent", result.TraceParent), new("x-sp-session-id", sessionValue)];
        Assert.Equal(TraceState.SetEntries(null, own), result.TraceState);
        Assert.Equal(session == "long" ? 1 : 2, TraceState.Parse(result.TraceState).Count);
    }

    [Fact]
    public void Propagate_KeepsOtherVendorsEntriesBehindTheAgentsOwn()
    {
        var headers = new HeaderList
        {
            { "traceparent", IncomingTraceParent },
            { "tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" },
            { "x-session-id", "s-42" },
        };

        var result = TraceContextPropagator.Propagate(headers);

        Assert.Equal(
            $"x-sp-traceparent={result.TraceParent},x-sp-session-id=s-42,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            result.TraceState);
        Assert.False(result.SessionIdGenerated);
    }

    [Fact]
    public void Apply_ReplacesTraceHeadersOnTheForwardedRequest()
    {
        var incoming = new HeaderList { { "traceparent", IncomingTraceParent }, { "x-sp-num", "4" } };
        var result = TraceContextPropagator.Propagate(incoming);
        var forwarded = new HeaderList
        {
            { "traceparent", IncomingTraceParent },
            { "tracestate", "old=1" },
            { "x-sp-num", "4" },
            { "accept", "application/json" },
        };

        result.Apply(forwarded);

        Assert.Equal(result.TraceParent, forwarded.Get("traceparent"));
        Assert.Equal(result.TraceState, forwarded.Get("tracestate"));
        Assert.Equal("5", forwarded.Get("x-sp-num"));
        Assert.Equal("application/json", forwarded.Get("accept"));
        Assert.Equal(4, forwarded.Count);
    }

    [Fact]
    public void TwoHops_ShareTraceAndSessionAndChainSpans()
    {
        var firstHopHeaders = new HeaderList { { "accept", "*/*" } };
        var hop1 = TraceContextPropagator.Propagate(firstHopHeaders);
        hop1.Apply(firstHopHeaders);

        var hop2 = TraceContextPropagator.Propagate(firstHopHeaders);

        Assert.Equal(hop1.TraceId, hop2.TraceId);
        Assert.Equal(hop1.SessionId, hop2.SessionId);
        Assert.False(hop2.SessionIdGenerated);
        Assert.Equal(hop1.SpanId, hop2.ParentSpanId);
        Assert.Equal(1, hop1.HopCount);
        Assert.Equal(2, hop2.HopCount);
        var secondHopHeaders = new HeaderList();
        hop2.Apply(secondHopHeaders);
        Assert.Equal("2", secondHopHeaders.Get("x-sp-num"));
    }

    [Fact]
    public void TwoHops_RelayASessionIdThatIsNotAPlainTracestateValue()
    {
        var firstHopHeaders = new HeaderList { { "x-session-id", "user 42, caf\u00e9" } };
        var hop1 = TraceContextPropagator.Propagate(firstHopHeaders);
        var nextRequest = new HeaderList();
        hop1.Apply(nextRequest);

        var hop2 = TraceContextPropagator.Propagate(nextRequest);

        Assert.Equal(2, TraceState.Parse(hop1.TraceState).Count);
        Assert.Equal("user 42, caf\u00e9", hop2.SessionId);
    }

    [Fact]
    public void TracestateOnlyHop_WhenTheAppDropsTraceparent_StillContinuesTheTrace()
    {
        var hop1Headers = new HeaderList();
        var hop1 = TraceContextPropagator.Propagate(hop1Headers);
        hop1.Apply(hop1Headers);
        hop1Headers.Remove("traceparent");

        var hop2 = TraceContextPropagator.Propagate(hop1Headers);

        Assert.Equal(hop1.TraceId, hop2.TraceId);
        Assert.Equal(hop1.SpanId, hop2.ParentSpanId);
        Assert.Equal(hop1.SessionId, hop2.SessionId);
    }
}
