using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Rendering;

namespace SpIstio.Backend.Ui.Components;

/// <summary>An SVG <c>&lt;text&gt;</c> element: Razor reserves the <c>text</c> tag inside code blocks.</summary>
public sealed class SvgText : ComponentBase
{
    /// <summary>x.</summary>
    [Parameter] public string X { get; set; } = "0";

    /// <summary>y.</summary>
    [Parameter] public string Y { get; set; } = "0";

    /// <summary>CSS class.</summary>
    [Parameter] public string? Class { get; set; }

    /// <summary>The text.</summary>
    [Parameter] public RenderFragment? ChildContent { get; set; }

    /// <inheritdoc />
    protected override void BuildRenderTree(RenderTreeBuilder builder)
    {
        builder.OpenElement(0, "text");
        builder.AddAttribute(1, "x", X);
        builder.AddAttribute(2, "y", Y);
        builder.AddAttribute(3, "text-anchor", "middle");
        if (Class is not null)
        {
            builder.AddAttribute(4, "class", Class);
        }

        builder.AddContent(5, ChildContent);
        builder.CloseElement();
    }
}
