namespace SpIstio.Backend.Storage;

/// <summary>The status filter of trace search, in terms of the one error definition (docs/ARCHITECTURE.md, "Errors").</summary>
public enum TraceStatusFilter
{
    /// <summary>No filter.</summary>
    Any = 0,

    /// <summary>A span that is a server-side error: HTTP status ≥ 500, a transport failure, or OTLP status ERROR on a span without an HTTP status.</summary>
    Error,

    /// <summary>A span answered with a 4xx (the caller's fault; not an error).</summary>
    ClientError,

    /// <summary>A span that is neither.</summary>
    Ok,
}

/// <summary>Filters of trace search. Span-level filters must all hold for one span of the trace (Jaeger's rule).</summary>
public sealed record TraceQuery
{
    /// <summary>Most spans one search request examines; a rare filter over a long range answers in several pages.</summary>
    public const int MaxScannedSpans = 20_000;

    /// <summary>Only traces with a span of this service.</summary>
    public string? Service { get; init; }

    /// <summary>Span name (an SDK's operation; an exchange's <c>GET /path</c>).</summary>
    public string? Operation { get; init; }

    /// <summary>Route template (<c>/orders/{orderId}</c>) or a path; <c>{…}</c> placeholders match one path segment.</summary>
    public string? Route { get; init; }

    /// <summary>Status of the matching span.</summary>
    public TraceStatusFilter Status { get; init; }

    /// <summary>Status class of the matching span (2 = 2xx, …), or null.</summary>
    public int? StatusClass { get; init; }

    /// <summary>The matching span lasted at least this long.</summary>
    public TimeSpan? MinDuration { get; init; }

    /// <summary>The matching span lasted at most this long.</summary>
    public TimeSpan? MaxDuration { get; init; }

    /// <summary>Full-text search over URL, path and body text (every word must occur).</summary>
    public string? Text { get; init; }

    /// <summary>Span or resource attributes the matching span must carry, compared as text.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Attributes { get; init; } = [];

    /// <summary>Matching span started at or after this time; null for no lower bound.</summary>
    public DateTimeOffset? From { get; init; }

    /// <summary>Matching span started before this time; null for no upper bound.</summary>
    public DateTimeOffset? To { get; init; }

    /// <summary>Opaque cursor from the previous page.</summary>
    public string? Cursor { get; init; }

    /// <summary>Page size, 1–500.</summary>
    public int Limit { get; init; } = 20;
}

/// <summary>A trace in search results.</summary>
/// <param name="TraceId">32 hex digits.</param>
/// <param name="StartTime">Its first span's start.</param>
/// <param name="EndTime">Its last span's end.</param>
/// <param name="RootService">The root span's service (the earliest span when the root was not captured).</param>
/// <param name="RootName">The root span's name.</param>
/// <param name="RootMethod">The root span's HTTP method, or null.</param>
/// <param name="RootRoute">The root span's route, or null.</param>
/// <param name="RootStatusCode">The root span's HTTP status, or null.</param>
/// <param name="SpanCount">Spans stored for it.</param>
/// <param name="ErrorCount">Spans that are server-side errors.</param>
/// <param name="ClientErrorCount">Spans answered with a 4xx.</param>
/// <param name="Services">Services it touches, sorted.</param>
/// <param name="SessionId">A session id one of its spans carries, or null.</param>
public sealed record TraceSummary(
    string TraceId,
    DateTimeOffset StartTime,
    DateTimeOffset EndTime,
    string RootService,
    string RootName,
    string? RootMethod,
    string? RootRoute,
    int? RootStatusCode,
    int SpanCount,
    int ErrorCount,
    int ClientErrorCount,
    IReadOnlyList<string> Services,
    string? SessionId)
{
    /// <summary>The root span's gRPC status code when it is a gRPC call (-1: ended without one), else null.</summary>
    public int? RootGrpcStatus { get; init; }
}

/// <summary>A page of trace search.</summary>
/// <param name="Items">Traces, newest matching span first.</param>
/// <param name="NextCursor">The cursor of the next page; null when the search is exhausted.</param>
/// <param name="ScanLimited">True when the page stopped early because the scan bound was reached; the cursor continues the search.</param>
public sealed record TracePage(IReadOnlyList<TraceSummary> Items, string? NextCursor, bool ScanLimited);
