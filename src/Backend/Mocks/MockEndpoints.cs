using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SpIstio.Backend.Api;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Har;
using SpIstio.Backend.Storage;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Backend.Mocks;

/// <summary>
/// Mocks: the management API under <c>/api/mocks</c> (read scope to look, admin scope to change),
/// HAR import, and the agent side — <c>POST /v1/agent/lookup</c> (the original agent's protocol:
/// an OTLP span in, 200 with the recorded response as a span or 404) and
/// <c>GET /v1/agent/mocks</c> (a service's mock set with an ETag) — with the ingest scope.
/// </summary>
public static class MockEndpoints
{
    /// <summary>The lookup path.</summary>
    public const string LookupPath = "/v1/agent/lookup";

    /// <summary>The mock-set path agents pull.</summary>
    public const string AgentMocksPath = "/v1/agent/mocks";

    /// <summary>Request header an agent may send to restrict lookups to one environment label.</summary>
    public const string EnvironmentHeader = "x-sp-environment";

    private const string ProtobufMediaType = "application/x-protobuf";

    // Headers that describe one connection or one framing of a body, not the response itself.
    private static readonly string[] _notReplayed =
        ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "x-sp-cache"];

    /// <summary>Maps every mock route.</summary>
    public static IEndpointRouteBuilder MapMocksApi(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/mocks").WithTags("mocks");
        api.MapGet("", ListAsync).RequireScope(KeyScope.Read).WithSummary("The tenant's mocks (?service=, ?environment=, ?live=true).");
        api.MapPost("", CreateAsync).RequireScope(KeyScope.Admin).WithSummary("Creates a mock from a request matcher and a response.");
        api.MapGet("/{id:long}", GetAsync).RequireScope(KeyScope.Read).WithSummary("One mock.");
        api.MapPut("/{id:long}", UpdateAsync).RequireScope(KeyScope.Admin).WithSummary("Replaces a mock.");
        api.MapDelete("/{id:long}", DeleteAsync).RequireScope(KeyScope.Admin).WithSummary("Deletes a mock.");
        api.MapPost("/{id:long}/expire", ExpireAsync).RequireScope(KeyScope.Admin).WithSummary("Expires a mock now: it stops answering but stays listed.");
        api.MapPost("/from-span/{traceId}/{spanId}", FromSpanAsync).RequireScope(KeyScope.Admin).WithSummary("Creates a mock from a captured exchange.");
        api.MapPost("/har", ImportHarAsync).RequireScope(KeyScope.Admin).WithSummary("Imports every entry of a HAR 1.2 file as a mock (?service=, ?environment=, ?anyHost=true).");
        var agent = endpoints.MapGroup("").WithTags("agent").RequireScope(KeyScope.Ingest);
        agent.MapPost(LookupPath, LookupAsync).WithSummary("Agent lookup: 200 with the recorded response as an OTLP span, or 404.");
        agent.MapGet(AgentMocksPath, AgentMocksAsync).WithSummary("A service's live mocks, with an ETag (304 on If-None-Match).");
        return endpoints;
    }

    /// <summary>A stored mock as the API shows it.</summary>
    public static MockDto ToDto(MockRecord mock)
    {
        ArgumentNullException.ThrowIfNull(mock);
        var headers = new List<IReadOnlyList<string>>();
        using (var document = JsonDocument.Parse(mock.ResponseHeadersJson))
        {
            foreach (var pair in document.RootElement.EnumerateArray())
            {
                headers.Add([pair[0].GetString() ?? "", pair[1].GetString() ?? ""]);
            }
        }

        var requestText = Utf8.IsValid(mock.RequestBody.Span);
        var responseText = Utf8.IsValid(mock.ResponseBody.Span);
        return new MockDto
        {
            Id = mock.Id,
            Service = mock.Service,
            Environment = mock.Environment,
            Method = mock.Method,
            Authority = mock.Authority,
            Path = mock.Path,
            Query = mock.Query,
            RequestBody = mock.RequestBody.IsEmpty ? null : requestText ? Encoding.UTF8.GetString(mock.RequestBody.Span) : null,
            RequestBodyBase64 = !mock.RequestBody.IsEmpty && !requestText ? Convert.ToBase64String(mock.RequestBody.Span) : null,
            Status = mock.StatusCode,
            Headers = headers,
            Body = responseText ? Encoding.UTF8.GetString(mock.ResponseBody.Span) : null,
            BodyBase64 = responseText ? null : Convert.ToBase64String(mock.ResponseBody.Span),
            Description = mock.Description,
            SourceTraceId = mock.SourceTraceId,
            SourceSpanId = mock.SourceSpanId,
            CreatedAt = mock.CreatedAt,
            UpdatedAt = mock.UpdatedAt,
            ExpiresAt = mock.ExpiresAt,
        };
    }

    /// <summary>
    /// A mock from a request and a response; its match key is computed here. Returns null with a
    /// problem when the request or response is unusable.
    /// </summary>
    public static MockRecord? ToRecord(MockDto dto, DateTimeOffset now, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(dto);
        problem = null;
        var method = string.IsNullOrWhiteSpace(dto.Method) ? "GET" : dto.Method.Trim().ToUpperInvariant();
        if (string.IsNullOrEmpty(dto.Path) || dto.Path[0] != '/')
        {
            problem = "'path' must start with '/'";
            return null;
        }

        var status = dto.Status ?? 200;
        if (status is < 200 or > 599)
        {
            problem = "'status' must be from 200 to 599";
            return null;
        }

        byte[] requestBody;
        byte[] responseBody;
        try
        {
            requestBody = dto.RequestBodyBase64 is not null ? Convert.FromBase64String(dto.RequestBodyBase64) : Encoding.UTF8.GetBytes(dto.RequestBody ?? "");
            responseBody = dto.BodyBase64 is not null ? Convert.FromBase64String(dto.BodyBase64) : Encoding.UTF8.GetBytes(dto.Body ?? "");
        }
        catch (FormatException)
        {
            problem = "'requestBodyBase64' and 'bodyBase64' must be base64";
            return null;
        }

        var headers = new List<(string, string)>();
        foreach (var pair in dto.Headers ?? [])
        {
            if (pair.Count != 2 || string.IsNullOrWhiteSpace(pair[0]))
            {
                problem = "'headers' must be [name, value] pairs";
                return null;
            }

            headers.Add((pair[0].ToLowerInvariant(), pair[1]));
        }

        var authority = dto.Authority?.Trim() ?? "";
        var query = string.IsNullOrEmpty(dto.Query) ? null : dto.Query.TrimStart('?');
        return new MockRecord
        {
            Id = dto.Id,
            Service = dto.Service?.Trim() ?? "",
            Environment = dto.Environment?.Trim() ?? "",
            Method = method,
            Authority = authority,
            Path = dto.Path,
            Query = query,
            RequestBody = requestBody,
            MatchKey = MockKeys.ForMock(method, authority, dto.Path, query, requestBody),
            StatusCode = status,
            ResponseHeadersJson = HeadersJson(headers, dropContentEncoding: false),
            ResponseBody = responseBody,
            Description = dto.Description,
            SourceTraceId = dto.SourceTraceId,
            SourceSpanId = dto.SourceSpanId,
            CreatedAt = now,
            UpdatedAt = now,
            ExpiresAt = dto.ExpiresAt,
        };
    }

    /// <summary>The headers of a response as a mock replays them (no framing, no hop-by-hop fields), as JSON pairs.</summary>
    public static string HeadersJson(IEnumerable<(string Name, string Value)> headers, bool dropContentEncoding)
    {
        ArgumentNullException.ThrowIfNull(headers);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var (name, value) in headers)
            {
                if (Array.Exists(_notReplayed, n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase))
                    || (dropContentEncoding && string.Equals(name, "content-encoding", StringComparison.OrdinalIgnoreCase))
                    || name.StartsWith(':'))
                {
                    continue;
                }

                writer.WriteStartArray();
                writer.WriteStringValue(name);
                writer.WriteStringValue(value);
                writer.WriteEndArray();
            }

            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The ETag of a mock set: a digest of every mock's id, version and expiry.</summary>
    public static string ETagOf(IReadOnlyList<MockRecord> mocks)
    {
        ArgumentNullException.ThrowIfNull(mocks);
        var text = new StringBuilder();
        foreach (var mock in mocks)
        {
            text.Append(CultureInfo.InvariantCulture, $"{mock.Id}:{mock.UpdatedAt.UtcTicks}:{mock.ExpiresAt?.UtcTicks};");
        }

        return "\"" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..32] + "\"";
    }


    private static IResult Problem(int status, string detail) => Results.Problem(statusCode: status, title: status == 404 ? "Not found" : "Invalid request", detail: detail);

    private static async Task<IResult> ListAsync(HttpContext context, ISpanStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var q = context.Request.Query;
        var query = new MockQuery
        {
            Service = string.IsNullOrEmpty(q["service"]) ? null : q["service"].ToString(),
            Environment = string.IsNullOrEmpty(q["environment"]) ? null : q["environment"].ToString(),
            LiveAt = string.Equals(q["live"], "true", StringComparison.OrdinalIgnoreCase) ? time.GetUtcNow() : null,
        };
        var mocks = await store.ListMocksAsync(tenant, query, context.RequestAborted).ConfigureAwait(false);
        return Results.Json(new MockListDto([.. mocks.Select(ToDto)]), MockJsonContext.Default.MockListDto);
    }

    private static async Task<IResult> GetAsync(long id, HttpContext context, ISpanStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var mock = await store.GetMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false);
        return mock is null ? Problem(404, "mock " + id.ToString(CultureInfo.InvariantCulture) + " not found") : Results.Json(ToDto(mock), MockJsonContext.Default.MockDto);
    }

    private static async Task<IResult> CreateAsync(HttpContext context, ISpanStore store, TimeProvider time)
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

    private static async Task<IResult> UpdateAsync(long id, HttpContext context, ISpanStore store, TimeProvider time)
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

    private static async Task<IResult> DeleteAsync(long id, HttpContext context, ISpanStore store)
    {
        var tenant = TenantContext.Of(context).TenantId;

        return await store.DeleteMockAsync(tenant, id, context.RequestAborted).ConfigureAwait(false)
            ? Results.NoContent()
            : Problem(404, "mock " + id.ToString(CultureInfo.InvariantCulture) + " not found");
    }

    private static async Task<IResult> ExpireAsync(long id, HttpContext context, ISpanStore store, TimeProvider time)
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

    private static async Task<IResult> FromSpanAsync(string traceId, string spanId, HttpContext context, ISpanStore store, TimeProvider time)
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

        var created = await CreateFromSpanAsync(store, tenant, traceId, spanId, options, time.GetUtcNow(), context.RequestAborted).ConfigureAwait(false);
        return created.Mock is { } added
            ? Results.Json(ToDto(added), MockJsonContext.Default.MockDto, statusCode: 201)
            : Problem(created.Error == MockFromSpanError.NotFound ? 404 : 400, created.Problem!);
    }

    /// <summary>
    /// Creates a mock from a captured exchange of <paramref name="tenant"/> and stores it: the one
    /// way to do so, used by <c>POST /api/mocks/from-span/…</c> and the Trace View's "Use as mock".
    /// The caller has checked the admin scope.
    /// </summary>
    public static async Task<MockFromSpanResult> CreateFromSpanAsync(
        ISpanStore store, long tenant, string traceId, string spanId, MockFromOptions options, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(traceId);
        ArgumentNullException.ThrowIfNull(spanId);
        ArgumentNullException.ThrowIfNull(options);
        var span = await store.GetSpanAsync(tenant, traceId.ToLowerInvariant(), spanId.ToLowerInvariant(), cancellationToken).ConfigureAwait(false);
        if (span is null)
        {
            return new MockFromSpanResult(null, MockFromSpanError.NotFound, "span '" + spanId + "' of trace '" + traceId + "' not found");
        }

        if (!span.IsExchange || span.StatusCode is null || span.Path is null)
        {
            return new MockFromSpanResult(null, MockFromSpanError.NotAnExchange, "the span is not an HTTP exchange with a response");
        }

        var detail = QueryEndpoints.ToDetail(span);
        if (detail.ResponseBody is { Truncated: true })
        {
            return new MockFromSpanResult(null, MockFromSpanError.TruncatedBody, "the captured response body is truncated; a mock would replay part of it");
        }

        var headers = ReadPairs(span.ResponseHeadersJson);
        var authority = options.AnyHost ? "" : span.Authority ?? "";
        var method = span.Method ?? "GET";
        var mock = new MockRecord
        {
            Service = options.Service ?? span.ServiceName,
            Environment = options.Environment ?? "",
            Method = method,
            Authority = authority,
            Path = span.Path,
            Query = span.Query,
            RequestBody = span.RequestBody,
            MatchKey = MockKeys.ForMock(method, authority, span.Path, span.Query, span.RequestBody.Span),
            StatusCode = span.StatusCode.Value,
            ResponseHeadersJson = HeadersJson(headers, dropContentEncoding: detail.ResponseBody?.Decoded == true),
            ResponseBody = span.ResponseBody,
            Description = options.Description,
            SourceTraceId = span.TraceId,
            SourceSpanId = span.SpanId,
            CreatedAt = now,
            UpdatedAt = now,
            ExpiresAt = options.ExpiresAt,
        };
        var added = await store.AddMockAsync(tenant, mock, cancellationToken).ConfigureAwait(false);
        return new MockFromSpanResult(added, MockFromSpanError.None, null);
    }

    private static async Task<IResult> ImportHarAsync(HttpContext context, ISpanStore store, TimeProvider time)
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

    private static async Task<IResult> LookupAsync(HttpContext context, ISpanStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var json = context.Request.ContentType?.Contains("json", StringComparison.OrdinalIgnoreCase) == true;
        ExportTraceServiceRequest request;
        try
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            request = json
                ? OtlpJson.Parse<ExportTraceServiceRequest>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length))
                : ExportTraceServiceRequest.Parser.ParseFrom(buffer.GetBuffer(), 0, (int)buffer.Length);
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or FormatException)
        {
            return Problem(400, "the body is not an OTLP ExportTraceServiceRequest: " + ex.Message);
        }

        Exchange? exchange = null;
        foreach (var resource in request.ResourceSpans)
        {
            foreach (var scope in resource.ScopeSpans)
            {
                if (scope.Spans.Count > 0)
                {
                    exchange = ExchangeSpanMapper.FromSpan(scope.Spans[0], resource.Resource);
                    break;
                }
            }

            if (exchange is not null)
            {
                break;
            }
        }

        if (exchange is null)
        {
            return Problem(400, "the lookup holds no span");
        }

        var environment = context.Request.Headers[EnvironmentHeader].ToString();
        var mock = await store.FindMockAsync(
            tenant, MockKeys.ForRequest(exchange), exchange.ServiceName, environment.Length == 0 ? null : environment, time.GetUtcNow(), context.RequestAborted).ConfigureAwait(false);
        if (mock is null)
        {
            return Results.StatusCode(404);
        }

        exchange.StatusCode = mock.StatusCode;
        foreach (var (name, value) in ReadPairs(mock.ResponseHeadersJson))
        {
            exchange.ResponseHeaders.Add(name, value);
        }

        var contentType = exchange.ResponseHeaders.Get("content-type");
        exchange.ResponseBody = SpIstio.Core.Capture.BodyCapture.Create(mock.ResponseBody, mock.ResponseBody.Length, false, contentType, null, 0);
        exchange.Attributes["sp.mock.id"] = mock.Id.ToString(CultureInfo.InvariantCulture);
        var answer = ExchangeSpanMapper.ToExportRequest([exchange], null, "mock");
        return json
            ? Results.Text(OtlpJson.Format(answer), "application/json", Encoding.UTF8)
            : Results.Bytes(answer.ToByteArray(), ProtobufMediaType);
    }

    private static async Task<IResult> AgentMocksAsync(HttpContext context, ISpanStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var q = context.Request.Query;
        if (string.IsNullOrEmpty(q["service"]))
        {
            return Problem(400, "'service' is required");
        }

        var mocks = await store.ListMocksAsync(
            tenant,
            new MockQuery
            {
                Service = q["service"].ToString(),
                IncludeAnyService = true,
                Environment = string.IsNullOrEmpty(q["environment"]) ? null : q["environment"].ToString(),
                LiveAt = time.GetUtcNow(),
            },
            context.RequestAborted).ConfigureAwait(false);
        var etag = ETagOf(mocks);
        context.Response.Headers.ETag = etag;
        context.Response.Headers.CacheControl = "no-cache";
        foreach (var candidate in context.Request.Headers.IfNoneMatch)
        {
            if (string.Equals(candidate?.Trim(), etag, StringComparison.Ordinal) || string.Equals(candidate?.Trim(), "*", StringComparison.Ordinal))
            {
                return Results.StatusCode(304);
            }
        }

        return Results.Json(new MockListDto([.. mocks.Select(ToDto)]), MockJsonContext.Default.MockListDto);
    }

    private static List<(string Name, string Value)> ReadPairs(string? json)
    {
        var list = new List<(string, string)>();
        if (string.IsNullOrEmpty(json))
        {
            return list;
        }

        using var document = JsonDocument.Parse(json);
        foreach (var pair in document.RootElement.EnumerateArray())
        {
            if (pair.GetArrayLength() >= 2)
            {
                list.Add((pair[0].GetString() ?? "", pair[1].GetString() ?? ""));
            }
        }

        return list;
    }

    private static async Task<(T? Value, IResult? Problem)> ReadJsonAsync<T>(HttpContext context, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
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
