using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Telemetry;
using SpIstio.Backend.Storage;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace SpIstio.Backend.Ingest;

/// <summary>
/// OTLP/HTTP <c>POST /v1/traces</c> (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
/// protobuf or JSON, optionally gzip or zstd (what <c>export.compression</c> sends), answered in the request's encoding; errors carry a
/// <c>google.rpc.Status</c> body as the specification asks — refusals by the authentication layer
/// included (<see cref="IAuthRefusal"/>).
/// </summary>
public sealed class OtlpHttpEndpoint : IAuthRefusal
{
    /// <summary>The route.</summary>
    public const string Path = "/v1/traces";

    /// <summary>The OTLP/HTTP protobuf encoding.</summary>
    internal const string ProtobufContentType = "application/x-protobuf";

    /// <summary>The OTLP/HTTP JSON encoding.</summary>
    internal const string JsonContentType = "application/json";
    private const string Protocol = "http";

    private readonly IngestService _ingest;
    private readonly IngestBudget _budget;
    private readonly BackendMetrics _metrics;
    private readonly ILogger _logger;
    private readonly int _maxBodyBytes;

    /// <summary>Creates the endpoint.</summary>
    /// <param name="ingest">Stores the spans.</param>
    /// <param name="budget">The bytes export requests in flight share; a request that does not fit is refused (503 + Retry-After).</param>
    /// <param name="metrics">Request counters.</param>
    /// <param name="logger">Refusals (debug).</param>
    /// <param name="maxBodyBytes">The largest body accepted, counted after decompression.</param>
    public OtlpHttpEndpoint(IngestService ingest, IngestBudget budget, BackendMetrics metrics, ILogger logger, int maxBodyBytes)
    {
        _ingest = ingest;
        _budget = budget;
        _metrics = metrics;
        _logger = logger;
        _maxBodyBytes = maxBodyBytes;
    }

    /// <summary>Handles one export request (the route requires the ingest scope).</summary>
    public async Task HandleAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var request = context.Request;
        var json = IsJson(request.ContentType);
        var tenant = TenantContext.Of(context);

        if (!json && !IsProtobuf(request.ContentType))
        {
            await FailAsync(context, json, StatusCodes.Status415UnsupportedMediaType, 3,
                "unsupported content type '" + request.ContentType + "': send application/x-protobuf or application/json").ConfigureAwait(false);
            return;
        }

        var encoding = request.Headers.ContentEncoding.ToString();
        var coding = CodingOf(encoding);
        if (coding is null)
        {
            await FailAsync(context, json, StatusCodes.Status415UnsupportedMediaType, 3,
                "unsupported content encoding '" + encoding + "': send gzip, zstd or none").ConfigureAwait(false);
            return;
        }

        if (request.ContentLength > _maxBodyBytes)
        {
            await FailTooLargeAsync(context, json).ConfigureAwait(false);
            return;
        }

        // Held until the request is answered: its body, the parsed request and the encoded spans.
        // A declared length is reserved whole before anything is read (one more byte to see the end).
        using var reservation = _budget.OpenFor(context);
        if (request.ContentLength is { } declared && !reservation.TryCover(declared + 1, Protocol))
        {
            await FailOverBudgetAsync(context, json).ConfigureAwait(false);
            return;
        }

        var body = await ReadBodyAsync(context, coding.Value, reservation).ConfigureAwait(false);
        try
        {
            switch (body.Outcome)
            {
                case ReadOutcome.TooLarge:
                    await FailTooLargeAsync(context, json).ConfigureAwait(false);
                    return;
                case ReadOutcome.OverBudget:
                    await FailOverBudgetAsync(context, json).ConfigureAwait(false);
                    return;
                case ReadOutcome.BadEncoding:
                    await FailAsync(context, json, StatusCodes.Status400BadRequest, 3, "the body is not valid " + (coding == Coding.Gzip ? "gzip" : "zstd") + ": " + body.Error).ConfigureAwait(false);
                    return;
                case ReadOutcome.Aborted:
                    return;
                default:
                    break;
            }

            var (submission, parseError) = Submit(json, body.Body, tenant.TenantId);
            if (submission is null)
            {
                await FailAsync(context, json, StatusCodes.Status400BadRequest, 3, parseError!).ConfigureAwait(false);
                return;
            }

            // The spans are converted and queued: the body's segments go back to the pool, and the
            // request keeps of the budget only what its queued spans hold while they wait.
            body.Body.Dispose();
            reservation.Settle();
            var status = await submission.CompleteAsync().ConfigureAwait(false);
            var response = submission.Response;
            switch (status)
            {
                case IngestStatus.QueueFull:
                    await FailRetryLaterAsync(context, json, "the write queue is full; retry later").ConfigureAwait(false);
                    return;
                case IngestStatus.StoreFailed:
                    await FailRetryLaterAsync(context, json, "the store failed to commit the spans; retry later").ConfigureAwait(false);
                    return;
                default:
                    _metrics.IngestRequests(Protocol, StatusCodes.Status200OK).Inc();
                    await WriteAsync(context, json, StatusCodes.Status200OK, response).ConfigureAwait(false);
                    return;
            }
        }
        finally
        {
            body.Body.Dispose();
        }
    }

    /// <summary>
    /// Parses the body and submits its spans; null and the problem when it is not an export request.
    /// Not async: the parsed request is garbage once this returns, not kept by a state machine
    /// while the spans wait for their commit.
    /// </summary>
    private (IngestSubmission? Submission, string? Error) Submit(bool json, SegmentedBody body, long tenantId)
    {
        ExportTraceServiceRequest export;
        try
        {
            var bytes = body.AsSequence();
            export = json
                ? OtlpJson.Parse<ExportTraceServiceRequest>(bytes.IsSingleSegment ? bytes.FirstSpan : bytes.ToArray())
                : ExportTraceServiceRequest.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException ex)
        {
            return (null, "the body is not a valid OTLP protobuf ExportTraceServiceRequest: " + ex.Message);
        }
        catch (FormatException ex)
        {
            return (null, ex.Message);
        }

        return (_ingest.Submit(tenantId, export), null);
    }

    /// <summary>A refusal of the authentication layer, as an OTLP <c>Status</c> in the request's encoding.</summary>
    public Task WriteAsync(HttpContext context, AuthRefusalReason reason, KeyScope scope)
    {
        ArgumentNullException.ThrowIfNull(context);
        var json = IsJson(context.Request.ContentType);
        return reason switch
        {
            AuthRefusalReason.Missing => FailAsync(context, json, StatusCodes.Status401Unauthorized, 16, "no API key: send it in x-public-key or Authorization: Bearer"),
            AuthRefusalReason.Invalid => FailAsync(context, json, StatusCodes.Status401Unauthorized, 16, "unknown or revoked API key"),
            _ => FailAsync(context, json, StatusCodes.Status403Forbidden, 7, "the API key has no " + ApiKeys.FormatScopes(scope) + " scope"),
        };
    }

    private static bool IsJson(string? contentType) => MediaTypeIs(contentType, JsonContentType);

    private static bool IsProtobuf(string? contentType) =>
        MediaTypeIs(contentType, ProtobufContentType) || MediaTypeIs(contentType, "application/protobuf");

    private static bool MediaTypeIs(string? contentType, string mediaType)
    {
        if (contentType is null)
        {
            return false;
        }

        var span = contentType.AsSpan();
        var semicolon = span.IndexOf(';');
        if (semicolon >= 0)
        {
            span = span[..semicolon];
        }

        return span.Trim().Equals(mediaType, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Reads the body into pooled segments (<see cref="SegmentedBody"/>), inflating gzip or zstd
    /// through the same bounded loop, and stops as soon as one byte more than the limit has been
    /// produced: a compression bomb is refused after inflating at most the limit, never whole. Bytes
    /// are read only as far as <paramref name="reservation"/> covers them; it grows a segment at a
    /// time, and the read stops (<see cref="ReadOutcome.OverBudget"/>) when the budget cannot.
    /// </summary>
    private async Task<BodyRead> ReadBodyAsync(HttpContext context, Coding coding, IngestBudget.Reservation reservation)
    {
        var compressed = coding != Coding.Identity;
        var sizeFeature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false })
        {
            // The compressed size is bounded by the same limit as the inflated one.
            sizeFeature.MaxRequestBodySize = _maxBodyBytes;
        }

        var body = new SegmentedBody();
        var source = coding switch
        {
            Coding.Gzip => new GZipStream(context.Request.Body, CompressionMode.Decompress, leaveOpen: true),
            Coding.Zstd => ZstdSource(context.Request.Body),
            _ => context.Request.Body,
        };
        try
        {
            while (true)
            {
                if (body.Length >= reservation.BodyBytes && !reservation.TryCover(body.Length + SegmentedBody.SegmentBytes, Protocol))
                {
                    return new BodyRead(ReadOutcome.OverBudget, body, null);
                }

                var room = (int)Math.Min(_maxBodyBytes + 1 - body.Length, reservation.BodyBytes - body.Length);
                var read = await source.ReadAsync(body.GetMemory(room), context.RequestAborted).ConfigureAwait(false);
                if (read == 0)
                {
                    return new BodyRead(ReadOutcome.Ok, body, null);
                }

                body.Advance(read);
                if (body.Length > _maxBodyBytes)
                {
                    return new BodyRead(ReadOutcome.TooLarge, body, null);
                }
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or ZstdException || (compressed && ex is EndOfStreamException))
        {
            return new BodyRead(ReadOutcome.BadEncoding, body, ex.Message);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return new BodyRead(ReadOutcome.TooLarge, body, null);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            return new BodyRead(ReadOutcome.Aborted, body, null);
        }
        finally
        {
            if (compressed)
            {
                await source.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    // The zstd decoder allocates the window a frame declares before any output, so the window is
    // bounded too: 8 MiB (windowLog 23) covers the agent's level 1 (512 KiB) and the 8 MiB window
    // of other OTLP exporters' zstd, and refuses a frame asking for more (zstd allows up to 2 GiB).
    private const int MaxZstdWindowLog = 23;

    private static DecompressionStream ZstdSource(Stream body)
    {
        var zstd = new DecompressionStream(body, leaveOpen: true);
        zstd.SetParameter(ZSTD_dParameter.ZSTD_d_windowLogMax, MaxZstdWindowLog);
        return zstd;
    }

    private static Coding? CodingOf(string encoding) =>
        encoding.Length == 0 || encoding.Equals("identity", StringComparison.OrdinalIgnoreCase) ? Coding.Identity
        : encoding.Equals("gzip", StringComparison.OrdinalIgnoreCase) ? Coding.Gzip
        : encoding.Equals("zstd", StringComparison.OrdinalIgnoreCase) ? Coding.Zstd
        : null;

    private enum Coding
    {
        Identity,
        Gzip,
        Zstd,
    }

    private Task FailTooLargeAsync(HttpContext context, bool json) =>
        FailAsync(context, json, StatusCodes.Status413PayloadTooLarge, 8, IngestService.OverLimitMessage(_maxBodyBytes));

    private Task FailOverBudgetAsync(HttpContext context, bool json) => FailRetryLaterAsync(context, json, IngestBudget.RefusalMessage);

    // 503 + Retry-After (OTLP's UNAVAILABLE): what OTLP exporters retry, whichever bound refused the request.
    private Task FailRetryLaterAsync(HttpContext context, bool json, string message)
    {
        context.Response.Headers.RetryAfter = IngestService.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return FailAsync(context, json, StatusCodes.Status503ServiceUnavailable, 14, message);
    }

    private async Task FailAsync(HttpContext context, bool json, int statusCode, int grpcCode, string message)
    {
        _metrics.IngestRequests(Protocol, statusCode).Inc();
        IngestLog.ExportRefused(_logger, Protocol, statusCode, message);
        var status = new RpcStatus(grpcCode, message);
        context.Response.StatusCode = statusCode;
        if (json)
        {
            context.Response.ContentType = JsonContentType;
            await context.Response.WriteAsync(status.ToJson(), context.RequestAborted).ConfigureAwait(false);
        }
        else
        {
            context.Response.ContentType = ProtobufContentType;
            await context.Response.Body.WriteAsync(status.ToProtobuf(), context.RequestAborted).ConfigureAwait(false);
        }
    }

    private static async Task WriteAsync(HttpContext context, bool json, int statusCode, IMessage message)
    {
        context.Response.StatusCode = statusCode;
        if (json)
        {
            context.Response.ContentType = JsonContentType;
            await context.Response.WriteAsync(OtlpJson.Format(message), context.RequestAborted).ConfigureAwait(false);
        }
        else
        {
            context.Response.ContentType = ProtobufContentType;
            await context.Response.Body.WriteAsync(message.ToByteArray(), context.RequestAborted).ConfigureAwait(false);
        }
    }

    private enum ReadOutcome
    {
        Ok,
        TooLarge,
        OverBudget,
        BadEncoding,
        Aborted,
    }

    private readonly record struct BodyRead(ReadOutcome Outcome, SegmentedBody Body, string? Error);
}
