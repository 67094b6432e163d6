using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SpIstio.Backend.Replay;

/// <summary>The scalar leaves of a JSON document by path, and replacing them in place.</summary>
internal static class JsonValues
{
    // Report text is read by people: "+4477…" stays "+4477…", not "\u002B4477…". Only the text
    // and report strings use it, never HTML.
    private static readonly JsonSerializerOptions _readable = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Compact JSON of <paramref name="node"/> with text as text (no \u escapes for +, &lt;, non-ASCII).</summary>
    public static string Readable(JsonNode? node) => node?.ToJsonString(_readable) ?? "null";

    /// <summary>Parses a JSON object or array body; null when it is not one.</summary>
    public static JsonNode? Parse(ReadOnlySpan<byte> body)
    {
        var trimmed = body.TrimStart(" \t\r\n"u8);
        if (trimmed.IsEmpty || (trimmed[0] != (byte)'{' && trimmed[0] != (byte)'['))
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(trimmed);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Every string and number leaf with its JSON path, in document order (strings unquoted, numbers as written).</summary>
    public static IEnumerable<(string Path, string Value)> Leaves(JsonNode root)
    {
        var found = new List<(string, string)>();
        Walk(root, ["$"], found);
        return found;
    }

    /// <summary>The text of a leaf: a string unquoted, a number as written; null for anything else.</summary>
    public static string? ScalarText(JsonNode? node) => node is JsonValue value
        ? value.GetValueKind() switch
        {
            JsonValueKind.String => value.GetValue<string>(),
            JsonValueKind.Number => value.ToJsonString(),
            _ => null,
        }
        : null;

    /// <summary>The leaf at <paramref name="path"/> (no wildcards), or null.</summary>
    public static JsonNode? At(JsonNode? root, string path)
    {
        var node = root;
        foreach (var segment in JsonDiff.Segments(path).Skip(1))
        {
            node = node switch
            {
                JsonObject o => o.TryGetPropertyValue(segment, out var child) ? child : null,
                JsonArray a when int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.Count => a[i],
                _ => null,
            };
            if (node is null)
            {
                return null;
            }
        }

        return node;
    }

    /// <summary>Sets the leaf at <paramref name="path"/> to <paramref name="to"/> when it now holds <paramref name="from"/>; a number stays a number when <paramref name="to"/> is one.</summary>
    public static bool Replace(JsonNode root, string path, string from, string to)
    {
        var segments = JsonDiff.Segments(path);
        var parent = segments.Length < 2 ? null : At(root, JsonDiff.Format(segments[..^1]));
        var leaf = At(root, path);
        if (parent is null || !string.Equals(ScalarText(leaf), from, StringComparison.Ordinal))
        {
            return false;
        }

        JsonNode replacement = leaf!.GetValueKind() == JsonValueKind.Number && decimal.TryParse(to, NumberStyles.Number, CultureInfo.InvariantCulture, out var number)
            ? JsonValue.Create(number)
            : JsonValue.Create(to);
        switch (parent)
        {
            case JsonObject o:
                o[segments[^1]] = replacement;
                return true;
            case JsonArray a:
                a[int.Parse(segments[^1], CultureInfo.InvariantCulture)] = replacement;
                return true;
            default:
                return false;
        }
    }

    /// <summary>True when a rule's segments (<c>*</c> matches any one) match a path's.</summary>
    public static bool PathMatches(string[] rule, string[] path)
    {
        if (rule.Length != path.Length)
        {
            return false;
        }

        for (var i = 0; i < rule.Length; i++)
        {
            if (rule[i] != "*" && !string.Equals(rule[i], path[i], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private static void Walk(JsonNode? node, List<string> path, List<(string, string)> found)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (name, child) in o)
                {
                    path.Add(name);
                    Walk(child, path, found);
                    path.RemoveAt(path.Count - 1);
                }

                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    path.Add(i.ToString(CultureInfo.InvariantCulture));
                    Walk(a[i], path, found);
                    path.RemoveAt(path.Count - 1);
                }

                break;
            default:
                if (ScalarText(node) is { } text)
                {
                    found.Add((JsonDiff.Format(path), text));
                }

                break;
        }
    }
}
