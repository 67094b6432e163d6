using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.OpenApi;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;
using static SpIstio.Backend.Api.QueryParameters;
using static SpIstio.Backend.Api.SpanViews;

namespace SpIstio.Backend.Api;

/// <summary>
/// The query API: sessions, traces, spans, the service graph and endpoint statistics, plus the
/// original backend's <c>/api/view</c> and <c>/api/detail</c>. Every route needs a key with the
/// read scope (deleting a session: admin) and sees only that key's tenant.
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
            .WithQueryParameters(
            [
                new QueryParameter("limit", "Sessions per page, 1 to " + MaxLimit.ToString(CultureInfo.InvariantCulture) + " (default 50).", JsonSchemaType.Integer),
                new QueryParameter("status", "Only sessions with a span of this status class: 2xx, 3xx, 4xx or 5xx."),
                new QueryParameter("service", "Only sessions with a span of this service."),
                new QueryParameter("q", "Only sessions with a span whose URL or body contains these words (at most 256 characters)."),
                .. OpenApiDeclarations.RangeParameters,
                new QueryParameter("cursor", "The nextCursor of the previous page."),
            ])
            .Produces<SessionListDto>().ProducesProblem(400).ProducesProblem(401).ProducesProblem(403);
        api.MapGet("/sessions/{*id}", GetSessionAsync)
            .WithSummary("A session's traces and spans in time order.")
            .Produces<SessionDetailDto>().ProducesProblem(404);
        api.MapDelete("/sessions/{*id}", DeleteSessionAsync)
            .RequireScope(KeyScope.Admin)
            .WithSummary("Deletes a session's data (every span of the tenant with this session id, its roll-up and search entries); needs the admin scope.")
            .Produces(204).ProducesProblem(400).ProducesProblem(401).ProducesProblem(403).ProducesProblem(404);
        api.MapGet("/traces", SearchTracesAsync)
            .WithSummary("Trace search: traces with a span matching every filter, newest first, with cursor pagination.")
            .WithDescription("Besides the parameters below, up to " + MaxAttributeFilters.ToString(CultureInfo.InvariantCulture) + " attribute filters attr.<name>=<value> (e.g. attr.http.route=/api/items/{id}) select spans by attribute.")
            .WithQueryParameters(
            [
                new QueryParameter("limit", "Traces per page, 1 to " + MaxLimit.ToString(CultureInfo.InvariantCulture) + " (default 20).", JsonSchemaType.Integer),
                new QueryParameter("service", "Only spans of this service."),
                new QueryParameter("operation", "Only spans of this name (e.g. GET /api/items)."),
                new QueryParameter("route", "Only spans of this route template."),
                new QueryParameter("status", "error, client_error, ok, or a status class 2xx, 3xx, 4xx, 5xx."),
                new QueryParameter("minDuration", "Only spans at least this long: 250ms, 1.5s, 2m or milliseconds."),
                new QueryParameter("maxDuration", "Only spans at most this long: 250ms, 1.5s, 2m or milliseconds."),
                new QueryParameter("q", "Only spans whose URL or body contains these words (at most 256 characters)."),
                .. OpenApiDeclarations.RangeParameters,
                new QueryParameter("cursor", "The nextCursor of the previous page."),
            ])
            .Produces<TraceListDto>().ProducesProblem(400).ProducesProblem(401).ProducesProblem(403);
        api.MapGet("/traces/{traceId}", GetTraceAsync)
            .WithSummary("A trace's spans with parent links (waterfall data).")
            .Produces<TraceViewDto>().ProducesProblem(400).ProducesProblem(404);
        api.MapGet("/spans/{traceId}/{spanId}", GetSpanAsync)
            .WithSummary("One span in full: headers, decoded bodies, truncation flags.")
            .Produces<SpanDetailDto>().ProducesProblem(400).ProducesProblem(404);
        api.MapGet("/services", GetServicesAsync)
            .WithSummary("The service graph: caller → callee edges with calls, error rate and latency percentiles.")
            .WithQueryParameters(OpenApiDeclarations.RangeParameters)
            .Produces<ServiceGraphDto>().ProducesProblem(400);
        api.MapGet("/endpoints", GetEndpointsAsync)
            .WithSummary("Per service, method and route template statistics.")
            .WithQueryParameters([new QueryParameter("service", "Only this service (default: all)."), .. OpenApiDeclarations.RangeParameters])
            .Produces<EndpointListDto>().ProducesProblem(400);
        api.MapGet("/view", GetViewAsync)
            .WithSummary("Compatibility with the original backend: the trace view of ?traceId=.")
            .WithQueryParameters(new QueryParameter("traceId", "The trace: 32 hex digits.", Required: true))
            .Produces<TraceViewDto>().ProducesProblem(400).ProducesProblem(404);
        api.MapGet("/detail", GetDetailAsync)
            .WithSummary("Compatibility with the original backend: one span of ?traceId=&spanId=.")
            .WithQueryParameters(new QueryParameter("traceId", "The trace: 32 hex digits.", Required: true), new QueryParameter("spanId", "The span: 16 hex digits.", Required: true))
            .Produces<SpanDetailDto>().ProducesProblem(400).ProducesProblem(404);
        return endpoints;
    }

    private static async Task<IResult> ListSessionsAsync(HttpContext context, ISpanQueryStore store, TimeProvider time)
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
        catch (SearchTooBroadException ex)
        {
            return BadParameter("q", ex.Message);
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

    private static async Task<IResult> SearchTracesAsync(HttpContext context, ISpanQueryStore store)
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
        catch (SearchTooBroadException ex)
        {
            return BadParameter("q", ex.Message);
        }

        return Results.Json(ToTraceList(page), BackendJsonContext.Default.TraceListDto);
    }

    private static async Task<IResult> DeleteSessionAsync(string? id, HttpContext context, IRetentionStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;
        if (SessionIdOf(id) is not { } sessionId)
        {
            return BadSessionId;
        }

        // Not cancelled with the request: a client that disconnects mid-way must not leave half a session.
        long deleted = await store.DeleteSessionAsync(tenant, sessionId, CancellationToken.None).ConfigureAwait(false);
        return deleted > 0 ? Results.NoContent() : NotFound("session '" + sessionId + "' not found");
    }

    private static IResult BadSessionId => BadParameter("id", "must be 1 to 256 characters");

    /// <summary>
    /// The session id of a route, or null when it is not 1 to 256 characters. Any id ingest accepts:
    /// "a/b" arrives whole through the catch-all, "a%2Fb" needs its slash restored.
    /// </summary>
    private static string? SessionIdOf(string? route)
    {
        var id = QueryParameters.DecodeSlashes(route ?? "");
        return id.Length is 0 or > 256 ? null : id;
    }

    private static async Task<IResult> GetSessionAsync(string? id, HttpContext context, ISpanQueryStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;
        if (SessionIdOf(id) is not { } sessionId)
        {
            return BadSessionId;
        }

        id = sessionId;

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

    private static async Task<IResult> GetTraceAsync(string traceId, HttpContext context, ISpanQueryStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;
        return await TraceViewAsync(tenant, traceId, "traceId", context, store).ConfigureAwait(false);
    }

    private static async Task<IResult> GetViewAsync(HttpContext context, ISpanQueryStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;
        return await TraceViewAsync(tenant, context.Request.Query["traceId"].ToString(), "traceId", context, store).ConfigureAwait(false);
    }

    private static async Task<IResult> GetSpanAsync(string traceId, string spanId, HttpContext context, ISpanQueryStore store, ReadBudget budget)
    {
        var tenant = TenantContext.Of(context).TenantId;
        return await SpanDetailAsync(tenant, traceId, spanId, context, store, budget).ConfigureAwait(false);
    }

    private static async Task<IResult> GetDetailAsync(HttpContext context, ISpanQueryStore store, ReadBudget budget)
    {
        var tenant = TenantContext.Of(context).TenantId;
        var q = context.Request.Query;
        return await SpanDetailAsync(tenant, q["traceId"].ToString(), q["spanId"].ToString(), context, store, budget).ConfigureAwait(false);
    }

    private static async Task<IResult> GetServicesAsync(HttpContext context, ISpanQueryStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        if (!TryRange(context.Request.Query, time, out var from, out var to, out var problem))
        {
            return problem;
        }

        var graph = await ServiceGraphAsync(store, tenant, from, to, context.RequestAborted).ConfigureAwait(false);
        return Results.Json(graph, BackendJsonContext.Default.ServiceGraphDto);
    }

    private static async Task<IResult> GetEndpointsAsync(HttpContext context, ISpanQueryStore store, TimeProvider time)
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

    private static async Task<IResult> TraceViewAsync(long tenant, string traceId, string parameter, HttpContext context, ISpanQueryStore store)
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
                s.IsError, s.IsExchange, s.SessionId, s.Direction, s.Method, s.Authority, s.Path, s.StatusCode)
            {
                GrpcStatus = s.GrpcStatus,
            };
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

    private static async Task<IResult> SpanDetailAsync(long tenant, string traceId, string spanId, HttpContext context, ISpanQueryStore store, ReadBudget budget)
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
            return ReadBudget.Busy(context);
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

}
