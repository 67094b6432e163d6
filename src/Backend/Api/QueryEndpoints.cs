using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Api;

/// <summary>
/// The query API: sessions, traces, spans, the service graph and endpoint statistics, plus the
/// original backend's <c>/api/view</c> and <c>/api/detail</c>. Every route needs a key with the
/// read scope and sees only that key's tenant.
/// </summary>
public static class QueryEndpoints
{
    /// <summary>The largest page <c>limit</c> accepts.</summary>
    public const int MaxLimit = 500;

    private static readonly TimeSpan _defaultRange = TimeSpan.FromHours(24);

    /// <summary>Maps every query route.</summary>
    public static IEndpointRouteBuilder MapQueryApi(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api").WithTags("query").RequireScope(KeyScope.Read);
        api.MapGet("/sessions", ListSessionsAsync)
            .WithSummary("Sessions, newest activity first, with cursor pagination.")
            .Produces<SessionListDto>().ProducesProblem(400).ProducesProblem(401);
        api.MapGet("/sessions/{*id}", GetSessionAsync)
            .WithSummary("A session's traces and spans in time order.")
            .Produces<SessionDetailDto>().ProducesProblem(404);
        api.MapGet("/traces", SearchTracesAsync)
            .WithSummary("Trace search: traces with a span matching every filter, newest first, with cursor pagination.")
            .Produces<TraceListDto>().ProducesProblem(400).ProducesProblem(401);
        api.MapGet("/traces/{traceId}", GetTraceAsync)
            .WithSummary("A trace's spans with parent links (waterfall data).")
            .Produces<TraceViewDto>().ProducesProblem(400).ProducesProblem(404);
        api.MapGet("/spans/{traceId}/{spanId}", GetSpanAsync)
            .WithSummary("One span in full: headers, decoded bodies, truncation flags.")
            .Produces<SpanDetailDto>().ProducesProblem(400).ProducesProblem(404);
        api.MapGet("/services", GetServicesAsync)
            .WithSummary("The service graph: caller → callee edges with calls, error rate and latency percentiles.")
            .Produces<ServiceGraphDto>().ProducesProblem(400);
        api.MapGet("/endpoints", GetEndpointsAsync)
            .WithSummary("Per service, method and route template statistics.")
            .Produces<EndpointListDto>().ProducesProblem(400);
        api.MapGet("/view", GetViewAsync)
            .WithSummary("Compatibility with the original backend: the trace view of ?traceId=.")
            .Produces<TraceViewDto>().ProducesProblem(400).ProducesProblem(404);
        api.MapGet("/detail", GetDetailAsync)
            .WithSummary("Compatibility with the original backend: one span of ?traceId=&spanId=.")
            .Produces<SpanDetailDto>().ProducesProblem(400).ProducesProblem(404);
        return endpoints;
    }

    private static async Task<IResult> ListSessionsAsync(HttpContext context, ISpanStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var q = context.Request.Query;
        if (!TryInt(q["limit"], 1, MaxLimit, 50, out var limit))
        {
            return BadParameter("limit", string.Create(CultureInfo.InvariantCulture, $"must be an integer from 1 to {MaxLimit}"));
        }

        if (!TryStatusClass(q["status"], out var statusClass))
        {
            return BadParameter("status", "must be a status class: 2xx, 3xx, 4xx or 5xx");
        }

        if (!TryTime(q["from"], out var from))
        {
            return BadParameter("from", "must be an ISO 8601 time or Unix milliseconds");
        }

        if (!TryTime(q["to"], out var to))
        {
            return BadParameter("to", "must be an ISO 8601 time or Unix milliseconds");
        }

        if (from is not null && to is not null && from > to)
        {
            return BadParameter("from", "must not be after 'to'");
        }

        var text = Optional(q["q"]);
        if (text is { Length: > 256 })
        {
            return BadParameter("q", "must be at most 256 characters");
        }

        var query = new SessionQuery
        {
            Service = Optional(q["service"]),
            StatusClass = statusClass,
            From = from,
            To = to,
            Text = text,
            Cursor = Optional(q["cursor"]),
            Limit = limit,
        };
        Page<SessionSummary> page;
        try
        {
            page = await store.ListSessionsAsync(tenant, query, context.RequestAborted).ConfigureAwait(false);
        }
        catch (ArgumentException ex) when (query.Cursor is not null)
        {
            // The store refuses a cursor it did not issue.
            return BadParameter("cursor", "is not a cursor this API returned: " + ex.Message);
        }
        catch (FormatException ex) when (query.Cursor is not null)
        {
            return BadParameter("cursor", "is not a cursor this API returned: " + ex.Message);
        }

        var items = new List<SessionDto>(page.Items.Count);
        foreach (var s in page.Items)
        {
            items.Add(new SessionDto(s.SessionId, s.FirstSeen, s.LastSeen, Ms(s.LastSeen - s.FirstSeen), s.SpanCount, s.TraceCount, s.ErrorCount, s.Services));
        }

        return Results.Json(new SessionListDto(items, page.NextCursor), BackendJsonContext.Default.SessionListDto);
    }

    /// <summary>Most <c>attr.*</c> filters one search takes.</summary>
    public const int MaxAttributeFilters = 10;

    private static async Task<IResult> SearchTracesAsync(HttpContext context, ISpanStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var (query, parameter, problem) = ParseTraceQuery(context.Request.Query);
        if (query is null)
        {
            return BadParameter(parameter!, problem!);
        }

        TracePage page;
        try
        {
            page = await store.SearchTracesAsync(tenant, query, context.RequestAborted).ConfigureAwait(false);
        }
        catch (ArgumentException ex) when (query.Cursor is not null)
        {
            return BadParameter("cursor", "is not a cursor this API returned: " + ex.Message);
        }

        return Results.Json(ToTraceList(page), BackendJsonContext.Default.TraceListDto);
    }

    /// <summary>The API form of a search page; the UI shares it.</summary>
    internal static TraceListDto ToTraceList(TracePage page)
    {
        var items = new List<TraceSummaryDto>(page.Items.Count);
        foreach (var t in page.Items)
        {
            items.Add(new TraceSummaryDto(t.TraceId, t.StartTime, Ms(t.EndTime - t.StartTime), t.RootService, t.RootName, t.RootMethod, t.RootRoute,
                t.RootStatusCode, t.SpanCount, t.ErrorCount, t.ClientErrorCount, t.Services, t.SessionId));
        }

        return new TraceListDto(items, page.NextCursor, page.ScanLimited);
    }

    /// <summary>Parses trace search parameters; the problem names the first bad one. The UI shares it.</summary>
    internal static (TraceQuery? Query, string? Parameter, string? Problem) ParseTraceQuery(IEnumerable<KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>> parameters)
    {
        var q = new QueryCollection(parameters.ToDictionary(p => p.Key, p => p.Value, StringComparer.OrdinalIgnoreCase));
        if (!TryInt(q["limit"], 1, MaxLimit, 20, out var limit))
        {
            return Invalid("limit", string.Create(CultureInfo.InvariantCulture, $"must be an integer from 1 to {MaxLimit}"));
        }

        var status = TraceStatusFilter.Any;
        int? statusClass = null;
        var statusText = Optional(q["status"]);
        if (statusText is not null)
        {
            switch (statusText.ToLowerInvariant())
            {
                case "error": status = TraceStatusFilter.Error; break;
                case "client_error" or "clienterror": status = TraceStatusFilter.ClientError; break;
                case "ok": status = TraceStatusFilter.Ok; break;
                default:
                    if (!TryStatusClass(q["status"], out statusClass))
                    {
                        return Invalid("status", "must be error, client_error, ok or a status class (2xx, 3xx, 4xx, 5xx)");
                    }

                    break;
            }
        }

        if (!TryDuration(q["minDuration"], out var minDuration))
        {
            return Invalid("minDuration", "must be a duration such as 250ms, 1.5s, 2m or a number of milliseconds");
        }

        if (!TryDuration(q["maxDuration"], out var maxDuration))
        {
            return Invalid("maxDuration", "must be a duration such as 250ms, 1.5s, 2m or a number of milliseconds");
        }

        if (minDuration is not null && maxDuration is not null && minDuration > maxDuration)
        {
            return Invalid("minDuration", "must not be more than 'maxDuration'");
        }

        if (!TryTime(q["from"], out var from))
        {
            return Invalid("from", "must be an ISO 8601 time or Unix milliseconds");
        }

        if (!TryTime(q["to"], out var to))
        {
            return Invalid("to", "must be an ISO 8601 time or Unix milliseconds");
        }

        if (from is not null && to is not null && from > to)
        {
            return Invalid("from", "must not be after 'to'");
        }

        var text = Optional(q["q"]);
        if (text is { Length: > 256 })
        {
            return Invalid("q", "must be at most 256 characters");
        }

        foreach (var name in new[] { "service", "operation", "route" })
        {
            if (Optional(q[name]) is { Length: > 512 })
            {
                return Invalid(name, "must be at most 512 characters");
            }
        }

        var attributes = new List<KeyValuePair<string, string>>();
        foreach (var (key, values) in q)
        {
            if (!key.StartsWith("attr.", StringComparison.Ordinal))
            {
                continue;
            }

            var name = key["attr.".Length..];
            if (name.Length is 0 or > 256)
            {
                return Invalid(key, "must name an attribute: attr.<key>=<value>, the key 1 to 256 characters");
            }

            foreach (var value in values)
            {
                if (value is null || value.Length > 1024)
                {
                    return Invalid(key, "must have a value of at most 1024 characters");
                }

                attributes.Add(new(name, value));
            }
        }

        if (attributes.Count > MaxAttributeFilters)
        {
            return Invalid("attr", string.Create(CultureInfo.InvariantCulture, $"takes at most {MaxAttributeFilters} attribute filters"));
        }

        var cursor = Optional(q["cursor"]);
        if (cursor is { Length: > 256 })
        {
            return Invalid("cursor", "is not a cursor this API returned");
        }

        return (new TraceQuery
        {
            Service = Optional(q["service"]),
            Operation = Optional(q["operation"]),
            Route = Optional(q["route"]),
            Status = status,
            StatusClass = statusClass,
            MinDuration = minDuration,
            MaxDuration = maxDuration,
            Text = text,
            Attributes = attributes,
            From = from,
            To = to,
            Cursor = cursor,
            Limit = limit,
        }, null, null);

        static (TraceQuery?, string?, string?) Invalid(string parameter, string problem) => (null, parameter, problem);
    }

    /// <summary>Parses <c>250ms</c>, <c>1.5s</c>, <c>2m</c>, <c>1h</c>, <c>300us</c> or a bare number of milliseconds.</summary>
    internal static bool TryDuration(Microsoft.Extensions.Primitives.StringValues value, out TimeSpan? duration)
    {
        duration = null;
        var text = Optional(value);
        if (text is null)
        {
            return true;
        }

        (string Suffix, double Ms)[] units = [("us", 0.001), ("µs", 0.001), ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];
        double scale = 1;
        foreach (var (suffix, ms) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && !(suffix == "s" && (text.EndsWith("ms", StringComparison.OrdinalIgnoreCase) || text.EndsWith("us", StringComparison.OrdinalIgnoreCase) || text.EndsWith("µs", StringComparison.Ordinal))))
            {
                text = text[..^suffix.Length];
                scale = ms;
                break;
            }
        }

        if (!double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        var total = number * scale;
        if (!double.IsFinite(total) || total > TimeSpan.FromDays(365).TotalMilliseconds)
        {
            return false;
        }

        duration = TimeSpan.FromMilliseconds(total);
        return true;
    }

    private static async Task<IResult> GetSessionAsync(string? id, HttpContext context, ISpanStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;

        // Any id ingest accepts: "a/b" arrives whole through the catch-all, "a%2Fb" needs its slash restored.
        id = Ui.UiLinks.DecodeSlashes(id ?? "");
        if (id.Length is 0 or > 256)
        {
            return BadParameter("id", "must be 1 to 256 characters");
        }

        var spans = await store.GetSessionAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        if (spans is null || spans.Count == 0)
        {
            return NotFound("session '" + id + "' not found");
        }

        var traces = new List<string>();
        var rows = new List<SpanDto>(spans.Count);
        foreach (var span in spans)
        {
            rows.Add(ToDto(span));
            if (!traces.Contains(span.TraceId))
            {
                traces.Add(span.TraceId);
            }
        }

        return Results.Json(new SessionDetailDto(id, traces, rows), BackendJsonContext.Default.SessionDetailDto);
    }

    private static async Task<IResult> GetTraceAsync(string traceId, HttpContext context, ISpanStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;
        return await TraceViewAsync(tenant, traceId, "traceId", context, store).ConfigureAwait(false);
    }

    private static async Task<IResult> GetViewAsync(HttpContext context, ISpanStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;
        return await TraceViewAsync(tenant, context.Request.Query["traceId"].ToString(), "traceId", context, store).ConfigureAwait(false);
    }

    private static async Task<IResult> GetSpanAsync(string traceId, string spanId, HttpContext context, ISpanStore store, ReadBudget budget)
    {
        var tenant = TenantContext.Of(context).TenantId;
        return await SpanDetailAsync(tenant, traceId, spanId, context, store, budget).ConfigureAwait(false);
    }

    private static async Task<IResult> GetDetailAsync(HttpContext context, ISpanStore store, ReadBudget budget)
    {
        var tenant = TenantContext.Of(context).TenantId;
        var q = context.Request.Query;
        return await SpanDetailAsync(tenant, q["traceId"].ToString(), q["spanId"].ToString(), context, store, budget).ConfigureAwait(false);
    }

    private static async Task<IResult> GetServicesAsync(HttpContext context, ISpanStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        if (!TryRange(context.Request.Query, time, out var from, out var to, out var problem))
        {
            return problem;
        }

        var graph = await ServiceGraphAsync(store, tenant, from, to, context.RequestAborted).ConfigureAwait(false);
        return Results.Json(graph, BackendJsonContext.Default.ServiceGraphDto);
    }

    /// <summary>Nodes (every service, with health), edges and rates over the traffic's own time span. The UI shares it.</summary>
    internal static async Task<ServiceGraphDto> ServiceGraphAsync(ISpanStore store, long tenant, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken)
    {
        var edges = await store.GetServiceGraphAsync(tenant, from, to, cancellationToken).ConfigureAwait(false);
        var health = await store.GetServiceHealthAsync(tenant, from, to, cancellationToken).ConfigureAwait(false);
        var nodes = new SortedDictionary<string, ServiceNodeDto>(StringComparer.Ordinal);
        DateTimeOffset? first = null, last = null;
        foreach (var h in health)
        {
            first = first is null || h.FirstSeen < first ? h.FirstSeen : first;
            last = last is null || h.LastSeen > last ? h.LastSeen : last;
            nodes[h.Service] = new ServiceNodeDto(h.Service, h.Served, h.Errors, h.ClientErrors, Rate(h.Errors, h.Served), Health(h.Errors, h.Served));
        }

        // A rate over the whole selected window understates bursts (184 calls in 2 minutes are not 0.13/min over a day).
        var minutes = first is { } f && last is { } l ? Math.Max(1, (l - f).TotalMinutes) : 1;
        var dtos = new List<ServiceEdgeDto>(edges.Count);
        foreach (var e in edges)
        {
            foreach (var name in new[] { e.Caller, e.Callee })
            {
                // A host the caller reached that no agent captured: a node without its own numbers.
                nodes.TryAdd(name, new ServiceNodeDto(name, 0, 0, 0, 0, "unknown"));
            }

            dtos.Add(new ServiceEdgeDto(e.Caller, e.Callee, e.Calls, e.Errors, Rate(e.Errors, e.Calls), e.P50Ms, e.P95Ms, e.P99Ms)
            {
                ClientErrors = e.ClientErrors,
                ClientErrorRate = Rate(e.ClientErrors, e.Calls),
                CallsPerMinute = e.Calls / minutes,
            });
        }

        return new ServiceGraphDto(from, to, [.. nodes.Keys], dtos)
        {
            Nodes = [.. nodes.Values],
            TrafficFrom = first,
            TrafficTo = last,
        };
    }

    /// <summary>A node's colour class from its error rate (the one error definition).</summary>
    internal static string Health(long errors, long requests) => requests == 0
        ? "unknown"
        : Rate(errors, requests) switch
        {
            >= 0.05 => "failing",
            >= 0.01 => "degraded",
            _ => "healthy",
        };

    private static async Task<IResult> GetEndpointsAsync(HttpContext context, ISpanStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        if (!TryRange(context.Request.Query, time, out var from, out var to, out var problem))
        {
            return problem;
        }

        var stats = await store.GetEndpointsAsync(tenant, Optional(context.Request.Query["service"]), from, to, context.RequestAborted).ConfigureAwait(false);
        var items = new List<EndpointDto>(stats.Count);
        foreach (var s in stats)
        {
            items.Add(new EndpointDto(s.Service, s.Method, s.Route, s.Count, s.Errors, Rate(s.Errors, s.Count), s.P50Ms, s.P95Ms, s.P99Ms)
            {
                ClientErrors = s.ClientErrors,
                ClientErrorRate = Rate(s.ClientErrors, s.Count),
            });
        }

        return Results.Json(new EndpointListDto(from, to, items), BackendJsonContext.Default.EndpointListDto);
    }

    private static async Task<IResult> TraceViewAsync(long tenant, string traceId, string parameter, HttpContext context, ISpanStore store)
    {
        if (!TryHexId(traceId, 32, out var id))
        {
            return BadParameter(parameter, "must be 32 hexadecimal digits");
        }

        var spans = await store.GetTraceSpansAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        if (spans.Count == 0)
        {
            return NotFound("trace '" + id + "' not found");
        }

        var summaries = new SpanSummary[spans.Count];
        var details = new Dictionary<string, StoredSpan>(spans.Count, StringComparer.Ordinal);
        for (int i = 0; i < spans.Count; i++)
        {
            var s = spans[i];
            summaries[i] = new SpanSummary(s.TraceId, s.SpanId, s.ParentSpanId, s.Name, s.Kind, s.ServiceName, s.StartTime, s.EndTime,
                s.IsError, s.IsExchange, s.SessionId, s.Direction, s.Method, s.Authority, s.Path, s.StatusCode);
            details[s.SpanId] = s;
        }

        var view = ToTraceView(id, summaries);
        var rows = new List<WaterfallSpanDto>(view.Spans.Count);
        foreach (var row in view.Spans)
        {
            var s = details[row.Span.SpanId];
            rows.Add(row with { Attributes = ParseJson(s.AttributesJson), Model = SpanModelReader.Read(s.ModelJson, s.IsError) });
        }

        return Results.Json(view with { Spans = rows }, BackendJsonContext.Default.TraceViewDto);
    }

    /// <summary>Waterfall data of a trace's spans (at least one, in start order): offsets, depths and roots. The UI shares it.</summary>
    internal static TraceViewDto ToTraceView(string id, IReadOnlyList<SpanSummary> spans)
    {
        var start = spans[0].StartTime;
        var end = spans[0].EndTime;
        var known = new Dictionary<string, SpanSummary>(StringComparer.Ordinal);
        foreach (var s in spans)
        {
            known[s.SpanId] = s;
            start = s.StartTime < start ? s.StartTime : start;
            end = s.EndTime > end ? s.EndTime : end;
        }

        var roots = new List<string>();
        var rows = new List<WaterfallSpanDto>(spans.Count);
        foreach (var s in spans)
        {
            var depth = 0;
            var parent = s.ParentSpanId;
            // Bounded walk: a malicious exporter could send a parent cycle.
            while (parent is not null && depth < spans.Count && known.TryGetValue(parent, out var p))
            {
                depth++;
                parent = p.ParentSpanId;
            }

            if (s.ParentSpanId is null || !known.ContainsKey(s.ParentSpanId))
            {
                roots.Add(s.SpanId);
            }

            rows.Add(new WaterfallSpanDto(ToDto(s), Ms(s.StartTime - start), depth));
        }

        return new TraceViewDto(id, start, Ms(end - start), roots, rows);
    }

    private static async Task<IResult> SpanDetailAsync(long tenant, string traceId, string spanId, HttpContext context, ISpanStore store, ReadBudget budget)
    {
        if (!TryHexId(traceId, 32, out var tid))
        {
            return BadParameter("traceId", "must be 32 hexadecimal digits");
        }

        if (!TryHexId(spanId, 16, out var sid))
        {
            return BadParameter("spanId", "must be 16 hexadecimal digits");
        }

        var size = await store.GetSpanSizeAsync(tenant, tid, sid, context.RequestAborted).ConfigureAwait(false);
        if (size is null)
        {
            return NotFound("span '" + sid + "' of trace '" + tid + "' not found");
        }

        using var lease = await budget.AcquireAsync(size.Value, context.RequestAborted).ConfigureAwait(false);
        if (lease is null)
        {
            return Busy(context);
        }

        var span = await store.GetSpanAsync(tenant, tid, sid, context.RequestAborted).ConfigureAwait(false);
        if (span is null)
        {
            return NotFound("span '" + sid + "' of trace '" + tid + "' not found");
        }

        // Written here, inside the lease: the answer is streamed before the budget is returned.
        await SpanDetailWriter.WriteAsync(context, span).ConfigureAwait(false);
        return Results.Empty;
    }

    /// <summary>The answer to a large read refused by the read budget: 503 + Retry-After.</summary>
    internal static IResult Busy(HttpContext context)
    {
        context.Response.Headers.RetryAfter = ReadBudget.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return Results.Problem(statusCode: 503, title: "Service Unavailable", detail: "too many large span reads are in flight; retry later");
    }

    /// <summary>The full view of a stored span: body metadata moves from the attributes into the bodies.</summary>
    internal static SpanDetailDto ToDetail(StoredSpan span)
    {
        var attributes = JsonNode.Parse(span.AttributesJson) as JsonObject ?? [];
        var requestBody = ToBody(span.RequestBody, attributes, OtlpAttributes.RequestBodyMetaPrefix);
        var responseBody = ToBody(span.ResponseBody, attributes, OtlpAttributes.ResponseBodyMetaPrefix);
        var summary = new SpanDto(
            span.TraceId, span.SpanId, span.ParentSpanId, span.Name, span.Kind, span.ServiceName, span.StartTime, span.EndTime,
            Ms(span.Duration), span.IsError, span.IsExchange, span.SessionId, span.Direction, span.Method, span.Authority, span.Path, span.StatusCode);
        return new SpanDetailDto
        {
            Span = summary,
            Scheme = span.Scheme,
            Query = span.Query,
            Route = span.Route,
            RequestHeaders = ParseJson(span.RequestHeadersJson),
            ResponseHeaders = ParseJson(span.ResponseHeadersJson),
            RequestBody = requestBody,
            ResponseBody = responseBody,
            Attributes = ParseJson(attributes.ToJsonString())!.Value,
            Model = SpanModelReader.Read(span.ModelJson, span.IsError),
        };
    }

    private static BodyDto? ToBody(ReadOnlyMemory<byte> content, JsonObject attributes, string prefix)
    {
        var kind = Take(attributes, prefix + OtlpAttributes.BodyKindSuffix)?.GetValue<string>();
        var size = Take(attributes, prefix + OtlpAttributes.BodySizeSuffix);
        var truncated = Take(attributes, prefix + OtlpAttributes.BodyTruncatedSuffix);
        var contentType = Take(attributes, prefix + OtlpAttributes.BodyContentTypeSuffix)?.GetValue<string>();
        var contentEncoding = Take(attributes, prefix + OtlpAttributes.BodyContentEncodingSuffix)?.GetValue<string>();
        var decoded = Take(attributes, prefix + OtlpAttributes.BodyDecodedSuffix);
        if (content.IsEmpty && kind is null)
        {
            return null;
        }

        var bytes = content.Span;
        var isText = !string.Equals(kind, "binary", StringComparison.Ordinal);
        var asText = isText && Utf8.IsValid(bytes);
        return new BodyDto(
            asText ? "text" : "base64",
            isText ? "text" : "binary",
            asText ? Encoding.UTF8.GetString(bytes) : Convert.ToBase64String(bytes),
            bytes.Length,
            size is null ? bytes.Length : size.GetValue<long>(),
            truncated is not null && truncated.GetValue<bool>(),
            contentType,
            contentEncoding,
            decoded is not null && decoded.GetValue<bool>());
    }

    private static JsonNode? Take(JsonObject attributes, string key)
    {
        if (attributes.TryGetPropertyValue(key, out var node))
        {
            attributes.Remove(key);
            return node;
        }

        return null;
    }

    private static JsonElement? ParseJson(string? json)
    {
        if (json is null)
        {
            return null;
        }

        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    internal static SpanDto ToDto(StoredSpan s) => new(
        s.TraceId, s.SpanId, s.ParentSpanId, s.Name, s.Kind, s.ServiceName, s.StartTime, s.EndTime, Ms(s.Duration),
        s.IsError, s.IsExchange, s.SessionId, s.Direction, s.Method, s.Authority, s.Path, s.StatusCode);

    internal static SpanDto ToDto(SpanSummary s) => new(
        s.TraceId, s.SpanId, s.ParentSpanId, s.Name, s.Kind, s.ServiceName, s.StartTime, s.EndTime, Ms(s.EndTime - s.StartTime),
        s.IsError, s.IsExchange, s.SessionId, s.Direction, s.Method, s.Authority, s.Path, s.StatusCode);


    private static IResult BadParameter(string name, string problem) =>
        Results.Problem(
            statusCode: 400,
            title: "Invalid query parameter",
            detail: "'" + name + "' " + problem,
            extensions: new Dictionary<string, object?>(StringComparer.Ordinal) { ["parameter"] = name });

    private static IResult NotFound(string detail) => Results.Problem(statusCode: 404, title: "Not found", detail: detail);

    private static bool TryRange(IQueryCollection q, TimeProvider time, out DateTimeOffset from, out DateTimeOffset to, out IResult problem)
    {
        from = to = default;
        problem = Results.Empty;
        if (!TryTime(q["from"], out var f))
        {
            problem = BadParameter("from", "must be an ISO 8601 time or Unix milliseconds");
            return false;
        }

        if (!TryTime(q["to"], out var t))
        {
            problem = BadParameter("to", "must be an ISO 8601 time or Unix milliseconds");
            return false;
        }

        to = t ?? time.GetUtcNow();
        from = f ?? to - _defaultRange;
        if (from > to)
        {
            problem = BadParameter("from", "must not be after 'to'");
            return false;
        }

        return true;
    }

    private static string? Optional(Microsoft.Extensions.Primitives.StringValues value)
    {
        var text = value.ToString();
        return string.IsNullOrWhiteSpace(text) ? null : text.Trim();
    }

    private static bool TryInt(Microsoft.Extensions.Primitives.StringValues value, int min, int max, int fallback, out int result)
    {
        var text = Optional(value);
        if (text is null)
        {
            result = fallback;
            return true;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out result) && result >= min && result <= max;
    }

    internal static bool TryStatusClass(Microsoft.Extensions.Primitives.StringValues value, out int? statusClass)
    {
        statusClass = null;
        var text = Optional(value);
        if (text is null)
        {
            return true;
        }

        if (text.Length == 3 && text.EndsWith("xx", StringComparison.OrdinalIgnoreCase))
        {
            text = text[..1];
        }

        if (text.Length == 1 && text[0] is >= '1' and <= '5')
        {
            statusClass = text[0] - '0';
            return true;
        }

        return false;
    }

    internal static bool TryTime(Microsoft.Extensions.Primitives.StringValues value, out DateTimeOffset? time)
    {
        time = null;
        var text = Optional(value);
        if (text is null)
        {
            return true;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
        {
            if (ms > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
            {
                return false;
            }

            time = DateTimeOffset.FromUnixTimeMilliseconds(ms);
            return true;
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
        {
            time = parsed;
            return true;
        }

        return false;
    }

    internal static bool TryHexId(string? text, int length, out string id)
    {
        id = "";
        if (text is null || text.Length != length)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        id = text.ToLowerInvariant();
        return true;
    }

    private static double Ms(TimeSpan span) => span.TotalMilliseconds;

    private static double Rate(long errors, long calls) => calls == 0 ? 0 : (double)errors / calls;
}
