using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Agent.Cache;

/// <summary>How a remote lookup ended.</summary>
public enum LookupStatus
{
    /// <summary>The backend answered with a recorded response (HTTP 200).</summary>
    Hit,

    /// <summary>The backend has nothing for this request (HTTP 404).</summary>
    Miss,

    /// <summary>No answer: past the deadline, the circuit open, a network error or an unexpected reply.</summary>
    Failed,
}

/// <summary>
/// The original agent's lookup protocol: the request is POSTed as an OTLP span (an
/// <c>ExportTraceServiceRequest</c> holding one span, protobuf) to
/// <c>{sp_backend_url}/v1/agent/lookup</c> with <c>x-public-key</c>; 200 with a span carrying
/// <c>http.response.*</c> attributes is a hit, 404 a miss. Every call has a hard deadline
/// (<c>fallback_timeout_ms</c>, else <c>async_timeout_ms</c>) and goes through the exporter's
/// circuit breaker, so a backend that is down costs one fast refusal, not a timeout per request.
/// </summary>
public sealed partial class RemoteLookup : IDisposable
{
    /// <summary>The lookup path under <c>sp_backend_url</c>.</summary>
    public const string LookupPath = "v1/agent/lookup";

    private const int MaxResponseBytes = 16 * 1024 * 1024;

    private readonly HttpClient _http;
    private readonly BackendCircuitBreaker _breaker;
    private readonly AgentMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string? _publicKey;
    private readonly TimeSpan _deadline;

    internal RemoteLookup(
        AgentOptions options,
        BackendCircuitBreaker breaker,
        AgentMetrics metrics,
        TimeProvider time,
        ILogger logger,
        HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _breaker = breaker;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _publicKey = string.IsNullOrEmpty(options.PublicKey) ? null : options.PublicKey;
        _deadline = TimeSpan.FromMilliseconds(options.FallbackTimeoutMs ?? options.AsyncTimeoutMs);
        Endpoint = BackendHttp.Endpoint(options.SpBackendUrl, LookupPath);
        _http = BackendHttp.CreateClient(options, handler, MaxResponseBytes);
    }

    /// <summary>Where lookups are posted.</summary>
    public Uri Endpoint { get; }

    /// <summary>
    /// Asks the backend for a recorded response to <paramref name="request"/>. Never throws for a
    /// backend problem: those are <see cref="LookupStatus.Failed"/>, counted in
    /// <c>sp_lookup_failures_total</c>. Cancelling <paramref name="cancellationToken"/> (the
    /// caller's own deadline) is a failure too.
    /// </summary>
    public async ValueTask<(LookupStatus Status, CachedResponse? Response)> LookupAsync(Exchange request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!_breaker.TryAcquire(out var isTrial, out _))
        {
            _metrics.LookupFailures("circuit_open").Inc();
            return (LookupStatus.Failed, null);
        }

        var started = _time.GetTimestamp();
        var result = BackendCircuitBreaker.CallResult.Failure;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_deadline);
        try
        {
            // Encoded by the agent's one span encoder, as an export is.
            using var content = new ByteArrayContent(OtlpSpanWriter.ToByteArray([request], _publicKey, OtlpExporter.Version));
            content.Headers.ContentType = new MediaTypeHeaderValue(OtlpExporter.ProtobufMediaType);
            using var message = new HttpRequestMessage(HttpMethod.Post, Endpoint) { Content = content };
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseContentRead, deadline.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status == 404)
            {
                result = BackendCircuitBreaker.CallResult.Success;
                return (LookupStatus.Miss, null);
            }

            if (status != 200)
            {
                // 401/403 are the operator's problem, not the backend's health: they do not open the circuit.
                result = status >= 500 || status == 429 ? BackendCircuitBreaker.CallResult.Failure : BackendCircuitBreaker.CallResult.Success;
                _metrics.LookupFailures("bad_response").Inc();
                Log.LookupRefused(_logger, status);
                return (LookupStatus.Failed, null);
            }

            result = BackendCircuitBreaker.CallResult.Success;
            var body = await response.Content.ReadAsByteArrayAsync(deadline.Token).ConfigureAwait(false);
            var answer = Parse(body, response.Content.Headers.ContentType?.MediaType);
            if (answer is null)
            {
                _metrics.LookupFailures("bad_response").Inc();
                return (LookupStatus.Failed, null);
            }

            return (LookupStatus.Hit, answer);
        }
        catch (OperationCanceledException)
        {
            _metrics.LookupFailures("timeout").Inc();
            return (LookupStatus.Failed, null);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            _metrics.LookupFailures("error").Inc();
            Log.LookupFailed(_logger, Endpoint, ex.Message);
            return (LookupStatus.Failed, null);
        }
        finally
        {
            _breaker.Record(isTrial, result);
            _metrics.LookupDuration.Observe(_time.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>
    /// The recorded response in a lookup answer: the first span's status, response headers and
    /// body, or null when the answer holds no span with a status.
    /// </summary>
    public static CachedResponse? Parse(ReadOnlySpan<byte> body, string? mediaType)
    {
        ExportTraceServiceRequest request;
        try
        {
            request = mediaType is not null && mediaType.Contains("json", StringComparison.OrdinalIgnoreCase)
                ? OtlpJson.Parse<ExportTraceServiceRequest>(body)
                : ExportTraceServiceRequest.Parser.ParseFrom(body);
        }
        catch (Exception ex) when (ex is Google.Protobuf.InvalidProtocolBufferException or FormatException or System.Text.Json.JsonException)
        {
            return null;
        }

        foreach (var resource in request.ResourceSpans)
        {
            foreach (var scope in resource.ScopeSpans)
            {
                foreach (var span in scope.Spans)
                {
                    var exchange = ExchangeSpanMapper.FromSpan(span, resource.Resource);
                    if (exchange.StatusCode is null)
                    {
                        continue;
                    }

                    return CachedResponse.From(exchange, null);
                }
            }
        }

        return null;
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Cache lookup refused by the backend with HTTP {Status}; answering from the upstream")]
        public static partial void LookupRefused(ILogger logger, int status);

        [LoggerMessage(2, LogLevel.Debug, "Cache lookup to {Endpoint} failed: {Reason}")]
        public static partial void LookupFailed(ILogger logger, Uri endpoint, string reason);
    }
}
