using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Agent.Cache;

/// <summary>
/// The agent's transparent cache, one implementation behind both the ext_proc service and the
/// capture proxy: it answers a request a <c>cache.rules</c> entry matches from the local store,
/// else (per rule) from the backend's lookup, and records cacheable responses as exchanges finish.
/// </summary>
/// <remarks>
/// <para>Single flight: the first miss for a key becomes the key's leader and goes upstream; misses
/// for the same key that arrive while it is in flight wait for its response (within their lookup
/// deadline) and are answered from it, so the upstream sees one request. A flight whose leader
/// never finishes is taken over after <see cref="StaleFlightAfter"/>.</para>
/// <para>Modes (<c>cache.mode</c>, per rule <c>mode</c>): <c>replay</c> answers from a recording and
/// forwards (and records) the rest; <c>record</c> forwards and records everything it covers;
/// <c>replay_only</c> forwards nothing: without a recording the request gets the agent's 502 with
/// <c>x-sp-cache: miss-strict</c> and the missing key. With <c>cache.mode: replay_only</c> a request no
/// rule covers is refused the same way (only an exclude rule lets one through).</para>
/// <para>The exchange passed to <see cref="TryAnswerAsync"/> is the one the pipeline later hands
/// to <see cref="Record"/> (both agent modes fill one object per exchange), which is how a miss is
/// tied to its response.</para>
/// </remarks>
public sealed partial class TransparentCache : IResponseShortCircuit, IExchangeRecorder, IRequestBodyKeyed, IFailClosed, IDisposable
{
    /// <summary>Requests waiting now for another request's upstream answer to the same key (single flight).</summary>
    internal int Followers => Volatile.Read(ref _followers);

    /// <summary>How long a flight may stay open before a new miss for its key stops waiting on it.</summary>
    public static readonly TimeSpan StaleFlightAfter = TimeSpan.FromSeconds(60);

    /// <summary>The header of a strict refusal naming the cache key that had no recorded answer.</summary>
    public const string CacheKeyHeader = "x-sp-cache-key";

    /// <summary>Status of a strict refusal (<c>replay_only</c>): the agent, as a gateway, had no valid response to give.</summary>
    public const int StrictMissStatus = 502;

    /// <summary>Exchange attribute naming the response trailers (set by the ext_proc service).</summary>
    private const string ResponseTrailersAttribute = "sp.response.trailers";

    private readonly CacheRuleSet _rules;
    private readonly ResponseStore _store;
    private readonly RemoteLookup? _remote;
    private readonly Redactor _redactor;
    private readonly AgentMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly bool _fallbackEnabled;
    private readonly ConcurrentDictionary<string, Flight> _flights = new(StringComparer.Ordinal);
    private int _followers;
    private readonly ConcurrentDictionary<Exchange, Pending> _pending = new(ReferenceEqualityComparer.Instance);
    private volatile PulledMocks _pulled = PulledMocks.Empty;

    /// <summary>Builds the cache from validated options.</summary>
    /// <param name="options">Agent options (<c>cache</c>, <c>cache_ttl_seconds</c>, <c>max_cache_size_mb</c>, <c>fallback_enabled</c>, <c>redaction</c>).</param>
    /// <param name="metrics">Where hits, misses, evictions and lookups are counted.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">Logger.</param>
    /// <param name="remote">Remote lookups for rules with <c>remote_lookup</c>; none when null.</param>
    public TransparentCache(AgentOptions options, AgentMetrics metrics, TimeProvider time, ILogger<TransparentCache> logger, RemoteLookup? remote = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _metrics = metrics ?? throw new ArgumentNullException(nameof(metrics));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _rules = CacheRuleSet.Create(options.Cache);
        _store = new ResponseStore((long)options.MaxCacheSizeMb * 1024 * 1024, TimeSpan.FromSeconds(options.CacheTtlSeconds), time, metrics);
        _remote = remote;
        _redactor = Redactor.Create(options.Redaction ?? new RedactionOptions());
        _fallbackEnabled = options.FallbackEnabled;
    }

    /// <summary>The local store.</summary>
    public ResponseStore Store => _store;

    /// <summary>The compiled rules.</summary>
    public CacheRuleSet Rules => _rules;

    /// <summary>
    /// The mock set pulled from the backend (<c>cache.pull_mocks</c>), consulted for requests a rule
    /// matches before the local store and the remote lookup: a deliberate mock beats a recorded
    /// response. Replaced whole by each pull.
    /// </summary>
    public PulledMocks PulledMocks
    {
        get => _pulled;
        set => _pulled = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>Misses waiting for their response to be recorded (for tests and diagnostics).</summary>
    public int PendingCount => _pending.Count;

    /// <inheritdoc/>
    public bool NeedsRequestBody(Exchange request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return _rules.Match(request.Method, request.Authority, request.Path, out var excluded) is not null
            || (!excluded && _rules.Mode == CacheMode.ReplayOnly);
    }

    /// <inheritdoc/>
    public ShortCircuitResponse? RefuseOnFault(Exchange request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var rule = _rules.Match(request.Method, request.Authority, request.Path, out var excluded);
        var strict = rule is not null ? rule.Mode == CacheMode.ReplayOnly : !excluded && _rules.Mode == CacheMode.ReplayOnly;
        return strict ? StrictMiss(request, null, "the lookup failed or passed its deadline") : null;
    }

    /// <inheritdoc/>
    public async ValueTask<ShortCircuitResponse?> TryAnswerAsync(Exchange request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var rule = _rules.Match(request.Method, request.Authority, request.Path, out var excluded);
        if (rule is null)
        {
            // No rule: not a cache matter, except that replay_only forwards nothing.
            return !excluded && _rules.Mode == CacheMode.ReplayOnly
                ? StrictMiss(request, null, "no cache rule covers this request")
                : null;
        }

        if (request.RequestBody.Truncated)
        {
            // A body too large to key exactly: forwarded uncached, or refused in replay_only.
            return rule.Mode == CacheMode.ReplayOnly
                ? StrictMiss(request, null, "its body is larger than capture.max_request_body_bytes, so it cannot be keyed")
                : null;
        }

        request.Cache = CacheOutcome.Miss;
        if (rule.Mode == CacheMode.Record)
        {
            // Forward and record, whatever is recorded already.
            var recordKey = rule.Key.Compute(request);
            _pending[request] = new Pending(rule, recordKey, null);
            _metrics.CacheMisses.Inc();
            return null;
        }

        var pulled = _pulled;
        if (pulled.Count > 0
            && pulled.Find(CopyRequestRedacted(request), _time.GetUtcNow()) is { } mocked)
        {
            _metrics.CacheHits.Inc();
            return mocked.ToAnswer();
        }

        var key = rule.Key.Compute(request);
        if (_store.TryGet(key, out var stored))
        {
            _metrics.CacheHits.Inc();
            return stored!.ToAnswer();
        }

        if (rule.Mode == CacheMode.ReplayOnly)
        {
            return await ReplayOnlyAsync(request, rule, key, cancellationToken).ConfigureAwait(false);
        }

        var flight = new Flight(key, _time.GetTimestamp());
        while (!_flights.TryAdd(key, flight))
        {
            if (!_flights.TryGetValue(key, out var leader))
            {
                continue;
            }

            if (_time.GetElapsedTime(leader.Started) > StaleFlightAfter)
            {
                // The leader never finished (its exchange was dropped): take the key over.
                if (_flights.TryUpdate(key, flight, leader))
                {
                    leader.Result.TrySetResult(null);
                    break;
                }

                continue;
            }

            return await FollowAsync(request, rule, key, leader, cancellationToken).ConfigureAwait(false);
        }

        if (rule.RemoteLookup && _remote is not null)
        {
            var (status, answer) = await _remote.LookupAsync(CopyRequestRedacted(request), cancellationToken).ConfigureAwait(false);
            if (status == LookupStatus.Hit)
            {
                _flights.TryRemove(new KeyValuePair<string, Flight>(key, flight));
                flight.Result.TrySetResult(answer);
                _metrics.CacheHits.Inc();
                return answer!.ToAnswer();
            }

            if (status == LookupStatus.Failed && !_fallbackEnabled)
            {
                _flights.TryRemove(new KeyValuePair<string, Flight>(key, flight));
                flight.Result.TrySetResult(null);
                return LookupFailedAnswer();
            }
        }

        _pending[request] = new Pending(rule, key, flight);
        _metrics.CacheMisses.Inc();
        return null;
    }

    /// <inheritdoc/>
    public void Record(Exchange exchange)
    {
        if (exchange is null || !_pending.TryRemove(exchange, out var pending))
        {
            return;
        }

        CachedResponse? stored = null;
        try
        {
            if (IsCacheable(exchange, pending.Rule))
            {
                stored = CachedResponse.From(exchange, exchange.Attributes.GetValueOrDefault(ResponseTrailersAttribute));
                _store.Set(pending.Key, stored);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording is best effort: a failure here must not disturb the capture path.
            _metrics.Faults("cache_record").Inc();
            Log.RecordFailed(_logger, ex);
            stored = null;
        }
        finally
        {
            if (pending.Flight is { } flight)
            {
                _flights.TryRemove(new KeyValuePair<string, Flight>(pending.Key, flight));
                flight.Result.TrySetResult(stored);
            }
        }
    }

    /// <summary>
    /// True when the finished exchange's response may be replayed: completed, a status the rule
    /// stores, the whole body seen (not truncated, and a declared length matching what was seen),
    /// and — unless the rule forces — no <c>Cache-Control: no-store</c> or <c>private</c>.
    /// </summary>
    public static bool IsCacheable(Exchange exchange, CompiledCacheRule rule)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentNullException.ThrowIfNull(rule);
        if (exchange.Cache == CacheOutcome.Hit
            || exchange.Outcome != ExchangeOutcome.Completed
            || exchange.StatusCode is not int status
            || !rule.IsCacheableStatus(status))
        {
            return false;
        }

        var body = exchange.ResponseBody;
        if (body.Truncated)
        {
            return false;
        }

        // The agent must have seen the whole body: ext_proc without response bodies sees none.
        var declared = exchange.ResponseHeaders.Get("content-length");
        if (declared is not null)
        {
            if (!long.TryParse(declared, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var length)
                || length != body.OriginalSize)
            {
                return false;
            }
        }
        else if (body.IsEmpty && status != 204 && !string.Equals(exchange.Method, "HEAD", StringComparison.OrdinalIgnoreCase)
            && !IsGrpcTrailersOnly(exchange))
        {
            // Chunked with nothing seen: an empty body cannot be told from an unseen one.
            return false;
        }

        if (!rule.Force && ForbidsStorage(exchange.ResponseHeaders))
        {
            return false;
        }

        return true;
    }

    /// <inheritdoc/>
    public void Dispose() => _remote?.Dispose();

    /// <summary>A gRPC response with no message and its status in the headers (a unary call's error): complete as it is.</summary>
    private static bool IsGrpcTrailersOnly(Exchange exchange) =>
        SpIstio.Core.GrpcMessages.GrpcSpanAttributes.IsGrpc(exchange.ResponseHeaders.Get("content-type")) && exchange.ResponseHeaders.Get("grpc-status") is not null;

    private static bool ForbidsStorage(HeaderList headers)
    {
        for (var i = 0; i < headers.Count; i++)
        {
            var (name, value) = headers[i];
            if (!string.Equals(name, "cache-control", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var range in value.AsSpan().Split(','))
            {
                var directive = value.AsSpan()[range].Trim();
                var eq = directive.IndexOf('=');
                if (eq >= 0)
                {
                    directive = directive[..eq].TrimEnd();
                }

                if (directive.Equals("no-store", StringComparison.OrdinalIgnoreCase)
                    || directive.Equals("private", StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static ShortCircuitResponse LookupFailedAnswer()
    {
        var headers = new HeaderList();
        headers.Add("content-type", "text/plain; charset=utf-8");
        headers.Add(ShortCircuitPolicy.CacheHeader, ShortCircuitPolicy.CacheLookupFailedValue);
        return new ShortCircuitResponse(504, headers, "sp agent: cache lookup failed and fallback_enabled is false\n"u8.ToArray()) { Outcome = CacheOutcome.Miss };
    }

    /// <summary>
    /// <c>replay_only</c> after the local store missed: a remote lookup when the rule asks for one,
    /// else (or when it finds nothing or fails) the strict refusal. Nothing goes upstream, so there
    /// is no flight to lead or follow.
    /// </summary>
    private async ValueTask<ShortCircuitResponse> ReplayOnlyAsync(Exchange request, CompiledCacheRule rule, string key, CancellationToken cancellationToken)
    {
        if (rule.RemoteLookup && _remote is not null)
        {
            var (status, answer) = await _remote.LookupAsync(CopyRequestRedacted(request), cancellationToken).ConfigureAwait(false);
            if (status == LookupStatus.Hit)
            {
                _metrics.CacheHits.Inc();
                return answer!.ToAnswer();
            }
        }

        return StrictMiss(request, key, "nothing recorded matches it");
    }

    /// <summary>
    /// The agent's refusal in <c>replay_only</c>: 502, <c>x-sp-cache: miss-strict</c>, the missing key in
    /// <c>x-sp-cache-key</c> and in the body with the request line, counted in <c>sp_cache_strict_misses_total</c>.
    /// </summary>
    private ShortCircuitResponse StrictMiss(Exchange request, string? key, string reason)
    {
        _metrics.CacheStrictMisses.Inc();
        request.Cache = CacheOutcome.Miss;
        var headers = new HeaderList();
        headers.Add("content-type", "text/plain; charset=utf-8");
        headers.Add(ShortCircuitPolicy.CacheHeader, ShortCircuitPolicy.CacheMissStrictValue);
        if (key is not null)
        {
            headers.Add(CacheKeyHeader, key);
        }

        var text = string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"sp agent: cache.mode replay_only refused {request.Method} {request.Authority}{request.Target}: {reason} (cache key {key ?? "none"}). Nothing was sent upstream.\n");
        return new ShortCircuitResponse(StrictMissStatus, headers, System.Text.Encoding.UTF8.GetBytes(text)) { Outcome = CacheOutcome.Miss };
    }

    private async ValueTask<ShortCircuitResponse?> FollowAsync(Exchange request, CompiledCacheRule rule, string key, Flight leader, CancellationToken cancellationToken)
    {
        CachedResponse? answer;
        Interlocked.Increment(ref _followers);
        try
        {
            answer = await leader.Result.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The leader's upstream is slower than this request's lookup deadline: go upstream too.
            answer = null;
        }
        finally
        {
            Interlocked.Decrement(ref _followers);
        }

        if (answer is not null)
        {
            _metrics.CacheHits.Inc();
            return answer.ToAnswer();
        }

        // The leader's response was not cacheable (or never came): this request goes upstream and
        // may still record its own response.
        _pending[request] = new Pending(rule, key, null);
        _metrics.CacheMisses.Inc();
        return null;
    }

    private Exchange CopyRequestRedacted(Exchange request)
    {
        var copy = new Exchange
        {
            Direction = request.Direction,
            ServiceName = request.ServiceName,
            Method = request.Method,
            Scheme = request.Scheme,
            Authority = request.Authority,
            Path = request.Path,
            Query = request.Query,
            RequestBody = request.RequestBody,
            StartTime = request.StartTime,
            EndTime = request.StartTime,
            SessionId = request.SessionId,
        };
        copy.CopyTraceIdsFrom(request);
        foreach (var header in request.RequestHeaders)
        {
            copy.RequestHeaders.Add(header.Key, header.Value);
        }

        // The lookup leaves the pod (and pulled mocks are keyed like it): the same redaction as an
        // export, which also makes the key the backend computes agree with the keys of mocks made from (redacted) captured exchanges.
        _redactor.Redact(copy);
        return copy;
    }

    private sealed class Flight(string key, long started)
    {
        public string Key { get; } = key;

        public long Started { get; } = started;

        public TaskCompletionSource<CachedResponse?> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record Pending(CompiledCacheRule Rule, string Key, Flight? Flight);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Recording a response in the cache failed; the exchange is captured anyway")]
        public static partial void RecordFailed(ILogger logger, Exception exception);
    }
}
