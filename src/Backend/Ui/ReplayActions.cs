using System.Globalization;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Replay.Jobs;

namespace SpIstio.Backend.Ui;

/// <summary>The session page's "Replay this session" form: records a replay job and opens its page.</summary>
internal static class ReplayActions
{
    public static void MapReplayActions(this IEndpointRouteBuilder app) =>
        app.MapPost("/ui/replays", StartAsync).RequireTraceViewSession().WithAuthRefusal(TraceViewRefusal.SignInRedirect).ExcludeFromDescription();

    /// <summary>The page of one replay job.</summary>
    public static string Page(long id) => "/replays/" + id.ToString(CultureInfo.InvariantCulture);

    private static async Task<IResult> StartAsync(HttpContext context, IAntiforgery antiforgery)
    {
        // The form names its session; read it first only to know where to send the answer back.
        var form = context.Request.HasFormContentType ? await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false) : null;
        var session = form is null ? null : UiActions.Field(form, "session");
        var back = session is null ? "/replays" : UiLinks.Session(session);
        var (tenant, refusal) = await UiActions.RequireAdminAsync(context, antiforgery, back).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        if (context.RequestServices.GetService(typeof(ReplayJobs)) is not ReplayJobs jobs)
        {
            return Results.Redirect(UiActions.WithProblem(back, UiProblem.JobsOff));
        }

        var (job, problems) = await jobs.StartAsync(tenant, session, UiActions.Field(form!, "target"), UiActions.Field(form!, "service"), UiActions.Field(form!, "ignore"), context.RequestAborted).ConfigureAwait(false);
        if (job is null)
        {
            var code = problems.Any(p => p.StartsWith("target", StringComparison.Ordinal)) ? UiProblem.Target
                : problems.Any(p => p.StartsWith("ignore", StringComparison.Ordinal)) ? UiProblem.Ignore
                : UiProblem.Session;
            return Results.Redirect(UiActions.WithProblem(back, code));
        }

        return Results.Redirect(Page(job.Id));
    }
}
