using System.Diagnostics;
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
    public async Task<ReplayReport> RunAsync(string sessionId, IReadOnlyList<RecordedExchange> recorded, IProgress<ReplayResult>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        var noise = LearnNoise(recorded);
        var watch = Stopwatch.StartNew();
        var results = new List<ReplayResult>(recorded.Count);
        for (var i = 0; i < recorded.Count; i++)
        {
            var exchange = recorded[i];
            var result = await ReplayOneAsync(i + 1, exchange, noise.GetValueOrDefault(KeyOf(exchange)), cancellationToken).ConfigureAwait(false);
            results.Add(result);
            progress?.Report(result);
        }

        return new ReplayReport
        {
            SessionId = sessionId,
            Target = _target.BaseAddress?.ToString() ?? "",
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

    private async Task<ReplayResult> ReplayOneAsync(int index, RecordedExchange recorded, HashSet<string>? noise, CancellationToken cancellationToken)
    {
        var result = new ReplayResult { Index = index, Name = recorded.Name, TraceId = recorded.TraceId, SpanId = recorded.SpanId, ExpectedStatus = recorded.Status };
        if (recorded.RequestBodyTruncated)
        {
            return result with { Verdict = ReplayVerdict.Error, Error = "the recorded request body was truncated at the capture limit; it cannot be re-sent" };
        }

        using var request = BuildRequest(recorded);
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

            if (!recorded.ResponseBodyTruncated)
            {
                CompareBodies(recorded.ResponseBody, body, noise, differences, ignored);
            }

            return result with
            {
                Verdict = differences.Count == 0 ? ReplayVerdict.Passed : ReplayVerdict.Regression,
                ActualStatus = status,
                Differences = differences,
                IgnoredNoise = ignored,
                DurationMs = watch.Elapsed.TotalMilliseconds,
            };
        }
    }

    private void CompareBodies(byte[] expected, byte[] actual, HashSet<string>? noise, List<string> differences, List<string> ignored)
    {
        var expectedJson = ParseJson(expected);
        var actualJson = ParseJson(actual);
        if (expectedJson is not null && actualJson is not null)
        {
            foreach (var difference in _diff.Compare(expectedJson, actualJson))
            {
                if (noise is not null && noise.Contains(difference.Path))
                {
                    ignored.Add(difference.Path);
                    continue;
                }

                differences.Add("body " + difference.Path + ": " + (difference.Expected ?? "(absent)") + " → " + (difference.Actual ?? "(absent)"));
            }

            return;
        }

        if (!expected.AsSpan().SequenceEqual(actual))
        {
            differences.Add("body: " + Preview(expected) + " → " + Preview(actual));
        }
    }

    private HttpRequestMessage BuildRequest(RecordedExchange recorded)
    {
        var target = recorded.Query is null ? recorded.Path : recorded.Path + "?" + recorded.Query;
        var request = new HttpRequestMessage(new HttpMethod(recorded.Method), target.TrimStart('/'));
        HttpContent? content = recorded.RequestBody.Length > 0 || recorded.Method is "POST" or "PUT" or "PATCH" ? new ByteArrayContent(recorded.RequestBody) : null;
        request.Content = content;
        foreach (var (name, value) in recorded.RequestHeaders)
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
}
