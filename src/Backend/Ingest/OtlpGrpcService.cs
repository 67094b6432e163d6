using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Pipelines;
using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Telemetry;
using SpIstio.Backend.Storage;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Backend.Ingest;

/// <summary>
/// OTLP/gRPC <c>opentelemetry.proto.collector.trace.v1.TraceService/Export</c>. The key (from the
/// <c>x-public-key</c> or <c>authorization</c> metadata) is checked by the authentication layer's
/// ingest policy before the call reaches this service (<see cref="OtlpGrpcRefusal"/> answers
/// UNAUTHENTICATED or PERMISSION_DENIED); the service's own refusals map to the status codes the
/// OTLP specification names (INVALID_ARGUMENT, UNAVAILABLE to retry).
/// </summary>
/// <remarks>
/// The method is bound by <see cref="OtlpGrpcMethodProvider"/> with a marshaller that keeps the
/// payload as bytes: the generated binding parses the message before the handler runs, and a
/// malformed message became UNKNOWN with an error log and stack trace. Here the bytes are parsed
/// in the handler, and a parse failure is an INVALID_ARGUMENT naming the problem. Refusals set the
/// call's status instead of throwing, so Grpc.AspNetCore logs no exception; ours is one debug line.
/// </remarks>
public sealed class OtlpGrpcService
{
    /// <summary>The protocol label of the gRPC port's metrics.</summary>
    internal const string Protocol = "grpc";

    private readonly IngestService _ingest;
    private readonly BackendMetrics _metrics;
    private readonly ILogger<OtlpGrpcService> _logger;

    /// <summary>Creates the service (resolved from DI by Grpc.AspNetCore).</summary>
    public OtlpGrpcService(IngestService ingest, BackendMetrics metrics, ILogger<OtlpGrpcService> logger)
    {
        _ingest = ingest;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>
    /// Parses and stores one export request of an authenticated tenant. The parse and the
    /// submission run before the first await, so the parsed request is not kept while the spans
    /// wait for their commit.
    /// </summary>
    public Task<ExportTraceServiceResponse> Export(RawExportRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var httpContext = context.GetHttpContext();
        var tenant = TenantContext.Of(httpContext);

        // The message was covered as it was read (OtlpGrpcBudgetGate) or inflated (BudgetedCompressionProvider),
        // which cut it short where the limit or the budget refused it.
        if (BudgetedCompressionProvider.Current?.Refusal is { } refusal)
        {
            return Task.FromResult(Refuse(context, refusal.Code, refusal.Message));
        }

        ExportTraceServiceRequest export;
        try
        {
            export = ExportTraceServiceRequest.Parser.ParseFrom(request.Payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            return Task.FromResult(Refuse(context, StatusCode.InvalidArgument, "the message is not a valid OTLP ExportTraceServiceRequest: " + ex.Message));
        }

        var submission = _ingest.Submit(tenant.TenantId, export);
        IngestBudget.SettleFor(httpContext);
        return CompleteAsync(submission, context);
    }

    private async Task<ExportTraceServiceResponse> CompleteAsync(IngestSubmission submission, ServerCallContext context)
    {
        var status = await submission.CompleteAsync().ConfigureAwait(false);
        var response = submission.Response;
        switch (status)
        {
            case IngestStatus.QueueFull:
                return Refuse(context, StatusCode.Unavailable, "the write queue is full; retry later");
            case IngestStatus.StoreFailed:
                return Refuse(context, StatusCode.Unavailable, "the store failed to commit the spans; retry later");
            default:
                _metrics.IngestRequests(Protocol, (int)StatusCode.OK).Inc();
                return response;
        }
    }

    private ExportTraceServiceResponse Refuse(ServerCallContext context, StatusCode code, string message)
    {
        _metrics.IngestRequests(Protocol, (int)code).Inc();
        IngestLog.ExportRefused(_logger, Protocol, (int)code, message);
        // A non-OK status set on the context ends the call with it; the returned message is not sent.
        context.Status = new Status(code, message);
        return new ExportTraceServiceResponse();
    }
}

/// <summary>
/// The authentication layer's refusals on the gRPC port: a trailers-only response with
/// UNAUTHENTICATED or PERMISSION_DENIED, written before the request message is read at all.
/// </summary>
internal sealed class OtlpGrpcRefusal(BackendMetrics metrics, ILogger logger) : IAuthRefusal
{
    public Task WriteAsync(HttpContext context, AuthRefusalReason reason, KeyScope scope)
    {
        var (code, message) = reason switch
        {
            AuthRefusalReason.Missing => (StatusCode.Unauthenticated, "no API key: send it in x-public-key or authorization: Bearer metadata"),
            AuthRefusalReason.Invalid => (StatusCode.Unauthenticated, "unknown or revoked API key"),
            _ => (StatusCode.PermissionDenied, "the API key has no " + ApiKeys.FormatScopes(scope) + " scope"),
        };
        WriteTrailersOnly(context, metrics, logger, code, message);
        return Task.CompletedTask;
    }

    /// <summary>Ends a call before its message is read: counted, logged at debug, and answered trailers-only.</summary>
    internal static void WriteTrailersOnly(HttpContext context, BackendMetrics metrics, ILogger logger, StatusCode code, string message)
    {
        metrics.IngestRequests(OtlpGrpcService.Protocol, (int)code).Inc();
        IngestLog.ExportRefused(logger, OtlpGrpcService.Protocol, (int)code, message);

        // gRPC over HTTP/2: status 200 and the call's status in the only HEADERS frame ("trailers-only").
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = Uri.EscapeDataString(message);
    }
}

/// <summary>
/// Reserves an export call's message out of the <see cref="IngestBudget"/> before Grpc.AspNetCore
/// reads it. The gRPC message's length prefix (a compressed flag and a big-endian 32-bit length:
/// the request body's first five bytes) is peeked without consuming anything, so the message is
/// buffered only once its bytes are reserved; a call that does not fit ends at once, trailers-only
/// UNAVAILABLE, which exporters retry. Runs after the authentication layer, on the endpoints that
/// carry the gate as metadata (the OTLP export method). A message declared over the receive limit
/// is refused here, RESOURCE_EXHAUSTED naming the limit, without being read. A
/// compressed message (grpc-encoding gzip) declares its compressed length: it reserves
/// <see cref="AssumedCompressionRatio"/> times that (at most the limit), and the reservation grows
/// as the message inflates (<see cref="BudgetedCompressionProvider"/>).
/// </summary>
internal sealed class OtlpGrpcBudgetGate(IngestBudget budget, int maxMessageBytes, BackendMetrics metrics, ILogger logger)
{
    private const int PrefixBytes = 5;

    /// <summary>How much a compressed export is taken to inflate to until it has (OTLP's spans gzip 5–10 to 1).</summary>
    internal const int AssumedCompressionRatio = 8;

    /// <summary>Runs the gate where the endpoint carries one, else the next middleware.</summary>
    public static Task InvokeAsync(HttpContext context, RequestDelegate next) =>
        context.GetEndpoint()?.Metadata.GetMetadata<OtlpGrpcBudgetGate>() is { } gate ? gate.GateAsync(context, next) : next(context);

    private async Task GateAsync(HttpContext context, RequestDelegate next)
    {
        // Held until the call is answered (the handler settles it once the spans are queued).
        using var reservation = budget.OpenFor(context);
        var prefix = await PeekPrefixAsync(context.Request.BodyReader, context.RequestAborted).ConfigureAwait(false);
        if (prefix is { Length: var length } && length > maxMessageBytes)
        {
            OtlpGrpcRefusal.WriteTrailersOnly(context, metrics, logger, StatusCode.ResourceExhausted, IngestService.OverLimitMessage(maxMessageBytes));
            return;
        }

        if (prefix is { } declared
            && !reservation.TryCover(Math.Min(declared.Compressed ? declared.Length * AssumedCompressionRatio : declared.Length, maxMessageBytes), OtlpGrpcService.Protocol))
        {
            OtlpGrpcRefusal.WriteTrailersOnly(context, metrics, logger, StatusCode.Unavailable, IngestBudget.RefusalMessage);
            return;
        }

        // A compressed message inflates inside Grpc.AspNetCore, before the handler: it grows the
        // reservation as it goes (BudgetedCompressionProvider), and the handler answers where it was
        // cut short. Set here, seen on this call's flow only (the provider is given no HttpContext).
        BudgetedCompressionProvider.Current = new OtlpGrpcInflation(reservation, maxMessageBytes);
        await next(context).ConfigureAwait(false);
    }

    /// <summary>The first message's compressed flag and declared length; null when the body ends before a whole prefix (gRPC answers that itself).</summary>
    private static async Task<(bool Compressed, long Length)?> PeekPrefixAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (buffer.Length >= PrefixBytes || result.IsCompleted || result.IsCanceled)
                {
                    var prefix = buffer.Length >= PrefixBytes ? PrefixOf(buffer) : ((bool, long)?)null;
                    // Nothing consumed, nothing examined: the gRPC reader is handed every byte again at once.
                    reader.AdvanceTo(buffer.Start, buffer.Start);
                    return prefix;
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client went away: nothing to reserve, and the gRPC reader sees the same end.
            return null;
        }
    }

    private static (bool Compressed, long Length) PrefixOf(ReadOnlySequence<byte> buffer)
    {
        Span<byte> prefix = stackalloc byte[PrefixBytes];
        buffer.Slice(0, PrefixBytes).CopyTo(prefix);
        return (prefix[0] != 0, BinaryPrimitives.ReadUInt32BigEndian(prefix[1..]));
    }
}

/// <summary>An export request's protobuf bytes, not yet parsed (see <see cref="OtlpGrpcService"/>).</summary>
/// <param name="Payload">The message bytes, bounded by the server's maximum receive size.</param>
public sealed record RawExportRequest(byte[] Payload);

/// <summary>Binds <see cref="OtlpGrpcService.Export"/> under the OTLP method name with a bytes-only request marshaller.</summary>
internal sealed class OtlpGrpcMethodProvider : IServiceMethodProvider<OtlpGrpcService>
{
    private static readonly Method<RawExportRequest, ExportTraceServiceResponse> _export = new(
        MethodType.Unary,
        "opentelemetry.proto.collector.trace.v1.TraceService",
        "Export",
        new Marshaller<RawExportRequest>(
            (request, context) => context.Complete(request.Payload),
            context => new RawExportRequest(context.PayloadAsNewBuffer())),
        Marshallers.Create(response => response.ToByteArray(), ExportTraceServiceResponse.Parser.ParseFrom));

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<OtlpGrpcService> context) =>
        context.AddUnaryMethod(_export, [], (service, request, callContext) => service.Export(request, callContext));
}
