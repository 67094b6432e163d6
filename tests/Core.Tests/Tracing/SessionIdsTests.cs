using SpIstio.Core.Model;
using SpIstio.Core.Tracing;

namespace SpIstio.Core.Tests.Tracing;

public class SessionIdsTests
{
    private static HeaderList AllSources() => new()
    {
        { "tracestate", "rojo=1,x-sp-session-id=from-tracestate" },
        { "x-session-id", "from-x-session-id" },
        { "sp_session_id", "from-sp_session_id" },
        { "X-SP-Session-Id", "from-x-sp-session-id" },
    };

    [Fact]
    public void Find_PrefersTheAgentsOwnHeader()
    {
        Assert.Equal("from-x-sp-session-id", SessionIds.Find(AllSources()));
    }

    [Fact]
    public void Find_WithoutOwnHeader_UsesTheUnderscoreHeader()
    {
        var headers = AllSources();
        headers.Remove("x-sp-session-id");

        Assert.Equal("from-sp_session_id", SessionIds.Find(headers));
    }

    [Fact]
    public void Find_WithoutAgentHeaders_UsesXSessionId()
    {
        var headers = AllSources();
        headers.Remove("x-sp-session-id");
        headers.Remove("sp_session_id");

        Assert.Equal("from-x-session-id", SessionIds.Find(headers));
    }

    [Fact]
    public void Find_WithoutAnySessionHeader_UsesTheTracestateEntry()
    {
        var headers = AllSources();
        headers.Remove("x-sp-session-id");
        headers.Remove("sp_session_id");
        headers.Remove("x-session-id");

        Assert.Equal("from-tracestate", SessionIds.Find(headers));
    }

    [Fact]
    public void Find_SkipsBlankHeadersAndTrimsValues()
    {
        var headers = new HeaderList { { "x-sp-session-id", "  " }, { "x-session-id", " s-1 " } };

        Assert.Equal("s-1", SessionIds.Find(headers));
    }

    [Fact]
    public void Find_WithNoSource_ReturnsNull()
    {
        Assert.Null(SessionIds.Find(new HeaderList { { "tracestate", "rojo=1" } }));
    }

    [Fact]
    public void New_Returns32LowerHexCharactersThatDiffer()
    {
        var first = SessionIds.New();
        var second = SessionIds.New();

        Assert.Matches("^[0-9a-f]{32}$", first);
        Assert.NotEqual(first, second);
    }

    [Fact]
    public void New_ManyIdsOnSeveralThreads_AreWellFormedAndAllDistinct()
    {
        // Ids come from random bytes fetched for several ids at once, per thread: across those
        // fetches and threads no bytes may be handed out twice.
        var ids = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 4, _ =>
        {
            for (var i = 0; i < 1_000; i++)
            {
                ids.Add(SessionIds.New());
            }
        });

        Assert.All(ids, id => Assert.Matches("^[0-9a-f]{32}$", id));
        Assert.Equal(4_000, ids.Distinct(StringComparer.Ordinal).Count());
    }

    [Theory]
    [InlineData("0123456789abcdef0123456789abcdef")]
    [InlineData("3f2504e0-4f89-11d3-9a0c-0305e82c3301")]
    [InlineData("user 42, caf\u00e9=yes")]
    [InlineData("100%")]
    public void TraceStateValue_RoundTripsAndIsAValidValue(string sessionId)
    {
        var encoded = SessionIds.ToTraceStateValue(sessionId);

        Assert.NotNull(encoded);
        Assert.True(TraceState.IsValidValue(encoded));
        Assert.Equal(sessionId, SessionIds.FromTraceStateValue(encoded));
    }

    [Fact]
    public void TraceStateValue_KeepsOrdinaryIdsUnchanged()
    {
        Assert.Equal("3f2504e0-4f89-11d3", SessionIds.ToTraceStateValue("3f2504e0-4f89-11d3"));
    }

    [Fact]
    public void TraceStateValue_OfAnIdTooLongToRelay_IsNull()
    {
        Assert.Null(SessionIds.ToTraceStateValue(new string('s', 300)));
    }
}
