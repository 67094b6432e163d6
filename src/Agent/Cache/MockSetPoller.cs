using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Cache;

/// <summary>How one mock-set pull ended.</summary>
public enum MockPullResult
{
    /// <summary>HTTP 200: the local set was replaced.</summary>
    Updated,

    /// <summary>HTTP 304 to our If-None-Match: the set is unchanged.</summary>
    NotModified,

    /// <summary>No usable answer (backend down, 5xx, refused, unreadable, circuit open); the last good set stays.</summary>
    Failed,
}

/// <summary>
/// <c>cache.pull_mocks</c>: pulls the service's mock set from
/// <c>GET {sp_backend_url}/v1/agent/mocks?service=…</c> every <c>cache.pull_interval_seconds</c>
/// (on the injected clock), sending the last ETag in If-None-Match, and hands each new set to
/// <see cref="TransparentCache.PulledMocks"/>. Calls go through the exporter's circuit breaker;
/// a failure keeps the last good set and is logged once until a pull succeeds again.
/// </summary>
public sealed partial class MockSetPoller : IAsyncDisposable
{
    /// <summary>The mock-set path under <c>sp_backend_url</c>.</summary>
    public const string MockSetPath = "v1/agent/mocks";

    private const int MaxResponseBytes = 64 * 1024 * 1024;

    private readonly TransparentCache _cache;
    private readonly HttpClient _http;
    private readonly BackendCircuitBreaker _breaker;
    private readonly AgentMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _service;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _deadline;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private bool _failing;

    internal MockSetPoller(
        AgentOptions options,
        TransparentCache cache,
        BackendCircuitBreaker breaker,
        AgentMetrics metrics,
        TimeProvider time,
        ILogger logger,
        HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _cache = cache;
        _breaker = breaker;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _service = options.ServiceName;
        _interval = TimeSpan.FromSeconds(options.Cache.PullIntervalSeconds);
        // A whole set may be large: the lookup deadline, but never less than ten seconds.
        _deadline = TimeSpan.FromMilliseconds(Math.Max(10_000, options.FallbackTimeoutMs ?? options.AsyncTimeoutMs));
        Endpoint = BackendHttp.Endpoint(options.SpBackendUrl, MockSetPath + "?service=" + Uri.EscapeDataString(_service));
        _http = BackendHttp.CreateClient(options, handler, MaxResponseBytes, DecompressionMethods.GZip | DecompressionMethods.Brotli);
    }

    /// <summary>Where the set is pulled from.</summary>
    public Uri Endpoint { get; }

    /// <summary>The ETag of the set held now; null until a pull succeeded.</summary>
    public string? ETag { get; private set; }

    /// <summary>Starts the loop: a pull now, then one every interval until disposed.</summary>
    public void Start()
    {
        _loop ??= Task.Run(() => RunAsync(_stop.Token));
    }

    /// <summary>
    /// Pulls once (pulls never overlap). Never throws for a backend problem: that is
    /// <see cref="MockPullResult.Failed"/>, counted in <c>sp_mock_pulls_total{result="failed"}</c>.
    /// </summary>
    public async Task<MockPullResult> PollAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var result = await PullAsync(cancellationToken).ConfigureAwait(false);
            switch (result)
            {
                case MockPullResult.Updated:
                    _metrics.MockPullsUpdated.Inc();
                    break;
                case MockPullResult.NotModified:
                    _metrics.MockPullsNotModified.Inc();
                    break;
                default:
                    _metrics.MockPullsFailed.Inc();
                    break;
            }

            if (result != MockPullResult.Failed && _failing)
            {
                _failing = false;
                Log.Recovered(_logger, Endpoint);
            }

            return result;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Stops the loop and releases the HTTP client.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            try
            {
                await _loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopping is the expected end of the loop.
            }
        }

        _stop.Dispose();
        _http.Dispose();
        _gate.Dispose();
    }

    private async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            await PollAsync(stop).ConfigureAwait(false);
            await Task.Delay(_interval, _time, stop).ConfigureAwait(false);
        }
    }

    private async Task<MockPullResult> PullAsync(CancellationToken cancellationToken)
    {
        if (!_breaker.TryAcquire(out var isTrial, out _))
        {
            Failed("the backend circuit is open");
            return MockPullResult.Failed;
        }

        var call = BackendCircuitBreaker.CallResult.Failure;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_deadline);
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, Endpoint);
            if (ETag is not null)
            {
                message.Headers.TryAddWithoutValidation("If-None-Match", ETag);
            }

            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseContentRead, deadline.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            // 401/403/400 are the operator's problem, not the backend's health: they do not open the circuit.
            call = status >= 500 || status == 429 ? BackendCircuitBreaker.CallResult.Failure : BackendCircuitBreaker.CallResult.Success;
            if (status == 304)
            {
                return MockPullResult.NotModified;
            }

            if (status != 200)
            {
                Failed("HTTP " + status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                return MockPullResult.Failed;
            }

            var body = await response.Content.ReadAsByteArrayAsync(deadline.Token).ConfigureAwait(false);
            var set = PulledMocks.Parse(body, _service);
            _cache.PulledMocks = set;
            _metrics.MockSetSize.Set(set.Count);
            ETag = response.Headers.TryGetValues("ETag", out var tags) ? tags.FirstOrDefault() : null;
            return MockPullResult.Updated;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Failed("no answer within " + _deadline.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) + " s");
            return MockPullResult.Failed;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException or FormatException)
        {
            Failed(ex.Message);
            return MockPullResult.Failed;
        }
        finally
        {
            _breaker.Record(isTrial, call);
        }
    }

    private void Failed(string reason)
    {
        // Once per outage: a backend that stays down must not log every interval.
        if (!_failing)
        {
            _failing = true;
            Log.PullFailed(_logger, Endpoint, reason);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Pulling the mock set from {Endpoint} failed ({Reason}); answering from the last good set until a pull succeeds")]
        public static partial void PullFailed(ILogger logger, Uri endpoint, string reason);

        [LoggerMessage(2, LogLevel.Information, "Pulling the mock set from {Endpoint} works again")]
        public static partial void Recovered(ILogger logger, Uri endpoint);
    }
}
