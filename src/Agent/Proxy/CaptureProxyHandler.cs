using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Rules;
using SpIstio.Core.Services;
using Yarp.ReverseProxy.Forwarder;

namespace SpIstio.Agent.Proxy;

/// <summary>
/// The proxy's only request handler: picks the destination (the upstream, or the absolute-form
/// target in forward mode), asks the pipeline whether to capture, and forwards through YARP with
/// or without the capture tee. CONNECT in forward mode becomes a raw tunnel.
/// </summary>
internal sealed partial class CaptureProxyHandler
{
    /// <summary>The header marking a response given by the short-circuit seam instead of the upstream.</summary>
    public const string CacheHeader = ShortCircuitPolicy.CacheHeader;

    private readonly IHttpForwarder _forwarder;
    private readonly HttpMessageInvoker _client;
    private readonly ForwarderRequestConfig _requestConfig;
    private readonly CaptureProxyOptions _options;
    private readonly CapturePipeline? _pipeline;
    private readonly AgentMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string? _upstreamPrefix;
    private readonly TimeSpan _shortCircuitTimeout;
    private readonly bool _shortCircuitEnabled;

    public CaptureProxyHandler(
        IHttpForwarder forwarder,
        HttpMessageInvoker client,
        CaptureProxyOptions options,
        CapturePipeline? pipeline,
        AgentMetrics metrics,
        TimeProvider time,
        ILogger logger)
    {
        _forwarder = forwarder;
        _client = client;
        _options = options;
        _pipeline = options.Capture ? pipeline : null;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _upstreamPrefix = options.Upstream is null ? null : options.Upstream.GetLeftPart(UriPartial.Authority);
        _requestConfig = new ForwarderRequestConfig
        {
            ActivityTimeout = options.ActivityTimeout,
            Version = options.Http2Upstream ? HttpVersion.Version20 : HttpVersion.Version11,
            // h2c has no upgrade path from HTTP/1.1 in HttpClient: HTTP/2 to an http:// upstream
            // must be prior knowledge, which only RequestVersionExact gives.
            VersionPolicy = options.Http2Upstream ? HttpVersionPolicy.RequestVersionExact : HttpVersionPolicy.RequestVersionOrLower,
        };

        var agent = pipeline?.Options;
        _shortCircuitEnabled = _pipeline is not null && !ReferenceEquals(_pipeline.ShortCircuit, NoShortCircuit.Instance);
        _shortCircuitTimeout = ShortCircuitPolicy.Deadline(agent ?? new AgentOptions());
    }

    public Task InvokeAsync(HttpContext context)
    {
        string prefix;
        if (_options.Forward)
        {
            if (HttpMethods.IsConnect(context.Request.Method))
            {
                // Tunnels are opened by ConnectTunnel below HTTP, on a connection's first request.
                context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
                context.Response.ContentType = "text/plain; charset=utf-8";
                return context.Response.WriteAsync("sp agent proxy: send CONNECT as the first request of a new connection\n", context.RequestAborted);
            }

            if (!TryGetAbsoluteTarget(context, out prefix))
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                context.Response.ContentType = "text/plain; charset=utf-8";
                return context.Response.WriteAsync("sp agent proxy: a forward proxy needs absolute-form request targets (GET http://host/path)\n", context.RequestAborted);
            }
        }
        else
        {
            prefix = _upstreamPrefix!;
        }

        return _pipeline is null ? ForwardPlainAsync(context, prefix) : ForwardCapturedAsync(context, prefix, _pipeline);
    }

    private async Task ForwardPlainAsync(HttpContext context, string prefix)
    {
        var error = await _forwarder.SendAsync(context, prefix, _client, _requestConfig, PassThroughTransformer.Instance).ConfigureAwait(false);
        if (error != ForwarderError.None)
        {
            await OnErrorAsync(context, prefix, error).ConfigureAwait(false);
        }
    }

    private async Task ForwardCapturedAsync(HttpContext context, string prefix, CapturePipeline pipeline)
    {
        var request = context.Request;
        var headers = new HeaderList();
        foreach (var header in request.Headers)
        {
            AddValues(headers, header.Key, header.Value);
        }

        var forwardAuthority = _options.Forward ? AuthorityOf(prefix) : null;
        var authority = forwardAuthority ?? request.Host.Value ?? "";
        var path = request.Path.HasValue ? request.Path.Value! : "/";
        var decision = pipeline.Decide(_options.Direction, request.Method, authority, path, headers);
        if (decision != CaptureDecision.Capture)
        {
            await ForwardPlainAsync(context, prefix).ConfigureAwait(false);
            return;
        }

        var trace = pipeline.StartTrace(headers);
        var exchange = new Exchange
        {
            Direction = _options.Direction,
            ServiceName = ServiceNameResolver.Resolve(pipeline.Options.ServiceName, headers, null, null),
            Method = request.Method,
            Scheme = _options.Forward ? SchemeOf(prefix) : request.Scheme,
            Authority = authority,
            Path = path,
            Query = request.QueryString.HasValue ? request.QueryString.Value![1..] : null,
            StartTime = _time.GetUtcNow(),
            TraceId = trace.TraceId,
            SpanId = trace.SpanId,
            ParentSpanId = trace.ParentSpanId,
            SessionId = trace.SessionId,
        };
        foreach (var header in headers)
        {
            exchange.RequestHeaders.Add(header.Key, header.Value);
        }

        var capture = new ProxyExchange(pipeline, _time, exchange, trace) { CaptureDeadline = _options.StreamCaptureDeadline };
        var originalRequestBody = request.Body;
        if (_shortCircuitEnabled)
        {
            var body = ReadOnlyMemory<byte>.Empty;
            var lookup = true;
            if (pipeline.ShortCircuit is IRequestBodyKeyed keyed
                && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true
                && keyed.NeedsRequestBody(exchange))
            {
                ReadOnlyMemory<byte> buffered;
                bool complete;
                try
                {
                    (buffered, complete) = await BufferRequestBodyAsync(originalRequestBody, pipeline.MaxRequestBodyBytes, context.RequestAborted).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException or BadHttpRequestException)
                {
                    // The client went away (or sent a broken body) before the lookup: the exchange
                    // is still finished and counted, and its capture buffers go back to the pool.
                    capture.Finish(ExchangeOutcome.Cancelled, "request body not received: " + ex.Message);
                    throw;
                }

                body = buffered;

                // Over the capture limit the body cannot be keyed exactly: no lookup, and the
                // upstream gets the buffered prefix followed by the rest, streamed as before.
                lookup = complete;
                request.Body = new PrefixedStream(buffered, complete ? null : originalRequestBody);
                if (complete)
                {
                    using var keyBuffer = new BodyCaptureBuffer(buffered.Length);
                    keyBuffer.Append(buffered.Span);
                    exchange.RequestBody = keyBuffer.Complete(
                        exchange.RequestHeaders.Get("content-type"),
                        exchange.RequestHeaders.Get("content-encoding"),
                        pipeline.MaxDecodedBodyBytes);
                }
            }

            if (lookup && await TryShortCircuitAsync(context, pipeline, capture, body).ConfigureAwait(false))
            {
                request.Body = originalRequestBody;
                return;
            }
        }

        var upstreamRequestBody = request.Body;
        var originalResponseBody = context.Response.Body;
        request.Body = new RequestTeeStream(upstreamRequestBody, capture);
        context.Response.Body = new ResponseTeeStream(originalResponseBody, capture);
        capture.InterceptUpgrade(context);

        ForwarderError error;
        try
        {
            error = await _forwarder.SendAsync(context, prefix, _client, _requestConfig, capture).ConfigureAwait(false);
        }
        finally
        {
            request.Body = originalRequestBody;
            context.Response.Body = originalResponseBody;
        }

        if (error == ForwarderError.None)
        {
            capture.Finish(ExchangeOutcome.Completed, null);
            return;
        }

        var outcome = IsClientSide(error) ? ExchangeOutcome.Cancelled : ExchangeOutcome.Failed;
        var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        capture.Finish(outcome, exception is null ? error.ToString() : error.ToString() + ": " + exception.Message);
        await OnErrorAsync(context, prefix, error).ConfigureAwait(false);
    }

    /// <summary>
    /// Asks the recorded-response seam before forwarding, under <see cref="ShortCircuitPolicy"/>
    /// (deadline <c>fallback_timeout_ms</c>, else <c>async_timeout_ms</c>; a fault or timeout is a miss).
    /// The lookup sees the request head, plus the body when a body-keyed short-circuit asked for
    /// it (<see cref="IRequestBodyKeyed"/>): then <paramref name="requestBody"/> holds the buffered
    /// body, which is replayed to the upstream on a miss and captured here on a hit.
    /// </summary>
    private async ValueTask<bool> TryShortCircuitAsync(HttpContext context, CapturePipeline pipeline, ProxyExchange capture, ReadOnlyMemory<byte> requestBody)
    {
        var answer = await ShortCircuitPolicy.AskAsync(
            pipeline,
            capture.Exchange,
            _shortCircuitTimeout,
            ex => Log.ShortCircuitFailed(_logger, ex),
            context.RequestAborted).ConfigureAwait(false);
        if (answer is null)
        {
            return false;
        }

        var response = context.Response;
        response.StatusCode = answer.StatusCode;
        foreach (var header in answer.Headers)
        {
            response.Headers.Append(header.Key, header.Value);
        }

        if (capture.RecordAnswer(answer))
        {
            response.Headers[ShortCircuitPolicy.CacheHeader] = ShortCircuitPolicy.CacheHitValue;
        }

        response.ContentLength = answer.Body.Length;
        capture.AppendRequest(requestBody.Span);
        try
        {
            await response.Body.WriteAsync(answer.Body, context.RequestAborted).ConfigureAwait(false);
            capture.Finish(ExchangeOutcome.Completed, null);
        }
        catch (OperationCanceledException)
        {
            capture.Finish(ExchangeOutcome.Cancelled, "client went away");
        }

        return true;
    }

    /// <summary>
    /// Reads the request body up to <paramref name="limit"/> bytes, plus one byte to tell a body of
    /// exactly the limit from a longer one. Returns what was read and whether that is the whole body.
    /// </summary>
    private static async ValueTask<(ReadOnlyMemory<byte> Body, bool Complete)> BufferRequestBodyAsync(Stream body, int limit, CancellationToken cancellationToken)
    {
        var buffer = new byte[Math.Min(limit + 1, 16 * 1024)];
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (buffer.Length > limit)
                {
                    return (buffer.AsMemory(0, length), false);
                }

                Array.Resize(ref buffer, (int)Math.Min((long)limit + 1, (long)buffer.Length * 2));
            }

            var read = await body.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return (buffer.AsMemory(0, length), true);
            }

            length += read;
        }
    }

    private async Task OnErrorAsync(HttpContext context, string prefix, ForwarderError error)
    {
        if (IsClientSide(error))
        {
            return;
        }

        _metrics.ProxyUpstreamErrors.Inc();
        var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        Log.UpstreamFailed(_logger, prefix, error, exception);

        // YARP has set 502/504 but sent nothing yet: say which upstream failed, so the person
        // looking at the client's error does not have to guess which hop broke.
        var response = context.Response;
        if (!response.HasStarted && response.StatusCode >= 500 && !context.RequestAborted.IsCancellationRequested)
        {
            response.ContentType = "text/plain; charset=utf-8";
            var reason = error == ForwarderError.RequestTimedOut ? "timed out" : "unreachable";
            var message = string.Create(
                CultureInfo.InvariantCulture,
                $"sp agent proxy: upstream {prefix} {reason} ({exception?.Message ?? error.ToString()})\n");
            await response.WriteAsync(message, context.RequestAborted).ConfigureAwait(false);
        }
    }

    private static bool IsClientSide(ForwarderError error) => error switch
    {
        ForwarderError.RequestCanceled
            or ForwarderError.RequestBodyCanceled
            or ForwarderError.RequestBodyClient
            or ForwarderError.ResponseBodyCanceled
            or ForwarderError.ResponseBodyClient
            or ForwarderError.UpgradeRequestCanceled
            or ForwarderError.UpgradeRequestClient
            or ForwarderError.UpgradeResponseCanceled
            or ForwarderError.UpgradeResponseClient => true,
        _ => false,
    };

    /// <summary>
    /// The <c>scheme://authority</c> of an absolute-form target. Kestrel keeps the target as sent
    /// in <see cref="IHttpRequestFeature.RawTarget"/> and splits the path and query out of it.
    /// </summary>
    private static bool TryGetAbsoluteTarget(HttpContext context, out string prefix)
    {
        prefix = "";
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (raw is null)
        {
            return false;
        }

        int authorityStart;
        if (raw.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            authorityStart = 7;
        }
        else if (raw.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            authorityStart = 8;
        }
        else
        {
            return false;
        }

        var end = raw.AsSpan(authorityStart).IndexOfAny('/', '?');
        var length = end < 0 ? raw.Length : authorityStart + end;
        if (length == authorityStart)
        {
            return false;
        }

        prefix = raw[..length];
        return true;
    }

    private static string AuthorityOf(string prefix) => prefix[(prefix.IndexOf("://", StringComparison.Ordinal) + 3)..];

    private static string SchemeOf(string prefix) => prefix[..prefix.IndexOf("://", StringComparison.Ordinal)].ToLowerInvariant();

    private static void AddValues(HeaderList headers, string name, StringValues values)
    {
        if (values.Count == 1)
        {
            headers.Add(name, values[0]!);
            return;
        }

        for (var i = 0; i < values.Count; i++)
        {
            headers.Add(name, values[i]!);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Upstream {Upstream} failed: {Error}")]
        public static partial void UpstreamFailed(ILogger logger, string upstream, ForwarderError error, Exception? exception);

        [LoggerMessage(2, LogLevel.Warning, "Response short-circuit failed; forwarding to the upstream")]
        public static partial void ShortCircuitFailed(ILogger logger, Exception exception);
    }
}
