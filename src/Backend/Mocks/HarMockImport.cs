using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Har;
using SpIstio.Backend.Storage;
using static SpIstio.Backend.Mocks.MockEndpoints;
using static SpIstio.Backend.Mocks.MockMapping;

namespace SpIstio.Backend.Mocks;

/// <summary><c>POST /api/mocks/har</c>: every entry of a HAR 1.2 file becomes a mock.</summary>
internal static class HarMockImport
{
    internal static async Task<IResult> ImportHarAsync(HttpContext context, ISpanStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        HarDocument har;
        try
        {
            har = await HarBuilder.ParseAsync(context.Request.Body, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            return Problem(400, "not a HAR document: " + ex.Message);
        }

        var q = context.Request.Query;
        var anyHost = string.Equals(q["anyHost"], "true", StringComparison.OrdinalIgnoreCase);
        var now = time.GetUtcNow();
        var created = new List<MockDto>();
        for (var i = 0; i < har.Log.Entries.Count; i++)
        {
            var entry = har.Log.Entries[i];
            if (!Uri.TryCreate(entry.Request.Url, UriKind.Absolute, out var url) || entry.Response.Status is < 200 or > 599)
            {
                return Problem(400, string.Create(CultureInfo.InvariantCulture, $"entry {i}: needs an absolute request URL and a response status from 200 to 599"));
            }

            byte[] requestBody;
            byte[] responseBody;
            try
            {
                requestBody = HarBuilder.BodyBytes(entry.Request.PostData?.Text, entry.Request.PostData?.Encoding);
                responseBody = HarBuilder.BodyBytes(entry.Response.Content.Text, entry.Response.Content.Encoding);
            }
            catch (FormatException)
            {
                return Problem(400, string.Create(CultureInfo.InvariantCulture, $"entry {i}: a base64 body is not base64"));
            }

            var method = entry.Request.Method.ToUpperInvariant();
            var authority = anyHost ? "" : url.IsDefaultPort ? url.Host : url.Authority;
            var path = string.IsNullOrEmpty(url.AbsolutePath) ? "/" : url.AbsolutePath;
            var query = url.Query.Length > 1 ? url.Query[1..] : null;
            var record = new MockRecord
            {
                Service = q["service"].ToString() is { Length: > 0 } service ? service : entry.Service ?? "",
                Environment = q["environment"].ToString(),
                Method = method,
                Authority = authority,
                Path = path,
                Query = query,
                RequestBody = requestBody,
                MatchKey = MockKeys.ForMock(method, authority, path, query, requestBody),
                StatusCode = entry.Response.Status,
                // HAR content is decoded text: its content-encoding no longer applies.
                ResponseHeadersJson = HeadersJson(entry.Response.Headers.Select(h => (h.Name.ToLowerInvariant(), h.Value)), dropContentEncoding: true),
                ResponseBody = responseBody,
                Description = entry.Comment ?? "imported from HAR",
                SourceTraceId = entry.TraceId,
                SourceSpanId = entry.SpanId,
                CreatedAt = now,
                UpdatedAt = now,
            };
            created.Add(ToDto(await store.AddMockAsync(tenant, record, context.RequestAborted).ConfigureAwait(false)));
        }

        return Results.Json(new MockListDto(created), MockJsonContext.Default.MockListDto, statusCode: 201);
    }
}
