using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SpIstio.Backend.Replay;

/// <summary>One difference between a recorded and a replayed JSON document.</summary>
/// <param name="Path">Where, as a JSON path (<c>$.items[0].price</c>).</param>
/// <param name="Expected">The recorded value (compact JSON), or null when the field is new.</param>
/// <param name="Actual">The replayed value (compact JSON), or null when the field is gone.</param>
public sealed record JsonDifference(string Path, string? Expected, string? Actual);

/// <summary>
/// A structural JSON diff: objects are compared by key (order does not matter), arrays by
/// index, scalars by value (numbers numerically). Paths matching an ignore rule are skipped.
/// </summary>
/// <remarks>
/// Ignore rules: a JSON path from the root (<c>$.meta.requestId</c>, <c>$.items[*].updatedAt</c>,
/// <c>$.*.id</c> — <c>*</c> matches any one property or index), or a bare field name
/// (<c>timestamp</c>) which matches that property at any depth.
/// </remarks>
public sealed class JsonDiff
{
    private readonly List<string[]> _paths = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>Builds a diff with these ignore rules.</summary>
    public JsonDiff(IEnumerable<string> ignore)
    {
        ArgumentNullException.ThrowIfNull(ignore);
        foreach (var rule in ignore)
        {
            var trimmed = rule.Trim();
            if (trimmed.Length == 0)
            {
                continue;
            }

            if (trimmed.StartsWith('$'))
            {
                _paths.Add(Segments(trimmed));
            }
            else
            {
                _names.Add(trimmed);
            }
        }
    }

    /// <summary>The differences between <paramref name="expected"/> and <paramref name="actual"/>, in document order.</summary>
    public IReadOnlyList<JsonDifference> Compare(JsonNode? expected, JsonNode? actual)
    {
        var differences = new List<JsonDifference>();
        Walk(expected, actual, ["$"], differences);
        return differences;
    }

    /// <summary>Splits a JSON path into segments: <c>$.a[0].b</c> → <c>$</c>, <c>a</c>, <c>0</c>, <c>b</c>.</summary>
    public static string[] Segments(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var segments = new List<string>();
        var current = new StringBuilder();
        foreach (var c in path)
        {
            if (c is '.' or '[' or ']')
            {
                if (current.Length > 0)
                {
                    segments.Add(current.ToString());
                    current.Clear();
                }
            }
            else
            {
                current.Append(c);
            }
        }

        if (current.Length > 0)
        {
            segments.Add(current.ToString());
        }

        return [.. segments];
    }

    /// <summary>Formats segments back into a JSON path (indexes in brackets).</summary>
    public static string Format(IReadOnlyList<string> segments)
    {
        ArgumentNullException.ThrowIfNull(segments);
        var text = new StringBuilder();
        for (var i = 0; i < segments.Count; i++)
        {
            var segment = segments[i];
            if (i == 0)
            {
                text.Append(segment);
            }
            else if (segment.Length > 0 && segment.All(char.IsAsciiDigit))
            {
                text.Append('[').Append(segment).Append(']');
            }
            else
            {
                text.Append('.').Append(segment);
            }
        }

        return text.ToString();
    }

    private bool IsIgnored(List<string> path)
    {
        if (path.Count > 1 && _names.Contains(path[^1]))
        {
            return true;
        }

        foreach (var rule in _paths)
        {
            if (rule.Length != path.Count)
            {
                continue;
            }

            var match = true;
            for (var i = 0; i < rule.Length && match; i++)
            {
                match = rule[i] == "*" || string.Equals(rule[i], path[i], StringComparison.Ordinal);
            }

            if (match)
            {
                return true;
            }
        }

        return false;
    }

    private void Walk(JsonNode? expected, JsonNode? actual, List<string> path, List<JsonDifference> differences)
    {
        if (IsIgnored(path))
        {
            return;
        }

        switch (expected, actual)
        {
            case (JsonObject e, JsonObject a):
                foreach (var (name, value) in e)
                {
                    path.Add(name);
                    if (a.TryGetPropertyValue(name, out var other))
                    {
                        Walk(value, other, path, differences);
                    }
                    else if (!IsIgnored(path))
                    {
                        differences.Add(new JsonDifference(Format(path), Text(value), null));
                    }

                    path.RemoveAt(path.Count - 1);
                }

                foreach (var (name, value) in a)
                {
                    if (e.ContainsKey(name))
                    {
                        continue;
                    }

                    path.Add(name);
                    if (!IsIgnored(path))
                    {
                        differences.Add(new JsonDifference(Format(path), null, Text(value)));
                    }

                    path.RemoveAt(path.Count - 1);
                }

                break;
            case (JsonArray e, JsonArray a):
                for (var i = 0; i < Math.Max(e.Count, a.Count); i++)
                {
                    path.Add(i.ToString(CultureInfo.InvariantCulture));
                    if (i < e.Count && i < a.Count)
                    {
                        Walk(e[i], a[i], path, differences);
                    }
                    else if (!IsIgnored(path))
                    {
                        differences.Add(new JsonDifference(Format(path), i < e.Count ? Text(e[i]) : null, i < a.Count ? Text(a[i]) : null));
                    }

                    path.RemoveAt(path.Count - 1);
                }

                break;
            default:
                if (!ScalarEquals(expected, actual))
                {
                    differences.Add(new JsonDifference(Format(path), Text(expected), Text(actual)));
                }

                break;
        }
    }

    private static bool ScalarEquals(JsonNode? expected, JsonNode? actual)
    {
        if (expected is null || actual is null)
        {
            return expected is null && actual is null;
        }

        if (expected is JsonValue e && actual is JsonValue a
            && e.GetValueKind() == JsonValueKind.Number && a.GetValueKind() == JsonValueKind.Number
            && e.TryGetValue<decimal>(out var left) && a.TryGetValue<decimal>(out var right))
        {
            // 1.0 and 1 are the same number to a JSON reader.
            return left == right;
        }

        return JsonNode.DeepEquals(expected, actual);
    }

    // Text as text in reports: "+4477…", not "\u002B4477…".
    private static string? Text(JsonNode? node) => JsonValues.Readable(node);
}
