using SpIstio.Core.Model;
using SpIstio.Core.Tracing;

namespace SpIstio.Core.Tests.Tracing;

public class TraceStateTests
{
    private static readonly KeyValuePair<string, string>[] OwnEntries =
    [
        new("x-sp-traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        new("x-sp-session-id", "0123456789abcdef0123456789abcdef"),
    ];

    private static string[] Keys(string traceState)
    {
        var keys = new List<string>();
        foreach (var entry in TraceState.Parse(traceState))
        {
            keys.Add(entry.Key);
        }

        return [.. keys];
    }

    [Fact]
    public void SetEntries_PutsOwnEntriesFirstAndKeepsOtherVendorsInOrder()
    {
        var result = TraceState.SetEntries("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", OwnEntries);

        Assert.Equal(
            "x-sp-traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01,"
            + "x-sp-session-id=0123456789abcdef0123456789abcdef,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            result);
    }

    [Fact]
    public void SetEntries_ReplacesOldOwnEntriesWhereverTheyWere()
    {
        var result = TraceState.SetEntries(
            "congo=a,x-sp-session-id=old,rojo=b,x-sp-traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            OwnEntries);

        Assert.Equal(["x-sp-traceparent", "x-sp-session-id", "congo", "rojo"], Keys(result));
        Assert.DoesNotContain("old", result, StringComparison.Ordinal);
    }

    [Fact]
    public void SetEntries_WithoutIncomingValue_WritesOnlyOwnEntries()
    {
        var result = TraceState.SetEntries(null, OwnEntries);

        Assert.Equal(["x-sp-traceparent", "x-sp-session-id"], Keys(result));
    }

    [Fact]
    public void SetEntries_KeepsAtMost32EntriesDroppingFromTheRight()
    {
        var incoming = new List<string>();
        for (var i = 0; i < 40; i++)
        {
            incoming.Add($"k{i}=v");
        }

        var result = TraceState.SetEntries(string.Join(",", incoming), OwnEntries);

        var keys = Keys(result);
        Assert.Equal(TraceState.MaxEntries, keys.Length);
        Assert.Equal("k0", keys[2]);
        Assert.Equal("k29", keys[^1]);
    }

    [Fact]
    public void SetEntries_OverLengthLimit_DropsLongEntriesFirst()
    {
        var shortEntries = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            shortEntries.Add($"short{i}=0123456789abc");
        }

        var incoming = "long=" + new string('x', 200) + "," + string.Join(",", shortEntries);

        var result = TraceState.SetEntries(incoming, OwnEntries);

        Assert.True(result.Length <= TraceState.MaxLength, $"length {result.Length}");
        var keys = Keys(result);
        Assert.DoesNotContain("long", keys);
        Assert.Equal(12, keys.Length);
        Assert.Equal("short9", keys[^1]);
    }

    [Fact]
    public void SetEntries_OverLengthLimitWithoutLongEntries_DropsTheRightmost()
    {
        var incoming = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            incoming.Add($"vendor{i}=" + new string((char)('a' + i), 60));
        }

        var result = TraceState.SetEntries(string.Join(",", incoming), OwnEntries);

        Assert.True(result.Length <= TraceState.MaxLength, $"length {result.Length}");
        var keys = Keys(result);
        Assert.Equal(["x-sp-traceparent", "x-sp-session-id", "vendor0", "vendor1", "vendor2", "vendor3", "vendor4"], keys);
    }

    [Fact]
    public void SetEntries_DropsInvalidMembersAndLaterDuplicates()
    {
        const string incoming = "Upper=x, good=1 ,1digit=x,tenant@sys=ok,1tenant@sys=ok,bad=a=b,nokey,=novalue,del=a\u007f,dup=first,dup=second,,";

        var result = TraceState.SetEntries(incoming, OwnEntries);

        Assert.Equal(
            "x-sp-traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01,"
            + "x-sp-session-id=0123456789abcdef0123456789abcdef,good=1,tenant@sys=ok,1tenant@sys=ok,dup=first",
            result);
    }

    [Fact]
    public void SetEntries_RefusesAnInvalidOwnEntry()
    {
        Assert.Throws<ArgumentException>(() =>
            TraceState.SetEntries(null, [new("x-sp-session-id", "has,comma")]));
    }

    [Theory]
    [InlineData("x-sp-traceparent", true)]
    [InlineData("x-sp-session-id", true)]
    [InlineData("a_b-c*d/e", true)]
    [InlineData("tenant@vendor", true)]
    [InlineData("0tenant@vendor", true)]
    [InlineData("tenant@0vendor", false)]
    [InlineData("tenant@vendorwithfifteen", false)]
    [InlineData("0simple", false)]
    [InlineData("Upper", false)]
    [InlineData("", false)]
    [InlineData("a@b@c", false)]
    public void IsValidKey_FollowsTheKeyGrammar(string key, bool expected)
    {
        Assert.Equal(expected, TraceState.IsValidKey(key));
    }

    [Theory]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true)]
    [InlineData("with space inside", true)]
    [InlineData("trailing ", false)]
    [InlineData("a,b", false)]
    [InlineData("a=b", false)]
    [InlineData("caf\u00e9", false)]
    [InlineData("", false)]
    public void IsValidValue_FollowsTheValueGrammar(string value, bool expected)
    {
        Assert.Equal(expected, TraceState.IsValidValue(value));
    }

    [Fact]
    public void IsValidValue_LimitsValuesTo256Characters()
    {
        Assert.True(TraceState.IsValidValue(new string('v', 256)));
        Assert.False(TraceState.IsValidValue(new string('v', 257)));
    }

    [Fact]
    public void GetValue_FindsTheFirstValidEntryForAKey()
    {
        Assert.Equal("b", TraceState.GetValue("a=1, k=b ,k=c", "k"));
        Assert.Null(TraceState.GetValue("a=1", "k"));
        Assert.Null(TraceState.GetValue(null, "k"));
    }

    [Fact]
    public void Combined_JoinsSeveralTracestateFields()
    {
        var headers = new HeaderList { { "tracestate", "a=1" }, { "other", "x" }, { "TraceState", "b=2" } };

        Assert.Equal("a=1,b=2", TraceState.Combined(headers));
    }
}
