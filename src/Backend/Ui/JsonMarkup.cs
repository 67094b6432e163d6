using System.Text.Json;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Rendering;

namespace SpIstio.Backend.Ui;

/// <summary>
/// A JSON body as pretty-printed, foldable markup: every object and array is a
/// <c>&lt;details open&gt;</c> (folds without script), strings carrying a redaction marker are marked.
/// </summary>
internal static class JsonMarkup
{
    private const int MaxDepth = 64;

    /// <summary>The markup of <paramref name="text"/>, or null when it is not JSON (a truncated body usually is not).</summary>
    public static RenderFragment? TryRender(string text)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException)
        {
            return null;
        }

        var root = document.RootElement.Clone();
        document.Dispose();
        return builder =>
        {
            builder.OpenElement(0, "div");
            builder.AddAttribute(1, "class", "json");
            Value(builder, root, 0, null, true);
            builder.CloseElement();
        };
    }

    private static void Value(RenderTreeBuilder b, JsonElement value, int depth, string? name, bool last)
    {
        if (value.ValueKind is JsonValueKind.Object or JsonValueKind.Array && depth < MaxDepth)
        {
            var isObject = value.ValueKind == JsonValueKind.Object;
            var count = isObject ? value.EnumerateObject().Count() : value.GetArrayLength();
            b.OpenElement(0, "details");
            b.AddAttribute(1, "open", true);
            b.OpenElement(2, "summary");
            Name(b, name);
            b.AddContent(3, isObject ? "{" : "[");
            b.OpenElement(4, "span");
            b.AddAttribute(5, "class", "fold-note");
            b.AddContent(6, (isObject ? " … } " : " … ] ") + count.ToString(System.Globalization.CultureInfo.InvariantCulture) + (isObject ? " keys" : " items"));
            b.CloseElement();
            b.CloseElement();
            b.OpenElement(7, "div");
            b.AddAttribute(8, "class", "json-children");
            var i = 0;
            if (isObject)
            {
                foreach (var property in value.EnumerateObject())
                {
                    Value(b, property.Value, depth + 1, property.Name, ++i == count);
                }
            }
            else
            {
                foreach (var item in value.EnumerateArray())
                {
                    Value(b, item, depth + 1, null, ++i == count);
                }
            }

            b.CloseElement();
            b.OpenElement(9, "span");
            b.AddAttribute(10, "class", "json-close");
            b.AddContent(11, (isObject ? "}" : "]") + (last ? "" : ","));
            b.CloseElement();
            b.CloseElement();
            return;
        }

        b.OpenElement(12, "div");
        b.AddAttribute(13, "class", "json-line");
        Name(b, name);
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                b.OpenElement(14, "span");
                b.AddAttribute(15, "class", "json-string");
                b.AddContent(16, "\"");
                foreach (var (text, redacted) in Format.Redactions(value.GetString() ?? ""))
                {
                    if (redacted)
                    {
                        Redacted(b, text);
                    }
                    else
                    {
                        b.AddContent(17, text);
                    }
                }

                b.AddContent(18, "\"");
                b.CloseElement();
                break;
            default:
                b.OpenElement(19, "span");
                b.AddAttribute(20, "class", value.ValueKind is JsonValueKind.Number ? "json-number" : "json-literal");
                b.AddContent(21, value.GetRawText());
                b.CloseElement();
                break;
        }

        if (!last)
        {
            b.AddContent(22, ",");
        }

        b.CloseElement();
    }

    /// <summary>A redacted value: marked, with a tooltip saying what happened.</summary>
    public static void Redacted(RenderTreeBuilder b, string text)
    {
        b.OpenElement(30, "mark");
        b.AddAttribute(31, "class", "redacted");
        b.AddAttribute(32, "title", "redacted by the agent before export");
        b.AddContent(33, text);
        b.CloseElement();
    }

    private static void Name(RenderTreeBuilder b, string? name)
    {
        if (name is null)
        {
            return;
        }

        b.OpenElement(40, "span");
        b.AddAttribute(41, "class", "json-key");
        b.AddContent(42, "\"" + name + "\"");
        b.CloseElement();
        b.AddContent(43, ": ");
    }
}
