using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Model;
using SpIstio.Core.Streams;
using SpIstio.Core.Tracing;
using Yarp.ReverseProxy.Forwarder;

namespace SpIstio.Agent.Proxy;

/// <summary>
/// The YARP adapter of one captured exchange: the forwarder's transformer (injects the trace
/// headers, records the response head) and the upgrade hook, feeding the exchange's
/// <see cref="ExchangeCapture"/>, which the tee streams fill and which owns every buffer. One object
/// per captured request, so the transformer and the adapter state cost a single allocation.
/// </summary>
internal sealed class ProxyExchange : HttpTransformer, IHttpUpgradeFeature
{
    private const string TransferEncoding = "Transfer-Encoding";

    private readonly TimeProvider _time;
    private IHttpUpgradeFeature? _innerUpgrade;
    private ITimer? _deadline;
    private bool _upgraded;

    public ProxyExchange(ExchangeCapture capture, TimeProvider time)
    {
        Capture = capture;
        _time = time;
    }

    /// <summary>The exchange's lifecycle.</summary>
    public ExchangeCapture Capture { get; }

    /// <summary>The exchange being filled in.</summary>
    public Exchange Exchange => Capture.Exchange;

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
        _upgraded = true;
        return new UpgradedTeeStream(stream, this);
    }

    public void AppendRequest(ReadOnlySpan<byte> bytes)
    {
        Capture.AppendRequestBody(bytes);
        FinishIfClosed();
    }

    public void AppendResponse(ReadOnlySpan<byte> bytes)
    {
        Capture.AppendResponseBody(bytes);
        FinishIfClosed();
    }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        // The default transform copies the request head without hop-by-hop fields (RFC 9110 §7.6.1).
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        ForwardedHeaders.Apply(httpContext, proxyRequest);
        var headers = proxyRequest.Headers;
        var trace = Capture.Trace;
        // The forwarder's own trace propagation is off (CaptureProxyServer): only the client's fields
        // can be there. Whether the client sent them is read from the exchange's copy of its head (a
        // few fields, compared by length first) rather than Kestrel's, where a name it does not know
        // is hashed ignoring case for each lookup.
        var sent = Exchange.RequestHeaders;
        ForwardedHeaders.Replace(headers, sent.Contains(TraceParent.HeaderName), TraceParent.HeaderName, trace.TraceParent);
        ForwardedHeaders.Replace(headers, sent.Contains(TraceState.HeaderName), TraceState.HeaderName, trace.TraceState);
        ForwardedHeaders.Replace(headers, sent.Contains(HopCounter.HeaderName), HopCounter.HeaderName, HopCounter.Format(trace.HopCount));
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var result = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        if (proxyResponse is null)
        {
            return result;
        }

        Capture.RecordResponseHead((int)proxyResponse.StatusCode, proxyResponse, static (response, target) =>
        {
            // Room for the head, and over HTTP/2 for a gRPC call's trailers (grpc-status, grpc-message),
            // so the list is allocated once; an HTTP/1.x response rarely has trailers (a chunked one
            // may: the list grows then), and the two slots would be 32 bytes on every exchange.
            var trailerRoom = response.Version.Major >= 2 ? 2 : 0;
            target.EnsureCapacity(target.Count + response.Headers.NonValidated.Count + response.Content.Headers.NonValidated.Count + trailerRoom);
            CopyHeaders(response.Headers, target);
            CopyHeaders(response.Content.Headers, target);
        });

        if (IsLongLived(proxyResponse, Exchange.ResponseHeaders))
        {
            ArmDeadline();
        }

        return result;
    }

    public override ValueTask TransformResponseTrailersAsync(HttpContext httpContext, HttpResponseMessage proxyResponse, CancellationToken cancellationToken)
    {
        // An HTTP/1.x response carries trailers only after a chunked body (RFC 9112 §7.1.2): for any
        // other there is nothing to pass on or keep, and the default's work is spent for nothing on
        // every such exchange: the trailers feature looked up, an empty trailer collection created
        // on each side, this method's state machine (~0.6 % of the capture proxy's CPU at 1 KiB).
        if (proxyResponse.Version.Major < 2 && !proxyResponse.Headers.NonValidated.Contains(TransferEncoding))
        {
            return default;
        }

        return CopyTrailersAsync(httpContext, proxyResponse, cancellationToken);
    }

    private async ValueTask CopyTrailersAsync(HttpContext httpContext, HttpResponseMessage proxyResponse, CancellationToken cancellationToken)
    {
        // The default passes the trailers on to the client (HTTP/2); the capture keeps them among
        // the response headers, as ext_proc does, which is where a gRPC call's status is read from.
        await base.TransformResponseTrailersAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        if (proxyResponse.TrailingHeaders.NonValidated.Count > 0)
        {
            Capture.RecordResponseHead<HttpHeaders>(null, proxyResponse.TrailingHeaders, static (trailers, target) => CopyHeaders(trailers, target));
        }
    }

    /// <summary>Finishes the capture (stream end, failure or the capture deadline; the first call wins).</summary>
    public void Finish(ExchangeOutcome outcome, string? error)
    {
        _deadline?.Dispose();
        Capture.Finish(outcome, error);
    }

    // A WebSocket's closing handshake ends the exchange, whenever the TCP connections get torn down.
    private void FinishIfClosed()
    {
        if (_upgraded && Capture.StreamClosed)
        {
            Finish(ExchangeOutcome.Completed, null);
        }
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

    // The content type is read from the head just copied into the exchange: HttpContentHeaders.ContentType
    // would parse it into a MediaTypeHeaderValue on every response (~0.5 % of the proxy's CPU at 1 KiB).
    private static bool IsLongLived(HttpResponseMessage response, HeaderList head) =>
        response.StatusCode == System.Net.HttpStatusCode.SwitchingProtocols
        || StreamSpanAttributes.IsEventStream(head.Get("content-type"));

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
