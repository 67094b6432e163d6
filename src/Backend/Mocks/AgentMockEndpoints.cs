using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using static SpIstio.Backend.Mocks.MockEndpoints;
using static SpIstio.Backend.Mocks.MockMapping;

namespace SpIstio.Backend.Mocks;

/// <summary>The agent side of mocks, with the ingest scope: <c>POST /v1/agent/lookup</c> (the original agent's protocol: an OTLP span in, 200 with the recorded response as a span or 404) and <c>GET /v1/agent/mocks</c> (a service's mock set with an ETag).</summary>
public static class AgentMockEndpoints
{
    /// <summary>The lookup path.</summary>
    public const string LookupPath = "/v1/agent/lookup";

    /// <summary>The mock-set path agents pull.</summary>
    public const string AgentMocksPath = "/v1/agent/mocks";

    /// <summary>Request header an agent may send to restrict lookups to one environment label.</summary>
    public const string EnvironmentHeader = "x-sp-environment";

    internal const string ProtobufMediaType = "application/x-protobuf";

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

    internal static async Task<IResult> LookupAsync(HttpContext context, IMockStore store, TimeProvider time)
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
        // OtlpSpanWriter is the one span encoder (ExchangeSpanMapper is its test oracle only);
        // the JSON answer is the same span read back into the message type.
        var answer = OtlpSpanWriter.ToByteArray([exchange], null, "mock");
        return json
            ? Results.Text(OtlpJson.Format(ExportTraceServiceRequest.Parser.ParseFrom(answer)), "application/json", Encoding.UTF8)
            : Results.Bytes(answer, ProtobufMediaType);
    }

    internal static async Task<IResult> AgentMocksAsync(HttpContext context, IMockStore store, TimeProvider time)
    {
        var tenant = TenantContext.Of(context).TenantId;

        var q = context.Request.Query;
        if (string.IsNullOrEmpty(q["service"]))
        {
            return Problem(400, "'service' is required");
        }

        // A service's set is bounded like any list: the oldest MaxLimit live mocks (Next says there are more).
        var page = await store.ListMocksAsync(
            tenant,
            new MockQuery
            {
                Service = q["service"].ToString(),
                IncludeAnyService = true,
                Environment = string.IsNullOrEmpty(q["environment"]) ? null : q["environment"].ToString(),
                LiveAt = time.GetUtcNow(),
                Limit = MockQuery.MaxLimit,
            },
            context.RequestAborted).ConfigureAwait(false);
        var mocks = page.Items;
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

        return Results.Json(new MockListDto([.. mocks.Select(ToDto)], page.NextCursor), MockJsonContext.Default.MockListDto);
    }
}
