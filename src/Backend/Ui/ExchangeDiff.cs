using System.Text;
using System.Text.Json.Nodes;
using SpIstio.Backend.Replay;

namespace SpIstio.Backend.Ui;

/// <summary>One side of a response diff: what an exchange answered (recorded, or replayed by a job).</summary>
/// <param name="Status">The status (0 when there was no answer).</param>
/// <param name="Headers">Headers as (lower-case name, value).</param>
/// <param name="Body">The body bytes as kept.</param>
/// <param name="Truncated">True when <paramref name="Body"/> is only the start of the body.</param>
/// <param name="At">When it answered (timestamps of "now" in a body are noise).</param>
public sealed record DiffSide(int Status, IReadOnlyList<(string Name, string Value)> Headers, byte[] Body, bool Truncated, DateTimeOffset At);

/// <summary>How a row of the diff compares.</summary>
public enum DiffState
{
    /// <summary>Equal on both sides.</summary>
    Same,

    /// <summary>Different, and replay would report it.</summary>
    Differs,

    /// <summary>Different, but replay does not count it: noise (generated values, carried values, redacted values, headers replay does not compare).</summary>
    Noise,
}

/// <summary>One row: a field and its value on each side (null: absent there), and why a greyed row is not counted.</summary>
public sealed record DiffRow(string Field, string? Left, string? Right, DiffState State, string? Why);

/// <summary>
/// A side-by-side comparison of two responses, classified the way the replay engine sees them:
/// the status and content type count, other headers are not compared, JSON bodies are compared
/// field by field (<see cref="JsonDiff"/>), and a differing field is noise when the engine would
/// ignore it — given by a replay report (noise, carried and redacted paths), or, for any two
/// exchanges, when both values are shaped like generated ones (<see cref="SessionValues.LooksGenerated"/>).
/// </summary>
internal static class ExchangeDiff
{
    /// <summary>The most body rows shown (a huge array would make a page nobody reads).</summary>
    public const int MaxBodyRows = 2_000;

    /// <summary>Headers the replay engine compares by default; the rest are shown greyed when they differ.</summary>
    private static readonly string[] _compared = ["content-type"];

    /// <summary>The rows: status, headers, then the body (per JSON field, or the text as one row).</summary>
    public static List<DiffRow> Compare(DiffSide left, DiffSide right, IReadOnlyDictionary<string, string>? noise)
    {
        ArgumentNullException.ThrowIfNull(left);
        ArgumentNullException.ThrowIfNull(right);
        var rows = new List<DiffRow>
        {
            new("status", Text(left.Status), Text(right.Status), left.Status == right.Status ? DiffState.Same : DiffState.Differs, null),
        };

        foreach (var name in left.Headers.Select(h => h.Name).Concat(right.Headers.Select(h => h.Name)).Distinct(StringComparer.Ordinal))
        {
            var l = Header(left.Headers, name);
            var r = Header(right.Headers, name);
            var compared = Array.Exists(_compared, c => string.Equals(c, name, StringComparison.Ordinal));
            var same = compared ? string.Equals(MediaType(l), MediaType(r), StringComparison.Ordinal) : string.Equals(l, r, StringComparison.Ordinal);
            rows.Add(new DiffRow("header " + name, l, r, same ? DiffState.Same : compared ? DiffState.Differs : DiffState.Noise, same || compared ? null : "replay does not compare this header"));
        }

        var leftJson = left.Truncated ? null : JsonValues.Parse(left.Body);
        var rightJson = right.Truncated ? null : JsonValues.Parse(right.Body);
        if (leftJson is not null && rightJson is not null)
        {
            rows.AddRange(JsonRows(leftJson, rightJson, left.At, right.At, noise));
        }
        else
        {
            var l = BodyText(left);
            var r = BodyText(right);
            rows.Add(new DiffRow("body", l, r, string.Equals(l, r, StringComparison.Ordinal) ? DiffState.Same : left.Truncated || right.Truncated ? DiffState.Noise : DiffState.Differs,
                left.Truncated || right.Truncated ? "a body was cut at the capture limit, so bodies are not compared" : null));
        }

        return rows;
    }

    private static List<DiffRow> JsonRows(JsonNode left, JsonNode right, DateTimeOffset leftAt, DateTimeOffset rightAt, IReadOnlyDictionary<string, string>? noise)
    {
        var differences = new JsonDiff([]).Compare(left, right).ToDictionary(d => d.Path, StringComparer.Ordinal);
        var leftLeaves = JsonValues.Leaves(left).ToList();
        var rightLeaves = JsonValues.Leaves(right).ToDictionary(l => l.Path, l => l.Value, StringComparer.Ordinal);
        var rows = new List<DiffRow>();
        var shown = new HashSet<string>(StringComparer.Ordinal);

        void Add(string path, string? l, string? r)
        {
            if (rows.Count >= MaxBodyRows || !shown.Add(path))
            {
                return;
            }

            // A leaf inside a differing object or array (a field gone, an array of another length) differs with it.
            var at = differences.ContainsKey(path) ? path : differences.Keys.FirstOrDefault(d => path.StartsWith(d + ".", StringComparison.Ordinal) || path.StartsWith(d + "[", StringComparison.Ordinal));
            if (at is null)
            {
                rows.Add(new DiffRow(path, l, r, DiffState.Same, null));
                return;
            }

            if (at == path)
            {
                var difference = differences[path];
                l = difference.Expected is null ? null : Unquote(difference.Expected);
                r = difference.Actual is null ? null : Unquote(difference.Actual);
            }

            string? why = null;
            if (noise is not null)
            {
                noise.TryGetValue(at, out why);
            }
            else if (l is not null && r is not null && SessionValues.LooksGenerated(l, leftAt) && SessionValues.LooksGenerated(r, rightAt))
            {
                why = "both values look generated (ids, codes, timestamps of now): replay treats them as noise";
            }

            rows.Add(new DiffRow(path, l, r, why is null ? DiffState.Differs : DiffState.Noise, why));
        }

        foreach (var (path, value) in leftLeaves)
        {
            Add(path, value, rightLeaves.GetValueOrDefault(path));
        }

        // Differences at paths that are not string or number leaves on the left: new fields, booleans, nulls, whole objects.
        foreach (var difference in differences.Values)
        {
            Add(difference.Path, null, null);
        }

        foreach (var (path, value) in rightLeaves)
        {
            Add(path, null, value);
        }

        return rows;
    }

    private static string Unquote(string json) =>
        json.Length >= 2 && json[0] == '"' && json[^1] == '"' && JsonNode.Parse(json) is JsonValue value && value.TryGetValue<string>(out var text) ? text : json;

    private static string? Text(int status) => status == 0 ? null : status.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string? Header(IReadOnlyList<(string Name, string Value)> headers, string name)
    {
        string? found = null;
        foreach (var (n, v) in headers)
        {
            if (string.Equals(n, name, StringComparison.Ordinal))
            {
                found = found is null ? v : found + ", " + v;
            }
        }

        return found;
    }

    private static string? MediaType(string? value) =>
        value is null ? null : value.Split(';')[0].Trim().ToLowerInvariant();

    private static string? BodyText(DiffSide side)
    {
        if (side.Body.Length == 0)
        {
            return side.Truncated ? "(cut before the first byte)" : null;
        }

        var text = System.Text.Unicode.Utf8.IsValid(side.Body) ? Encoding.UTF8.GetString(side.Body) : "(binary, " + Format.Bytes(side.Body.Length) + ")";
        return side.Truncated ? text + " … (cut)" : text;
    }
}

/// <summary>Reading a stored exchange as one side of a diff.</summary>
internal static class DiffSides
{
    /// <summary>The response of a stored exchange (bodies as captured; a body cut at the capture limit is marked).</summary>
    public static DiffSide FromSpan(SpIstio.Backend.Storage.StoredSpan span)
    {
        ArgumentNullException.ThrowIfNull(span);
        var detail = SpIstio.Backend.Api.SpanViews.ToDetail(span);
        var headers = new List<(string, string)>();
        if (detail.ResponseHeaders is { ValueKind: System.Text.Json.JsonValueKind.Array } array)
        {
            foreach (var pair in array.EnumerateArray())
            {
                headers.Add(((pair[0].GetString() ?? "").ToLowerInvariant(), pair[1].GetString() ?? ""));
            }
        }

        return new DiffSide(span.StatusCode ?? 0, headers, span.ResponseBody.ToArray(), detail.ResponseBody?.Truncated == true, span.StartTime);
    }
}
