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

    /// <summary>How many recordings of the journey carry it (the replayed one included): the same place of the same step's response issued the value that the same places of later requests sent back.</summary>
    public int Recordings { get; init; } = 1;

    /// <summary>How many recordings it was learned from (1 when only the replayed session was).</summary>
    public int OfRecordings { get; init; } = 1;

    /// <summary>True when some recordings of the journey did not carry it (kept, but it may be a coincidence).</summary>
    public bool Weak => !Given && Recordings < OfRecordings;

    /// <summary><c>$.bookingReference of step 2 → path segment 3 of steps 3 and 4</c>.</summary>
    public override string ToString()
    {
        var places = Targets.GroupBy(t => t.Where, StringComparer.Ordinal)
            .Select(g => g.Key + " of " + Steps(g.Select(t => t.Step).Distinct().Order().ToList()));
        return Source + " of step " + SourceStep.ToString(CultureInfo.InvariantCulture) + " → " + string.Join("; ", places) + (Given ? " (given)" : Support());
    }

    /// <summary><c> (seen in 3 of 3 recordings)</c>, or nothing when only one recording was learned from.</summary>
    private string Support() => OfRecordings <= 1
        ? ""
        : string.Create(CultureInfo.InvariantCulture, $" (seen in {Recordings} of {OfRecordings} recordings{(Weak ? ": weak" : "")})");

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

    private SessionValues(
        IReadOnlyList<ValueBinding> bindings, Dictionary<int, HashSet<string>> fresh, IReadOnlyList<string> problems, int recordings, IReadOnlyList<ValueBinding> notCarried, Dictionary<int, HashSet<string>> noiseAcross)
    {
        Bindings = bindings;
        Fresh = fresh;
        Problems = problems;
        Recordings = recordings;
        NotCarried = notCarried;
        NoiseAcross = noiseAcross;
    }

    /// <summary>The bindings, found and given, by source step.</summary>
    public IReadOnlyList<ValueBinding> Bindings { get; }

    /// <summary>Per step (1-based): JSON paths of the response fields the target issues fresh.</summary>
    public IReadOnlyDictionary<int, HashSet<string>> Fresh { get; }

    /// <summary>Given bindings that could not be used, and other recordings that are not of the same journey, one sentence each.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>How many recordings of the journey were learned from (the replayed one included).</summary>
    public int Recordings { get; }

    /// <summary>Bindings the replayed recording suggested that only it carried (an equal value by coincidence): not carried.</summary>
    public IReadOnlyList<ValueBinding> NotCarried { get; }

    /// <summary>Per step: the part of <see cref="Fresh"/> learned because the same request got a different answer in another recording.</summary>
    public IReadOnlyDictionary<int, HashSet<string>> NoiseAcross { get; }

    /// <summary>Learns from <paramref name="recorded"/>; <paramref name="bind"/> adds or overrides bindings (<c>STEP:SOURCE</c> or <c>STEP:SOURCE=STEP,STEP</c>), <paramref name="noBind"/> drops found ones (<c>STEP:SOURCE</c> or <c>SOURCE</c>).</summary>
    public static SessionValues Learn(IReadOnlyList<RecordedExchange> recorded, IEnumerable<string> bind, IEnumerable<string> noBind) =>
        Learn(recorded, [], bind, noBind);

    /// <summary>
    /// Learns from <paramref name="recorded"/> (the session replayed) and <paramref name="others"/>
    /// (more recordings of the same journey: the same steps, in the same order). A binding is kept
    /// for the places of later requests that carried the value in at least two recordings, and
    /// reports in how many it was seen; one only the replayed recording carried is a coincidence
    /// (<see cref="NotCarried"/>). A response field whose value differs between recordings where the
    /// step's request was the same (but for values carried from earlier responses), and whose value
    /// the session had not seen before, is noise whatever its shape. A recording whose steps differ
    /// is not learned from and is named in <see cref="Problems"/>.
    /// </summary>
    public static SessionValues Learn(IReadOnlyList<RecordedExchange> recorded, IReadOnlyList<JourneyRecording> others, IEnumerable<string> bind, IEnumerable<string> noBind)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        ArgumentNullException.ThrowIfNull(others);
        ArgumentNullException.ThrowIfNull(bind);
        ArgumentNullException.ThrowIfNull(noBind);
        var problems = new List<string>();
        var replayed = new Walk(recorded);
        var alike = new List<Walk>();
        foreach (var other in others)
        {
            if (StepsDiffer(recorded, other.Exchanges) is { } why)
            {
                problems.Add("session " + other.SessionId + " is not a recording of the same journey: " + why);
            }
            else
            {
                alike.Add(new Walk(other.Exchanges));
            }
        }

        var bindings = new List<ValueBinding>();
        var fresh = new Dictionary<int, HashSet<string>>();
        var noiseAcross = new Dictionary<int, HashSet<string>>();
        for (var i = 0; i < recorded.Count; i++)
        {
            replayed.SeeRequest(i);
            alike.ForEach(o => o.SeeRequest(i));
            var bound = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (source, value) in ResponseValues(recorded[i]))
            {
                if (replayed.Seen.Contains(value))
                {
                    continue;
                }

                if (source.StartsWith('$') && LooksGenerated(value, recorded[i].StartTime))
                {
                    Add(fresh, i + 1, source);
                }

                if (IsIdLike(value) && bound.Add(value))
                {
                    var targets = TargetsOf(value, replayed.Requests, i + 1, null);
                    if (targets.Count > 0)
                    {
                        bindings.Add(new ValueBinding { SourceStep = i + 1, Source = source, RecordedValue = value, Targets = targets });
                    }
                }
            }

            foreach (var path in NoiseBetween(replayed, alike, i))
            {
                Add(fresh, i + 1, path);
                Add(noiseAcross, i + 1, path);
            }

            replayed.SeeResponse(i);
            alike.ForEach(o => o.SeeResponse(i));
        }

        var notCarried = new List<ValueBinding>();
        if (alike.Count > 0)
        {
            bindings = Confirm(bindings, alike, notCarried);
        }

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
            if (Given(spec.Trim(), recorded, replayed.Requests, problems) is { } given)
            {
                bindings.RemoveAll(b => string.Equals(b.RecordedValue, given.RecordedValue, StringComparison.Ordinal));
                bindings.Add(given);
            }
        }

        // Stable: within a step, in the order the response carries them.
        return new SessionValues([.. bindings.OrderBy(b => b.SourceStep)], fresh, problems, 1 + alike.Count, notCarried, noiseAcross);
    }

    /// <summary>
    /// Why <paramref name="other"/> is not a recording of the journey <paramref name="journey"/> is
    /// (another number of steps, or a step with another method or path), or null when it is. Path
    /// segments may differ only where both are values (an id, a reference), never where one is a
    /// word of the API (<c>bookings</c>, <c>confirm</c>).
    /// </summary>
    public static string? StepsDiffer(IReadOnlyList<RecordedExchange> journey, IReadOnlyList<RecordedExchange> other)
    {
        ArgumentNullException.ThrowIfNull(journey);
        ArgumentNullException.ThrowIfNull(other);
        if (journey.Count != other.Count)
        {
            return string.Create(CultureInfo.InvariantCulture, $"it has {other.Count} steps, the replayed session {journey.Count}");
        }

        for (var i = 0; i < journey.Count; i++)
        {
            var (a, b) = (journey[i], other[i]);
            var (left, right) = (a.Path.Split('/'), b.Path.Split('/'));
            var same = string.Equals(a.Method, b.Method, StringComparison.Ordinal) && left.Length == right.Length;
            for (var s = 0; same && s < left.Length; s++)
            {
                same = string.Equals(left[s], right[s], StringComparison.Ordinal) || (IsIdLike(left[s]) && IsIdLike(right[s]));
            }

            if (!same)
            {
                return string.Create(CultureInfo.InvariantCulture, $"its step {i + 1} is {b.Method} {b.Path}, the replayed session's is {a.Method} {a.Path}");
            }
        }

        return null;
    }

    /// <summary>
    /// The response fields of step <paramref name="i"/> that another recording answered differently
    /// to the same request, and whose value the replayed session had not seen before (a value the
    /// request or an earlier step brought is data, not noise).
    /// </summary>
    private static HashSet<string> NoiseBetween(Walk replayed, List<Walk> alike, int i)
    {
        var noise = new HashSet<string>(StringComparer.Ordinal);
        if (alike.Count == 0 || replayed.Json(i) is not { } json)
        {
            return noise;
        }

        var diff = new JsonDiff([]);
        foreach (var other in alike)
        {
            if (other.Json(i) is not { } otherJson || !SameRequest(replayed, other, i))
            {
                continue;
            }

            foreach (var difference in diff.Compare(json, otherJson))
            {
                if (JsonValues.ScalarText(JsonValues.At(json, difference.Path)) is { } value && !replayed.Seen.Contains(value))
                {
                    noise.Add(difference.Path);
                }
            }
        }

        return noise;
    }

    /// <summary>
    /// True when step <paramref name="i"/> sent the same method, path, query and body in both
    /// recordings, but for values each took from its own earlier responses. Headers are not
    /// compared: they carry each session's own ids and trace context.
    /// </summary>
    private static bool SameRequest(Walk a, Walk b, int i)
    {
        if (!string.Equals(a.Exchanges[i].Method, b.Exchanges[i].Method, StringComparison.Ordinal))
        {
            return false;
        }

        var left = a.Requests[i].Where(v => v.Location.Place != ValuePlace.Header).ToList();
        var right = b.Requests[i].Where(v => v.Location.Place != ValuePlace.Header).ToList();
        if (left.Count != right.Count)
        {
            return false;
        }

        for (var k = 0; k < left.Count; k++)
        {
            if (left[k].Location != right[k].Location
                || (!string.Equals(left[k].Value, right[k].Value, StringComparison.Ordinal) && !(a.Issued.Contains(left[k].Value) && b.Issued.Contains(right[k].Value))))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Keeps, of each binding, the places that carried the value in at least two recordings; a
    /// binding left with none goes to <paramref name="notCarried"/>. Each records its support.
    /// </summary>
    private static List<ValueBinding> Confirm(List<ValueBinding> bindings, List<Walk> alike, List<ValueBinding> notCarried)
    {
        var of = 1 + alike.Count;
        var kept = new List<ValueBinding>(bindings.Count);
        foreach (var binding in bindings)
        {
            var support = new int[binding.Targets.Count];
            Array.Fill(support, 1);
            foreach (var other in alike)
            {
                var source = other.Exchanges[binding.SourceStep - 1];
                if (Extract(binding.Source, source.ResponseHeaders, other.Json(binding.SourceStep - 1)) is not { Length: > 0 } value)
                {
                    continue;
                }

                for (var t = 0; t < binding.Targets.Count; t++)
                {
                    var target = binding.Targets[t];
                    foreach (var (location, located) in other.Requests[target.Step - 1])
                    {
                        if (location == target.Location && ReplayRequest.Holds(location, located, value))
                        {
                            support[t]++;
                            break;
                        }
                    }
                }
            }

            var targets = binding.Targets.Where((_, t) => support[t] >= 2).ToList();
            if (targets.Count == 0)
            {
                notCarried.Add(binding with { Recordings = support.Max(), OfRecordings = of });
                continue;
            }

            kept.Add(binding with { Targets = targets, Recordings = binding.Targets.Select((_, t) => support[t]).Where(s => s >= 2).Min(), OfRecordings = of });
        }

        return kept;
    }

    private static void Add(Dictionary<int, HashSet<string>> paths, int step, string path)
    {
        if (!paths.TryGetValue(step, out var set))
        {
            paths[step] = set = new HashSet<string>(StringComparer.Ordinal);
        }

        set.Add(path);
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

    /// <summary>One recording walked step by step: its requests taken apart, and what it had seen so far.</summary>
    private sealed class Walk(IReadOnlyList<RecordedExchange> exchanges)
    {
        private readonly JsonNode?[] _json = new JsonNode?[exchanges.Count];
        private readonly bool[] _parsed = new bool[exchanges.Count];

        public IReadOnlyList<RecordedExchange> Exchanges { get; } = exchanges;

        public List<List<(ValueLocation Location, string Value)>> Requests { get; } = [.. exchanges.Select(r => new ReplayRequest(r).Values().ToList())];

        /// <summary>Every value a request or response of the steps walked carried (header values also by token).</summary>
        public HashSet<string> Seen { get; } = new(StringComparer.Ordinal);

        /// <summary>Every value a response of the steps walked carried.</summary>
        public HashSet<string> Issued { get; } = new(StringComparer.Ordinal);

        /// <summary>Step <paramref name="i"/>'s response body as JSON (null when truncated or not JSON).</summary>
        public JsonNode? Json(int i)
        {
            if (!_parsed[i])
            {
                _json[i] = Exchanges[i].ResponseBodyTruncated ? null : JsonValues.Parse(Exchanges[i].ResponseBody);
                _parsed[i] = true;
            }

            return _json[i];
        }

        public void SeeRequest(int i)
        {
            foreach (var (location, value) in Requests[i])
            {
                See(location.Place == ValuePlace.Header, value);
            }
        }

        public void SeeResponse(int i)
        {
            foreach (var (_, value) in ResponseValues(Exchanges[i]))
            {
                See(false, value);
                Issued.Add(value);
            }
        }

        private void See(bool header, string value)
        {
            Seen.Add(value);
            if (header)
            {
                foreach (var token in value.Split([' ', ',', ';', '=', '"', '/'], StringSplitOptions.RemoveEmptyEntries))
                {
                    Seen.Add(token);
                }
            }
        }
    }
}

/// <summary>A recording of a journey: a session's exchanges to learn from besides the replayed one's.</summary>
/// <param name="SessionId">The session (reports name it).</param>
/// <param name="Exchanges">Its inbound exchanges of the replayed service, in start order.</param>
public sealed record JourneyRecording(string SessionId, IReadOnlyList<RecordedExchange> Exchanges);
