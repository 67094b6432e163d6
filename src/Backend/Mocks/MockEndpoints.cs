using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.OpenApi;
using SpIstio.Backend.Api;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;

using static SpIstio.Backend.Mocks.MockMapping;
using static SpIstio.Backend.Mocks.MockService;
using static SpIstio.Backend.Mocks.AgentMockEndpoints;
using static SpIstio.Backend.Mocks.HarMockImport;

namespace SpIstio.Backend.Mocks;

/// <summary>
/// The mocks routes: the management API under <c>/api/mocks</c> (read scope to look, admin scope
/// to change) and the agent routes of <see cref="AgentMockEndpoints"/> (ingest scope). Handlers
/// parse and answer HTTP; mapping is <see cref="MockMapping"/>, making mocks from spans
/// <see cref="MockService"/>, HAR import <see cref="HarMockImport"/>.
/// </summary>
public static class MockEndpoints
{
    /// <summary>Maps every mock route.</summary>
    public static IEndpointRouteBuilder MapMocksApi(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/mocks").WithTags("mocks");
        api.MapGet("", ListAsync).RequireScope(KeyScope.Read).WithSummary("The tenant's mocks, oldest first, a page at a time (?service=, ?environment=, ?live=true, ?limit=, ?after=).")
            .WithQueryParameters(
                new QueryParameter("service", "Only mocks of this service."),
                new QueryParameter("environment", "Only mocks of this environment."),
                new QueryParameter("live", "true: only mocks that answer now (not expired).", JsonSchemaType.Boolean),
                new QueryParameter("limit", "At most this many (1 to 1000, default 200).", JsonSchemaType.Integer),
                new QueryParameter("after", "The 'next' of the previous page: only mocks after it.", JsonSchemaType.Integer))
            .Produces<MockListDto>().ProducesProblem(400);
        api.MapPost("", CreateAsync).RequireScope(KeyScope.Admin).WithSummary("Creates a mock from a request matcher and a response.")
            .WithRequestBody("The mock.", true, typeof(MockDto), JsonMediaType)
            .Produces<MockDto>(201).ProducesProblem(400);
        api.MapGet("/{id:long}", GetAsync).RequireScope(KeyScope.Read).WithSummary("One mock.").Produces<MockDto>().ProducesProblem(404);
        api.MapPut("/{id:long}", UpdateAsync).RequireScope(KeyScope.Admin).WithSummary("Replaces a mock.")
            .WithRequestBody("The mock.", true, typeof(MockDto), JsonMediaType)
            .Produces<MockDto>().ProducesProblem(400).ProducesProblem(404);
        api.MapDelete("/{id:long}", DeleteAsync).RequireScope(KeyScope.Admin).WithSummary("Deletes a mock.").Produces(204).ProducesProblem(404);
        api.MapPost("/{id:long}/expire", ExpireAsync).RequireScope(KeyScope.Admin).WithSummary("Expires a mock now: it stops answering but stays listed.").Produces<MockDto>().ProducesProblem(404);
        api.MapPost("/from-span/{traceId}/{spanId}", FromSpanAsync).RequireScope(KeyScope.Admin).WithSummary("Creates a mock from a captured exchange.")
            .WithRequestBody("Optional: service, environment and expiry of the mock.", false, typeof(MockFromOptions), JsonMediaType)
            .Produces<MockDto>(201).ProducesProblem(400).ProducesProblem(404);
        api.MapPost("/har", ImportHarAsync).RequireScope(KeyScope.Admin).WithSummary("Imports every entry of a HAR 1.2 file as a mock (?service=, ?environment=, ?anyHost=true).")
            .WithQueryParameters(
                new QueryParameter("service", "The service of every mock (default: the entry's _service, else any service)."),
                new QueryParameter("environment", "The environment of every mock (default: any)."),
                new QueryParameter("anyHost", "true: the mocks answer requests to any host.", JsonSchemaType.Boolean))
            .WithRequestBody("A HAR 1.2 document (http://www.softwareishard.com/blog/har-12-spec/).", true, null, JsonMediaType)
            .Produces<MockListDto>(201).ProducesProblem(400);
        var agent = endpoints.MapGroup("").WithTags("agent").RequireScope(KeyScope.Ingest);
        agent.MapPost(LookupPath, LookupAsync).WithSummary("Agent lookup: 200 with the recorded response as an OTLP span, or 404.")
            .WithRequestBody("The request as an OTLP ExportTraceServiceRequest with one span.", true, null, ProtobufMediaType, JsonMediaType)
            .WithResponse(200, "The recorded response as an OTLP span, in the request's encoding.", null, ProtobufMediaType, JsonMediaType)
            .WithResponse(404, "No mock matches.", null);
        agent.MapGet(AgentMocksPath, AgentMocksAsync).WithSummary("A service's live mocks, with an ETag (304 on If-None-Match).")
            .WithQueryParameters(
                new QueryParameter("service", "The agent's service.", Required: true),
                new QueryParameter("environment", "The agent's environment (default: mocks of any environment)."))
            .Produces<MockListDto>().Produces(304).ProducesProblem(400);
        return endpoints;
    }


    private const string JsonMediaType = "application/json";

    internal static IResult Problem(int status, string detail) => Results.Problem(statusCode: status, title: status == 404 ? "Not found" : "Invalid request", detail: detail);

    private static async Task<IResult> ListAsync(HttpContext context, IMockStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var q = context.Request.Query;
        if (!QueryParameters.TryInt(q["limit"], 1, MockQuery.MaxLimit, MockQuery.DefaultLimit, out var limit))
        {
            return Problem(400, string.Create(CultureInfo.InvariantCulture, $"limit: must be an integer from 1 to {MockQuery.MaxLimit} (default {MockQuery.DefaultLimit}); page with 'after'"));
        }

        long? after = null;
        if (!string.IsNullOrEmpty(q["after"]))
        {
            if (!long.TryParse(q["after"], NumberStyles.None, CultureInfo.InvariantCulture, out var afterId))
            {
                return Problem(400, "after: must be a mock id (the 'next' of the previous page)");
            }

            after = afterId;
        }

        var query = new MockQuery
        {
            Service = string.IsNullOrEmpty(q["service"]) ? null : q["service"].ToString(),
            Environment = string.IsNullOrEmpty(q["environment"]) ? null : q["environment"].ToString(),
            LiveAt = string.Equals(q["live"], "true", StringComparison.OrdinalIgnoreCase) ? time.GetUtcNow() : null,
            Limit = limit,
            AfterId = after,
        };
        var page = await store.ListMocksAsync(tenant, query, context.RequestAborted).ConfigureAwait(false);
        return Results.Json(new MockListDto([.. page.Items.Select(ToDto)], page.NextCursor), MockJsonContext.Default.MockListDto);
    }

    private static async Task<IResult> GetAsync(long id, HttpContext context, IMockStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var mock = await store.GetMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        return mock is null ? Problem(404, "mock " + id.ToString(CultureInfo.InvariantCulture) + " not found") : Results.Json(ToDto(mock), MockJsonContext.Default.MockDto);
    }

    private static async Task<IResult> CreateAsync(HttpContext context, IMockStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var (dto, bad) = await ReadJsonAsync(context, MockJsonContext.Default.MockDto).ConfigureAwait(false);
        if (dto is null)
        {
            return bad!;
        }

        var record = ToRecord(dto, time.GetUtcNow(), out var problem);
        if (record is null)
        {
            return Problem(400, problem!);
        }

        var added = await store.AddMockAsync(tenant, record with { Id = 0 }, context.RequestAborted).ConfigureAwait(false);
        return Results.Json(ToDto(added), MockJsonContext.Default.MockDto, statusCode: 201);
    }

    private static async Task<IResult> UpdateAsync(long id, HttpContext context, IMockStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var existing = await store.GetMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        if (existing is null)
        {
            return Problem(404, "mock " + id.ToString(CultureInfo.InvariantCulture) + " not found");
        }

        var (dto, bad) = await ReadJsonAsync(context, MockJsonContext.Default.MockDto).ConfigureAwait(false);
        if (dto is null)
        {
            return bad!;
        }

        var record = ToRecord(dto with { Id = id }, time.GetUtcNow(), out var problem);
        if (record is null)
        {
            return Problem(400, problem!);
        }

        record = record with { CreatedAt = existing.CreatedAt };
        if (!await store.UpdateMockAsync(tenant, record, context.RequestAborted).ConfigureAwait(false))
        {
            return Problem(404, "mock " + id.ToString(CultureInfo.InvariantCulture) + " not found");
        }

        return Results.Json(ToDto(record), MockJsonContext.Default.MockDto);
    }

    private static async Task<IResult> DeleteAsync(long id, HttpContext context, IMockStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;

        return await store.DeleteMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false)
            ? Results.NoContent()
            : Problem(404, "mock " + id.ToString(CultureInfo.InvariantCulture) + " not found");
    }

    private static async Task<IResult> ExpireAsync(long id, HttpContext context, IMockStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var existing = await store.GetMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        if (existing is null)
        {
            return Problem(404, "mock " + id.ToString(CultureInfo.InvariantCulture) + " not found");
        }

        var now = time.GetUtcNow();
        var expired = existing with { ExpiresAt = now, UpdatedAt = now };
        await store.UpdateMockAsync(tenant, expired, context.RequestAborted).ConfigureAwait(false);
        return Results.Json(ToDto(expired), MockJsonContext.Default.MockDto);
    }

    private static async Task<IResult> FromSpanAsync(string traceId, string spanId, HttpContext context, ISpanQueryStore spans, IMockStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var options = new MockFromOptions();
        if (context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0)
        {
            var (read, bad) = await ReadJsonAsync(context, MockJsonContext.Default.MockFromOptions).ConfigureAwait(false);
            if (read is null)
            {
                return bad!;
            }

            options = read;
        }

        var created = await CreateFromSpanAsync(spans, store, tenant, traceId, spanId, options, time.GetUtcNow(), context.RequestAborted).ConfigureAwait(false);
        return created.Mock is { } added
            ? Results.Json(ToDto(added), MockJsonContext.Default.MockDto, statusCode: 201)
            : Problem(created.Error == MockFromSpanError.NotFound ? 404 : 400, created.Problem!);
    }

    internal static async Task<(T? Value, IResult? Problem)> ReadJsonAsync<T>(HttpContext context, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        where T : class
    {
        try
        {
            var value = await JsonSerializer.DeserializeAsync(context.Request.Body, type, context.RequestAborted).ConfigureAwait(false);
            return value is null ? (null, Problem(400, "the body is empty")) : (value, null);
        }
        catch (JsonException ex)
        {
            return (null, Problem(400, "the body is not valid JSON for this route: " + ex.Message));
        }
    }
}
