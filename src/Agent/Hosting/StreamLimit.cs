using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SpIstio.Core.Metrics;

namespace SpIstio.Agent.Hosting;

/// <summary>
/// The most HTTP/2 streams (gRPC calls) a gRPC listener serves at once, across all its
/// connections; one more is answered at once with gRPC <c>UNAVAILABLE</c> (any other HTTP/2
/// request: <c>503</c> with <c>Retry-After</c>) instead of being served.
/// Middleware, first in the request pipeline.
/// </summary>
/// <remarks>
/// Why: what an open stream holds (Kestrel's stream and its pipes, the gRPC call, the exchange's
/// objects, the message being received) is outside the capture byte budget, and the agent caps its
/// managed heap, so the cap counts an allowance for each stream this bound admits. Kestrel's own
/// <c>Http2.MaxStreamsPerConnection</c> bounds one connection only (a client over it gets
/// <c>RST_STREAM REFUSED_STREAM</c>); this one bounds them all together.
/// <para>
/// Why <c>UNAVAILABLE</c> in a trailers-only answer: it is what every gRPC client reports, and
/// retries under a retry policy, for a server that cannot take the call now; the message names the
/// key. Envoy's ext_proc filter treats it as a failed stream: with <c>failure_mode_allow: true</c>
/// (the project's manifests) the HTTP request goes on uncaptured, without it Envoy answers 500.
/// The answer is written before the request is read, and the refused stream holds nothing after it.
/// </para>
/// </remarks>
internal sealed partial class StreamLimit
{
    private const string Unavailable = "14";

    private readonly ConcurrencyBound _bound;
    private readonly string _message;
    private readonly string _key;
    private readonly string _refusedMetric;
    private readonly ILogger _logger;

    /// <param name="max">The bound, at least 1.</param>
    /// <param name="who">The command named in the refusal (<c>sp agent extproc</c>).</param>
    /// <param name="key">The configuration key of the bound, named in the refusal and the log.</param>
    /// <param name="open">Gauge of the streams served now.</param>
    /// <param name="refused">Counter of the streams refused.</param>
    /// <param name="refusedMetric">The name <paramref name="refused"/> is published under, for the log.</param>
    /// <param name="logger">Where the first refusal of an episode is logged.</param>
    public StreamLimit(int max, string who, string key, Gauge open, Counter refused, string refusedMetric, ILogger logger)
    {
        _bound = new ConcurrencyBound(max, open, refused);
        _key = key;
        _message = $"{who}: too many open streams ({key}), retry";
        _refusedMetric = refusedMetric;
        _logger = logger;
    }

    /// <summary>The middleware: serves the stream through <paramref name="next"/> while under the bound.</summary>
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (!_bound.TryEnter(out var firstRefusal))
        {
            if (firstRefusal)
            {
                Log.Refusing(_logger, _bound.Max, _key, _refusedMetric);
            }

            var response = context.Response;
            if (context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true)
            {
                // Trailers-only: the status travels in the one HEADERS frame that ends the stream.
                response.StatusCode = StatusCodes.Status200OK;
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = Unavailable;
                response.Headers["grpc-message"] = _message;
                return;
            }

            // Not a gRPC call (the capture proxy's h2c listener passes any HTTP/2 request): a plain 503.
            response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            response.ContentType = "text/plain; charset=utf-8";
            response.Headers.RetryAfter = "1";
            await response.WriteAsync(_message + "\n", context.RequestAborted).ConfigureAwait(false);
            return;
        }

        var place = new Place(_bound);
        context.Features.Set(place);
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            place.GiveBack();
        }
    }

    /// <summary>
    /// A served stream's place under the bound, on its <see cref="HttpContext.Features"/>: a handler
    /// that ends the response before its own work is done gives the place back just before, so the
    /// bound counts the streams the clients see open. Kestrel gives a connection's stream back to
    /// the client's SETTINGS_MAX_CONCURRENT_STREAMS when the response ends, not when the handler
    /// returns: a place held past that end (the capture proxy's redaction and span encode after a
    /// gRPC call's trailers) refused, with UNAVAILABLE, the next call of a client that had kept to
    /// the limit on its one connection. What runs after is synchronous work on a pool thread, and
    /// Kestrel refuses a connection's streams past twice its limit while handlers still run.
    /// </summary>
    internal sealed class Place(ConcurrencyBound bound)
    {
        private int _givenBack;

        /// <summary>Gives the place back; once, whoever calls first (the handler or the middleware).</summary>
        public void GiveBack()
        {
            if (Interlocked.Exchange(ref _givenBack, 1) == 0)
            {
                bound.Exit();
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(21, LogLevel.Warning, "{Max} streams are open ({Key}): new ones are answered UNAVAILABLE until one ends, counted in {Metric}")]
        public static partial void Refusing(ILogger logger, int max, string key, string metric);
    }
}
