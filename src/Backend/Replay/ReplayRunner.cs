using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SpIstio.Core.Replay;

namespace SpIstio.Backend.Replay;

/// <summary>
/// Re-sends recorded requests, in order, to a target and compares each response with the
/// recorded one: status, selected headers, and the body (structural JSON diff with ignore rules,
/// else byte-exact text). Fields that differ between two recordings of the same request in the
/// session are noise (timestamps, generated ids) and are ignored for that request automatically.
/// </summary>
public sealed class ReplayRunner
{
    // Headers a replayed request must not copy: connection-level fields, framing (the client
    // frames the body), the recorded host (the target is elsewhere), and the recording's own
    // trace context (a replay is a new trace).
    private static readonly HashSet<string> _notResent = new(StringComparer.OrdinalIgnoreCase)
    {
        "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
        "traceparent", "tracestate", "x-sp-num", "expect",
    };

    private readonly HttpClient _target;
    private readonly ReplayOptions _options;
    private readonly JsonDiff _diff;

    /// <summary>Creates a runner sending through <paramref name="target"/> (its BaseAddress is the target).</summary>
    public ReplayRunner(HttpClient target, ReplayOptions options)
    {
        _target = target ?? throw new ArgumentNullException(nameof(target));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _diff = new JsonDiff(options.Ignore);
    }

    /// <summary>Replays <paramref name="recorded"/> in order; <paramref name="progress"/> hears after each exchange.</summary>
    public Task<ReplayReport> RunAsync(string sessionId, IReadOnlyList<RecordedExchange> recorded, IProgress<ReplayResult>? progress, CancellationToken cancellationToken) =>
        RunAsync(sessionId, null, recorded, progress, cancellationToken);

    /// <summary>
    /// Replays <paramref name="recorded"/> (the inbound requests of <paramref name="service"/>) in
    /// order, carrying the values each response issued into the later requests that used them.
    /// </summary>
    public Task<ReplayReport> RunAsync(string sessionId, string? service, IReadOnlyList<RecordedExchange> recorded, IProgress<ReplayResult>? progress, CancellationToken cancellationToken) =>
        RunAsync(sessionId, service, recorded, LearnValues(recorded), progress, cancellationToken);

    /// <summary>
    /// The values carried between steps of <paramref name="recorded"/>: found in the recording, then
    /// the options' and values file's <c>bind</c> / <c>no_bind</c> applied.
    /// </summary>
    public SessionValues LearnValues(IReadOnlyList<RecordedExchange> recorded) => LearnValues(recorded, []);

    /// <summary>As above, learning also from <paramref name="others"/>: more recordings of the same journey (see <see cref="SessionValues.Learn(IReadOnlyList{RecordedExchange}, IReadOnlyList{JourneyRecording}, IEnumerable{string}, IEnumerable{string})"/>).</summary>
    public SessionValues LearnValues(IReadOnlyList<RecordedExchange> recorded, IReadOnlyList<JourneyRecording> others) =>
        SessionValues.Learn(recorded, others, [.. _options.Values.Bind, .. _options.Bind], [.. _options.Values.NoBind, .. _options.NoBind]);

    /// <summary>As above, with the values already learned by <see cref="LearnValues(IReadOnlyList{RecordedExchange}, IReadOnlyList{JourneyRecording})"/> (the CLI prints them first).</summary>
    public async Task<ReplayReport> RunAsync(string sessionId, string? service, IReadOnlyList<RecordedExchange> recorded, SessionValues learned, IProgress<ReplayResult>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        ArgumentNullException.ThrowIfNull(learned);
        var noise = LearnNoise(recorded);
        var state = new CarryState(learned);
        state.Warnings.AddRange(learned.Problems);
        var watch = Stopwatch.StartNew();
        var results = new List<ReplayResult>(recorded.Count);
        for (var i = 0; i < recorded.Count; i++)
        {
            var exchange = recorded[i];
            var result = await ReplayOneAsync(i + 1, exchange, noise.GetValueOrDefault(KeyOf(exchange)), state, cancellationToken).ConfigureAwait(false);
            results.Add(result);
            progress?.Report(result);
        }

        return new ReplayReport
        {
            SessionId = sessionId,
            Target = _target.BaseAddress?.ToString() ?? "",
            Service = service,
            Bindings = learned.Bindings,
            Recordings = learned.Recordings,
            NotCarried = learned.NotCarried,
            Warnings = state.Warnings,
            Results = results,
            DurationMs = watch.Elapsed.TotalMilliseconds,
        };
    }

    /// <summary>
    /// Noise per request key: the body paths that differ between recordings of the same request
    /// (same method, target and body) within the session.
    /// </summary>
    public Dictionary<string, HashSet<string>> LearnNoise(IReadOnlyList<RecordedExchange> recorded)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        var noise = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var group in recorded.GroupBy(KeyOf))
        {
            var bodies = group.Where(r => !r.ResponseBodyTruncated).Select(r => ParseJson(r.ResponseBody)).Where(n => n is not null).ToList();
            for (var i = 1; i < bodies.Count; i++)
            {
                foreach (var difference in _diff.Compare(bodies[0], bodies[i]))
                {
                    if (!noise.TryGetValue(group.Key, out var paths))
                    {
                        noise[group.Key] = paths = new HashSet<string>(StringComparer.Ordinal);
                    }

                    paths.Add(difference.Path);
                }
            }
        }

        return noise;
    }

    private static string KeyOf(RecordedExchange exchange) =>
        ReplayKey.Default.Compute(exchange.Method, "", exchange.Path, exchange.Query, exchange.RequestBody, null);

    private async Task<ReplayResult> ReplayOneAsync(int index, RecordedExchange recorded, HashSet<string>? noise, CarryState state, CancellationToken cancellationToken)
    {
        var result = new ReplayResult { Index = index, Name = recorded.Name, TraceId = recorded.TraceId, SpanId = recorded.SpanId, ExpectedStatus = recorded.Status };
        if (recorded.RequestBodyTruncated)
        {
            return result with { Verdict = ReplayVerdict.Error, Error = "the recorded request body was truncated at the capture limit; it cannot be re-sent" };
        }

        var draft = new ReplayRequest(recorded);
        var applied = _options.Values.Apply(draft, recorded.Status);
        state.CarryInto(index, draft);
        foreach (var (location, value) in draft.Values())
        {
            if (value.Contains(SpIstio.Core.Redaction.Redactor.Marker, StringComparison.Ordinal) && !Overridden(location))
            {
                state.Warnings.Add(string.Create(CultureInfo.InvariantCulture, $"step {index}: {location} was redacted in the recording and the values file (--values) has no value for it; the redaction marker was sent"));
            }
        }

        result = result with { Name = recorded.Method + " " + draft.Target, ValuesApplied = applied };
        var grpc = GrpcReplay.IsGrpc(recorded);
        using var request = BuildRequest(draft);
        if (grpc)
        {
            // gRPC is HTTP/2 only: with an http target this is cleartext HTTP/2 with prior knowledge (h2c).
            request.Version = System.Net.HttpVersion.Version20;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
            request.Headers.TryAddWithoutValidation("te", "trailers");
        }

        var watch = Stopwatch.StartNew();
        HttpResponseMessage response;
        byte[] body;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.Timeout);
            response = await _target.SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false);
            body = await response.Content.ReadAsByteArrayAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return result with { Verdict = ReplayVerdict.Error, Error = "the target did not answer: " + ex.Message, DurationMs = watch.Elapsed.TotalMilliseconds };
        }

        using (response)
        {
            var differences = new List<string>();
            var ignored = new List<string>();
            var status = (int)response.StatusCode;
            if (status != recorded.Status)
            {
                differences.Add("status: " + recorded.Status + " → " + status);
            }

            foreach (var name in _options.CompareHeaders)
            {
                var expected = Normalise(name, Find(recorded.ResponseHeaders, name));
                var actual = Normalise(name, ResponseHeader(response, name));
                if (!string.Equals(expected, actual, StringComparison.Ordinal))
                {
                    differences.Add("header " + name + ": " + (expected ?? "(none)") + " → " + (actual ?? "(none)"));
                }
            }

            var carried = new List<string>();
            var redacted = new List<string>();
            var actualJson = grpc ? GrpcReplay.Messages(body) : JsonValues.Parse(body);
            state.Learn(index, [.. response.Headers.Concat(response.Content.Headers).Select(h => new KeyValuePair<string, string>(h.Key, string.Join(", ", h.Value)))], actualJson);
            if (grpc)
            {
                // The status is in the trailers, or in the headers of a trailers-only answer.
                var expectedStatus = Find(recorded.ResponseHeaders, "grpc-status");
                var actualStatus = ResponseHeader(response, "grpc-status")
                    ?? (response.TrailingHeaders.TryGetValues("grpc-status", out var trailer) ? string.Join(", ", trailer) : null);
                if (!string.Equals(expectedStatus?.Trim(), actualStatus?.Trim(), StringComparison.Ordinal))
                {
                    differences.Add("grpc-status: " + GrpcReplay.Describe(expectedStatus) + " → " + GrpcReplay.Describe(actualStatus));
                }
            }

            if (!recorded.ResponseBodyTruncated)
            {
                if (grpc)
                {
                    CompareJson(index, GrpcReplay.Messages(recorded.ResponseBody), actualJson!, noise, state, differences, ignored, carried, redacted);
                }
                else
                {
                    CompareBodies(index, recorded.ResponseBody, body, actualJson, noise, state, differences, ignored, carried, redacted);
                }
            }

            return result with
            {
                Verdict = differences.Count == 0 ? ReplayVerdict.Passed : ReplayVerdict.Regression,
                ActualStatus = status,
                Differences = differences,
                IgnoredNoise = ignored,
                Carried = carried,
                Redacted = redacted,
                DurationMs = watch.Elapsed.TotalMilliseconds,
                Replayed = _options.KeepResponseBytes > 0 ? Keep(status, response, body, _options.KeepResponseBytes) : null,
            };
        }
    }

    private void CompareBodies(
        int index, byte[] expected, byte[] actual, JsonNode? actualJson, HashSet<string>? noise, CarryState state, List<string> differences, List<string> ignored, List<string> carried, List<string> redacted)
    {
        var expectedJson = ParseJson(expected);
        if (expectedJson is not null && actualJson is not null)
        {
            CompareJson(index, expectedJson, actualJson, noise, state, differences, ignored, carried, redacted);
            return;
        }

        if (!expected.AsSpan().SequenceEqual(actual))
        {
            differences.Add("body: " + Preview(expected) + " → " + Preview(actual));
        }
    }

    /// <summary>Compares two JSON documents (a JSON body, or a gRPC call's messages by field number), noise and carried values aside.</summary>
    private void CompareJson(
        int index, JsonNode expectedJson, JsonNode actualJson, HashSet<string>? noise, CarryState state, List<string> differences, List<string> ignored, List<string> carried, List<string> redacted)
    {
        var fresh = state.Values.Fresh.GetValueOrDefault(index);
        foreach (var difference in _diff.Compare(expectedJson, actualJson))
        {
            var recordedValue = JsonValues.ScalarText(JsonValues.At(expectedJson, difference.Path));
            var replayedValue = JsonValues.ScalarText(JsonValues.At(actualJson, difference.Path));
            if (recordedValue is not null && state.Carried.TryGetValue(recordedValue, out var carriedValue) && string.Equals(carriedValue, replayedValue, StringComparison.Ordinal))
            {
                carried.Add(difference.Path);
                continue;
            }

            // Redaction replaced the recorded value: there is nothing to compare it with.
            if (recordedValue is not null && recordedValue.StartsWith(SpIstio.Core.Redaction.Redactor.Marker, StringComparison.Ordinal))
            {
                redacted.Add(difference.Path);
                continue;
            }

            if ((noise is not null && noise.Contains(difference.Path)) || (fresh is not null && fresh.Contains(difference.Path)))
            {
                // A fresh value in a later response (the hold again, in the paid booking) is the same one.
                if (recordedValue is not null && replayedValue is not null)
                {
                    state.Carried.TryAdd(recordedValue, replayedValue);
                }

                ignored.Add(difference.Path);
                continue;
            }

            differences.Add("body " + difference.Path + ": " + (difference.Expected ?? "(absent)") + " → " + (difference.Actual ?? "(absent)"));
        }
    }

    private HttpRequestMessage BuildRequest(ReplayRequest recorded)
    {
        var request = new HttpRequestMessage(new HttpMethod(recorded.Method), recorded.Target.TrimStart('/'));
        var body = recorded.Body;
        HttpContent? content = body.Length > 0 || recorded.Method is "POST" or "PUT" or "PATCH" ? new ByteArrayContent(body) : null;
        request.Content = content;
        foreach (var (name, value) in recorded.Headers)
        {
            if (_notResent.Contains(name) || Overridden(name))
            {
                continue;
            }

            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                content?.Headers.TryAddWithoutValidation(name, value);
            }
        }

        foreach (var (name, value) in _options.RequestHeaders)
        {
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                content?.Headers.TryAddWithoutValidation(name, value);
            }
        }

        return request;
    }

    /// <summary>True for a request header that is not re-sent as recorded (framing, or set by --request-header).</summary>
    private bool Overridden(ValueLocation location) =>
        location.Place == ValuePlace.Header && (Overridden(location.Name) || _notResent.Contains(location.Name));

    private bool Overridden(string name)
    {
        foreach (var header in _options.RequestHeaders)
        {
            if (string.Equals(header.Key, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private static ReplayedResponse Keep(int status, HttpResponseMessage response, byte[] body, int limit)
    {
        var kept = body.AsSpan(0, Math.Min(body.Length, limit));

        // A cut inside a multi-byte character would turn text into base64: cut before it instead.
        for (var back = 0; back < 3 && kept.Length < body.Length && (body[kept.Length] & 0xC0) == 0x80; back++)
        {
            kept = kept[..^1];
        }

        var text = System.Text.Unicode.Utf8.IsValid(kept);
        return new ReplayedResponse
        {
            Status = status,
            Headers = [.. response.Headers.Concat(response.Content.Headers).Select(h => (IReadOnlyList<string>)[h.Key.ToLowerInvariant(), string.Join(", ", h.Value)])],
            Body = text ? Encoding.UTF8.GetString(kept) : Convert.ToBase64String(kept),
            Base64 = !text,
            Truncated = body.Length > limit,
        };
    }

    private static string? ResponseHeader(HttpResponseMessage response, string name)
    {
        if (response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values))
        {
            return string.Join(", ", values);
        }

        return null;
    }

    private static string? Find(IReadOnlyList<KeyValuePair<string, string>> headers, string name)
    {
        string? found = null;
        foreach (var (key, value) in headers)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                found = found is null ? value : found + ", " + value;
            }
        }

        return found;
    }

    private static string? Normalise(string name, string? value)
    {
        if (value is null)
        {
            return null;
        }

        // Content types compare by media type: "application/json; charset=utf-8" is still JSON.
        if (string.Equals(name, "content-type", StringComparison.OrdinalIgnoreCase)
            && MediaTypeHeaderValue.TryParse(value, out var media) && media.MediaType is not null)
        {
            return media.MediaType.ToLowerInvariant();
        }

        return value.Trim();
    }

    private static JsonNode? ParseJson(byte[] body)
    {
        var trimmed = body.AsSpan().TrimStart(" \t\r\n"u8);
        if (trimmed.IsEmpty || (trimmed[0] != (byte)'{' && trimmed[0] != (byte)'['))
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(body);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Preview(byte[] body)
    {
        if (body.Length == 0)
        {
            return "(empty)";
        }

        var text = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 80)).ReplaceLineEndings(" ");
        return "\"" + text + (body.Length > 80 ? "…" : "") + "\" (" + body.Length + " bytes)";
    }

    /// <summary>What a replay carries from step to step: recorded value → the value the target issued instead.</summary>
    private sealed class CarryState(SessionValues values)
    {
        public SessionValues Values { get; } = values;

        public Dictionary<string, string> Carried { get; } = new(StringComparer.Ordinal);

        public List<string> Warnings { get; } = [];

        /// <summary>Puts the values the target issued into the places of <paramref name="step"/>'s request that carried the recorded ones.</summary>
        public void CarryInto(int step, ReplayRequest request)
        {
            foreach (var binding in Values.Bindings)
            {
                if (!Carried.TryGetValue(binding.RecordedValue, out var value))
                {
                    continue;
                }

                foreach (var target in binding.Targets)
                {
                    if (target.Step == step)
                    {
                        request.Replace(target.Location, binding.RecordedValue, value);
                    }
                }
            }
        }

        /// <summary>Reads the values the bindings of <paramref name="step"/> take from the target's response.</summary>
        public void Learn(int step, IReadOnlyList<KeyValuePair<string, string>> headers, JsonNode? body)
        {
            foreach (var binding in Values.Bindings)
            {
                if (binding.SourceStep != step)
                {
                    continue;
                }

                if (SessionValues.Extract(binding.Source, headers, body) is { Length: > 0 } value)
                {
                    Carried[binding.RecordedValue] = value;
                }
                else if (binding.Targets.Count > 0)
                {
                    Warnings.Add(string.Create(CultureInfo.InvariantCulture, $"step {step}: the target's response has no {binding.Source}, so steps {string.Join(", ", binding.Targets.Select(t => t.Step).Distinct())} get the recorded '{binding.RecordedValue}'"));
                }
            }
        }
    }
}
