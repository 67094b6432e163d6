using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Har;
using SpIstio.Backend.Mocks;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>
/// The forms of the Mocks pages: create, edit, expire, delete and HAR import. Each needs the form's
/// token and an admin key (<see cref="UiActions.RequireAdminAsync"/>), changes the store the way the
/// mocks API does, and returns to a page that shows the outcome.
/// </summary>
internal static class MockActions
{
    /// <summary>The largest HAR file the import form takes (the API's requests are bounded by Kestrel's limit the same way).</summary>
    public const long MaxHarBytes = 32L * 1024 * 1024;

    public static void MapMockActions(this IEndpointRouteBuilder app)
    {
        app.MapPost("/ui/mocks", CreateAsync).RequireTraceViewSession().WithAuthRefusal(TraceViewRefusal.SignInRedirect).ExcludeFromDescription();
        app.MapPost("/ui/mocks/har", ImportHarAsync).RequireTraceViewSession().WithAuthRefusal(TraceViewRefusal.SignInRedirect).ExcludeFromDescription();
        app.MapPost("/ui/mocks/{id:long}", UpdateAsync).RequireTraceViewSession().WithAuthRefusal(TraceViewRefusal.SignInRedirect).ExcludeFromDescription();
        app.MapPost("/ui/mocks/{id:long}/expire", ExpireAsync).RequireTraceViewSession().WithAuthRefusal(TraceViewRefusal.SignInRedirect).ExcludeFromDescription();
        app.MapPost("/ui/mocks/{id:long}/delete", DeleteAsync).RequireTraceViewSession().WithAuthRefusal(TraceViewRefusal.SignInRedirect).ExcludeFromDescription();
    }

    /// <summary>The page of one mock.</summary>
    public static string Page(long id) => "/mocks/" + id.ToString(CultureInfo.InvariantCulture);

    /// <summary>Where the forms of one mock post (<c>/expire</c>, <c>/delete</c> below it).</summary>
    public static string Action(long id) => "/ui/mocks/" + id.ToString(CultureInfo.InvariantCulture);

    private static async Task<IResult> CreateAsync(HttpContext context, IMockStore store, IAntiforgery antiforgery, TimeProvider time)
    {
        var (tenant, refusal) = await UiActions.RequireAdminAsync(context, antiforgery, "/mocks/new").ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
        var (dto, problem) = FromForm(form, null);
        if (dto is null)
        {
            return Results.Redirect(UiActions.WithProblem("/mocks/new", problem!));
        }

        var record = MockMapping.ToRecord(dto, time.GetUtcNow(), out _);
        if (record is null)
        {
            return Results.Redirect(UiActions.WithProblem("/mocks/new", UiProblem.Path));
        }

        var added = await store.AddMockAsync(tenant, record with { Id = 0 }, context.RequestAborted).ConfigureAwait(false);
        return Results.Redirect(Page(added.Id) + "?saved=created");
    }

    private static async Task<IResult> UpdateAsync(long id, HttpContext context, IMockStore store, IAntiforgery antiforgery, TimeProvider time)
    {
        var (tenant, refusal) = await UiActions.RequireAdminAsync(context, antiforgery, Page(id)).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        var existing = await store.GetMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        if (existing is null)
        {
            return Results.Redirect(UiActions.WithProblem("/mocks", UiProblem.NotFound));
        }

        var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
        var (dto, problem) = FromForm(form, existing);
        if (dto is null)
        {
            return Results.Redirect(UiActions.WithProblem(Page(id), problem!));
        }

        var record = MockMapping.ToRecord(dto with { Id = id }, time.GetUtcNow(), out _);
        if (record is null)
        {
            return Results.Redirect(UiActions.WithProblem(Page(id), UiProblem.Path));
        }

        var updated = await store.UpdateMockAsync(tenant, record with { CreatedAt = existing.CreatedAt }, context.RequestAborted).ConfigureAwait(false);
        return Results.Redirect(updated ? Page(id) + "?saved=updated" : UiActions.WithProblem("/mocks", UiProblem.NotFound));
    }

    private static async Task<IResult> ExpireAsync(long id, HttpContext context, IMockStore store, IAntiforgery antiforgery, TimeProvider time)
    {
        var (tenant, refusal) = await UiActions.RequireAdminAsync(context, antiforgery, Page(id)).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        var existing = await store.GetMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        if (existing is null)
        {
            return Results.Redirect(UiActions.WithProblem("/mocks", UiProblem.NotFound));
        }

        var now = time.GetUtcNow();
        await store.UpdateMockAsync(tenant, existing with { ExpiresAt = now, UpdatedAt = now }, context.RequestAborted).ConfigureAwait(false);
        return Results.Redirect(Page(id) + "?saved=expired");
    }

    private static async Task<IResult> DeleteAsync(long id, HttpContext context, IMockStore store, IAntiforgery antiforgery)
    {
        var (tenant, refusal) = await UiActions.RequireAdminAsync(context, antiforgery, Page(id)).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        return await store.DeleteMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false)
            ? Results.Redirect("/mocks?deleted=" + id.ToString(CultureInfo.InvariantCulture))
            : Results.Redirect(UiActions.WithProblem("/mocks", UiProblem.NotFound));
    }

    private static async Task<IResult> ImportHarAsync(HttpContext context, IMockStore store, IAntiforgery antiforgery, TimeProvider time)
    {
        var (tenant, refusal) = await UiActions.RequireAdminAsync(context, antiforgery, "/mocks").ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
        if (form.Files.GetFile("har") is not { Length: > 0 and <= MaxHarBytes } file)
        {
            return Results.Redirect(UiActions.WithProblem("/mocks", UiProblem.HarFile));
        }

        HarDocument har;
        try
        {
            await using var stream = file.OpenReadStream();
            har = await HarBuilder.ParseAsync(stream, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            return Results.Redirect(UiActions.WithProblem("/mocks", UiProblem.HarInvalid));
        }

        var options = new MockFromOptions
        {
            Service = UiActions.Field(form, "service"),
            Environment = UiActions.Field(form, "environment") ?? "",
            AnyHost = form.ContainsKey("anyHost"),
        };
        var records = HarMockImport.FromHar(har, options, time.GetUtcNow(), out _);
        if (records is null)
        {
            return Results.Redirect(UiActions.WithProblem("/mocks", UiProblem.HarEntries));
        }

        foreach (var record in records)
        {
            await store.AddMockAsync(tenant, record, context.RequestAborted).ConfigureAwait(false);
        }

        return Results.Redirect("/mocks?imported=" + records.Count.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// A mock from the editor's fields, or a <see cref="UiProblem"/> code. A binary body of
    /// <paramref name="existing"/> (not editable as text) is kept as it is.
    /// </summary>
    private static (MockDto? Mock, string? Problem) FromForm(IFormCollection form, MockRecord? existing)
    {
        var method = UiActions.Field(form, "method") ?? "GET";
        if (!method.All(char.IsAsciiLetter) || method.Length > 16)
        {
            return (null, UiProblem.Method);
        }

        var path = UiActions.Field(form, "path");
        if (path is null || path[0] != '/')
        {
            return (null, UiProblem.Path);
        }

        if (!int.TryParse(UiActions.Field(form, "status") ?? "200", NumberStyles.None, CultureInfo.InvariantCulture, out var status) || status is < 200 or > 599)
        {
            return (null, UiProblem.Status);
        }

        var headers = new List<IReadOnlyList<string>>();
        foreach (var line in (form["headers"].ToString()).Split('\n'))
        {
            var trimmed = line.Trim();
            if (trimmed.Length == 0)
            {
                continue;
            }

            var colon = trimmed.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                return (null, UiProblem.Headers);
            }

            headers.Add([trimmed[..colon].Trim(), trimmed[(colon + 1)..].Trim()]);
        }

        DateTimeOffset? expires = null;
        if (UiActions.Field(form, "expiresAt") is { } expiresText)
        {
            if (!DateTimeOffset.TryParse(expiresText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
            {
                return (null, UiProblem.Expires);
            }

            expires = parsed;
        }

        var keepBinary = existing is not null && form.ContainsKey("keepBody");
        var keepBinaryRequest = existing is not null && form.ContainsKey("keepRequestBody");
        return (new MockDto
        {
            Service = UiActions.Field(form, "service"),
            Environment = UiActions.Field(form, "environment"),
            Method = method,
            Authority = UiActions.Field(form, "authority"),
            Path = path,
            Query = UiActions.Field(form, "query"),
            RequestBody = keepBinaryRequest ? null : form["requestBody"].ToString().Replace("\r\n", "\n", StringComparison.Ordinal),
            RequestBodyBase64 = keepBinaryRequest ? Convert.ToBase64String(existing!.RequestBody.Span) : null,
            Status = status,
            Headers = headers,
            Body = keepBinary ? null : form["body"].ToString().Replace("\r\n", "\n", StringComparison.Ordinal),
            BodyBase64 = keepBinary ? Convert.ToBase64String(existing!.ResponseBody.Span) : null,
            Description = UiActions.Field(form, "description"),
            SourceTraceId = existing?.SourceTraceId,
            SourceSpanId = existing?.SourceSpanId,
            ExpiresAt = expires,
        }, null);
    }
}
