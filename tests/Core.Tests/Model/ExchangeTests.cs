using System.Diagnostics;
using SpIstio.Core.Model;

namespace SpIstio.Core.Tests.Model;

public sealed class ExchangeTests
{
    [Theory]
    [InlineData("/flights?from=LHR&to=JFK", "/flights", "from=LHR&to=JFK")]
    [InlineData("/flights", "/flights", null)]
    [InlineData("/search?", "/search", "")]
    [InlineData("?q=1", "/", "q=1")]
    public void SetTarget_SplitsPathAndQuery_AndTargetRebuildsIt(string target, string path, string? query)
    {
        var exchange = new Exchange();

        exchange.SetTarget(target);

        Assert.Equal(path, exchange.Path);
        Assert.Equal(query, exchange.Query);
        Assert.Equal(target.StartsWith('?') ? "/" + target : target, exchange.Target);
    }

    [Fact]
    public void Url_IsSchemeAuthorityAndTarget()
    {
        var exchange = new Exchange { Scheme = "https", Authority = "api.example.com:8443" };
        exchange.SetTarget("/v1/users?id=7");

        Assert.Equal("https://api.example.com:8443/v1/users?id=7", exchange.Url);
    }

    [Fact]
    public void Duration_IsNeverNegative()
    {
        var start = new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
        var exchange = new Exchange { StartTime = start, EndTime = start.AddMilliseconds(-5) };

        Assert.Equal(TimeSpan.Zero, exchange.Duration);

        exchange.EndTime = start.AddMilliseconds(250);
        Assert.Equal(TimeSpan.FromMilliseconds(250), exchange.Duration);
    }

    [Fact]
    public void SetTraceIds_ReadsBackAsTheHexIds_AndASetTextIdReplacesTheBinaryOne()
    {
        var exchange = new Exchange();

        exchange.SetTraceIds(((UInt128)0x0af7651916cd43dd << 64) | 0x8448eb211c80319c, 0xb7ad6b7169203331, 0);

        Assert.Equal("0af7651916cd43dd8448eb211c80319c", exchange.TraceId.ToHexString());
        Assert.Equal("b7ad6b7169203331", exchange.SpanId.ToHexString());
        Assert.Equal(default, exchange.ParentSpanId);

        exchange.SpanId = ActivitySpanId.CreateFromString("00f067aa0ba902b7");
        exchange.ParentSpanId = ActivitySpanId.CreateFromString("0000000000000001");
        Assert.Equal("00f067aa0ba902b7", exchange.SpanId.ToHexString());
        Assert.Equal("0000000000000001", exchange.ParentSpanId.ToHexString());
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", exchange.TraceId.ToHexString());

        exchange.SetTraceIds(0, 0, 0);
        Assert.Equal(default, exchange.TraceId);
        Assert.Equal(default, exchange.SpanId);
        Assert.Equal(default, exchange.ParentSpanId);
    }

    [Fact]
    public void CopyTraceIdsFrom_BinaryOrTextIds_TheCopyHasTheSourcesIds()
    {
        var binary = new Exchange();
        binary.SetTraceIds(((UInt128)0x0af7651916cd43dd << 64) | 0x8448eb211c80319c, 0xb7ad6b7169203331, 0x00f067aa0ba902b7);
        var text = new Exchange
        {
            TraceId = ActivityTraceId.CreateFromString("4bf92f3577b34da6a3ce929d0e0e4736"),
            SpanId = ActivitySpanId.CreateFromString("00f067aa0ba902b7"),
        };

        foreach (var source in new[] { binary, text })
        {
            var copy = new Exchange();
            copy.SetTraceIds(1, 2, 3);

            copy.CopyTraceIdsFrom(source);

            Assert.Equal(source.TraceId, copy.TraceId);
            Assert.Equal(source.SpanId, copy.SpanId);
            Assert.Equal(source.ParentSpanId, copy.ParentSpanId);
        }

        Assert.Equal("00f067aa0ba902b7", binary.ParentSpanId.ToHexString());
        Assert.Equal(default, text.ParentSpanId);
    }

    [Fact]
    public void HeaderList_KeepsOrderAndDuplicates_LowerCasesNames_LooksUpIgnoringCase()
    {
        var headers = new HeaderList();
        headers.Add("Set-Cookie", "a=1");
        headers.Add("Content-Type", "application/json");
        headers.Add("set-cookie", "b=2");

        Assert.Equal(["set-cookie", "content-type", "set-cookie"], headers.Select(h => h.Key));
        Assert.Equal("a=1", headers.Get("SET-COOKIE"));
        Assert.True(headers.Contains("content-TYPE"));

        headers.Set("Set-Cookie", "c=3");

        Assert.Equal(2, headers.Count);
        Assert.Equal("c=3", headers.Get("set-cookie"));
        Assert.Equal(1, headers.Remove("SET-COOKIE"));
        Assert.Null(headers.Get("set-cookie"));
    }
}
