using Microsoft.Extensions.Logging;
using SpIstio.Agent.Metrics;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;
using SpIstio.Core.Rules;
using SpIstio.Core.Streams;
using SpIstio.Core.Tracing;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// What happens to an exchange between the traffic and the exporter, shared by the ext_proc
/// service and the capture proxy so both decide, trace, redact and count the same way:
/// rules at request time, trace context for the forwarded request, then sampling, redaction
/// and a non-blocking hand-off to the exporter when the exchange is finished.
/// </summary>
public sealed partial class CapturePipeline
{
    private readonly IExchangeExporter _exporter;
    private readonly Redactor _redactor;
    private readonly ILogger _logger;
    private readonly bool _detailedLogging;
    private readonly IExchangeRecorder? _recorder;
    private readonly bool _samplingBySession;
    private readonly CaptureWorkers? _workers;

    /// <summary>Builds the pipeline from validated options.</summary>
    /// <param name="options">Validated options.</param>
    /// <param name="exporter">Where finished exchanges go.</param>
    /// <param name="metrics">The agent's metrics.</param>
    /// <param name="logger">The pipeline's log.</param>
    /// <param name="shortCircuit">The recorded-response seam; none by default.</param>
    /// <param name="budget">The byte budget body buffers reserve from; the exporter's when the runtime builds the pipeline.</param>
    /// <param name="deferWork">
    /// True (the agent runtime): finished exchanges are redacted, encoded and queued for export on
    /// <c>capture.worker_threads</c> dedicated threads (<see cref="CaptureWorkers"/>); false: on the
    /// thread that finishes them, before <see cref="Complete"/> returns.
    /// </param>
    public CapturePipeline(
        AgentOptions options,
        IExchangeExporter exporter,
        AgentMetrics metrics,
        ILogger<CapturePipeline> logger,
        IResponseShortCircuit? shortCircuit = null,
        CaptureByteBudget? budget = null,
        bool deferWork = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _exporter = exporter ?? throw new ArgumentNullException(nameof(exporter));
        Metrics = metrics ?? throw new ArgumentNullException(nameof(metrics));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        Rules = CaptureRules.Create(options);
        SamplingRatio = options.Sampling?.Ratio ?? 1.0;
        _samplingBySession = (options.Sampling?.By ?? SamplingBy.Session) == SamplingBy.Session;
        _detailedLogging = options.EnableDetailedLogging;
        ShortCircuit = shortCircuit ?? NoShortCircuit.Instance;
        _recorder = ShortCircuit as IExchangeRecorder;
        var capture = options.Capture ?? new CaptureOptions();
        MaxRequestBodyBytes = capture.MaxRequestBodyBytes;
        MaxResponseBodyBytes = capture.MaxResponseBodyBytes;
        MaxDecodedBodyBytes = capture.MaxDecodedBodyBytes;
        Budget = budget ?? new CaptureByteBudget((options.Export ?? new ExportOptions()).MaxInflightBytes);
        var grpc = capture.Grpc ?? new GrpcCaptureOptions();

        // The descriptor sets were validated at start-up; with them message fields are redacted by name.
        _redactor = Redactor.Create(options.Redaction ?? new RedactionOptions(), GrpcDescriptorSet.LoadFiles(grpc.DescriptorSets ?? []));
        GrpcLimits = new GrpcCaptureLimits(grpc.MaxMessageBytes, grpc.MaxMessages, grpc.MaxStreamBytes);
        var streams = capture.Streams ?? new StreamCaptureOptions();
        StreamLimits = new StreamCaptureLimits(streams.MaxEvents, streams.MaxEventBytes, streams.MaxStreamBytes);
        StreamDeadline = TimeSpan.FromMilliseconds(streams.MaxDurationMs);
        if (deferWork && capture.WorkerThreads > 0)
        {
            _workers = new CaptureWorkers(capture.WorkerThreads, capture.WorkerPriority, Export, Budget, metrics, logger);
        }
    }

    /// <summary>The options the pipeline was built from.</summary>
    public AgentOptions Options { get; }

    /// <summary>The agent's metrics.</summary>
    public AgentMetrics Metrics { get; }

    /// <summary>The compiled collection and exemption rules.</summary>
    public CaptureRules Rules { get; }

    /// <summary>The recorded-response seam (never null; <see cref="NoShortCircuit"/> by default).</summary>
    public IResponseShortCircuit ShortCircuit { get; }

    /// <summary>Share of new traces sampled.</summary>
    public double SamplingRatio { get; }

    /// <summary>Most request-body bytes captured per exchange.</summary>
    public int MaxRequestBodyBytes { get; }

    /// <summary>Most response-body bytes captured per exchange.</summary>
    public int MaxResponseBodyBytes { get; }

    /// <summary>
    /// The byte budget body buffers reserve from while they fill (<c>export.max_inflight_bytes</c>),
    /// the exporter's when the runtime built the pipeline: one bound on everything captured and not yet exported.
    /// </summary>
    public CaptureByteBudget Budget { get; }

    /// <summary>Most bytes a compressed body may inflate to when decoded.</summary>
    public int MaxDecodedBodyBytes { get; }

    /// <summary>What one gRPC stream direction may make the capture hold (<c>capture.grpc</c>).</summary>
    public GrpcCaptureLimits GrpcLimits { get; }

    /// <summary>What one SSE response or WebSocket may make the capture hold (<c>capture.streams</c>).</summary>
    public StreamCaptureLimits StreamLimits { get; }

    /// <summary>How long a stream is followed before its exchange is finished as it is (<c>capture.streams.max_duration_ms</c>).</summary>
    public TimeSpan StreamDeadline { get; }

    /// <summary>The redactor every exported exchange goes through; streams redact their events with it at the finish.</summary>
    internal Redactor Redactor => _redactor;

    /// <summary>
    /// Decides at request-headers time whether the exchange is captured. Anything but
    /// <see cref="CaptureDecision.Capture"/> is counted here in <c>sp_requests_total</c>, so the
    /// caller can stop following the exchange.
    /// </summary>
    public CaptureDecision Decide(TrafficDirection direction, string method, string authority, string path, HeaderList requestHeaders)
    {
        var decision = Rules.Evaluate(direction, method, authority, path, requestHeaders);
        if (decision != CaptureDecision.Capture)
        {
            Metrics.Requests(direction, decision).Inc();
        }

        return decision;
    }

    /// <summary>
    /// The trace and session of an exchange from its request headers (not modified), plus the
    /// header values to forward; see <see cref="TraceContextPropagator.Propagate"/>.
    /// </summary>
    public PropagationResult StartTrace(HeaderList requestHeaders) =>
        TraceContextPropagator.Propagate(requestHeaders, SamplingRatio, _samplingBySession);

    /// <summary>
    /// The request head of an exchange has arrived (<paramref name="exchange"/> holds its direction,
    /// service, method, target, authority, headers and start time): applies the capture rules and,
    /// when the exchange is followed, places it in its trace and session and decides sampling, once,
    /// here. Returns null when the rules skip it (counted in <c>sp_requests_total</c>; the front end
    /// forwards it untouched), otherwise the <see cref="ExchangeCapture"/> the front end drives to
    /// the end and disposes.
    /// </summary>
    public ExchangeCapture? Begin(Exchange exchange, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentNullException.ThrowIfNull(time);
        if (Decide(exchange.Direction, exchange.Method, exchange.Authority, exchange.Path, exchange.RequestHeaders) != CaptureDecision.Capture)
        {
            return null;
        }

        var trace = StartTrace(exchange.RequestHeaders);
        return new ExchangeCapture(this, time, exchange, trace, ShouldSample(trace), MayShortCircuit(exchange));
    }

    /// <summary>
    /// The sampling decision of an exchange (<c>sampling.by</c>): from its session id, so every
    /// exchange of a session is kept or dropped together on every hop, or from its trace id.
    /// </summary>
    public bool ShouldSample(PropagationResult trace) =>
        _samplingBySession
            ? SessionSampler.ShouldSample(trace.SessionId, SamplingRatio)
            : TraceSampler.ShouldSample(trace.BinaryTraceId, SamplingRatio);

    /// <summary>
    /// True when the short-circuit may answer <paramref name="request"/> (its head so far): there is
    /// one, and it is not a body-keyed cache whose rules leave this request out.
    /// </summary>
    public bool MayShortCircuit(Exchange request) =>
        !ReferenceEquals(ShortCircuit, NoShortCircuit.Instance)
        && (ShortCircuit is not IRequestBodyKeyed keyed || keyed.NeedsRequestBody(request));

    /// <summary>
    /// Finishes a captured exchange: lets the cache record its response (before sampling and
    /// redaction, so what is replayed is what the upstream sent), then drops it when its trace is
    /// not sampled, otherwise hands it on without waiting: to the capture workers when the pipeline
    /// has them and they can take it (they count its body bytes, redact it and queue it for export),
    /// else does that here.
    /// Returns true when it was handed on (queued for the workers or for export).
    /// </summary>
    public bool Complete(Exchange exchange, bool sampled)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        var queued = false;
        try
        {
            _recorder?.Record(exchange);
            if (!sampled)
            {
                Metrics.RequestsSampledOut(exchange.Direction).Inc();
                return false;
            }

            if (_workers?.TryPost(exchange) == true)
            {
                queued = true;
                return true;
            }

            // No workers, or they cannot take it now (stopped, queue at its share of the budget): here.
            queued = Export(exchange, 0);
            return queued;
        }
        finally
        {
            if (!queued)
            {
                // Not handed on (sampled out, dropped, or redaction failed): nothing reads its bodies now.
                exchange.ReturnBodyArrays();
            }
        }
    }

    /// <summary>
    /// Lets the capture workers finish the exchanges they hold, until <paramref name="deadline"/>
    /// (what is left then is dropped and counted); exchanges finished later are handled on the
    /// thread that finishes them. Call before the exporter stops, so its flush carries them.
    /// </summary>
    public Task StopWorkersAsync(TimeSpan deadline) => _workers?.StopAsync(deadline) ?? Task.CompletedTask;

    // The deferred work (on a capture worker, or inline without one); the exporter owns the exchange
    // (and its body arrays) once this returns true, the caller returns its arrays otherwise.
    // reserved: budget bytes the caller (a worker's queue) holds for the exchange; they are handed to
    // the exporter, or given back, whatever happens here.
    private bool Export(Exchange exchange, long reserved)
    {
        try
        {
            CountBody(exchange.RequestBody);
            CountBody(exchange.ResponseBody);
            _redactor.Redact(exchange);
            GrpcCallMessages.Seal(exchange);
            if (_detailedLogging)
            {
                Log.ExchangeCaptured(_logger, exchange.Direction, exchange.Method, exchange.Authority, exchange.Path, exchange.StatusCode);
            }
        }
        catch
        {
            // A fault here (redaction out of memory under the heap cap) reaches no exporter: the bytes go back.
            Budget.Release(reserved);
            throw;
        }

        // Handed over rather than released and reserved again: a queued exchange counted twice for
        // that moment could be refused by a budget that holds it once. An exporter accounting in
        // another budget (or none) has nothing to take over.
        if (!ReferenceEquals(_exporter.ReservesIn, Budget))
        {
            Budget.Release(reserved);
            reserved = 0;
        }

        if (_exporter.TryEnqueue(exchange, reserved))
        {
            Metrics.Requests(exchange.Direction, CaptureDecision.Capture).Inc();
            return true;
        }

        Metrics.RequestsDropped(exchange.Direction).Inc();
        return false;
    }

    private void CountBody(CapturedBody body)
    {
        Metrics.CaptureBytes.Add(body.Content.Length);
        if (body.Truncated)
        {
            Metrics.BodyTruncated.Inc();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Captured {Direction} {Method} {Authority}{Path} -> {Status}")]
        public static partial void ExchangeCaptured(ILogger logger, TrafficDirection direction, string method, string authority, string path, int? status);
    }
}
