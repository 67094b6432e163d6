using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Model;
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
    private readonly ForwarderRequestConfig _http2RequestConfig;
    private readonly CaptureProxyOptions _options;
    private readonly CapturePipeline? _pipeline;
    private readonly AgentMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string? _upstreamPrefix;

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

        // What arrives on the h2c (gRPC) listener leaves as HTTP/2 whatever --http2-upstream says:
        // gRPC needs HTTP/2 end to end (trailers, full-duplex streams).
        _http2RequestConfig = _requestConfig with { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
    }

    private ForwarderRequestConfig RequestConfigFor(HttpContext context) =>
        HttpProtocol.IsHttp2(context.Request.Protocol) ? _http2RequestConfig : _requestConfig;

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
        var error = await _forwarder.SendAsync(context, prefix, _client, RequestConfigFor(context), PassThroughTransformer.Instance).ConfigureAwait(false);
        if (error != ForwarderError.None)
        {
            await OnErrorAsync(context, prefix, error).ConfigureAwait(false);
        }
    }

    private async Task ForwardCapturedAsync(HttpContext context, string prefix, CapturePipeline pipeline)
    {
        var request = context.Request;
        var forwardAuthority = _options.Forward ? AuthorityOf(prefix) : null;
        var exchange = new Exchange
        {
            Direction = _options.Direction,
            Method = request.Method,
            Scheme = _options.Forward ? SchemeOf(prefix) : request.Scheme,
            Authority = forwardAuthority ?? request.Host.Value ?? "",
            Path = request.Path.HasValue ? request.Path.Value! : "/",
            Query = request.QueryString.HasValue ? request.QueryString.Value![1..] : null,
            StartTime = _time.GetUtcNow(),
        };
        exchange.RequestHeaders.EnsureCapacity(request.Headers.Count);
        foreach (var header in request.Headers)
        {
            AddValues(exchange.RequestHeaders, header.Key, header.Value);
        }

        exchange.ServiceName = ServiceNameResolver.Resolve(pipeline.Options.ServiceName, exchange.RequestHeaders, null, null);
        using var capture = pipeline.Begin(exchange, _time);
        if (capture is null)
        {
            await ForwardPlainAsync(context, prefix).ConfigureAwait(false);
            return;
        }

        var adapter = new ProxyExchange(capture, _time) { CaptureDeadline = pipeline.StreamDeadline };
        var originalRequestBody = request.Body;
        var originalResponseBody = context.Response.Body;
        try
        {
            if (capture.MayShortCircuit && await TryShortCircuitAsync(context, adapter).ConfigureAwait(false))
            {
                return;
            }

            // An exchange whose bodies are not kept (not sampled, no cache rule) is not teed at all,
            // nor a request that cannot have a body (a GET, a HEAD): the forwarder never reads one.
            if (capture.KeepsBodies)
            {
                if (context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody != false)
                {
                    request.Body = new RequestTeeStream(request.Body, adapter);
                }

                context.Response.Body = new ResponseTeeStream(originalResponseBody, adapter);
                adapter.InterceptUpgrade(context);
            }

            var error = await _forwarder.SendAsync(context, prefix, _client, RequestConfigFor(context), adapter).ConfigureAwait(false);
            if (error == ForwarderError.None)
            {
                // Kestrel ends the response (HTTP/1.1: its last chunk and the flush; HTTP/2: the
                // stream, with a gRPC call's trailers) only when it completes, which is otherwise when
                // this handler returns: complete it first, so the client has its answer while the
                // capture is redacted and encoded, not after. An upgraded connection (101) has no
                // response left to end: the tunnel closing was its end.
                if (context.Response.StatusCode != StatusCodes.Status101SwitchingProtocols)
                {
                    // Kestrel's own body feature ends the response; the tee's (HttpResponse.Body's
                    // wrapper) would only flush. Setting the original stream back restores it.
                    RestoreResponseBody(context, originalResponseBody);
                    // The gRPC listener's stream bound counts this call until its client sees it end.
                    context.Features.Get<StreamLimit.Place>()?.GiveBack();
                    await context.Response.CompleteAsync().ConfigureAwait(false);
                }

                adapter.Finish(ExchangeOutcome.Completed, null);
                return;
            }

            var outcome = IsClientSide(error) ? ExchangeOutcome.Cancelled : ExchangeOutcome.Failed;
            var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
            adapter.Finish(outcome, exception is null ? error.ToString() : error.ToString() + ": " + exception.Message);
            await OnErrorAsync(context, prefix, error).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Whatever broke (the client went away while its body was read for the lookup, a broken
            // body, a fault), the exchange is still finished and counted; `using` returns its buffers.
            var outcome = ex is IOException or OperationCanceledException || context.RequestAborted.IsCancellationRequested
                ? ExchangeOutcome.Cancelled
                : ExchangeOutcome.Failed;
            adapter.Finish(outcome, "request not completed: " + ex.Message);
            throw;
        }
        finally
        {
            request.Body = originalRequestBody;
            RestoreResponseBody(context, originalResponseBody);
        }
    }

    // Setting HttpResponse.Body back to the stream the tee wrapped reinstates the server's own body
    // feature; setting it when it was never replaced (an exchange not teed, or already restored)
    // would instead wrap that feature in a new one, which allocates and whose completion only flushes.
    private static void RestoreResponseBody(HttpContext context, Stream original)
    {
        if (!ReferenceEquals(context.Response.Body, original))
        {
            context.Response.Body = original;
        }
    }

    /// <summary>
    /// Asks the recorded-response seam before forwarding, through the exchange's lifecycle (the
    /// deadline and fault policy are <see cref="ShortCircuitPolicy"/>'s). A body-keyed cache
    /// (<see cref="IRequestBodyKeyed"/>) gets the request body read ahead, up to the capture limit:
    /// on a miss it is replayed to the upstream ahead of the rest; over the limit the lookup sees a
    /// truncated body, which the cache cannot key (a miss, or a refusal in replay_only). True when
    /// the agent answered.
    /// </summary>
    private async ValueTask<bool> TryShortCircuitAsync(HttpContext context, ProxyExchange adapter)
    {
        var capture = adapter.Capture;
        var request = context.Request;
        if (_pipeline!.ShortCircuit is IRequestBodyKeyed
            && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true)
        {
            var (buffered, complete) = await capture.ReadRequestBodyAheadAsync(request.Body, context.RequestAborted).ConfigureAwait(false);
            request.Body = new PrefixedStream(buffered, complete ? null : request.Body);
        }

        var answer = await capture.TryShortCircuitAsync(null, ex => Log.ShortCircuitFailed(_logger, ex), context.RequestAborted).ConfigureAwait(false);
        if (answer is null)
        {
            return false;
        }

        try
        {
            await ShortCircuitWriter.WriteAsync(context.Response, answer, context.RequestAborted).ConfigureAwait(false);
            adapter.Finish(ExchangeOutcome.Completed, null);
        }
        catch (OperationCanceledException)
        {
            adapter.Finish(ExchangeOutcome.Cancelled, "client went away");
        }

        return true;
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
