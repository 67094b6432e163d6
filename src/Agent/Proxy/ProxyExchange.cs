using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Capture;
using SpIstio.Core.Model;
using SpIstio.Core.Tracing;
using Yarp.ReverseProxy.Forwarder;

namespace SpIstio.Agent.Proxy;

/// <summary>
/// One captured exchange going through the proxy: its <see cref="Exchange"/>, the two bounded body
/// buffers the tee streams fill, and the transformer that injects the trace headers and records
/// the response head. One object per captured request, so the forwarder's transformer and the
/// capture state cost a single allocation.
/// </summary>
/// <remarks>
/// Bytes are appended from the forwarding task; a long stream may instead be finalised by the
/// capture deadline on a timer thread, so appends and the finalisation share a lock (uncontended
/// in the common case, where the stream ends before its deadline).
/// </remarks>
internal sealed class ProxyExchange : HttpTransformer, IHttpUpgradeFeature
{
    private readonly CapturePipeline _pipeline;
    private readonly TimeProvider _time;
    private readonly PropagationResult _trace;
    private readonly BodyCaptureBuffer _requestBody;
    private readonly BodyCaptureBuffer _responseBody;
    private readonly Lock _gate = new();
    private IHttpUpgradeFeature? _innerUpgrade;
    private ITimer? _deadline;
    private bool _finished;

    public ProxyExchange(CapturePipeline pipeline, TimeProvider time, Exchange exchange, PropagationResult trace)
    {
        _pipeline = pipeline;
        _time = time;
        Exchange = exchange;
        _trace = trace;
        _requestBody = new BodyCaptureBuffer(pipeline.MaxRequestBodyBytes);
        _responseBody = new BodyCaptureBuffer(pipeline.MaxResponseBodyBytes);
    }

    /// <summary>The exchange being filled in.</summary>
    public Exchange Exchange { get; }

    bool IHttpUpgradeFeature.IsUpgradableRequest => _innerUpgrade?.IsUpgradableRequest == true;

    /// <summary>Makes upgraded connections (WebSockets) pass through <see cref="UpgradedTeeStream"/>.</summary>
    public void InterceptUpgrade(HttpContext context)
    {
        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        if (upgrade is { IsUpgradableRequest: true })
        {
            _innerUpgrade = upgrade;
            context.Features.Set<IHttpUpgradeFeature>(this);
        }
    }

    async Task<Stream> IHttpUpgradeFeature.UpgradeAsync()
    {
        var stream = await _innerUpgrade!.UpgradeAsync().ConfigureAwait(false);
        return new UpgradedTeeStream(stream, this);
    }

    public void AppendRequest(ReadOnlySpan<byte> bytes)
    {
        lock (_gate)
        {
            if (!_finished)
            {
                _requestBody.Append(bytes);
            }
        }
    }

    public void AppendResponse(ReadOnlySpan<byte> bytes)
    {
        lock (_gate)
        {
            if (!_finished)
            {
                _responseBody.Append(bytes);
            }
        }
    }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        // The default transform copies the request head without hop-by-hop fields (RFC 9110 §7.6.1).
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        ForwardedHeaders.Apply(httpContext, proxyRequest);
        var headers = proxyRequest.Headers;
        Replace(headers, TraceParent.HeaderName, _trace.TraceParent);
        Replace(headers, TraceState.HeaderName, _trace.TraceState);
        Replace(headers, HopCounter.HeaderName, HopCounter.Format(_trace.HopCount));
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var result = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        if (proxyResponse is null)
        {
            return result;
        }

        lock (_gate)
        {
            Exchange.StatusCode = (int)proxyResponse.StatusCode;
            CopyHeaders(proxyResponse.Headers, Exchange.ResponseHeaders);
            CopyHeaders(proxyResponse.Content.Headers, Exchange.ResponseHeaders);
        }

        if (IsLongLived(proxyResponse))
        {
            ArmDeadline();
        }

        return result;
    }

    /// <summary>
    /// Records the response of a short-circuit answer instead of an upstream's (status, headers and
    /// x-sp-cache through <see cref="ShortCircuitPolicy.RecordHit"/>); true when x-sp-cache was added.
    /// </summary>
    public bool RecordAnswer(ShortCircuitResponse answer)
    {
        lock (_gate)
        {
            _responseBody.Append(answer.Body.Span);
            return ShortCircuitPolicy.RecordHit(Exchange, answer);
        }
    }

    /// <summary>
    /// Ends the capture: completes both bodies, stamps the end time and outcome, and hands the
    /// exchange to the pipeline. Only the first call (stream end or deadline) does anything.
    /// </summary>
    public void Finish(ExchangeOutcome outcome, string? error)
    {
        lock (_gate)
        {
            if (_finished)
            {
                return;
            }

            _finished = true;
        }

        _deadline?.Dispose();
        var exchange = Exchange;
        exchange.EndTime = _time.GetUtcNow();
        exchange.Outcome = outcome;
        exchange.Error = error;
        exchange.RequestBody = _requestBody.Complete(
            exchange.RequestHeaders.Get("content-type"),
            exchange.RequestHeaders.Get("content-encoding"),
            _pipeline.MaxDecodedBodyBytes);
        exchange.ResponseBody = _responseBody.Complete(
            exchange.ResponseHeaders.Get("content-type"),
            exchange.ResponseHeaders.Get("content-encoding"),
            _pipeline.MaxDecodedBodyBytes);
        _pipeline.Complete(exchange, TraceSampler.ShouldSample(exchange.TraceId, _pipeline.SamplingRatio));
    }

    private void ArmDeadline()
    {
        var after = CaptureDeadline;
        if (after <= TimeSpan.Zero || after == Timeout.InfiniteTimeSpan)
        {
            return;
        }

        _deadline = _time.CreateTimer(
            static state => ((ProxyExchange)state!).Finish(ExchangeOutcome.TimedOut, "stream still open at the capture deadline"),
            this,
            after,
            Timeout.InfiniteTimeSpan);
    }

    /// <summary>How long a streamed response (SSE, upgrade) is followed before it is exported as it is.</summary>
    public TimeSpan CaptureDeadline { get; init; }

    private static bool IsLongLived(HttpResponseMessage response)
    {
        if (response.StatusCode == System.Net.HttpStatusCode.SwitchingProtocols)
        {
            return true;
        }

        var mediaType = response.Content.Headers.ContentType?.MediaType;
        return mediaType is not null && mediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase);
    }

    private static void Replace(HttpRequestHeaders headers, string name, string value)
    {
        headers.Remove(name);
        headers.TryAddWithoutValidation(name, value);
    }

    private static void CopyHeaders(HttpHeaders source, HeaderList target)
    {
        foreach (var header in source.NonValidated)
        {
            foreach (var value in header.Value)
            {
                target.Add(header.Key, value);
            }
        }
    }
}
