using System.Globalization;
using System.Text;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>Builders for spans with readable ids: trace 7 is <c>000…07</c>.</summary>
internal static class TestSpans
{
    public static readonly DateTimeOffset T0 = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    public static string Trace(int n) => n.ToString("x32", CultureInfo.InvariantCulture);

    public static string Span(int n) => n.ToString("x16", CultureInfo.InvariantCulture);

    public static StoredSpan Exchange(
        int trace,
        int span,
        int? parent = null,
        string service = "frontend",
        string? session = null,
        DateTimeOffset? start = null,
        double durationMs = 10,
        int? status = 200,
        string method = "GET",
        string path = "/api/items",
        int kind = 2,
        string? authority = null,
        string? responseText = null,
        bool isError = false)
    {
        var begin = start ?? T0;
        string direction = kind == 3 ? "outbound" : "inbound";
        return new StoredSpan
        {
            TraceId = Trace(trace),
            SpanId = Span(span),
            ParentSpanId = parent is { } p ? Span(p) : null,
            Name = method + " " + path,
            Kind = kind,
            ServiceName = service,
            StartTime = begin,
            EndTime = begin + TimeSpan.FromMilliseconds(durationMs),
            IsError = isError || status >= 500,
            IsExchange = true,
            SessionId = session,
            Direction = direction,
            Method = method,
            Scheme = "http",
            Authority = authority ?? service + ":8080",
            Path = path,
            Route = RouteTemplate.FromPath(path),
            StatusCode = status,
            RequestHeadersJson = """[["accept","application/json"]]""",
            ResponseHeadersJson = """[["content-type","application/json"]]""",
            ResponseBody = responseText is null ? default : Encoding.UTF8.GetBytes(responseText),
        };
    }
}
