using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Reflection;
using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.Memory;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using SpIstio.Core.Startup;

namespace SpIstio.Agent.Export;

/// <summary>
/// Sends captured exchanges to the backend as OTLP/HTTP protobuf (<c>export.compression</c>), off the data path:
/// <see cref="TryEnqueue(Exchange)"/> only writes to a bounded queue; one reader batches by count, size
/// and time and posts up to <c>max_concurrent_requests</c> batches at once through a retry
/// (exponential backoff with jitter, <c>Retry-After</c> honoured), a consecutive-failure circuit
/// breaker and a per-attempt timeout. When the backend is slow or down and <c>export.buffer_path</c>
/// is set, batches the backend could not take are written to the <see cref="DiskExportBuffer"/> and
/// re-sent in order by one background re-sender once it answers again (also after a restart);
/// without a buffer they are counted failed. Traffic never waits on any of it.
/// </summary>
public sealed class OtlpExporter : IExchangeExporter, IAsyncDisposable
{
    /// <summary>The header carrying the tenant key.</summary>
    public const string PublicKeyHeader = "x-public-key";

    /// <summary>The OTLP/HTTP protobuf media type.</summary>
    public const string ProtobufMediaType = "application/x-protobuf";

    // A backend asking for a longer pause than this still gets retried after a minute: the batch
    // holds a concurrency slot meanwhile, and the circuit breaker covers longer outages.
    private static readonly TimeSpan _maxRetryAfter = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan _retryBaseDelay = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan _retryMaxDelay = TimeSpan.FromSeconds(30);

    // Re-sends back off less far than live retries: the breaker already paces a dead backend,
    // and a backend that is back should get the buffer within seconds.
    private static readonly TimeSpan _resendMaxDelay = TimeSpan.FromSeconds(5);

    // Success responses carry at most a small partial-success message.
    private const int MaxResponseBytes = 1024 * 1024;

    private readonly AgentOptions _options;
    private readonly ExportOptions _export;
    private readonly AgentMetrics _metrics;
    private readonly ILogger<OtlpExporter> _logger;
    private readonly TimeProvider _timeProvider;
    private readonly Channel<QueuedSpan> _channel;
    private readonly QueuedSpans _spans;
    private readonly HttpClient _http;
    private readonly SemaphoreSlim _concurrency;
    private readonly int _maxConcurrent;
    private readonly ExportPayloadPool _payloads;
    private readonly BackendCircuitBreaker _breaker;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly CancellationTokenSource _abort = new();
    private readonly CancellationTokenSource _stopResend = new();
    private readonly DiskExportBuffer? _buffer;
    private readonly SemaphoreSlim _buffered = new(0);
    private readonly ResiliencePipeline<HttpResponseMessage> _resendPipeline;
    private readonly ConcurrentDictionary<int, bool> _loggedRejections = new();
    private readonly Lock _stateLock = new();
    private readonly string? _publicKey;
    private readonly TimeSpan _batchDelay;
    private readonly string _contentEncoding;
    private string? _failingKind;
    private Task? _runTask;
    private Task? _resendTask;
    private Task? _stopTask;
    private long _droppedAtShutdown;
    private int _bufferProblemLogged;

    // What the queue holds (written, not yet read) and the signal that wakes a reader waiting on a
    // partial batch once the queue holds the rest of a full one (or at shutdown). The reader sleeps
    // on the batch delay instead of waking per exchange: per-exchange wake-ups (a timer, two token
    // sources and a thread-pool hop each) were a tenth of the capture proxy's CPU at 1 KiB.
    private int _queuedCount;
    private long _queuedBytes;
    private int _wakeAtCount = int.MaxValue;
    private long _wakeAtBytes = long.MaxValue;
    private TaskCompletionSource? _batchWake;
    private volatile bool _completing;

    // The batch the reader is filling (read only by the one reader, and by RunAsync after it faulted).
    private List<QueuedSpan> _readerBatch;

    // Emptied batch lists kept for the reader's next batch: a fresh list a batch (512 spans of
    // capacity, 28 KiB) was a quarter of what a 64 KiB capture-proxy exchange allocated, since
    // large bodies fill a batch by bytes after a dozen or so spans. A few slots cover the batches
    // usually in flight; a list returned to full slots is left to the collector.
    private readonly List<QueuedSpan>?[] _spareBatches = new List<QueuedSpan>?[4];

    /// <summary>Creates a stopped exporter; call <see cref="Start"/> to begin sending.</summary>
    /// <param name="options">Validated agent options (<c>sp_backend_url</c>, <c>public_key</c>, <c>export</c>, limits).</param>
    /// <param name="metrics">Where queue depth, drops and export results are counted.</param>
    /// <param name="logger">Logs state changes, not batches.</param>
    /// <param name="timeProvider">Clock for batching, retries, the breaker and the shutdown deadline.</param>
    /// <param name="handler">HTTP handler (tests); not disposed by the exporter. Default: a pooled SocketsHttpHandler.</param>
    public OtlpExporter(
        AgentOptions options,
        AgentMetrics metrics,
        ILogger<OtlpExporter> logger,
        TimeProvider? timeProvider = null,
        HttpMessageHandler? handler = null)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _metrics = metrics ?? throw new ArgumentNullException(nameof(metrics));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _timeProvider = timeProvider ?? TimeProvider.System;
        _export = options.Export ?? new ExportOptions();
        _publicKey = string.IsNullOrEmpty(options.PublicKey) ? null : options.PublicKey;
        _batchDelay = TimeSpan.FromMilliseconds(_export.BatchDelayMs);
        _contentEncoding = ContentEncodingOf(_export.Compression);
        Budget = new CaptureByteBudget(_export.MaxInflightBytes);
        _payloads = new ExportPayloadPool(_export.MaxInflightBytes);
        Budget.CollectWhenIdle(new IdleHeapCollection(_timeProvider, () => Budget.Held == 0, IdleCollectAfterBytes, ReleaseIdleMemory));
        _spans = new QueuedSpans(Budget, _publicKey);
        Endpoint = BackendHttp.Endpoint(options.SpBackendUrl, "v1/traces");

        _channel = Channel.CreateBounded<QueuedSpan>(new BoundedChannelOptions(_export.QueueCapacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        });

        _readerBatch = new List<QueuedSpan>(Math.Min(_export.MaxBatchSpans, 1024));
        _maxConcurrent = Math.Max(1, options.MaxConcurrentRequests);
        _concurrency = new SemaphoreSlim(_maxConcurrent, _maxConcurrent);
        _http = BackendHttp.CreateClient(options, handler, MaxResponseBytes);

        var breaker = options.CircuitBreaker ?? new CircuitBreakerOptions();
        _breaker = new BackendCircuitBreaker(
            Math.Max(1, breaker.MaxFailures),
            TimeSpan.FromSeconds(breaker.TimeoutSeconds),
            _timeProvider,
            OnCircuitStateChanged);
        _pipeline = BuildPipeline(withRetry: true);
        Health = new ExportHealth(metrics.Registry, _timeProvider);

        // Re-sends pace themselves (the breaker, then their own backoff): no retry inside.
        _resendPipeline = BuildPipeline(withRetry: false);
        _metrics.Registry.OnCollect(_ => metrics.ExportInflightBytes.Set(InflightBytes));
        if (!string.IsNullOrWhiteSpace(_export.BufferPath))
        {
            try
            {
                _buffer = DiskExportBuffer.Open(_export.BufferPath, _export.BufferMaxBytes, _timeProvider);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                _http.Dispose();
                // A start-up mistake like an unwritable store folder: one line and an exit code, not a stack trace.
                throw new StartupException(
                    "export.buffer_path: '" + _export.BufferPath + "' cannot be used as the export buffer: " + ex.Message.ReplaceLineEndings(" "), StartupFailure.Unavailable, ex);
            }

            _metrics.ExportBufferDroppedSpans.Add(_buffer.DroppedAtOpen);
            var buffer = _buffer;
            var time = _timeProvider;
            _metrics.Registry.OnCollect(_ => UpdateBufferGauges(buffer, time, metrics));
            UpdateBufferGauges(buffer, time, metrics);
        }
    }

    /// <summary>
    /// The byte budget (<c>export.max_inflight_bytes</c>) queued and in-flight exchanges reserve from;
    /// the capture pipeline's body buffers share it, so it bounds everything captured and not yet exported.
    /// </summary>
    public CaptureByteBudget Budget { get; }

    /// <summary>What the exporter last heard from the backend (<c>/status</c>).</summary>
    public ExportHealth Health { get; }

    /// <summary>The disk buffer, when <c>export.buffer_path</c> is set.</summary>
    internal DiskExportBuffer? Buffer => _buffer;

    /// <summary>The agent version sent in the User-Agent (<c>sp-agent/&lt;version&gt;</c>) and as the OTLP scope version.</summary>
    public static string Version { get; } = ReadVersion();

    /// <summary>Where batches are posted: <c>{sp_backend_url}/v1/traces</c>.</summary>
    public Uri Endpoint { get; }

    /// <summary>The circuit to the backend, as of now.</summary>
    public BackendCircuitState CircuitState => _breaker.State;

    /// <summary>The breaker to the backend, shared with the cache's remote lookups: one backend, one verdict on its health.</summary>
    internal BackendCircuitBreaker Breaker => _breaker;

    /// <summary>True once <see cref="StopAsync"/> or <see cref="DisposeAsync"/> was called.</summary>
    public bool IsStopped => Volatile.Read(ref _stopTask) is not null;

    /// <summary>Starts the background sender. Exchanges queued before are sent too. Idempotent.</summary>
    public void Start()
    {
        lock (_stateLock)
        {
            if (_runTask is not null || _stopTask is not null)
            {
                return;
            }

            ExporterLog.Started(_logger, Endpoint, _export.QueueCapacity, _export.MaxBatchSpans, _export.MaxBatchBytes, _export.BatchDelayMs, _maxConcurrent);
            _runTask = Task.Run(() => RunAsync(_abort.Token));
            if (_buffer is not null)
            {
                if (_buffer.Count > 0)
                {
                    ExporterLog.BufferFound(_logger, _buffer.Directory, _buffer.Count, _buffer.Bytes);
                }

                _resendTask = Task.Run(() => ResendAsync(_stopResend.Token));
            }
        }
    }

    /// <inheritdoc/>
    public bool TryEnqueue(Exchange exchange) => TryEnqueue(exchange, 0);

    /// <inheritdoc/>
    public CaptureByteBudget ReservesIn => Budget;

    /// <inheritdoc/>
    public bool TryEnqueue(Exchange exchange, long reserved)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentOutOfRangeException.ThrowIfNegative(reserved);

        // Encoded now (a small span) and reserved before the write, released once the span's batch
        // is sent, buffered or dropped: export memory stays within max_inflight_bytes whatever the body sizes.
        if (!_spans.TryAdd(exchange, reserved, out var span))
        {
            _metrics.ExportDropped.Inc();
            return false;
        }

        if (span.Exchange is null)
        {
            // Its span is all the queue holds: the bodies' rented arrays go back to their pool now.
            exchange.ReturnBodyArrays();
        }

        // Counted before the write so the gauge never dips below zero when the reader is faster.
        _metrics.ExportQueueDepth.Inc();
        if (_channel.Writer.TryWrite(span))
        {
            var queued = Interlocked.Increment(ref _queuedCount);
            var queuedBytes = Interlocked.Add(ref _queuedBytes, span.Length);
            if (Volatile.Read(ref _batchWake) is { } wake
                && (queued >= Volatile.Read(ref _wakeAtCount) || queuedBytes >= Volatile.Read(ref _wakeAtBytes)))
            {
                wake.TrySetResult();
            }

            return true;
        }

        _spans.Release(span);
        _metrics.ExportQueueDepth.Dec();
        _metrics.ExportDropped.Inc();
        return false;
    }

    /// <summary>
    /// Stops accepting exchanges and sends what is queued until <paramref name="flushDeadline"/>
    /// has passed; then cancels what is still in flight (counted failed) and drops what is still
    /// queued (counted dropped). Safe to call more than once; later calls wait for the first.
    /// </summary>
    public Task StopAsync(TimeSpan flushDeadline)
    {
        lock (_stateLock)
        {
            _stopTask ??= StopCoreAsync(flushDeadline);
            return _stopTask;
        }
    }

    /// <summary>Stops with the configured <c>export.shutdown_flush_ms</c>, then releases the HTTP client.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromMilliseconds(_export.ShutdownFlushMs)).ConfigureAwait(false);
        _http.Dispose();
        _abort.Dispose();
        _stopResend.Dispose();
        _buffered.Dispose();
    }

    /// <summary>Estimated encoded size of an exchange: bodies, headers and fixed span overhead.</summary>
    internal static long EstimateBytes(Exchange exchange)
    {
        // Span ids, times, resource and the fixed attributes come to a few hundred bytes.
        long size = 300 + exchange.Authority.Length + (2 * exchange.Path.Length) + (exchange.Query?.Length ?? 0);
        size += BodyBytes(exchange.RequestBody) + BodyBytes(exchange.ResponseBody) + exchange.BodyArraySlack;
        size += HeaderBytes(exchange.RequestHeaders) + HeaderBytes(exchange.ResponseHeaders);
        // Checked first: reading Attributes creates the dictionary, one an exchange that has none.
        if (exchange.HasAttributes)
        {
            foreach (var attribute in exchange.Attributes)
            {
                size += attribute.Key.Length + attribute.Value.Length + 8;
            }
        }

        // A gRPC call's message lists travel as bytes until the span encoder writes them.
        size += exchange.GrpcCall?.EstimatedBytes() ?? 0;
        return size;
    }

    // A binary body goes out in base64, unless it is carried by its message list (MessageFrames):
    // then only its array, held until the batch is done, is counted.
    private static long BodyBytes(CapturedBody body) =>
        body.Kind == BodyKind.Binary && !body.MessageFrames ? ((body.Content.Length + 2) / 3 * 4) + 64 : body.Content.Length + 64;

    private static long HeaderBytes(HeaderList headers)
    {
        long size = 0;
        for (var i = 0; i < headers.Count; i++)
        {
            // "http.request.header." prefix, key/value framing.
            size += headers[i].Key.Length + headers[i].Value.Length + 28;
        }

        return size;
    }

    internal static bool IsTransientStatus(int status) => status == 408 || status == 429 || status >= 500;

    /// <summary>Failures worth retrying and counting against the breaker: network errors, timeouts, 408/429/5xx.</summary>
    internal static bool IsTransient(Outcome<HttpResponseMessage> outcome) => outcome.Exception switch
    {
        null => outcome.Result is { } response && IsTransientStatus((int)response.StatusCode),
        HttpRequestException or TimeoutRejectedException => true,
        _ => false,
    };

    /// <summary>The delay a 429/503 response asks for (Retry-After seconds or HTTP date), capped; null when none.</summary>
    internal static TimeSpan? RetryAfter(HttpResponseMessage? response, TimeProvider timeProvider)
    {
        if (response is null || (response.StatusCode != HttpStatusCode.TooManyRequests && response.StatusCode != HttpStatusCode.ServiceUnavailable))
        {
            return null;
        }

        var header = response.Headers.RetryAfter;
        TimeSpan? delay = header switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - timeProvider.GetUtcNow(),
            _ => null,
        };
        if (delay is not { } d)
        {
            return null;
        }

        return d < TimeSpan.Zero ? TimeSpan.Zero : d > _maxRetryAfter ? _maxRetryAfter : d;
    }

    private static string ReadVersion()
    {
        var assembly = typeof(OtlpExporter).Assembly;
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString()
            ?? "0.0.0";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return plus >= 0 ? version[..plus] : version;
    }

    private ResiliencePipeline<HttpResponseMessage> BuildPipeline(bool withRetry)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = _timeProvider };
        if (withRetry && _export.MaxRetries > 0)
        {
            var timeProvider = _timeProvider;
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = _export.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = _retryBaseDelay,
                MaxDelay = _retryMaxDelay,
                ShouldHandle = static args => ValueTask.FromResult(IsTransient(args.Outcome)),
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Result, timeProvider)),
            });
        }

        builder.AddStrategy(_ => _breaker.AsStrategy(IsTransient));
        builder.AddTimeout(TimeSpan.FromMilliseconds(_options.AsyncTimeoutMs));
        return builder.Build();
    }

    private async Task StopCoreAsync(TimeSpan flushDeadline)
    {
        _channel.Writer.TryComplete();

        // A partial batch goes at once: wake the reader if it waits for more.
        _completing = true;
        Volatile.Read(ref _batchWake)?.TrySetResult();
        Task? run;
        Task? resend;
        lock (_stateLock)
        {
            run = _runTask;
            resend = _resendTask;
        }

        if (run is null)
        {
            SpoolOrDropQueued([]);
            return;
        }

        ITimer? deadline = null;
        if (flushDeadline <= TimeSpan.Zero)
        {
            await _abort.CancelAsync().ConfigureAwait(false);
        }
        else
        {
            deadline = _timeProvider.CreateTimer(
                static state => ((CancellationTokenSource)state!).Cancel(),
                _abort,
                flushDeadline,
                Timeout.InfiniteTimeSpan);
        }

        try
        {
            await run.ConfigureAwait(false);
        }
        finally
        {
            if (deadline is not null)
            {
                await deadline.DisposeAsync().ConfigureAwait(false);
            }

            // What the disk buffer holds stays there for the next run.
            await _stopResend.CancelAsync().ConfigureAwait(false);
            if (resend is not null)
            {
                await resend.ConfigureAwait(false);
            }
        }

        ExporterLog.Stopped(_logger, Interlocked.Read(ref _droppedAtShutdown));
    }

    private async Task RunAsync(CancellationToken abort)
    {
        var reader = _channel.Reader;
        try
        {
            while (true)
            {
                try
                {
                    await ReadAndSendAsync(reader, abort).ConfigureAwait(false);
                    break;
                }
                catch (OperationCanceledException) when (abort.IsCancellationRequested)
                {
                    // Flush deadline passed: what was not handed to a sender is dropped below.
                    break;
                }
                catch (Exception ex)
                {
                    // Out of memory under the agent's heap limit (see AgentHeapLimit), or any other
                    // fault: a loop that died here would leave every later exchange queued with its
                    // bytes reserved, and the exporter refusing everything until the process restarts
                    // (issue 13). Drop what the loop held, say so once, and read on.
                    var held = _readerBatch;
                    Volatile.Write(ref _batchWake, null);
                    Release(held);
                    var lost = held.Count;
                    _metrics.ExportDropped.Add(lost);
                    held.Clear();
                    OnLoopFaulted("batching", ex, lost);
                    await Task.Yield();
                }
            }
        }
        finally
        {
            // Read from the queue but never handed to a sender, plus what is still queued: to the
            // disk buffer when there is one, else dropped.
            Interlocked.Add(ref _droppedAtShutdown, SpoolOrDropQueued(_readerBatch));
        }

        // Holding every permit means every sender has finished (cancelled ones finish promptly).
        for (var i = 0; i < _maxConcurrent; i++)
        {
            await _concurrency.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    // The batching loop: returns when the queue is completed and empty. The batch being filled
    // lives in _readerBatch, so that RunAsync can give back what a faulted loop held.
    private async Task ReadAndSendAsync(ChannelReader<QueuedSpan> reader, CancellationToken abort)
    {
        while (await reader.WaitToReadAsync(abort).ConfigureAwait(false))
        {
            var batch = _readerBatch;
            long bytes = 0;
            if (!Fill(reader, batch, ref bytes))
            {
                await WaitForMoreAsync(reader, batch, bytes, abort).ConfigureAwait(false);
            }

            if (batch.Count == 0)
            {
                continue;
            }

            // Taken before a permit is, so a fault cannot keep the permit.
            var next = RentBatch(batch.Capacity);
            await _concurrency.WaitAsync(abort).ConfigureAwait(false);
            if (abort.IsCancellationRequested)
            {
                // The permit came back because the flush deadline cancelled the sender holding it:
                // this batch was never sent, so it is spooled or dropped with the rest (RunAsync),
                // not sent only to be cancelled and counted failed.
                _concurrency.Release();
                ReturnBatch(next);
                abort.ThrowIfCancellationRequested();
            }

            _readerBatch = next;
            try
            {
                _ = SendAndReleaseAsync(batch, abort);
            }
            catch
            {
                // Not even started (out of memory): nothing else gives back its permit and bytes.
                _concurrency.Release();
                _readerBatch = batch;
                throw;
            }
        }
    }

    // Counts a faulted loop and logs it. Logging may itself run out of memory: the loop goes on regardless.
    private void OnLoopFaulted(string loop, Exception exception, int spans)
    {
        _metrics.ExportLoopFaults.Inc();
        try
        {
            ExporterLog.LoopFaulted(_logger, exception, loop, spans);
        }
        catch (OutOfMemoryException)
        {
            // Counted above; the line is lost.
        }
    }

    // Reads what is available into the batch; true once it is full by count or bytes.
    private bool Fill(ChannelReader<QueuedSpan> reader, List<QueuedSpan> batch, ref long bytes)
    {
        while (batch.Count < _export.MaxBatchSpans && bytes < _export.MaxBatchBytes && reader.TryRead(out var span))
        {
            _metrics.ExportQueueDepth.Dec();
            batch.Add(span);
            var size = span.Length;
            bytes += size;
            Interlocked.Decrement(ref _queuedCount);
            Interlocked.Add(ref _queuedBytes, -size);
        }

        return batch.Count >= _export.MaxBatchSpans || bytes >= _export.MaxBatchBytes;
    }

    // Lets a partial batch fill until it is full, batch_delay_ms after its first exchange, or the
    // queue is completed (shutdown: send at once). The reader sleeps meanwhile: TryEnqueue wakes it
    // once the queue holds the rest of a full batch (by count or bytes), else the delay does.
    private async ValueTask WaitForMoreAsync(ChannelReader<QueuedSpan> reader, List<QueuedSpan> batch, long bytes, CancellationToken abort)
    {
        var started = _timeProvider.GetTimestamp();
        while (!_completing)
        {
            var remaining = _batchDelay - _timeProvider.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                return;
            }

            var wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _wakeAtCount, _export.MaxBatchSpans - batch.Count);
            Volatile.Write(ref _wakeAtBytes, _export.MaxBatchBytes - bytes);
            // A full fence (not a release store): the counters must be read after the signal is
            // visible, or an exchange TryEnqueue adds meanwhile could miss it.
            Interlocked.Exchange(ref _batchWake, wake);

            // Checked after arming, so an exchange TryEnqueue added before it could see the signal is not missed.
            if (Volatile.Read(ref _queuedCount) < _wakeAtCount && Volatile.Read(ref _queuedBytes) < _wakeAtBytes && !_completing)
            {
                using var stopDelay = CancellationTokenSource.CreateLinkedTokenSource(abort);
                var delay = Task.Delay(remaining, _timeProvider, stopDelay.Token);
                await Task.WhenAny(wake.Task, delay).ConfigureAwait(false);

                // Frees the delay's timer when the signal came first.
                await stopDelay.CancelAsync().ConfigureAwait(false);
            }

            Volatile.Write(ref _batchWake, null);
            abort.ThrowIfCancellationRequested();
            if (Fill(reader, batch, ref bytes))
            {
                return;
            }
        }

        Fill(reader, batch, ref bytes);
    }

    // After the queue is completed: writes what is left (the reader's partial batch, then the
    // queue) to the disk buffer in batches, or drops it when there is none or writing fails.
    // Returns how many exchanges were dropped.
    private int SpoolOrDropQueued(List<QueuedSpan> pending)
    {
        var left = new List<QueuedSpan>(pending);
        pending.Clear();
        while (_channel.Reader.TryRead(out var span))
        {
            _metrics.ExportQueueDepth.Dec();
            left.Add(span);
        }

        var dropped = 0;
        for (var start = 0; start < left.Count; start += _export.MaxBatchSpans)
        {
            var chunk = left.GetRange(start, Math.Min(_export.MaxBatchSpans, left.Count - start));
            var payload = EncodePooled(chunk, deferred: null);
            if (_buffer is null || !TryBuffer(payload, chunk.Count))
            {
                dropped += chunk.Count;
            }

            ReturnPayload(payload);

            Release(chunk);
        }

        _metrics.ExportDropped.Add(dropped);
        return dropped;
    }

    // Writes an undeliverable batch to the disk buffer; false when it could not be written.
    private bool TryBuffer(ArraySegment<byte> payload, int spans)
    {
        try
        {
            var dropped = _buffer!.Add(payload, spans, _contentEncoding);
            _metrics.ExportSpansBuffered.Add(spans);
            if (dropped > 0)
            {
                _metrics.ExportBufferDroppedSpans.Add(dropped);
                if (Interlocked.Exchange(ref _bufferProblemLogged, 1) == 0)
                {
                    ExporterLog.BufferFull(_logger, _buffer.MaxBytes, dropped);
                }
            }

            UpdateBufferGauges(_buffer, _timeProvider, _metrics);
            _buffered.Release();
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (Interlocked.Exchange(ref _bufferProblemLogged, 1) == 0)
            {
                ExporterLog.BufferWriteFailed(_logger, _buffer!.Directory, ex.Message, spans);
            }

            return false;
        }
    }

    private static void UpdateBufferGauges(DiskExportBuffer buffer, TimeProvider time, AgentMetrics metrics)
    {
        metrics.ExportBufferBytes.Set(buffer.Bytes);
        var oldest = buffer.OldestWrittenAt;
        metrics.ExportBufferOldestAge.Set(oldest is { } at ? Math.Max(0, (time.GetUtcNow() - at).TotalSeconds) : 0);
    }

    /// <summary>
    /// The one re-sender: while the disk buffer holds batches, posts the oldest through the
    /// breaker and the per-attempt timeout; delivered or refused for good, it is deleted and the
    /// next goes at once; otherwise it waits (the breaker's remaining break, or its own backoff)
    /// and tries the same batch again, so batches arrive in the order they were buffered.
    /// </summary>
    private async Task ResendAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await ResendBufferedAsync(stop).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (!stop.IsCancellationRequested)
            {
                // Out of memory, or the buffer's files failing in a way not foreseen: the buffer keeps
                // what it holds, so restarting after a pause loses nothing; a dead re-sender would
                // keep it until the next restart of the process.
                OnLoopFaulted("re-send", ex, 0);
                try
                {
                    await Task.Delay(_resendMaxDelay, _timeProvider, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
            }
        }
    }

    private async Task ResendBufferedAsync(CancellationToken stop)
    {
        var backoff = _retryBaseDelay;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var batch = _buffer!.Peek();
                if (batch is null)
                {
                    await _buffered.WaitAsync(stop).ConfigureAwait(false);
                    continue;
                }

                var payload = DiskExportBuffer.Read(batch);
                if (payload is null)
                {
                    // Deleted to make room since it was peeked; already counted.
                    continue;
                }

                var context = ResilienceContextPool.Shared.Get(stop);
                Outcome<HttpResponseMessage> outcome;
                try
                {
                    outcome = await _resendPipeline.ExecuteOutcomeAsync(
                        static (ctx, state) => state.Exporter.PostAsync(new ArraySegment<byte>(state.Payload), null, state.Encoding, ctx.CancellationToken),
                        context,
                        (Exporter: this, Payload: payload, Encoding: batch.ContentEncoding)).ConfigureAwait(false);
                }
                finally
                {
                    ResilienceContextPool.Shared.Return(context);
                }

                if (stop.IsCancellationRequested)
                {
                    outcome.Result?.Dispose();
                    return;
                }

                var delivered = await CompleteResendAsync(outcome, batch, stop).ConfigureAwait(false);
                if (delivered)
                {
                    backoff = _retryBaseDelay;
                    UpdateBufferGauges(_buffer, _timeProvider, _metrics);
                    continue;
                }

                var wait = outcome.Exception is BrokenCircuitException { RetryAfter: { } left } && left > TimeSpan.Zero ? left : backoff;
                backoff = backoff * 2 > _resendMaxDelay ? _resendMaxDelay : backoff * 2;
                await Task.Delay(wait, _timeProvider, stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Shutdown: the buffer keeps what was not re-sent.
        }
    }

    // True when the batch is done with (delivered, or refused for good) and was removed.
    private async Task<bool> CompleteResendAsync(Outcome<HttpResponseMessage> outcome, BufferedBatch batch, CancellationToken stop)
    {
        if (outcome.Exception is not null || outcome.Result is null)
        {
            return false;
        }

        using var response = outcome.Result;
        var status = (int)response.StatusCode;
        if (IsTransientStatus(status))
        {
            return false;
        }

        if (!_buffer!.Remove(batch))
        {
            // Dropped past the bound while in flight; its spans were counted dropped.
            return true;
        }

        if (status is >= 200 and < 300)
        {
            var (rejected, _) = await ReadPartialSuccessAsync(response, batch.Spans, stop).ConfigureAwait(false);
            _metrics.ExportSpansExported.Add(batch.Spans - rejected);
            _metrics.ExportSpansRejected.Add(rejected);
            Health.RecordDelivered(batch.Spans - rejected);
            ReportRecovered();
        }
        else
        {
            _metrics.ExportSpansRejected.Add(batch.Spans);
            if (_loggedRejections.TryAdd(status, true))
            {
                ExporterLog.ExportRejected(_logger, status, await ReadSnippetAsync(response, stop).ConfigureAwait(false));
            }
        }

        return true;
    }

    // Whether the backend is up (sp_backend_up, /status) follows every attempt that reached for it: any HTTP answer but
    // 408/429/5xx means it is there; a network error or a timeout means it is not. Cancelled by
    // shutdown says nothing.
    private void ObserveBackend(HttpResponseMessage? response, Exception? exception)
    {
        if (exception is OperationCanceledException && (_abort.IsCancellationRequested || _stopResend.IsCancellationRequested))
        {
            return;
        }

        var up = exception is null && response is not null && !IsTransientStatus((int)response.StatusCode);
        Health.ObserveBackend(up);
    }

    private async Task SendAndReleaseAsync(List<QueuedSpan> batch, CancellationToken abort)
    {
        try
        {
            await SendBatchAsync(batch, abort).ConfigureAwait(false);
        }
        finally
        {
            Release(batch);
            ReturnBatch(batch);
            _concurrency.Release();
        }
    }

    private List<QueuedSpan> RentBatch(int capacity)
    {
        for (var i = 0; i < _spareBatches.Length; i++)
        {
            var spare = Interlocked.Exchange(ref _spareBatches[i], null);
            if (spare is not null)
            {
                return spare;
            }
        }

        return new List<QueuedSpan>(capacity);
    }

    // Cleared first: a kept list must not hold sent exchanges' slabs alive.
    private void ReturnBatch(List<QueuedSpan> batch)
    {
        batch.Clear();
        for (var i = 0; i < _spareBatches.Length; i++)
        {
            if (Interlocked.CompareExchange(ref _spareBatches[i], batch, null) is null)
            {
                return;
            }
        }
    }

    private async Task SendBatchAsync(List<QueuedSpan> batch, CancellationToken abort)
    {
        var started = _timeProvider.GetTimestamp();
        var spans = batch.Count;
        ArraySegment<byte> payload = default;
        try
        {
            // Uncompressed, large bodies are sent from the exchanges' arrays, which the batch holds until
            // every attempt is over (SendAndReleaseAsync releases it after this returns). As for the
            // payload array (ReturnPayload), a cancelled attempt's connection is torn down, so a write
            // still reading a returned body array never forms a request the backend takes.
            var deferred = _export.Compression == ExportCompression.None ? new DeferredBytes() : null;
            payload = EncodePooled(batch, deferred);
            var context = ResilienceContextPool.Shared.Get(abort);
            Outcome<HttpResponseMessage> outcome;
            try
            {
                outcome = await _pipeline.ExecuteOutcomeAsync(
                    static (ctx, state) => state.Exporter.PostAsync(state.Payload, state.Deferred, state.Exporter._contentEncoding, ctx.CancellationToken),
                    context,
                    (Exporter: this, Payload: payload, Deferred: deferred)).ConfigureAwait(false);
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }

            // The disk buffer keeps the whole request: the bodies' arrays go back with the batch.
            if (_buffer is not null && IsUndelivered(outcome) && FillAndBuffer(payload, deferred, spans))
            {
                outcome.Result?.Dispose();
                var (kind, detail) = Describe(outcome);
                if (ReportKind(kind))
                {
                    ExporterLog.ExportBuffering(_logger, detail, spans);
                }

                return;
            }

            await CompleteAsync(outcome, spans, abort).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The exporter must keep running whatever one batch does. Out of memory included: the
            // batch is lost either way, and a fault left in a discarded task would count nothing.
            _metrics.ExportSpansFailed.Add(spans);
            ExporterLog.UnexpectedFailure(_logger, ex, spans);
        }
        finally
        {
            // Every attempt is over (sent, buffered to disk or given up): nothing reads the bytes now.
            ReturnPayload(payload);
            _metrics.ExportBatchDuration.Observe(_timeProvider.GetElapsedTime(started).TotalSeconds);
        }
    }

    private bool FillAndBuffer(ArraySegment<byte> payload, DeferredBytes? deferred, int spans)
    {
        deferred?.FillInto(payload.Array!);
        return TryBuffer(payload, spans);
    }

    // Batches are written into an array from the payload pool (see ExportPayloadPool); compressed
    // ones are then compressed from it into a stream of their own, and the array goes back at once.
    // Given `deferred` (uncompressed only), large bodies are left out of the array as gaps (DeferredBytes).
    private ArraySegment<byte> EncodePooled(List<QueuedSpan> batch, DeferredBytes? deferred)
    {
        var array = OtlpSpanWriter.ToArray(batch, Version, _payloads.Rent, out var length, deferred);
        if (_export.Compression == ExportCompression.None)
        {
            return new ArraySegment<byte>(array, 0, length);
        }

        try
        {
            return Compress(array.AsMemory(0, length), _export.Compression);
        }
        finally
        {
            _payloads.Return(array);
        }
    }

    // Only once every attempt is over. A cancelled attempt's connection is torn down, so even if
    // the handler were still copying from the array, those bytes never form a request the backend takes.
    private void ReturnPayload(ArraySegment<byte> payload)
    {
        if (_export.Compression == ExportCompression.None && payload.Array is { } array)
        {
            _payloads.Return(array);
        }
    }

    // Gives back what TryEnqueue reserved for these spans (and the exchanges' rented body arrays).
    private void Release(List<QueuedSpan> batch)
    {
        foreach (var span in batch)
        {
            _spans.Release(span);
        }
    }

    /// <summary>Bytes of encoded-batch arrays kept for reuse now (tests: every payload goes back to the pool).</summary>
    internal long PayloadPoolRetainedBytes => _payloads.RetainedBytes;

    /// <summary>
    /// What captures must have released since the last idle collection before the next one runs
    /// (<see cref="ReleaseIdleMemory"/>): a trickle of small exchanges leaves nothing the GC would
    /// not reclaim on its own, and a pod that serves one now and then should not pay a full
    /// collection for each.
    /// </summary>
    internal const long IdleCollectAfterBytes = 16L * 1024 * 1024;

    /// <summary>
    /// Once captures have gone idle after a burst (<see cref="IdleHeapCollection.Delay"/> with
    /// nothing held): the pools' kept arrays go, then the heap the burst grew. Without it an agent
    /// stayed at its burst's RSS for good (the capture proxy after ten seconds of 64 KiB bodies:
    /// 62 MiB a minute later against 37 MiB before, over issue 13's 60 MiB idle bound).
    /// </summary>
    private void ReleaseIdleMemory()
    {
        Budget.Arrays.Trim();
        _payloads.Trim();
        IdleHeapCollection.CollectAggressively();
    }

    /// <summary>Bytes reserved now by exchanges queued or being sent and by bodies being captured (see <c>export.max_inflight_bytes</c>).</summary>
    internal long InflightBytes => Budget.Held;

    /// <summary>The Content-Encoding header value for <paramref name="compression"/> ("" for none).</summary>
    internal static string ContentEncodingOf(ExportCompression compression) => compression switch
    {
        ExportCompression.Gzip => "gzip",
        ExportCompression.Zstd => "zstd",
        _ => "",
    };

    /// <summary>The gzip-compressed OTLP protobuf request body for <paramref name="batch"/>.</summary>
    internal static ArraySegment<byte> Encode(IReadOnlyList<Exchange> batch, string? publicKey) =>
        Encode(batch, publicKey, ExportCompression.Gzip);

    /// <summary>
    /// The OTLP protobuf request body for <paramref name="batch"/>, compressed as asked: the bytes
    /// of <c>ExchangeSpanMapper.ToExportRequest</c>, encoded by <see cref="OtlpSpanWriter"/> without building it.
    /// </summary>
    internal static ArraySegment<byte> Encode(IReadOnlyList<Exchange> batch, string? publicKey, ExportCompression compression)
    {
        if (compression == ExportCompression.None)
        {
            // Measured, then written into an array of exactly its size: one allocation, no copy.
            return OtlpSpanWriter.ToByteArray(batch, publicKey, Version);
        }

        long estimate = 0;
        for (var i = 0; i < batch.Count; i++)
        {
            estimate += EstimateBytes(batch[i]);
        }

        // Compressed payloads are rarely more than a quarter of the encoded size.
        var buffer = new MemoryStream((int)Math.Clamp(estimate / 4, 256, Array.MaxLength));
        if (compression == ExportCompression.Zstd)
        {
            ZstdEncoder.Write(batch, publicKey, Version, buffer);
        }
        else
        {
            using var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true);
            OtlpSpanWriter.Write(batch, publicKey, Version, gzip);
        }

        return new ArraySegment<byte>(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    // An encoded request compressed as asked (gzip or zstd), in an array of its own.
    private static ArraySegment<byte> Compress(ReadOnlyMemory<byte> request, ExportCompression compression)
    {
        // Compressed payloads are rarely more than a quarter of the encoded size.
        var buffer = new MemoryStream(Math.Max(request.Length / 4, 256));
        if (compression == ExportCompression.Zstd)
        {
            ZstdEncoder.Write(request, buffer);
        }
        else
        {
            using var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true);
            gzip.Write(request.Span);
        }

        return new ArraySegment<byte>(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    // Worth keeping for a later attempt: no answer, a transient status, the circuit open, or
    // cancelled at the flush deadline.
    private static bool IsUndelivered(Outcome<HttpResponseMessage> outcome) =>
        outcome.Exception is not null || outcome.Result is null || IsTransientStatus((int)outcome.Result.StatusCode);

    private async ValueTask<Outcome<HttpResponseMessage>> PostAsync(ArraySegment<byte> payload, DeferredBytes? deferred, string contentEncoding, CancellationToken cancellationToken)
    {
        try
        {
            using HttpContent content = deferred is { Gaps.Count: > 0 }
                ? new GatheredContent(payload, deferred)
                : new ByteArrayContent(payload.Array!, payload.Offset, payload.Count);
            content.Headers.ContentType = new MediaTypeHeaderValue(ProtobufMediaType);
            if (contentEncoding.Length > 0)
            {
                content.Headers.ContentEncoding.Add(contentEncoding);
            }

            using var request = new HttpRequestMessage(HttpMethod.Post, Endpoint) { Content = content };
            var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            ObserveBackend(response, null);
            return Outcome.FromResult(response);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            ObserveBackend(null, ex);
            return Outcome.FromException<HttpResponseMessage>(ex);
        }
    }

    private async Task CompleteAsync(Outcome<HttpResponseMessage> outcome, int spans, CancellationToken cancellationToken)
    {
        if (outcome.Exception is not null || outcome.Result is null)
        {
            _metrics.ExportSpansFailed.Add(spans);
            var (kind, detail) = Describe(outcome);
            Health.RecordFailed(kind + ": " + detail);
            ReportFailing(kind, detail, spans);
            return;
        }

        using var response = outcome.Result;
        var status = (int)response.StatusCode;
        if (status is >= 200 and < 300)
        {
            var (rejected, message) = await ReadPartialSuccessAsync(response, spans, cancellationToken).ConfigureAwait(false);
            _metrics.ExportSpansExported.Add(spans - rejected);
            Health.RecordDelivered(spans - rejected);
            if (rejected > 0)
            {
                _metrics.ExportSpansRejected.Add(rejected);
                if (ReportKind("partial_success"))
                {
                    ExporterLog.PartialSuccess(_logger, rejected, spans, message);
                }
            }
            else
            {
                ReportRecovered();
            }

            return;
        }

        if (IsTransientStatus(status))
        {
            _metrics.ExportSpansFailed.Add(spans);
            var (kind, detail) = Describe(outcome);
            Health.RecordFailed(kind + ": " + detail);
            ReportFailing(kind, detail, spans);
            return;
        }

        // 400/401/403 and other client errors: retrying cannot help.
        _metrics.ExportSpansRejected.Add(spans);
        Health.RecordRefused(string.Create(CultureInfo.InvariantCulture, $"backend refused the batch with {status}"));
        if (_loggedRejections.TryAdd(status, true))
        {
            var body = await ReadSnippetAsync(response, cancellationToken).ConfigureAwait(false);
            ExporterLog.ExportRejected(_logger, status, body);
        }
    }

    private static async Task<(int Rejected, string Message)> ReadPartialSuccessAsync(HttpResponseMessage response, int spans, CancellationToken cancellationToken)
    {
        try
        {
            var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (bytes.Length == 0)
            {
                return (0, "");
            }

            var mediaType = response.Content.Headers.ContentType?.MediaType;
            var parsed = mediaType is not null && mediaType.Contains("json", StringComparison.OrdinalIgnoreCase)
                ? ExportTraceServiceResponse.Parser.ParseJson(System.Text.Encoding.UTF8.GetString(bytes))
                : ExportTraceServiceResponse.Parser.ParseFrom(bytes);
            if (parsed.PartialSuccess is not { } partial || partial.RejectedSpans <= 0)
            {
                return (0, "");
            }

            return ((int)Math.Min(partial.RejectedSpans, spans), partial.ErrorMessage);
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidJsonException or FormatException)
        {
            // A 2xx with an unreadable body still means the batch was accepted.
            return (0, "");
        }
    }

    private static async Task<string> ReadSnippetAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            return text.Length > 200 ? text[..200] : text;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or InvalidOperationException)
        {
            return "";
        }
    }

    private static (string Kind, string Detail) Describe(Outcome<HttpResponseMessage> outcome) => outcome.Exception switch
    {
        BrokenCircuitException => ("circuit_open", "circuit open"),
        TimeoutRejectedException t => ("timeout", "timed out after " + t.Timeout.TotalMilliseconds.ToString(CultureInfo.InvariantCulture) + " ms"),
        HttpRequestException h => ("network", h.Message),
        OperationCanceledException => ("cancelled", "cancelled at shutdown"),
        { } other => ("error", other.Message),
        null when outcome.Result is { } response => (
            "http_" + ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture),
            "HTTP " + ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture)),
        _ => ("error", "no response"),
    };

    private void ReportFailing(string kind, string detail, int spans)
    {
        if (ReportKind(kind))
        {
            ExporterLog.ExportFailing(_logger, detail, spans);
        }
    }

    // True when this kind differs from the last reported one (so it should be logged).
    private bool ReportKind(string kind)
    {
        lock (_stateLock)
        {
            if (string.Equals(_failingKind, kind, StringComparison.Ordinal))
            {
                return false;
            }

            _failingKind = kind;
            return true;
        }
    }

    private void ReportRecovered()
    {
        bool wasFailing;
        lock (_stateLock)
        {
            wasFailing = _failingKind is not null;
            _failingKind = null;
        }

        Volatile.Write(ref _bufferProblemLogged, 0);
        if (wasFailing)
        {
            ExporterLog.ExportRecovered(_logger);
        }
    }

    private void OnCircuitStateChanged(BackendCircuitState state)
    {
        switch (state)
        {
            case BackendCircuitState.Open:
                _metrics.BackendCircuitOpen.Set(1);
                ExporterLog.CircuitOpened(_logger, _breaker.BreakDuration.TotalSeconds);
                break;
            case BackendCircuitState.HalfOpen:
                ExporterLog.CircuitHalfOpen(_logger);
                break;
            default:
                _metrics.BackendCircuitOpen.Set(0);
                ExporterLog.CircuitClosed(_logger);
                break;
        }
    }
}
