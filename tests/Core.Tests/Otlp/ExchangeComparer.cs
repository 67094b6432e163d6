using System.Text;
using SpIstio.Core.Model;

namespace SpIstio.Core.Tests.Otlp;

/// <summary>
/// Field-by-field comparison of exchanges, for round-trip tests. Headers are compared grouped by
/// name in order of first appearance (the values of one name in order), which is what survives OTLP:
/// attribute keys are unique, so a repeated header travels as one array.
/// </summary>
internal static class ExchangeComparer
{
    /// <summary>A description of every field that differs, or null when the exchanges are equal.</summary>
    public static string? Difference(Exchange expected, Exchange actual)
    {
        var sb = new StringBuilder();
        Check(sb, "Direction", expected.Direction, actual.Direction);
        Check(sb, "ServiceName", expected.ServiceName, actual.ServiceName);
        Check(sb, "Method", expected.Method, actual.Method);
        Check(sb, "Scheme", expected.Scheme, actual.Scheme);
        Check(sb, "Authority", expected.Authority, actual.Authority);
        Check(sb, "Path", expected.Path, actual.Path);
        Check(sb, "Query", expected.Query, actual.Query);
        Check(sb, "RequestHeaders", Grouped(expected.RequestHeaders), Grouped(actual.RequestHeaders));
        CheckBody(sb, "RequestBody", expected.RequestBody, actual.RequestBody);
        Check(sb, "StatusCode", expected.StatusCode, actual.StatusCode);
        Check(sb, "ResponseHeaders", Grouped(expected.ResponseHeaders), Grouped(actual.ResponseHeaders));
        CheckBody(sb, "ResponseBody", expected.ResponseBody, actual.ResponseBody);
        Check(sb, "StartTime", expected.StartTime.UtcTicks, actual.StartTime.UtcTicks);
        Check(sb, "EndTime", expected.EndTime.UtcTicks, actual.EndTime.UtcTicks);
        Check(sb, "TraceId", expected.TraceId, actual.TraceId);
        Check(sb, "SpanId", expected.SpanId, actual.SpanId);
        Check(sb, "ParentSpanId", expected.ParentSpanId, actual.ParentSpanId);
        Check(sb, "SessionId", expected.SessionId, actual.SessionId);
        Check(sb, "Cache", expected.Cache, actual.Cache);
        Check(sb, "Outcome", expected.Outcome, actual.Outcome);
        Check(sb, "Error", expected.Error, actual.Error);
        Check(sb, "Attributes", Sorted(expected.Attributes), Sorted(actual.Attributes));
        return sb.Length == 0 ? null : sb.ToString();
    }

    /// <summary>Headers as "name: v1 | v2" lines, names in order of first appearance.</summary>
    public static string Grouped(HeaderList headers)
    {
        var order = new List<string>();
        var values = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (name, value) in headers)
        {
            if (!values.TryGetValue(name, out var list))
            {
                values[name] = list = [];
                order.Add(name);
            }

            list.Add(value);
        }

        return string.Join("\n", order.Select(n => n + ": " + string.Join(" | ", values[n])));
    }

    private static string Sorted(Dictionary<string, string> attributes) =>
        string.Join("\n", attributes.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value));

    private static void CheckBody(StringBuilder sb, string name, CapturedBody expected, CapturedBody actual)
    {
        Check(sb, name + ".Content", Convert.ToHexString(expected.Content.Span), Convert.ToHexString(actual.Content.Span));
        Check(sb, name + ".OriginalSize", expected.OriginalSize, actual.OriginalSize);
        Check(sb, name + ".Truncated", expected.Truncated, actual.Truncated);
        Check(sb, name + ".Kind", expected.Kind, actual.Kind);
        Check(sb, name + ".ContentType", expected.ContentType, actual.ContentType);
        Check(sb, name + ".ContentEncoding", expected.ContentEncoding, actual.ContentEncoding);
        Check(sb, name + ".Decoded", expected.Decoded, actual.Decoded);
    }

    private static void Check<T>(StringBuilder sb, string name, T expected, T actual)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            sb.Append(name).Append(": expected <").Append(expected).Append("> but was <").Append(actual).AppendLine(">");
        }
    }
}
