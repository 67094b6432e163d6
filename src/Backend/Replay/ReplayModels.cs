using System.Text.Json.Serialization;

namespace SpIstio.Backend.Replay;

/// <summary>A recorded inbound exchange to re-send: the request as captured and the response it got.</summary>
public sealed record RecordedExchange
{
    /// <summary>Trace of the recording.</summary>
    public required string TraceId { get; init; }

    /// <summary>Span of the recording.</summary>
    public required string SpanId { get; init; }

    /// <summary>Service that received it.</summary>
    public string Service { get; init; } = "";

    /// <summary>When it was received (timestamps issued "now" in its response are noise).</summary>
    public DateTimeOffset StartTime { get; init; }

    /// <summary>Method.</summary>
    public required string Method { get; init; }

    /// <summary>Path.</summary>
    public required string Path { get; init; }

    /// <summary>Query without '?', or null.</summary>
    public string? Query { get; init; }

    /// <summary>Request headers in order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> RequestHeaders { get; init; } = [];

    /// <summary>Request body.</summary>
    public byte[] RequestBody { get; init; } = [];

    /// <summary>True when the recorded request body was cut at the capture limit (it cannot be re-sent).</summary>
    public bool RequestBodyTruncated { get; init; }

    /// <summary>Recorded status.</summary>
    public int Status { get; init; }

    /// <summary>Recorded response headers.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ResponseHeaders { get; init; } = [];

    /// <summary>Recorded response body.</summary>
    public byte[] ResponseBody { get; init; } = [];

    /// <summary>True when the recorded response body was cut at the capture limit (bodies are then not compared).</summary>
    public bool ResponseBodyTruncated { get; init; }

    /// <summary>Method and target for reports.</summary>
    public string Name => Method + " " + (Query is null ? Path : Path + "?" + Query);
}

/// <summary>How one replayed exchange compared.</summary>
public enum ReplayVerdict
{
    /// <summary>Same status, headers and body (noise ignored).</summary>
    Passed,

    /// <summary>Something that matters differs.</summary>
    Regression,

    /// <summary>Could not be re-sent (truncated request body) or the target failed to answer.</summary>
    Error,
}

/// <summary>One replayed exchange.</summary>
public sealed record ReplayResult
{
    /// <summary>Position in the session, from 1.</summary>
    public int Index { get; init; }

    /// <summary>Method and target.</summary>
    public required string Name { get; init; }

    /// <summary>Trace of the recording.</summary>
    public required string TraceId { get; init; }

    /// <summary>Span of the recording.</summary>
    public required string SpanId { get; init; }

    /// <summary>The verdict.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<ReplayVerdict>))]
    public ReplayVerdict Verdict { get; init; }

    /// <summary>Recorded status.</summary>
    public int ExpectedStatus { get; init; }

    /// <summary>Replayed status (0 when the target did not answer).</summary>
    public int ActualStatus { get; init; }

    /// <summary>What differs (status, headers, body paths), one line each.</summary>
    public IReadOnlyList<string> Differences { get; init; } = [];

    /// <summary>Body paths that differed but were ignored: rules, noise learned from repeated requests, and values the target issues fresh on every run.</summary>
    public IReadOnlyList<string> IgnoredNoise { get; init; } = [];

    /// <summary>Body paths not compared because redaction replaced the recorded value (an authorization code).</summary>
    public IReadOnlyList<string> Redacted { get; init; } = [];

    /// <summary>Body paths whose recorded value was one the target issued earlier and replaced on replay (a booking reference): equal once carried.</summary>
    public IReadOnlyList<string> Carried { get; init; } = [];

    /// <summary>Request places that got a value from the replay values file.</summary>
    public IReadOnlyList<string> ValuesApplied { get; init; } = [];

    /// <summary>Why it could not be compared.</summary>
    public string? Error { get; init; }

    /// <summary>Time the target took.</summary>
    public double DurationMs { get; init; }

    /// <summary>What the target answered, kept when <see cref="ReplayOptions.KeepResponseBytes"/> is set (the Trace View's diff shows it beside the recording).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ReplayedResponse? Replayed { get; init; }
}

/// <summary>The target's answer to one replayed request, as kept for a side-by-side diff.</summary>
public sealed record ReplayedResponse
{
    /// <summary>Status.</summary>
    public int Status { get; init; }

    /// <summary>Headers as [name, value] pairs.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Headers { get; init; } = [];

    /// <summary>The body as text, or base64 when it is not UTF-8; at most <see cref="ReplayOptions.KeepResponseBytes"/> of it.</summary>
    public string Body { get; init; } = "";

    /// <summary>True when <see cref="Body"/> is base64.</summary>
    public bool Base64 { get; init; }

    /// <summary>True when the body was longer than what was kept.</summary>
    public bool Truncated { get; init; }
}

/// <summary>The whole replay.</summary>
public sealed record ReplayReport
{
    /// <summary>The session replayed.</summary>
    public required string SessionId { get; init; }

    /// <summary>Where requests were sent.</summary>
    public required string Target { get; init; }

    /// <summary>The service whose inbound requests were replayed (null: every service's).</summary>
    public string? Service { get; init; }

    /// <summary>Values carried from a response to later requests, found in the recording or given.</summary>
    public IReadOnlyList<ValueBinding> Bindings { get; init; } = [];

    /// <summary>How many recordings of the journey the bindings and noise were learned from (the replayed session included).</summary>
    public int Recordings { get; init; } = 1;

    /// <summary>Bindings the replayed session suggested that the other recordings did not carry (coincidentally equal values): not carried.</summary>
    public IReadOnlyList<ValueBinding> NotCarried { get; init; } = [];

    /// <summary>What may make the replay differ for reasons other than the target (a redacted value with no replacement, a binding whose value did not come back).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>Every exchange, in session order.</summary>
    public IReadOnlyList<ReplayResult> Results { get; init; } = [];

    /// <summary>Exchanges that passed.</summary>
    public int Passed => Results.Count(r => r.Verdict == ReplayVerdict.Passed);

    /// <summary>Exchanges that regressed.</summary>
    public int Regressions => Results.Count(r => r.Verdict == ReplayVerdict.Regression);

    /// <summary>Exchanges that could not be compared.</summary>
    public int Errors => Results.Count(r => r.Verdict == ReplayVerdict.Error);

    /// <summary>Total replay time.</summary>
    public double DurationMs { get; init; }
}

/// <summary>What to compare and how to send.</summary>
public sealed record ReplayOptions
{
    /// <summary>Body paths or field names never compared (see <see cref="JsonDiff"/>).</summary>
    public IReadOnlyList<string> Ignore { get; init; } = [];

    /// <summary>Response headers compared besides the status (content-type by media type). Default: content-type.</summary>
    public IReadOnlyList<string> CompareHeaders { get; init; } = ["content-type"];

    /// <summary>Request headers set on every replayed request (e.g. a fresh authorization, since recordings are redacted).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> RequestHeaders { get; init; } = [];

    /// <summary>Values redaction removed, put back into the replayed requests (<c>--values</c>).</summary>
    public ReplayValues Values { get; init; } = ReplayValues.Empty;

    /// <summary>Bindings to add or override (<c>--bind STEP:SOURCE[=STEP,…]</c>).</summary>
    public IReadOnlyList<string> Bind { get; init; } = [];

    /// <summary>Found bindings to drop (<c>--no-bind [STEP:]SOURCE</c>).</summary>
    public IReadOnlyList<string> NoBind { get; init; } = [];

    /// <summary>Per-request timeout.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Keep each replayed response (its body up to this many bytes) in the results; 0 keeps none (the CLI's reports do not need them).</summary>
    public int KeepResponseBytes { get; init; }
}

/// <summary>Source-generated JSON of the replay report.</summary>
[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web, WriteIndented = true)]
[JsonSerializable(typeof(ReplayReport))]
public sealed partial class ReplayJsonContext : JsonSerializerContext;
