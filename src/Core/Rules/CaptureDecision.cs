namespace SpIstio.Core.Rules;

/// <summary>
/// What <see cref="CaptureRules.Evaluate"/> decided for one request, with the reason when it is
/// not captured (usable as a low-cardinality metric label through <see cref="CaptureDecisionExtensions.ToLabel"/>).
/// </summary>
public enum CaptureDecision
{
    /// <summary>Capture the exchange.</summary>
    Capture,

    /// <summary>An exemption rule matched (by default: OTLP ingest paths).</summary>
    Exempt,

    /// <summary>Collection rules exist for this direction and none of them matched.</summary>
    NotMatched,

    /// <summary>A client rule with <c>exclude: true</c> matched first.</summary>
    Excluded,

    /// <summary>The path names a static file (script, style sheet, image, font, media).</summary>
    StaticResource,

    /// <summary>A framework or browser prefetch request.</summary>
    Prefetch,
}

/// <summary>Helpers for <see cref="CaptureDecision"/>.</summary>
public static class CaptureDecisionExtensions
{
    /// <summary>
    /// A fixed lower-case label for metrics. Enum.ToString allocates on every call, which a
    /// per-request counter should not.
    /// </summary>
    public static string ToLabel(this CaptureDecision decision) => decision switch
    {
        CaptureDecision.Capture => "capture",
        CaptureDecision.Exempt => "exempt",
        CaptureDecision.NotMatched => "not_matched",
        CaptureDecision.Excluded => "excluded",
        CaptureDecision.StaticResource => "static_resource",
        CaptureDecision.Prefetch => "prefetch",
        _ => "unknown",
    };
}
