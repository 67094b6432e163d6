namespace SpIstio.Backend.Storage;

/// <summary>
/// Derives the route template of a request path for endpoint statistics: numeric, UUID and
/// long hexadecimal segments become <c>{id}</c> (<c>/api/flights/42/seats</c> →
/// <c>/api/flights/{id}/seats</c>). The one place that rule lives; ingest fills
/// <see cref="StoredSpan.Route"/> with it.
/// </summary>
public static class RouteTemplate
{
    /// <summary>The placeholder that replaces an identifier segment.</summary>
    public const string IdPlaceholder = "{id}";

    // Shorter all-hex words ("cafe", "beef", "add") are ordinary path words far more often than ids.
    private const int MinHexIdLength = 8;

    /// <summary>The template of <paramref name="path"/>; the path itself when no segment is an identifier.</summary>
    public static string FromPath(string? path)
    {
        if (string.IsNullOrEmpty(path))
        {
            return "/";
        }

        var span = path.AsSpan();
        int query = span.IndexOfAny('?', '#');
        if (query >= 0)
        {
            span = span[..query];
        }

        if (!HasIdSegment(span))
        {
            return query >= 0 ? span.ToString() : path;
        }

        var builder = new System.Text.StringBuilder(span.Length + 8);
        int start = 0;
        while (start <= span.Length)
        {
            int slash = span[start..].IndexOf('/');
            int end = slash < 0 ? span.Length : start + slash;
            var segment = span[start..end];
            builder.Append(IsIdentifier(segment) ? IdPlaceholder : segment);
            if (slash < 0)
            {
                break;
            }

            builder.Append('/');
            start = end + 1;
        }

        return builder.ToString();
    }

    private static bool HasIdSegment(ReadOnlySpan<char> path)
    {
        foreach (var range in path.Split('/'))
        {
            if (IsIdentifier(path[range]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True for a segment that names an instance rather than a resource: digits, a UUID, or a long hex string with a digit.</summary>
    public static bool IsIdentifier(ReadOnlySpan<char> segment)
    {
        if (segment.IsEmpty)
        {
            return false;
        }

        if (!segment.ContainsAnyExceptInRange('0', '9'))
        {
            return true;
        }

        if (segment.Length == 36 && Guid.TryParseExact(segment, "D", out _))
        {
            return true;
        }

        return segment.Length >= MinHexIdLength
            && !segment.ContainsAnyExcept(HexChars)
            && segment.ContainsAnyInRange('0', '9');
    }

    /// <summary>
    /// True when <paramref name="candidate"/> (a stored route or path) fits <paramref name="template"/>:
    /// the same number of segments, each equal, or a <c>{…}</c> placeholder on either side standing
    /// for any one non-empty segment. <c>/orders/{orderId}</c> fits <c>/orders/ord-1</c> and <c>/orders/{id}</c>.
    /// </summary>
    public static bool Matches(string template, string? candidate)
    {
        ArgumentNullException.ThrowIfNull(template);
        if (candidate is null)
        {
            return false;
        }

        var t = template.AsSpan();
        var c = candidate.AsSpan();
        var te = t.Split('/');
        var ce = c.Split('/');
        while (true)
        {
            bool tn = te.MoveNext(), cn = ce.MoveNext();
            if (tn != cn)
            {
                return false;
            }

            if (!tn)
            {
                return true;
            }

            var ts = t[te.Current];
            var cs = c[ce.Current];
            if (!(IsPlaceholder(ts) && !cs.IsEmpty) && !(IsPlaceholder(cs) && !ts.IsEmpty) && !ts.SequenceEqual(cs))
            {
                return false;
            }
        }
    }

    /// <summary>A SQL LIKE pattern (escape character <c>\</c>) that every route or path <see cref="Matches"/> accepts also matches.</summary>
    public static string LikePattern(string template)
    {
        ArgumentNullException.ThrowIfNull(template);
        var builder = new System.Text.StringBuilder(template.Length + 8);
        bool first = true;
        foreach (var range in template.AsSpan().Split('/'))
        {
            if (!first)
            {
                builder.Append('/');
            }

            first = false;
            var segment = template.AsSpan()[range];
            if (IsPlaceholder(segment))
            {
                builder.Append('%');
                continue;
            }

            foreach (char ch in segment)
            {
                if (ch is '%' or '_' or '\\')
                {
                    builder.Append('\\');
                }

                builder.Append(ch);
            }
        }

        return builder.ToString();
    }

    /// <summary>A <c>{name}</c> segment.</summary>
    public static bool IsPlaceholder(ReadOnlySpan<char> segment) =>
        segment.Length >= 2 && segment[0] == '{' && segment[^1] == '}';

    private static readonly System.Buffers.SearchValues<char> HexChars =
        System.Buffers.SearchValues.Create("0123456789abcdefABCDEF");
}
