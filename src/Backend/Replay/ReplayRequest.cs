using System.Text;
using System.Text.Json.Nodes;

namespace SpIstio.Backend.Replay;

/// <summary>What kind of place in a request a value sits in.</summary>
public enum ValuePlace
{
    /// <summary>A segment of the path (<see cref="ValueLocation.Name"/> is its 1-based position).</summary>
    PathSegment,

    /// <summary>The value of a query parameter.</summary>
    Query,

    /// <summary>Inside a header's value (a cookie, a bearer token, an ETag in If-Match).</summary>
    Header,

    /// <summary>A leaf of a JSON body (<see cref="ValueLocation.Name"/> is its JSON path).</summary>
    Json,

    /// <summary>The value of a form field (application/x-www-form-urlencoded body).</summary>
    Form,
}

/// <summary>A place in a request: a path segment, a query parameter, a header, a JSON path or a form field.</summary>
/// <param name="Place">The kind of place.</param>
/// <param name="Name">The segment position, parameter, header or field name, or the JSON path.</param>
public sealed record ValueLocation(ValuePlace Place, string Name)
{
    /// <summary>How reports name it: <c>path segment 3</c>, <c>query token</c>, <c>header if-match</c>, <c>$.flightId</c>, <c>form field code</c>.</summary>
    public override string ToString() => Place switch
    {
        ValuePlace.PathSegment => "path segment " + Name,
        ValuePlace.Query => "query " + Name,
        ValuePlace.Header => "header " + Name,
        ValuePlace.Form => "form field " + Name,
        _ => Name,
    };
}

/// <summary>
/// A recorded request taken apart so values can be found and replaced in place: path segments,
/// query parameters, headers, and a JSON or form body. <see cref="Body"/> re-assembles a body
/// only when something in it changed, so an untouched body is re-sent byte for byte.
/// </summary>
public sealed class ReplayRequest
{
    private readonly string[] _segments;
    private readonly List<KeyValuePair<string, string>> _query;
    private readonly List<KeyValuePair<string, string>>? _form;
    private readonly JsonNode? _json;
    private readonly byte[] _body;
    private bool _bodyChanged;

    /// <summary>Takes <paramref name="recorded"/>'s request apart.</summary>
    public ReplayRequest(RecordedExchange recorded)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        Method = recorded.Method;
        _segments = recorded.Path.Split('/');
        _query = recorded.Query is { Length: > 0 } query ? Pairs(query) : [];
        Headers = [.. recorded.RequestHeaders];
        _body = recorded.RequestBody;
        var contentType = Header("content-type") ?? "";
        if (contentType.Contains("json", StringComparison.OrdinalIgnoreCase) || LooksLikeJson(_body))
        {
            _json = JsonValues.Parse(_body);
        }
        else if (contentType.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            _form = Pairs(Encoding.UTF8.GetString(_body));
        }
    }

    /// <summary>The method.</summary>
    public string Method { get; }

    /// <summary>The headers, in order (mutable).</summary>
    public List<KeyValuePair<string, string>> Headers { get; }

    /// <summary>Path and query as they are now, for the request line.</summary>
    public string Target
    {
        get
        {
            var path = string.Join('/', _segments);
            return _query.Count == 0 ? path : path + "?" + string.Join('&', _query.Select(p => p.Value.Length == 0 && p.Key.Length > 0 ? p.Key : p.Key + "=" + p.Value));
        }
    }

    /// <summary>The body as it is now.</summary>
    public byte[] Body => !_bodyChanged ? _body
        : _json is not null ? Encoding.UTF8.GetBytes(_json.ToJsonString())
        : Encoding.UTF8.GetBytes(string.Join('&', _form!.Select(p => p.Key + "=" + p.Value)));

    /// <summary>Every value in the request with where it sits (path segments, query, headers, JSON leaves, form fields).</summary>
    public IEnumerable<(ValueLocation Location, string Value)> Values()
    {
        for (var i = 1; i < _segments.Length; i++)
        {
            if (_segments[i].Length > 0)
            {
                yield return (new ValueLocation(ValuePlace.PathSegment, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), Unescape(_segments[i], plusIsSpace: false));
            }
        }

        foreach (var (name, value) in _query)
        {
            yield return (new ValueLocation(ValuePlace.Query, Unescape(name)), Unescape(value));
        }

        foreach (var (name, value) in Headers)
        {
            yield return (new ValueLocation(ValuePlace.Header, name.ToLowerInvariant()), value);
        }

        if (_json is not null)
        {
            foreach (var (path, value) in JsonValues.Leaves(_json))
            {
                yield return (new ValueLocation(ValuePlace.Json, path), value);
            }
        }

        foreach (var (name, value) in _form ?? [])
        {
            yield return (new ValueLocation(ValuePlace.Form, Unescape(name)), Unescape(value));
        }
    }

    /// <summary>
    /// True when <paramref name="value"/> is at <paramref name="location"/>: equal to a segment,
    /// parameter, field or JSON leaf, or a whole token inside a header (cookie, bearer, ETag).
    /// </summary>
    public static bool Holds(ValueLocation location, string located, string value)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(located);
        return location.Place == ValuePlace.Header ? TokenIndex(located, value, 0) >= 0 : string.Equals(located, value, StringComparison.Ordinal);
    }

    /// <summary>Replaces <paramref name="from"/> with <paramref name="to"/> at <paramref name="location"/>; true when something changed.</summary>
    public bool Replace(ValueLocation location, string from, string to)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        switch (location.Place)
        {
            case ValuePlace.PathSegment:
                var index = int.Parse(location.Name, System.Globalization.CultureInfo.InvariantCulture);
                if (index < _segments.Length && Unescape(_segments[index], plusIsSpace: false) == from)
                {
                    _segments[index] = Uri.EscapeDataString(to);
                    return true;
                }

                return false;
            case ValuePlace.Query:
                return ReplacePair(_query, location.Name, from, to);
            case ValuePlace.Form:
                return _form is not null && (_bodyChanged |= ReplacePair(_form, location.Name, from, to));
            case ValuePlace.Header:
                var changed = false;
                for (var i = 0; i < Headers.Count; i++)
                {
                    if (string.Equals(Headers[i].Key, location.Name, StringComparison.OrdinalIgnoreCase) && ReplaceTokens(Headers[i].Value, from, to) is { } replaced)
                    {
                        Headers[i] = new(Headers[i].Key, replaced);
                        changed = true;
                    }
                }

                return changed;
            default:
                return _json is not null && (_bodyChanged |= JsonValues.Replace(_json, location.Name, from, to));
        }
    }

    /// <summary>Sets what <paramref name="location"/> holds, whatever it was (a value from the replay values file); true when it was there.</summary>
    public bool Set(ValueLocation location, string value)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(value);
        var found = false;
        foreach (var (at, current) in Values().ToList())
        {
            if (Matches(location, at))
            {
                found = true;
                if (location.Place == ValuePlace.Header)
                {
                    var i = Headers.FindIndex(h => string.Equals(h.Key, at.Name, StringComparison.OrdinalIgnoreCase));
                    Headers[i] = new(Headers[i].Key, value);
                }
                else
                {
                    Replace(at, current, value);
                }
            }
        }

        return found;
    }

    /// <summary>The first value of a header, or null.</summary>
    public string? Header(string name) => Headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    private static bool Matches(ValueLocation rule, ValueLocation at)
    {
        if (rule.Place != at.Place)
        {
            return false;
        }

        return rule.Place == ValuePlace.Json
            ? JsonValues.PathMatches(JsonDiff.Segments(rule.Name), JsonDiff.Segments(at.Name))
            : string.Equals(rule.Name, at.Name, rule.Place == ValuePlace.Header ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
    }

    private static bool ReplacePair(List<KeyValuePair<string, string>> pairs, string name, string from, string to)
    {
        var changed = false;
        for (var i = 0; i < pairs.Count; i++)
        {
            if (Unescape(pairs[i].Key) == name && Unescape(pairs[i].Value) == from)
            {
                pairs[i] = new(pairs[i].Key, Uri.EscapeDataString(to));
                changed = true;
            }
        }

        return changed;
    }

    /// <summary>The header value with every whole-token occurrence of <paramref name="from"/> replaced, or null when there is none.</summary>
    private static string? ReplaceTokens(string header, string from, string to)
    {
        var builder = new StringBuilder();
        var position = 0;
        int found;
        while ((found = TokenIndex(header, from, position)) >= 0)
        {
            builder.Append(header, position, found - position).Append(to);
            position = found + from.Length;
        }

        return position == 0 ? null : builder.Append(header, position, header.Length - position).ToString();
    }

    /// <summary>Where <paramref name="value"/> occurs in <paramref name="text"/> not inside a longer token (letters, digits, - _ .), or -1.</summary>
    private static int TokenIndex(string text, string value, int start)
    {
        if (value.Length == 0)
        {
            return -1;
        }

        for (var at = text.IndexOf(value, start, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + 1, StringComparison.Ordinal))
        {
            var end = at + value.Length;
            if ((at == 0 || !IsTokenChar(text[at - 1])) && (end == text.Length || !IsTokenChar(text[end])))
            {
                return at;
            }
        }

        return -1;
    }

    private static bool IsTokenChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.';

    private static List<KeyValuePair<string, string>> Pairs(string text)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var part in text.Split('&'))
        {
            if (part.Length == 0)
            {
                continue;
            }

            var equals = part.IndexOf('=', StringComparison.Ordinal);
            pairs.Add(equals < 0 ? new(part, "") : new(part[..equals], part[(equals + 1)..]));
        }

        return pairs;
    }

    private static string Unescape(string text, bool plusIsSpace = true)
    {
        try
        {
            return Uri.UnescapeDataString(plusIsSpace ? text.Replace('+', ' ') : text);
        }
        catch (UriFormatException)
        {
            return text;
        }
    }

    private static bool LooksLikeJson(byte[] body)
    {
        var trimmed = body.AsSpan().TrimStart(" \t\r\n"u8);
        return !trimmed.IsEmpty && (trimmed[0] == (byte)'{' || trimmed[0] == (byte)'[');
    }
}
