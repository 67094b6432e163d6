using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SpIstio.Core.Metrics;

namespace SpIstio.Agent.Admin;

/// <summary>
/// The admin port's routes, the same for every agent mode: <c>/metrics</c> (Prometheus text),
/// <c>/healthz</c> (the process is alive), <c>/readyz</c> (it is serving traffic) and
/// <c>/status</c> (JSON: backend, export, cache, configuration; see <see cref="AgentStatus"/>).
/// </summary>
public static class AdminEndpoints
{
    /// <summary>Maps the admin routes.</summary>
    /// <param name="endpoints">The admin application.</param>
    /// <param name="registry">The metrics rendered at <c>/metrics</c>.</param>
    /// <param name="readiness">Tells whether the agent serves traffic; <c>/readyz</c> answers 503 while it says no.</param>
    /// <param name="status">The facts <c>/status</c> reports as JSON; no <c>/status</c> when null.</param>
    public static IEndpointRouteBuilder MapAgentAdmin(this IEndpointRouteBuilder endpoints, MetricRegistry registry, AgentReadiness readiness, AgentStatus? status = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(readiness);

        // Plain request delegates, not minimal-API handlers: those go through RequestDelegateFactory,
        // which loads System.Linq.Expressions, the Results and validation assemblies and compiles
        // expression trees, megabytes of idle RSS in a sidecar for four fixed answers (issue 13).
        endpoints.MapGet("/metrics", async context =>
        {
            context.Response.ContentType = MetricRegistry.ContentType;
            await context.Response.WriteAsync(registry.Render(), context.RequestAborted).ConfigureAwait(false);
        });
        endpoints.MapGet("/healthz", static context => WriteTextAsync(context, StatusCodes.Status200OK, "ok\n"));
        if (status is not null)
        {
            endpoints.MapGet("/status", context =>
            {
                var json = status.ToJson();
                context.Response.ContentType = "application/json";
                context.Response.ContentLength = json.Length;
                return context.Response.Body.WriteAsync(json, context.RequestAborted).AsTask();
            });
        }

        endpoints.MapGet("/readyz", context => readiness.IsReady
            ? WriteTextAsync(context, StatusCodes.Status200OK, "ready\n")
            : WriteTextAsync(context, StatusCodes.Status503ServiceUnavailable, $"not ready: {readiness.Reason}\n"));
        return endpoints;
    }

    // What Results.Text wrote: the status, text/plain in UTF-8, the text.
    private static Task WriteTextAsync(HttpContext context, int statusCode, string text)
    {
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(text, context.RequestAborted);
    }
}

/// <summary>
/// Whether the agent is ready for traffic. Starts not ready; the host marks it ready once its
/// listeners are bound, and not ready again while it drains on shutdown.
/// </summary>
public sealed class AgentReadiness
{
    private volatile string? _notReadyReason = "starting";

    /// <summary>True once <see cref="MarkReady"/> was called and until <see cref="MarkNotReady"/>.</summary>
    public bool IsReady => _notReadyReason is null;

    /// <summary>Why the agent is not ready, or null.</summary>
    public string? Reason => _notReadyReason;

    /// <summary>Marks the agent ready.</summary>
    public void MarkReady() => _notReadyReason = null;

    /// <summary>Marks the agent not ready, with a reason shown by <c>/readyz</c>.</summary>
    public void MarkNotReady(string reason) => _notReadyReason = reason;
}
