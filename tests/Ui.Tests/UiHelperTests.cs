using SpIstio.Backend.Api;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Ui;

namespace SpIstio.Ui.Tests;

public sealed class UiHelperTests
{
    private static readonly DateTimeOffset _t = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Waterfall_PutsEachSpanUnderItsParent_EvenWhenAnotherRootStartedInBetween()
    {
        // Start order: a, b, a1 — a1 belongs under a, not after b.
        var view = View(("a", null, 0), ("b", null, 1), ("a1", "a", 2), ("b1", "b", 3), ("a2", "a1", 4));

        var rows = Waterfall.Order(view);

        Assert.Equal(["a", "a1", "a2", "b", "b1"], rows.Select(r => r.Item.Span.SpanId));
        Assert.Equal([0, 1, 2, 0, 1], rows.Select(r => r.Depth));
    }

    [Fact]
    public void Waterfall_ParentCycle_StillShowsEverySpanOnce()
    {
        var view = View(("x", "y", 0), ("y", "x", 1), ("root", null, 2));

        var rows = Waterfall.Order(view);

        Assert.Equal(["root", "x", "y"], rows.Select(r => r.Item.Span.SpanId).Order());
    }

    [Fact]
    public void Waterfall_TenThousandDeepChain_IsOrderedWithoutRecursion()
    {
        var spans = new List<(string, string?, int)> { ("r", null, 0) };
        for (var i = 0; i < 9_999; i++)
        {
            spans.Add(("s" + i, i == 0 ? "r" : "s" + (i - 1), i + 1));
        }

        // A chain 10,000 deep would overflow the stack of a recursive walk; how fast the walk is
        // belongs to bench/Micro.Benchmarks, not to a test.
        var rows = Waterfall.Order(View([.. spans]));

        Assert.Equal(10_000, rows.Count);
        Assert.Equal(9_999, rows[^1].Depth);
    }

    [Fact]
    public void Redactions_SplitsAroundMaskAndHashMarkers()
    {
        var parts = Format.Redactions("Bearer [REDACTED] and [REDACTED:hmac-sha256:abcd] end");

        Assert.Equal(
            [("Bearer ", false), ("[REDACTED]", true), (" and ", false), ("[REDACTED:hmac-sha256:abcd]", true), (" end", false)],
            parts);
    }

    [Fact]
    public void HexPreview_ShowsOffsetsHexAndPrintableAscii()
    {
        var text = Format.HexPreview("AB\0\u007fhello world, 16+"u8.ToArray());

        Assert.Equal(
            "00000000  41 42 00 7f 68 65 6c 6c 6f 20 77 6f 72 6c 64 2c  AB..hello world,\n00000010  20 31 36 2b                                       16+\n",
            text);
    }

    [Fact]
    public void Curl_QuotesForTheShell_AndSkipsHostAndContentLength()
    {
        using var headers = System.Text.Json.JsonDocument.Parse("[[\"host\",\"api\"],[\"content-length\",\"9\"],[\"x-note\",\"it's\"]]");
        var detail = new SpanDetailDto
        {
            Span = new SpanDto("t", "s", null, "n", 2, "svc", _t, _t, 0, false, true, null, "inbound", "PUT", "api:80", "/a", 200),
            Scheme = "http",
            Query = "x=1",
            RequestHeaders = headers.RootElement.Clone(),
            RequestBody = new BodyDto("text", "text", "{\"a\":\"b'c\"}", 11, 11, false, "application/json", null, false),
        };

        var curl = CurlCommand.Build(detail);

        Assert.Equal("curl -X PUT 'http://api:80/a?x=1' \\\n  -H 'x-note: it'\\''s' \\\n  --data-binary '{\"a\":\"b'\\''c\"}'", curl);
    }

    [Fact]
    public void Curl_BinaryBody_IsPipedThroughBase64()
    {
        var detail = new SpanDetailDto
        {
            Span = new SpanDto("t", "s", null, "n", 2, "svc", _t, _t, 0, false, true, null, "inbound", "POST", "api", "/up", 200),
            RequestBody = new BodyDto("base64", "binary", "AAEC", 3, 3, false, "application/octet-stream", null, false),
        };

        Assert.Equal("printf '%s' 'AAEC' | base64 -d | curl -X POST 'http://api/up' \\\n  --data-binary @-", CurlCommand.Build(detail));
    }

    [Theory]
    [InlineData("/sessions?x=1", "/sessions?x=1")]
    [InlineData("//evil.example/", "/")]
    [InlineData("/\\evil.example", "/")]
    [InlineData("https://evil.example/", "/")]
    [InlineData(null, "/")]
    public void SafeReturnUrl_KeepsOnlyLocalPaths(string? returnUrl, string expected)
    {
        Assert.Equal(expected, TraceViewSessions.SafeReturnUrl(returnUrl));
    }

    private static TraceViewDto View(params (string Id, string? Parent, int StartMs)[] spans)
    {
        var rows = spans.Select(s => new WaterfallSpanDto(
            new SpanDto("t", s.Id, s.Parent, s.Id, 1, "svc", _t.AddMilliseconds(s.StartMs), _t.AddMilliseconds(s.StartMs + 1), 1, false, false, null, null, null, null, null, null),
            s.StartMs, 0)).ToList();
        return new TraceViewDto("t", _t, 10, [], rows);
    }
}
