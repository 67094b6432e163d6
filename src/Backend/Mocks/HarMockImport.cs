using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Har;
using SpIstio.Backend.Storage;
using SpIstio.Core.GrpcMessages;
using static SpIstio.Backend.Mocks.MockEndpoints;
using static SpIstio.Backend.Mocks.MockMapping;

namespace SpIstio.Backend.Mocks;

/// <summary><c>POST /api/mocks/har</c>: every entry of a HAR 1.2 file becomes a mock.</summary>
internal static class HarMockImport
{
    internal static async Task<IResult> ImportHarAsync(HttpContext context, IMockStore store, TimeProvider time)
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
        var options = new MockFromOptions
        {
            Service = q["service"].ToString() is { Length: > 0 } service ? service : null,
            Environment = q["environment"].ToString(),
            AnyHost = string.Equals(q["anyHost"], "true", StringComparison.OrdinalIgnoreCase),
        };
        var records = FromHar(har, options, time.GetUtcNow(), out var problem);
        if (records is null)
        {
            return Problem(400, problem!);
        }

        var created = new List<MockDto>();
        foreach (var record in records)
        {
            created.Add(ToDto(await store.AddMockAsync(tenant, record, context.RequestAborted).ConfigureAwait(false)));
        }

        return Results.Json(new MockListDto(created), MockJsonContext.Default.MockListDto, statusCode: 201);
    }

    /// <summary>
    /// The mocks of every entry of a HAR document (the one way: <c>POST /api/mocks/har</c> and the
    /// Trace View's import); null with a problem naming the first unusable entry, so nothing is
    /// stored from a file with a bad entry.
    /// </summary>
    public static List<MockRecord>? FromHar(HarDocument har, MockFromOptions options, DateTimeOffset now, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(har);
        ArgumentNullException.ThrowIfNull(options);
        problem = null;
        var records = new List<MockRecord>();
        for (var i = 0; i < har.Log.Entries.Count; i++)
        {
            var entry = har.Log.Entries[i];
            if (IsGrpc(entry))
            {
                // HarBuilder writes a gRPC call's bodies as its decoded messages (JSON), not the
                // length-prefixed frames and grpc-status trailers a gRPC client needs: a mock made from
                // them would answer every call with a broken stream. The captured span still has the frames.
                problem = string.Create(CultureInfo.InvariantCulture,
                    $"entry {i} ({entry.Request.Method} {GrpcPath(entry)}) is a gRPC call: its HAR bodies hold the decoded messages, not the framed messages and trailers a gRPC mock answers with; make its mock from the captured span instead (POST /api/mocks/from-span/{{traceId}}/{{spanId}}, or \"Use as mock\" on the exchange page)");
                return null;
            }

            if (!Uri.TryCreate(entry.Request.Url, UriKind.Absolute, out var url) || entry.Response.Status is < 200 or > 599)
            {
                problem = string.Create(CultureInfo.InvariantCulture, $"entry {i}: needs an absolute request URL and a response status from 200 to 599");
                return null;
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
                problem = string.Create(CultureInfo.InvariantCulture, $"entry {i}: a base64 body is not base64");
                return null;
            }

            var method = entry.Request.Method.ToUpperInvariant();
            var authority = options.AnyHost ? "" : url.IsDefaultPort ? url.Host : url.Authority;
            var path = string.IsNullOrEmpty(url.AbsolutePath) ? "/" : url.AbsolutePath;
            var query = url.Query.Length > 1 ? url.Query[1..] : null;
            records.Add(new MockRecord
            {
                Service = options.Service ?? entry.Service ?? "",
                Environment = options.Environment ?? "",
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
                ExpiresAt = options.ExpiresAt,
            });
        }

        return records;
    }

    private static string GrpcPath(HarEntry entry) =>
        Uri.TryCreate(entry.Request.Url, UriKind.Absolute, out var url) ? url.AbsolutePath : entry.Request.Url;

    // A gRPC entry: the call HarBuilder described in _grpc, or a gRPC content type on either side.
    private static bool IsGrpc(HarEntry entry) =>
        entry.Grpc is not null
        || GrpcSpanAttributes.IsGrpc(entry.Request.PostData?.MimeType)
        || GrpcSpanAttributes.IsGrpc(entry.Response.Content.MimeType)
        || entry.Request.Headers.Any(h => string.Equals(h.Name, "content-type", StringComparison.OrdinalIgnoreCase) && GrpcSpanAttributes.IsGrpc(h.Value));
}
