using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace SpIstio.Backend.Replay;

/// <summary>Where a carried value goes: a place in the request of a later step.</summary>
public sealed record BindingTarget
{
    /// <summary>The step (1-based position among the replayed requests).</summary>
    public int Step { get; init; }

    /// <summary>The place in that step's request (reports show <see cref="Where"/>).</summary>
    /// <remarks>
    /// Not <c>required</c>: System.Text.Json refuses to write a type whose required property it is
    /// told to ignore, which made every JSON report with a binding fail. Every creator sets it.
    /// </remarks>
    [JsonIgnore]
    public ValueLocation Location { get; init; } = new(ValuePlace.PathSegment, "");

    /// <summary>The place as reports name it (<c>path segment 3</c>, <c>$.flightId</c>).</summary>
    public string Where => Location.ToString();
}

/// <summary>
/// A value a response of the recorded session issued and later requests used (a booking
/// reference, an id, a token, an ETag, a cookie). On replay, the value the target issued at
/// <see cref="SourceStep"/> replaces the recorded one at every target.
/// </summary>
public sealed record ValueBinding
{
    /// <summary>The step whose response issued the value.</summary>
    public int SourceStep { get; init; }

    /// <summary>Where in that response: a JSON path (<c>$.booking.reference</c>), <c>header:etag</c>, <c>header:location/3</c> (a path segment of it) or <c>cookie:sid</c>.</summary>
    public required string Source { get; init; }

    /// <summary>The value in the recording.</summary>
    public required string RecordedValue { get; init; }

    /// <summary>Where later requests used it.</summary>
    public IReadOnlyList<BindingTarget> Targets { get; init; } = [];

    /// <summary>True when it was given (--bind or the values file) rather than found.</summary>
    public bool Given { get; init; }

    /// <summary><c>$.bookingReference of step 2 → path segment 3 of steps 3 and 4</c>.</summary>
    public override string ToString()
    {
        var places = Targets.GroupBy(t => t.Where, StringComparer.Ordinal)
            .Select(g => g.Key + " of " + Steps(g.Select(t => t.Step).Distinct().Order().ToList()));
        return Source + " of step " + SourceStep.ToString(CultureInfo.InvariantCulture) + " → " + string.Join("; ", places) + (Given ? " (given)" : "");
    }

    private static string Steps(List<int> steps) => steps.Count == 1
        ? "step " + steps[0].ToString(CultureInfo.InvariantCulture)
        : "steps " + string.Join(", ", steps.Take(steps.Count - 1).Select(s => s.ToString(CultureInfo.InvariantCulture))) + " and " + steps[^1].ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// What one recording teaches about its values: the <see cref="ValueBinding"/>s (values a
/// response issued that later requests sent back) and, per step, the response fields the target
/// issues fresh on every run (ids, codes, seats, timestamps of "now"), which are noise.
/// </summary>
/// <remarks>
/// A response value is <em>issued</em> by that response when it appears nowhere earlier in the
/// session — not in this request, nor in any earlier request or response. An issued value that
/// a later request carries is a binding (at least 4 characters, not a plain lower-case word,
/// no spaces, so "held" or "EUR" are never taken for ids). An issued value shaped like a
/// generated one (a UUID, a token ending in a run of letters and digits with a digit in it, a
/// code of digits, a timestamp within a day of the recording) is noise for that step.
/// </remarks>
public sealed class SessionValues
{
    private const int MinBoundLength = 4;

    private SessionValues(IReadOnlyList<ValueBinding> bindings, Dictionary<int, HashSet<string>> fresh, IReadOnlyList<string> problems)
    {
        Bindings = bindings;
        Fresh = fresh;
        Problems = problems;
    }

    /// <summary>The bindings, found and given, by source step.</summary>
    public IReadOnlyList<ValueBinding> Bindings { get; }

    /// <summary>Per step (1-based): JSON paths of the response fields the target issues fresh.</summary>
    public IReadOnlyDictionary<int, HashSet<string>> Fresh { get; }

    /// <summary>Given bindings that could not be used, one sentence each.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>Learns from <paramref name="recorded"/>; <paramref name="bind"/> adds or overrides bindings (<c>STEP:SOURCE</c> or <c>STEP:SOURCE=STEP,STEP</c>), <paramref name="noBind"/> drops found ones (<c>STEP:SOURCE</c> or <c>SOURCE</c>).</summary>
    public static SessionValues Learn(IReadOnlyList<RecordedExchange> recorded, IEnumerable<string> bind, IEnumerable<string> noBind)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        ArgumentNullException.ThrowIfNull(bind);
        ArgumentNullException.ThrowIfNull(noBind);
        var requests = recorded.Select(r => new ReplayRequest(r).Values().ToList()).ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var bindings = new List<ValueBinding>();
        var fresh = new Dictionary<int, HashSet<string>>();
        for (var i = 0; i < recorded.Count; i++)
        {
            foreach (var (location, value) in requests[i])
            {
                See(seen, location.Place == ValuePlace.Header, value);
            }

            var bound = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (source, value) in ResponseValues(recorded[i]))
            {
                if (seen.Contains(value))
                {
                    continue;
                }

                if (source.StartsWith('$') && LooksGenerated(value, recorded[i].StartTime))
                {
                    if (!fresh.TryGetValue(i + 1, out var paths))
                    {
                        fresh[i + 1] = paths = new HashSet<string>(StringComparer.Ordinal);
                    }

                    paths.Add(source);
                }

                if (IsIdLike(value) && bound.Add(value))
                {
                    var targets = TargetsOf(value, requests, i + 1, null);
                    if (targets.Count > 0)
                    {
                        bindings.Add(new ValueBinding { SourceStep = i + 1, Source = source, RecordedValue = value, Targets = targets });
                    }
                }
            }

            foreach (var (_, value) in ResponseValues(recorded[i]))
            {
                See(seen, false, value);
            }
        }

        var problems = new List<string>();
        foreach (var spec in noBind)
        {
            var (step, source) = SplitStep(spec.Trim());
            var removed = bindings.RemoveAll(b => string.Equals(b.Source, source, StringComparison.Ordinal) && (step is null || b.SourceStep == step));
            if (removed == 0)
            {
                problems.Add("--no-bind " + spec + ": no binding was found there");
            }
        }

        foreach (var spec in bind)
        {
            if (Given(spec.Trim(), recorded, requests, problems) is { } given)
            {
                bindings.RemoveAll(b => string.Equals(b.RecordedValue, given.RecordedValue, StringComparison.Ordinal));
                bindings.Add(given);
            }
        }

        // Stable: within a step, in the order the response carries them.
        return new SessionValues([.. bindings.OrderBy(b => b.SourceStep)], fresh, problems);
    }

    /// <summary>The value at <paramref name="source"/> in a response (see <see cref="ValueBinding.Source"/>), or null.</summary>
    public static string? Extract(string source, IReadOnlyList<KeyValuePair<string, string>> headers, JsonNode? body)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(headers);
        if (source.StartsWith('$'))
        {
            return JsonValues.ScalarText(JsonValues.At(body, source));
        }

        foreach (var (name, value) in ResponseHeaderValues(headers))
        {
            if (string.Equals(name, source, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }

        return null;
    }

    /// <summary>Every value a recorded response carries, with its source: JSON leaves first, then headers.</summary>
    public static IEnumerable<(string Source, string Value)> ResponseValues(RecordedExchange exchange)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        if (!exchange.ResponseBodyTruncated && JsonValues.Parse(exchange.ResponseBody) is { } json)
        {
            foreach (var leaf in JsonValues.Leaves(json))
            {
                yield return leaf;
            }
        }

        foreach (var pair in ResponseHeaderValues(exchange.ResponseHeaders))
        {
            yield return pair;
        }
    }

    /// <summary>True for a value shaped like one a server generates on every call.</summary>
    public static bool LooksGenerated(string value, DateTimeOffset recordedAt)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length is < 3 or > 128)
        {
            return false;
        }

        if (value.Length >= 16 && value.Contains('T', StringComparison.Ordinal) && value.Contains(':', StringComparison.Ordinal)
            && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
        {
            // "Now", or now plus a hold's lifetime: a time the server took from its clock. A
            // departure next month is data, and is compared.
            return recordedAt == default || (time - recordedAt).Duration() <= TimeSpan.FromDays(1);
        }

        if (Guid.TryParse(value, out _))
        {
            return true;
        }

        if (!value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            return false;
        }

        // The part after the last separator is the generated part of "HLD-3F9A0C12BE", "pay_9c1e…", "23C", "482913".
        var last = value[(value.LastIndexOfAny(['-', '_', '.']) + 1)..];
        return last.Length >= 3 && last.Any(char.IsAsciiDigit) && !IsCompactDate(last);
    }

    private static bool IsCompactDate(string text) =>
        text.Length == 8 && DateOnly.TryParseExact(text, "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _);

    private static bool IsIdLike(string value) =>
        value.Length is >= MinBoundLength and <= 4096
        && !value.Any(char.IsWhiteSpace)
        && !value.All(char.IsAsciiLetterLower)
        && !value.StartsWith(SpIstio.Core.Redaction.Redactor.Marker, StringComparison.Ordinal);

    private static void See(HashSet<string> seen, bool header, string value)
    {
        seen.Add(value);
        if (header)
        {
            foreach (var token in value.Split([' ', ',', ';', '=', '"', '/'], StringSplitOptions.RemoveEmptyEntries))
            {
                seen.Add(token);
            }
        }
    }

    private static List<BindingTarget> TargetsOf(string value, List<List<(ValueLocation Location, string Value)>> requests, int after, HashSet<int>? only)
    {
        var targets = new List<BindingTarget>();
        for (var j = after; j < requests.Count; j++)
        {
            if (only is not null && !only.Contains(j + 1))
            {
                continue;
            }

            foreach (var (location, located) in requests[j])
            {
                if (ReplayRequest.Holds(location, located, value))
                {
                    targets.Add(new BindingTarget { Step = j + 1, Location = location });
                }
            }
        }

        return targets;
    }

    private static ValueBinding? Given(string spec, IReadOnlyList<RecordedExchange> recorded, List<List<(ValueLocation Location, string Value)>> requests, List<string> problems)
    {
        var equals = spec.IndexOf('=', StringComparison.Ordinal);
        var (step, source) = SplitStep(equals < 0 ? spec : spec[..equals]);
        if (step is null || step < 1 || step > recorded.Count || source.Length == 0)
        {
            problems.Add("--bind " + spec + ": expected STEP:SOURCE[=STEP,STEP…] with STEP from 1 to " + recorded.Count.ToString(CultureInfo.InvariantCulture) + " (e.g. 2:$.bookingReference or 3:header:etag)");
            return null;
        }

        HashSet<int>? only = null;
        if (equals >= 0)
        {
            only = [];
            foreach (var part in spec[(equals + 1)..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var target) || target <= step || target > recorded.Count)
                {
                    problems.Add("--bind " + spec + ": '" + part + "' is not a later step (" + (step + 1).Value.ToString(CultureInfo.InvariantCulture) + " to " + recorded.Count.ToString(CultureInfo.InvariantCulture) + ")");
                    return null;
                }

                only.Add(target);
            }
        }

        var exchange = recorded[step.Value - 1];
        var value = Extract(source, exchange.ResponseHeaders, JsonValues.Parse(exchange.ResponseBody));
        if (string.IsNullOrEmpty(value))
        {
            problems.Add("--bind " + spec + ": the recorded response of step " + step.Value.ToString(CultureInfo.InvariantCulture) + " has no value at " + source);
            return null;
        }

        var targets = TargetsOf(value, requests, step.Value, only);
        if (targets.Count == 0)
        {
            problems.Add("--bind " + spec + ": no later request carries its value '" + value + "'");
            return null;
        }

        return new ValueBinding { SourceStep = step.Value, Source = source, RecordedValue = value, Targets = targets, Given = true };
    }

    private static (int? Step, string Source) SplitStep(string spec)
    {
        var colon = spec.IndexOf(':', StringComparison.Ordinal);
        return colon > 0 && int.TryParse(spec.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var step)
            ? (step, spec[(colon + 1)..].Trim())
            : (null, spec);
    }

    /// <summary>
    /// Header values a later request may send back: a cookie's value (<c>cookie:sid</c>), each
    /// path segment of a Location (<c>header:location/3</c>), and the whole value of an ETag or
    /// any other header that is not about framing, caching or content.
    /// </summary>
    private static IEnumerable<(string Source, string Value)> ResponseHeaderValues(IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        foreach (var (rawName, value) in headers)
        {
            var name = rawName.ToLowerInvariant();
            switch (name)
            {
                case "set-cookie":
                    var pair = value.Split(';', 2)[0];
                    var equals = pair.IndexOf('=', StringComparison.Ordinal);
                    if (equals > 0)
                    {
                        yield return ("cookie:" + pair[..equals].Trim(), pair[(equals + 1)..].Trim());
                    }

                    break;
                case "location" or "content-location":
                    var path = Uri.TryCreate(value, UriKind.Absolute, out var absolute) ? absolute.AbsolutePath : value.Split('?', 2)[0];
                    var segments = path.Split('/');
                    for (var i = 1; i < segments.Length; i++)
                    {
                        if (segments[i].Length > 0)
                        {
                            yield return ("header:" + name + "/" + i.ToString(CultureInfo.InvariantCulture), Uri.UnescapeDataString(segments[i]));
                        }
                    }

                    break;
                case "date" or "content-type" or "content-length" or "content-encoding" or "transfer-encoding" or "connection" or "server"
                    or "cache-control" or "expires" or "last-modified" or "vary" or "age" or "keep-alive" or "traceparent" or "tracestate":
                    break;
                default:
                    yield return ("header:" + name, value.Trim());
                    break;
            }
        }
    }
}
