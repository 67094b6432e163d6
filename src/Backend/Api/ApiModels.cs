using System.Text.Json;
using System.Text.Json.Serialization;

namespace SpIstio.Backend.Api;

/// <summary>One page of sessions, newest activity first.</summary>
/// <param name="Items">The sessions.</param>
/// <param name="NextCursor">Pass as <c>cursor</c> for the next page; null on the last page.</param>
public sealed record SessionListDto(IReadOnlyList<SessionDto> Items, string? NextCursor);

/// <summary>A session in the list.</summary>
public sealed record SessionDto(
    string SessionId,
    DateTimeOffset FirstSeen,
    DateTimeOffset LastSeen,
    double DurationMs,
    int SpanCount,
    int TraceCount,
    int ErrorCount,
    IReadOnlyList<string> Services);

/// <summary>A span without bodies: list, timeline and waterfall rows.</summary>
public sealed record SpanDto(
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Name,
    int Kind,
    string ServiceName,
    DateTimeOffset StartTime,
    DateTimeOffset EndTime,
    double DurationMs,
    bool IsError,
    bool IsExchange,
    string? SessionId,
    string? Direction,
    string? Method,
    string? Authority,
    string? Path,
    int? StatusCode)
{
    /// <summary>For a gRPC call (<c>rpc.system = grpc</c>) its status code, -1 when it ended without one; null for other spans.</summary>
    public int? GrpcStatus { get; init; }

    /// <summary>The name of <see cref="GrpcStatus"/> (<c>OK</c>, <c>NOT_FOUND</c>, …); null when it is null or -1.</summary>
    public string? GrpcStatusName => GrpcStatus is { } code && code >= 0 ? Core.GrpcMessages.GrpcCallStatus.NameOf(code) : null;
}

/// <summary>A session: its traces and every span in time order.</summary>
public sealed record SessionDetailDto(string SessionId, IReadOnlyList<string> TraceIds, IReadOnlyList<SpanDto> Spans);

/// <summary>A trace as waterfall data: spans in start order with parent links and offsets from the trace start.</summary>
public sealed record TraceViewDto(
    string TraceId,
    DateTimeOffset StartTime,
    double DurationMs,
    IReadOnlyList<string> RootSpanIds,
    IReadOnlyList<WaterfallSpanDto> Spans);

/// <summary>One waterfall row, with the span's attributes and the rest of its OpenTelemetry span model.</summary>
/// <param name="Span">The span.</param>
/// <param name="OffsetMs">Milliseconds from the trace's first span start.</param>
/// <param name="Depth">Nesting depth (0 for a root or a span whose parent is not stored).</param>
public sealed record WaterfallSpanDto(SpanDto Span, double OffsetMs, int Depth)
{
    /// <summary>The span's attributes with their OTLP types (int, double with a fraction, bool, arrays, maps); null when not loaded.</summary>
    public JsonElement? Attributes { get; init; }

    /// <summary>The span model: resource, scope, status, events, links; null when not loaded.</summary>
    public SpanModelDto? Model { get; init; }
}

/// <summary>The OpenTelemetry span model beyond the HTTP fields, as the exporter sent it.</summary>
public sealed record SpanModelDto
{
    /// <summary>Resource attributes (<c>service.name</c>, <c>deployment.environment</c>, …) with their types; null when the span had none.</summary>
    public JsonElement? Resource { get; init; }

    /// <summary>The instrumentation scope, or null.</summary>
    public ScopeDto? Scope { get; init; }

    /// <summary>The span status.</summary>
    public required StatusDto Status { get; init; }

    /// <summary>Span events in the order sent.</summary>
    public required IReadOnlyList<EventDto> Events { get; init; }

    /// <summary>Links to other spans in the order sent.</summary>
    public required IReadOnlyList<LinkDto> Links { get; init; }

    /// <summary>The W3C trace state, or null.</summary>
    public string? TraceState { get; init; }

    /// <summary>The span's OTLP flags (W3C trace flags in the low byte); 0 when not sent.</summary>
    public uint Flags { get; init; }

    /// <summary>Attributes the SDK dropped.</summary>
    public uint DroppedAttributesCount { get; init; }

    /// <summary>Events the SDK dropped.</summary>
    public uint DroppedEventsCount { get; init; }

    /// <summary>Links the SDK dropped.</summary>
    public uint DroppedLinksCount { get; init; }
}

/// <summary>An instrumentation scope.</summary>
/// <param name="Name">The library name.</param>
/// <param name="Version">Its version, or null.</param>
/// <param name="Attributes">Scope attributes with their types; null when none.</param>
public sealed record ScopeDto(string Name, string? Version, JsonElement? Attributes);

/// <summary>A span status.</summary>
/// <param name="Code"><c>UNSET</c>, <c>OK</c> or <c>ERROR</c>.</param>
/// <param name="Message">The description, or null.</param>
public sealed record StatusDto(string Code, string? Message);

/// <summary>A span event.</summary>
/// <param name="Name">The event name (<c>exception</c>, …).</param>
/// <param name="Time">When it happened (100 ns precision).</param>
/// <param name="TimeUnixNano">When it happened, exactly as sent: Unix nanoseconds as a decimal string.</param>
/// <param name="Attributes">Event attributes with their types.</param>
/// <param name="DroppedAttributesCount">Attributes the SDK dropped.</param>
public sealed record EventDto(string Name, DateTimeOffset Time, string TimeUnixNano, JsonElement Attributes, uint DroppedAttributesCount);

/// <summary>A link to another span.</summary>
/// <param name="TraceId">32 hex digits.</param>
/// <param name="SpanId">16 hex digits.</param>
/// <param name="TraceState">The linked span's trace state, or null.</param>
/// <param name="Flags">The link's OTLP flags.</param>
/// <param name="Attributes">Link attributes with their types.</param>
/// <param name="DroppedAttributesCount">Attributes the SDK dropped.</param>
public sealed record LinkDto(string TraceId, string SpanId, string? TraceState, uint Flags, JsonElement Attributes, uint DroppedAttributesCount);

/// <summary>A captured body as the API shows it.</summary>
/// <param name="Encoding"><c>text</c> when <see cref="Content"/> is the body as text, <c>base64</c> when it holds the bytes in base64.</param>
/// <param name="Kind"><c>text</c> or <c>binary</c>, as the agent classified the body.</param>
/// <param name="Content">The body.</param>
/// <param name="CapturedBytes">Bytes captured.</param>
/// <param name="OriginalSize">Bytes on the wire, or -1 when unknown.</param>
/// <param name="Truncated">True when the capture is shorter than the body.</param>
/// <param name="ContentType">The content-type it was captured with.</param>
/// <param name="ContentEncoding">The content-encoding it had on the wire.</param>
/// <param name="Decoded">True when it was decoded from that content-encoding.</param>
public sealed record BodyDto(
    string Encoding,
    string Kind,
    string Content,
    int CapturedBytes,
    long OriginalSize,
    bool Truncated,
    string? ContentType,
    string? ContentEncoding,
    bool Decoded);

/// <summary>One span in full: the exchange's headers and bodies, or a generic span's attributes.</summary>
public sealed record SpanDetailDto
{
    /// <summary>The span's summary fields.</summary>
    public required SpanDto Span { get; init; }

    /// <summary>Scheme.</summary>
    public string? Scheme { get; init; }

    /// <summary>Query without '?'.</summary>
    public string? Query { get; init; }

    /// <summary>Route template.</summary>
    public string? Route { get; init; }

    /// <summary>Request headers as [name, value] pairs in order.</summary>
    public JsonElement? RequestHeaders { get; init; }

    /// <summary>Response headers as [name, value] pairs in order.</summary>
    public JsonElement? ResponseHeaders { get; init; }

    /// <summary>The request body, or null when none was captured.</summary>
    public BodyDto? RequestBody { get; init; }

    /// <summary>The response body, or null when none was captured.</summary>
    public BodyDto? ResponseBody { get; init; }

    /// <summary>Every other attribute, with its OTLP type (an int is a JSON integer, a double always has a fraction or exponent, arrays and maps are JSON arrays and objects).</summary>
    public JsonElement Attributes { get; init; }

    /// <summary>The rest of the span model: resource, scope, status, events, links.</summary>
    public SpanModelDto? Model { get; init; }

    /// <summary>
    /// For a gRPC call (<c>rpc.system = grpc</c>): service, method, status name and message, decoded
    /// status details and both message streams decoded in the backend (JSON with field names when a
    /// configured descriptor set knows the method, else schema-less, else bytes). Null for other spans.
    /// </summary>
    public GrpcCalls.GrpcCallDto? Grpc { get; init; }
}

/// <summary>The service graph over a time range.</summary>
/// <param name="From">The range's start.</param>
/// <param name="To">The range's end.</param>
/// <param name="Services">Every service seen in the range, with or without edges, sorted.</param>
/// <param name="Edges">Calls between services.</param>
public sealed record ServiceGraphDto(DateTimeOffset From, DateTimeOffset To, IReadOnlyList<string> Services, IReadOnlyList<ServiceEdgeDto> Edges)
{
    /// <summary>Every service with its own health (what it served), including services no one calls and that call no one.</summary>
    public IReadOnlyList<ServiceNodeDto> Nodes { get; init; } = [];

    /// <summary>The first span start in the range: rates are computed over the traffic, not the whole range.</summary>
    public DateTimeOffset? TrafficFrom { get; init; }

    /// <summary>The last span start in the range.</summary>
    public DateTimeOffset? TrafficTo { get; init; }
}

/// <summary>A service on the map.</summary>
/// <param name="Name">The service (or an uncaptured host it called).</param>
/// <param name="Requests">Requests it served in the range.</param>
/// <param name="Errors">Served requests that are errors (status ≥ 500 or no response).</param>
/// <param name="ClientErrors">Served requests answered with a 4xx.</param>
/// <param name="ErrorRate">Errors over requests.</param>
/// <param name="Health"><c>healthy</c> (error rate under 1 %), <c>degraded</c> (1–5 %), <c>failing</c> (5 % or more) or <c>unknown</c> (served nothing captured).</param>
public sealed record ServiceNodeDto(string Name, long Requests, long Errors, long ClientErrors, double ErrorRate, string Health);

/// <summary>Calls from one service to another: errors are server-side failures (status ≥ 500 or no response), client errors the 4xx answers.</summary>
public sealed record ServiceEdgeDto(string Caller, string Callee, long Calls, long Errors, double ErrorRate, double P50Ms, double P95Ms, double P99Ms)
{
    /// <summary>Calls answered with a 4xx.</summary>
    public long ClientErrors { get; init; }

    /// <summary>Client errors over calls.</summary>
    public double ClientErrorRate { get; init; }

    /// <summary>Calls per minute over the time the range's traffic actually spans (<see cref="ServiceGraphDto.TrafficFrom"/> to <see cref="ServiceGraphDto.TrafficTo"/>, at least a minute).</summary>
    public double CallsPerMinute { get; init; }
}

/// <summary>Endpoint statistics over a time range.</summary>
public sealed record EndpointListDto(DateTimeOffset From, DateTimeOffset To, IReadOnlyList<EndpointDto> Items);

/// <summary>Statistics of one method + route of one service: errors are server-side failures (status ≥ 500 or no response), client errors the 4xx answers.</summary>
public sealed record EndpointDto(string Service, string Method, string Route, long Count, long Errors, double ErrorRate, double P50Ms, double P95Ms, double P99Ms)
{
    /// <summary>Requests answered with a 4xx.</summary>
    public long ClientErrors { get; init; }

    /// <summary>Client errors over requests.</summary>
    public double ClientErrorRate { get; init; }
}

/// <summary>One page of trace search, newest matching span first.</summary>
/// <param name="Items">The traces.</param>
/// <param name="NextCursor">Pass as <c>cursor</c> for the next page; null when the search is exhausted.</param>
/// <param name="ScanLimited">True when the page ended early because one request examines a bounded number of spans; <paramref name="NextCursor"/> continues it.</param>
public sealed record TraceListDto(IReadOnlyList<TraceSummaryDto> Items, string? NextCursor, bool ScanLimited);

/// <summary>A trace in search results.</summary>
/// <param name="TraceId">32 hex digits.</param>
/// <param name="StartTime">Its first span's start.</param>
/// <param name="DurationMs">From its first span's start to its last span's end.</param>
/// <param name="RootService">The root span's service.</param>
/// <param name="RootName">The root span's name (its operation).</param>
/// <param name="RootMethod">The root span's HTTP method, or null.</param>
/// <param name="RootRoute">The root span's route template, or null.</param>
/// <param name="RootStatusCode">The root span's HTTP status, or null.</param>
/// <param name="SpanCount">Spans stored for it.</param>
/// <param name="ErrorCount">Spans that are errors (server side: status ≥ 500 or a transport failure).</param>
/// <param name="ClientErrorCount">Spans answered with a 4xx.</param>
/// <param name="Services">Services it touches.</param>
/// <param name="SessionId">The session it belongs to, or null.</param>
public sealed record TraceSummaryDto(
    string TraceId,
    DateTimeOffset StartTime,
    double DurationMs,
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

    /// <summary>The name of <see cref="RootGrpcStatus"/>; null when it is null or -1.</summary>
    public string? RootGrpcStatusName => RootGrpcStatus is { } code && code >= 0 ? Core.GrpcMessages.GrpcCallStatus.NameOf(code) : null;
}

/// <summary>The source-generated JSON metadata of every API type (camelCase, web defaults).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(SessionListDto))]
[JsonSerializable(typeof(SessionDetailDto))]
[JsonSerializable(typeof(TraceViewDto))]
[JsonSerializable(typeof(TraceListDto))]
[JsonSerializable(typeof(SpanDetailDto))]
[JsonSerializable(typeof(GrpcCalls.GrpcCallDto))]
[JsonSerializable(typeof(ServiceGraphDto))]
[JsonSerializable(typeof(EndpointListDto))]
public sealed partial class BackendJsonContext : JsonSerializerContext;
