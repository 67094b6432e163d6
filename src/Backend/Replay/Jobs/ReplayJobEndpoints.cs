using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Replay.Jobs;

/// <summary>
/// Replay jobs over HTTP: <c>POST /api/replays</c> (admin scope) records a job that a backend's
/// worker runs; <c>GET /api/replays</c> and <c>GET /api/replays/{id}</c> (read scope) show progress
/// and, once done, the report — from any backend sharing the store.
/// </summary>
public static class ReplayJobEndpoints
{
    /// <summary>The most jobs a list returns.</summary>
    public const int ListLimit = 100;

    /// <summary>Maps the routes (they answer 503 when the store keeps no replay jobs).</summary>
    public static IEndpointRouteBuilder MapReplayJobsApi(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/replays").WithTags("replays");

        // Delegates (not RequestDelegates), so the IResult each returns is written and the routes are described.
        Delegate start = StartAsync, list = ListAsync;
        api.MapPost("", start)
            .RequireScope(KeyScope.Admin)
            .Accepts<ReplayJobRequest>("application/json")
            .Produces<ReplayJobDto>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .WithSummary("Starts replaying a recorded session against a target URL, as a job (body: sessionId, target, service?, ignore?).");
        api.MapGet("", list).RequireScope(KeyScope.Read).Produces<ReplayJobListDto>().WithSummary("The tenant's most recent replay jobs, newest first.");
        api.MapGet("/{id:long}", GetAsync).RequireScope(KeyScope.Read).Produces<ReplayJobDto>().ProducesProblem(StatusCodes.Status404NotFound)
            .WithSummary("One replay job: status, progress and, once done, the report.");
        return endpoints;
    }

    /// <summary>A job as the API shows it.</summary>
    public static ReplayJobDto ToDto(ReplayJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        JsonElement? report = null;
        if (job.ReportJson is not null)
        {
            using var document = JsonDocument.Parse(job.ReportJson);
            report = document.RootElement.Clone();
        }

        return new ReplayJobDto(
            job.Id, job.SessionId, job.Service, job.Target, job.IgnoreRules, job.Status.ToString().ToLowerInvariant(), job.Total, job.Completed,
            job.Passed, job.Regressions, job.Errors, job.Error, job.CreatedAt, job.StartedAt, job.FinishedAt, report);
    }

    private static IResult Off() =>
        Results.Problem(statusCode: 503, title: "Service Unavailable", detail: "this backend's store keeps no replay jobs");

    private static async Task<IResult> StartAsync(HttpContext context)
    {
        var tenant = TenantContext.Of(context).TenantId;

        if (context.RequestServices.GetService(typeof(ReplayJobs)) is not ReplayJobs jobs)
        {
            return Off();
        }

        ReplayJobRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync(context.Request.Body, ReplayJobJsonContext.Default.ReplayJobRequest, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            return Results.Problem(statusCode: 400, title: "Invalid request", detail: "the body is not a replay job request (sessionId, target, service?, ignore?): " + ex.Message);
        }

        if (request is null)
        {
            return Results.Problem(statusCode: 400, title: "Invalid request", detail: "the body is empty");
        }

        var (job, problems) = await jobs.StartAsync(tenant, request.SessionId, request.Target, request.Service, request.Ignore, context.RequestAborted).ConfigureAwait(false);
        if (job is null)
        {
            return Results.Problem(statusCode: 400, title: "Invalid request", detail: string.Join("; ", problems));
        }

        context.Response.Headers.Location = "/api/replays/" + job.Id.ToString(CultureInfo.InvariantCulture);
        return Results.Json(ToDto(job), ReplayJobJsonContext.Default.ReplayJobDto, statusCode: 202);
    }

    private static async Task<IResult> ListAsync(HttpContext context)
    {
        var tenant = TenantContext.Of(context).TenantId;

        if (context.RequestServices.GetService(typeof(IReplayJobStore)) is not IReplayJobStore store)
        {
            return Off();
        }

        var list = await store.ListReplayJobsAsync(tenant, ListLimit, context.RequestAborted).ConfigureAwait(false);
        return Results.Json(new ReplayJobListDto([.. list.Select(ToDto)]), ReplayJobJsonContext.Default.ReplayJobListDto);
    }

    private static async Task<IResult> GetAsync(long id, HttpContext context)
    {
        var tenant = TenantContext.Of(context).TenantId;

        if (context.RequestServices.GetService(typeof(IReplayJobStore)) is not IReplayJobStore store)
        {
            return Off();
        }

        var job = await store.GetReplayJobAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        return job is null
            ? Results.Problem(statusCode: 404, title: "Not found", detail: "replay job " + id.ToString(CultureInfo.InvariantCulture) + " not found")
            : Results.Json(ToDto(job), ReplayJobJsonContext.Default.ReplayJobDto);
    }
}

/// <summary>The body of <c>POST /api/replays</c>.</summary>
/// <param name="SessionId">The recorded session to replay.</param>
/// <param name="Target">Base URL the requests are sent to.</param>
/// <param name="Service">The service whose inbound requests are replayed; default the session's entry service.</param>
/// <param name="Ignore">Body paths or field names never compared, comma-separated.</param>
public sealed record ReplayJobRequest(string? SessionId, string? Target, string? Service, string? Ignore);

/// <summary>A replay job.</summary>
public sealed record ReplayJobDto(
    long Id,
    string SessionId,
    string? Service,
    string Target,
    string? Ignore,
    string Status,
    int Total,
    int Completed,
    int Passed,
    int Regressions,
    int Errors,
    string? Error,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    JsonElement? Report);

/// <summary>Replay jobs, newest first.</summary>
/// <param name="Items">The jobs (without reports).</param>
public sealed record ReplayJobListDto(IReadOnlyList<ReplayJobDto> Items);

/// <summary>Source-generated JSON of the replay jobs API.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ReplayJobRequest))]
[JsonSerializable(typeof(ReplayJobDto))]
[JsonSerializable(typeof(ReplayJobListDto))]
public sealed partial class ReplayJobJsonContext : JsonSerializerContext;
