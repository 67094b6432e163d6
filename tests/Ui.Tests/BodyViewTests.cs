using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Web;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Api;
using SpIstio.Backend.Ui.Components;

namespace SpIstio.Ui.Tests;

/// <summary>The body component rendered to HTML by Blazor's own renderer.</summary>
public sealed class BodyViewTests
{
    [Fact]
    public async Task JsonBody_IsPrettyPrintedFoldableAndRedactionsAreMarked()
    {
        var html = await RenderAsync(Text("{\"user\":\"ada\",\"password\":\"[REDACTED]\",\"tags\":[1,2]}", "application/json"));

        Assert.Contains("<details open", html, StringComparison.Ordinal);
        Assert.Contains("<span class=\"json-key\">&quot;password&quot;</span>", html, StringComparison.Ordinal);
        Assert.Contains("<mark class=\"redacted\" title=\"redacted by the agent before export\">[REDACTED]</mark>", html, StringComparison.Ordinal);
        Assert.Contains("2 items", html, StringComparison.Ordinal);
        Assert.Contains("<span class=\"json-number\">1</span>", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TruncatedJson_FallsBackToTextAndSaysItWasTruncated()
    {
        var body = Text("{\"items\":[1,2,3", "application/json") with { Truncated = true, OriginalSize = 5000 };

        var html = await RenderAsync(body);

        Assert.Contains("<pre class=\"text\">{&quot;items&quot;:[1,2,3</pre>", html, StringComparison.Ordinal);
        Assert.Contains("Truncated: 15 B of 4.9 KiB captured", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BinaryBody_ShowsSizeAndHexPreview()
    {
        var body = new BodyDto("base64", "binary", Convert.ToBase64String([0xde, 0xad, 0xbe, 0xef]), 4, 4, false, "application/octet-stream", null, false);

        var html = await RenderAsync(body);

        Assert.Contains("Binary body, 4 B:", html, StringComparison.Ordinal);
        Assert.Contains("00000000  de ad be ef", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoBody_SaysSo()
    {
        Assert.Contains("No body captured.", await RenderAsync(null), StringComparison.Ordinal);
    }

    private static BodyDto Text(string content, string type) =>
        new("text", "text", content, System.Text.Encoding.UTF8.GetByteCount(content), content.Length, false, type, null, false);

    private static async Task<string> RenderAsync(BodyDto? body)
    {
        await using var services = new ServiceCollection().BuildServiceProvider();
        await using var renderer = new HtmlRenderer(services, NullLoggerFactory.Instance);
        return await renderer.Dispatcher.InvokeAsync(async () =>
        {
            var output = await renderer.RenderComponentAsync<BodyView>(ParameterView.FromDictionary(new Dictionary<string, object?> { ["Body"] = body, ["Id"] = "b" }));
            return output.ToHtmlString();
        });
    }
}
