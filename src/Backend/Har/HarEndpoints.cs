using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Routing;
using SpIstio.Backend.Api;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Har;

/// <summary>HAR 1.2 export of a session or a trace (read scope): every captured exchange, in start order, with bodies.</summary>
public static class HarEndpoints
{
    /// <summary>Maps <c>GET /api/sessions/{id}/har</c> and <c>GET /api/traces/{traceId}/har</c>.</summary>
    public static IEndpointRouteBuilder MapHarApi(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var har = endpoints.MapGroup("/api").WithTags("har").RequireScope(KeyScope.Read);
        har.MapGet("/sessions/{id}/har", SessionAsync).WithSummary("A session as a HAR 1.2 file.")
            .WithResponse(StatusCodes.Status200OK, "A HAR 1.2 document (http://www.softwareishard.com/blog/har-12-spec/).", null, "application/json")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        har.MapGet("/traces/{traceId}/har", TraceAsync).WithSummary("A trace as a HAR 1.2 file.")
            .WithResponse(StatusCodes.Status200OK, "A HAR 1.2 document (http://www.softwareishard.com/blog/har-12-spec/).", null, "application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return endpoints;
    }

    private static async Task<IResult> SessionAsync(string id, HttpContext context, ISpanQueryStore store, ReadBudget budget)
    {
        var tenant = TenantContext.Of(context).TenantId;

        id = QueryParameters.DecodeSlashes(id);
        var spans = await store.GetSessionAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        if (spans is null || spans.Count == 0)
        {
            return Results.Problem(statusCode: 404, title: "Not found", detail: "session '" + id + "' not found");
        }

        return await WriteAsync(context, store, budget, tenant, spans, "session-" + id, "Session " + id).ConfigureAwait(false);
    }

    private static async Task<IResult> TraceAsync(string traceId, HttpContext context, ISpanQueryStore store, ReadBudget budget)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var spans = await store.GetTraceAsync(tenant, traceId.ToLowerInvariant(), context.RequestAborted).ConfigureAwait(false);
        if (spans.Count == 0)
        {
            return Results.Problem(statusCode: 404, title: "Not found", detail: "trace '" + traceId + "' not found");
        }

        return await WriteAsync(context, store, budget, tenant, spans, "trace-" + traceId, "Trace " + traceId).ConfigureAwait(false);
    }

    private static async Task<IResult> WriteAsync(HttpContext context, ISpanQueryStore store, ReadBudget budget, long tenant, IReadOnlyList<SpanSummary> spans, string pageId, string title)
    {
        // Every exchange is held until the document is written: reserve them all first.
        using var lease = await budget.AcquireForSpansAsync(
            store, tenant, spans.Where(s => s.IsExchange).Select(s => (s.TraceId, s.SpanId)), HarBuilder.ReadFactor, context.RequestAborted).ConfigureAwait(false);
        if (lease is null)
        {
            return ReadBudget.Busy(context);
        }

        var full = new List<StoredSpan>(spans.Count);
        foreach (var summary in spans)
        {
            if (!summary.IsExchange)
            {
                continue;
            }

            var span = await store.GetSpanAsync(tenant, summary.TraceId, summary.SpanId, context.RequestAborted).ConfigureAwait(false);
            if (span is not null)
            {
                full.Add(span);
            }
        }

        var document = HarBuilder.Build(full, title, context.RequestServices.GetRequiredService<GrpcCalls.GrpcCallDecoder>());
        // Written inside the lease.
        await HarBuilder.WriteAsync(context.Response, document, SafeFileName(pageId) + ".har").ConfigureAwait(false);
        return Results.Empty;
    }

    /// <summary>A file name any id can be put in: a session id may hold '/', quotes or non-ASCII text that a header cannot.</summary>
    private static string SafeFileName(string name)
    {
        var chars = name.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (!(char.IsAsciiLetterOrDigit(chars[i]) || chars[i] is '-' or '_' or '.'))
            {
                chars[i] = '_';
            }
        }

        return new string(chars, 0, Math.Min(chars.Length, 120));
    }
}
