using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SpIstio.Backend.Ui;

/// <summary>One replayed step as a replay job's stored report holds it.</summary>
internal sealed record ReplayStepView(
    int Index,
    string Name,
    string TraceId,
    string SpanId,
    string Verdict,
    int ExpectedStatus,
    int ActualStatus,
    IReadOnlyList<string> Differences,
    IReadOnlyList<string> IgnoredNoise,
    IReadOnlyList<string> Carried,
    IReadOnlyList<string> Redacted,
    string? Error,
    double DurationMs,
    DiffSide? Replayed);

/// <summary>
/// A replay job's report (the JSON <c>ReplayJsonContext</c> writes) read for the pages: the steps,
/// the values carried between them and the warnings. Read as a document rather than deserialised,
/// so a report written by an older build still shows.
/// </summary>
internal sealed record ReplayReportView(IReadOnlyList<ReplayStepView> Steps, IReadOnlyList<string> Bindings, IReadOnlyList<string> Warnings)
{
    public static ReplayReportView Parse(string json, DateTimeOffset finishedAt)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var steps = new List<ReplayStepView>();
        foreach (var r in Array(root, "results"))
        {
            DiffSide? replayed = null;
            if (r.TryGetProperty("replayed", out var kept) && kept.ValueKind == JsonValueKind.Object)
            {
                var body = kept.GetProperty("body").GetString() ?? "";
                replayed = new DiffSide(
                    kept.GetProperty("status").GetInt32(),
                    [.. Array(kept, "headers").Select(h => (h[0].GetString() ?? "", h[1].GetString() ?? ""))],
                    kept.TryGetProperty("base64", out var b64) && b64.GetBoolean() ? Convert.FromBase64String(body) : Encoding.UTF8.GetBytes(body),
                    kept.TryGetProperty("truncated", out var cut) && cut.GetBoolean(),
                    finishedAt);
            }

            steps.Add(new ReplayStepView(
                r.GetProperty("index").GetInt32(),
                r.GetProperty("name").GetString() ?? "",
                r.GetProperty("traceId").GetString() ?? "",
                r.GetProperty("spanId").GetString() ?? "",
                r.GetProperty("verdict").GetString() ?? "",
                r.GetProperty("expectedStatus").GetInt32(),
                r.GetProperty("actualStatus").GetInt32(),
                Strings(r, "differences"),
                Strings(r, "ignoredNoise"),
                Strings(r, "carried"),
                Strings(r, "redacted"),
                r.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String ? error.GetString() : null,
                r.TryGetProperty("durationMs", out var ms) ? ms.GetDouble() : 0,
                replayed));
        }

        var bindings = new List<string>();
        foreach (var b in Array(root, "bindings"))
        {
            var places = Array(b, "targets")
                .GroupBy(t => t.GetProperty("where").GetString() ?? "", StringComparer.Ordinal)
                .Select(g => g.Key + " of step " + string.Join(", ", g.Select(t => t.GetProperty("step").GetInt32().ToString(CultureInfo.InvariantCulture)).Distinct()));
            bindings.Add((b.GetProperty("source").GetString() ?? "") + " of step " + b.GetProperty("sourceStep").GetInt32().ToString(CultureInfo.InvariantCulture)
                + " → " + string.Join("; ", places) + (b.TryGetProperty("given", out var given) && given.GetBoolean() ? " (given)" : ""));
        }

        return new ReplayReportView(steps, bindings, Strings(root, "warnings"));
    }

    /// <summary>Why each greyed body path of a step is not counted: the engine's noise, carried and redacted paths.</summary>
    public static Dictionary<string, string> NoiseOf(ReplayStepView step)
    {
        ArgumentNullException.ThrowIfNull(step);
        var noise = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var path in step.IgnoredNoise)
        {
            noise.TryAdd(path, "noise: ignored by a rule, different between recordings of the same request, or issued fresh by the target on every run");
        }

        foreach (var path in step.Carried)
        {
            noise.TryAdd(path, "carried: a value the target issued in an earlier step, equal once carried");
        }

        foreach (var path in step.Redacted)
        {
            noise.TryAdd(path, "redacted in the recording: nothing to compare");
        }

        return noise;
    }

    private static IEnumerable<JsonElement> Array(JsonElement element, string name) =>
        element.TryGetProperty(name, out var array) && array.ValueKind == JsonValueKind.Array ? array.EnumerateArray() : [];

    private static List<string> Strings(JsonElement element, string name) => [.. Array(element, name).Select(e => e.GetString() ?? "")];
}
