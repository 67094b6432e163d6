using Grpc.Core;
using Microsoft.Extensions.Logging;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Backend.Ingest;

/// <summary>
/// OTLP/gRPC <c>opentelemetry.proto.collector.trace.v1.TraceService/Export</c>. Keys come from the
/// <c>x-public-key</c> or <c>authorization</c> metadata; refusals map to the status codes the OTLP
/// specification names (UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE to retry).
/// </summary>
public sealed class OtlpGrpcService : TraceService.TraceServiceBase
{
    private const string Protocol = "grpc";

    private readonly IngestService _ingest;
    private readonly ApiKeyAuthenticator _authenticator;
    private readonly BackendMetrics _metrics;
    private readonly ILogger<OtlpGrpcService> _logger;

    /// <summary>Creates the service (resolved from DI by Grpc.AspNetCore).</summary>
    public OtlpGrpcService(IngestService ingest, ApiKeyAuthenticator authenticator, BackendMetrics metrics, ILogger<OtlpGrpcService> logger)
    {
        _ingest = ingest;
        _authenticator = authenticator;
        _metrics = metrics;
        _logger = logger;
    }

    /// <inheritdoc />
    public override async Task<ExportTraceServiceResponse> Export(ExportTraceServiceRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var key = ApiKeyAuthenticator.ExtractKey(context.RequestHeaders.GetValue("x-public-key"), context.RequestHeaders.GetValue("authorization"));
        var auth = await _authenticator.AuthenticateAsync(key, KeyScope.Ingest, context.CancellationToken).ConfigureAwait(false);
        switch (auth.Status)
        {
            case AuthStatus.Missing:
                throw Refuse(StatusCode.Unauthenticated, "no API key: send it in x-public-key or authorization: Bearer metadata");
            case AuthStatus.Unknown:
                throw Refuse(StatusCode.Unauthenticated, "unknown or revoked API key");
            case AuthStatus.Forbidden:
                throw Refuse(StatusCode.PermissionDenied, "the API key has no ingest scope");
            default:
                break;
        }

        var (status, response) = await _ingest.IngestAsync(auth.TenantId, request).ConfigureAwait(false);
        switch (status)
        {
            case IngestStatus.QueueFull:
                throw Refuse(StatusCode.Unavailable, "the write queue is full; retry later");
            case IngestStatus.StoreFailed:
                throw Refuse(StatusCode.Unavailable, "the store failed to commit the spans; retry later");
            default:
                _metrics.IngestRequests(Protocol, (int)StatusCode.OK).Inc();
                return response;
        }
    }

    private RpcException Refuse(StatusCode code, string message)
    {
        _metrics.IngestRequests(Protocol, (int)code).Inc();
        IngestLog.ExportRefused(_logger, Protocol, (int)code, message);
        return new RpcException(new Status(code, message));
    }
}
