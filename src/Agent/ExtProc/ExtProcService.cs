using System.Diagnostics;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Metrics;
using SpIstio.Core.Model;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// Envoy's <c>envoy.service.ext_proc.v3.ExternalProcessor</c>: one bidirectional stream per HTTP
/// exchange, assembled into an <see cref="Exchange"/> and handed to the <see cref="CapturePipeline"/>.
/// </summary>
/// <remarks>
/// <para>Observability mode (every message carries <c>observability_mode</c>): the agent never
/// answers, so capture adds no latency. Synchronous mode: exactly one answer per message, in
/// order; trace context is injected into the request headers, excluded exchanges are answered
/// with a <c>mode_override</c> that stops Envoy sending the rest, and a complete request may be
/// answered by the <see cref="IResponseShortCircuit"/> with an ImmediateResponse.</para>
/// <para>Fail open: a fault ends the stream with status OK, which tells Envoy to go on without the
/// agent; it is counted in <c>sp_agent_faults_total{kind}</c> and logged once per kind. Envoy
/// cancelling a stream is normal (it does so after an ImmediateResponse or when it needs nothing
/// more) and is neither an error nor logged as one. The exception: bytes that do not read as a
/// ProcessingRequest end the stream with INVALID_ARGUMENT naming what was wrong (counted as
/// <c>extproc_protocol</c>); Envoy never sends them, so whoever did learns why.</para>
/// </remarks>
public sealed partial class ExtProcService
{
    /// <summary>Fault kind: the short-circuit threw.</summary>
    public const string FaultShortCircuit = ShortCircuitPolicy.FaultKind;

    /// <summary>Fault kind: anything else that went wrong while handling a stream.</summary>
    public const string FaultStream = "extproc_stream";

    /// <summary>Fault kind: a message Envoy should not send (no request set, or bytes that are not a ProcessingRequest).</summary>
    public const string FaultProtocol = "extproc_protocol";

    // Indexes into _faults / _faultLogged.
    private const int KindShortCircuit = 0;
    private const int KindStream = 1;
    private const int KindProtocol = 2;

    private readonly CapturePipeline _pipeline;
    private readonly ExtProcOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Counter[] _faults;
    private readonly int[] _faultLogged = new int[3];

    /// <summary>Creates the service.</summary>
    public ExtProcService(CapturePipeline pipeline, ExtProcOptions options, ILogger<ExtProcService> logger, TimeProvider? time = null)
    {
        _pipeline = pipeline ?? throw new ArgumentNullException(nameof(pipeline));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _time = time ?? TimeProvider.System;
        var metrics = pipeline.Metrics;
        _faults = [metrics.Faults(FaultShortCircuit), metrics.Faults(FaultStream), metrics.Faults(FaultProtocol)];
    }

    /// <summary>
    /// The largest request message taken (gRPC's receive limit, which the server sets for Grpc.AspNetCore
    /// too); gRPC's default of 4 MB unless set.
    /// </summary>
    internal int MaxReceiveMessageBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>
    /// One ext_proc stream (one exchange), bound by <see cref="ExtProcMethod"/>: requests arrive read
    /// by <see cref="ProcessingRequestReader"/>; a malformed one ends the stream with INVALID_ARGUMENT.
    /// Hosted by ASP.NET Core, the messages are read and the answers written on the HTTP/2 stream's
    /// pipes (<see cref="ExtProcFrames"/>); <paramref name="requestStream"/> and
    /// <paramref name="responseStream"/> serve a call built in memory or with compressed requests.
    /// </summary>
    internal async Task Process(
        IAsyncStreamReader<ExtProcRequest> requestStream,
        IServerStreamWriter<ExtProcAnswer> responseStream,
        ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);

        var metrics = _pipeline.Metrics;
        metrics.ExtProcStreamsActive.Inc();
        var callToken = context.CancellationToken;
        using var stream = new ExtProcStream(_pipeline, _options, context, _time);
        using var idle = new CancellationTokenSource(_options.StreamIdleTimeout, _time);
        using var link = callToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), idle);
        var token = idle.Token;
        var idleTicks = (long)(_options.StreamIdleTimeout.TotalSeconds * Stopwatch.Frequency / 4);
        var lastReset = Stopwatch.GetTimestamp();
        var faulted = false;
        var frames = ExtProcFrames.TryCreate(ExtProcStream.HttpContextOf(context), MaxReceiveMessageBytes);
        try
        {
            while (true)
            {
                ExtProcRequest? request;
                if (frames is null)
                {
                    request = await requestStream.MoveNext(token).ConfigureAwait(false) ? requestStream.Current : null;
                }
                else
                {
                    while (!frames.TryTake(await frames.ReadAsync(token).ConfigureAwait(false), out request))
                    {
                    }
                }

                if (request is null)
                {
                    break;
                }

                var started = Stopwatch.GetTimestamp();
                var type = request.Type;
                if ((uint)type >= (uint)AgentMetrics.MessageTypes.Length)
                {
                    LogFault(KindProtocol, null);
                    faulted = true;
                    break;
                }

                metrics.Messages(type).Inc();
                var response = stream.Handle(request);
                if (stream.ShortCircuitDue && !request.ObservabilityMode)
                {
                    // A throwing short-circuit is a miss (ShortCircuitPolicy): counted there, logged here.
                    var immediate = await stream.TryShortCircuitAsync(ex => LogFault(KindShortCircuit, ex, count: false), token).ConfigureAwait(false);
                    response = immediate ?? response;
                }

                if (request.ObservabilityMode)
                {
                    metrics.Processing(type).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
                    stream.FinishDeferred();
                }
                else
                {
                    // Server time ends once the answer is serialized into the HTTP/2 stream; the
                    // flush that follows is transport. Kestrel's connection loop sends it while this
                    // one does the capture work of an exchange the message ended (FinishDeferred:
                    // bodies, redaction, queueing), so Envoy never waits for that work.
                    var write = frames is null ? responseStream.WriteAsync(response, token) : null;
                    var flush = frames?.WriteAsync(response, token) ?? default;
                    metrics.Processing(type).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
                    stream.FinishDeferred();
                    if (write is not null)
                    {
                        await write.ConfigureAwait(false);
                    }
                    else if ((await flush.ConfigureAwait(false)).IsCanceled)
                    {
                        throw new OperationCanceledException("Writing the ext_proc answer was cancelled.");
                    }
                }

                if (response.EndsStream)
                {
                    // Envoy answers locally and closes the stream; nothing more belongs to this exchange.
                    break;
                }

                // Re-arming the idle timer costs a timer-queue update; doing it at most every
                // quarter of the timeout keeps it off most messages.
                if (started - lastReset > idleTicks)
                {
                    lastReset = started;
                    idle.CancelAfter(_options.StreamIdleTimeout);
                }
            }

            // After a fault the exchange is left unexported: the agent cannot vouch for it.
            if (!faulted)
            {
                stream.Finish(ExchangeOutcome.Completed, null);
            }
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.InvalidArgument && !token.IsCancellationRequested)
        {
            // Bytes ProcessingRequestReader cannot read: not Envoy's doing (Envoy sends what the
            // proto says), so the stream ends with the status naming what was wrong, rather than OK.
            LogFault(KindProtocol, ex);
            throw;
        }
        catch (Exception ex) when (IsCancellation(ex, token))
        {
            if (callToken.IsCancellationRequested || ex is IOException || !token.IsCancellationRequested)
            {
                stream.Finish(ExchangeOutcome.Cancelled, "envoy cancelled the stream");
            }
            else
            {
                // Idle deadline: keep what was seen, end the stream with OK so Envoy goes on alone.
                stream.Finish(ExchangeOutcome.TimedOut, "ext_proc stream idle timeout");
            }
        }
        catch (Exception ex)
        {
            LogFault(KindStream, ex);
        }
        finally
        {
            metrics.ExtProcStreamsActive.Dec();
        }
    }

    private static bool IsCancellation(Exception ex, CancellationToken token) =>
        ex is OperationCanceledException or IOException
        || (token.IsCancellationRequested && ex is RpcException or InvalidOperationException);

    private void LogFault(int kind, Exception? exception, bool count = true)
    {
        if (count)
        {
            _faults[kind].Inc();
        }

        if (Interlocked.Exchange(ref _faultLogged[kind], 1) == 0)
        {
            if (kind == KindShortCircuit)
            {
                Log.ShortCircuitFailed(_logger, exception);
            }
            else if (exception is RpcException { StatusCode: StatusCode.InvalidArgument })
            {
                Log.MalformedMessage(_logger, exception);
            }
            else
            {
                Log.FailedOpen(_logger, FaultKindName(kind), exception);
            }
        }
    }

    private static string FaultKindName(int kind) => kind switch
    {
        KindShortCircuit => FaultShortCircuit,
        KindStream => FaultStream,
        _ => FaultProtocol,
    };

    private static partial class Log
    {
        [LoggerMessage(100, LogLevel.Warning, "ext_proc fault '{Kind}': the stream was closed with OK so Envoy passes the request through unchanged. Further faults of this kind are only counted (sp_agent_faults_total).")]
        public static partial void FailedOpen(ILogger logger, string kind, Exception? exception);

        [LoggerMessage(101, LogLevel.Warning, "Response short-circuit failed: the request goes to its upstream and is captured as a cache miss. Further faults of this kind are only counted (sp_agent_faults_total, kind short_circuit).")]
        public static partial void ShortCircuitFailed(ILogger logger, Exception? exception);

        [LoggerMessage(102, LogLevel.Warning, "Malformed ext_proc message: the stream was ended with INVALID_ARGUMENT. Further faults of this kind are only counted (sp_agent_faults_total, kind extproc_protocol).")]
        public static partial void MalformedMessage(ILogger logger, Exception? exception);
    }
}
