using System.Buffers;
using System.Globalization;
using SpIstio.Core.Capture;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Tracing;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// One exchange from its request head to its finish, the single lifecycle both front ends drive
/// (the ext_proc stream and the capture proxy's handler are adapters that feed it):
/// <c>request head</c> (<see cref="CapturePipeline.Begin"/>: rules, trace, sampling) →
/// <c>request body chunks</c> (<see cref="AppendRequestBody"/>, <see cref="CompleteRequestBody"/>) →
/// <c>short-circuit decision</c> (<see cref="TryShortCircuitAsync"/>) →
/// <c>response head</c> (<see cref="RecordResponseHead{TState}"/>) →
/// <c>response body chunks</c> (<see cref="AppendResponseBody"/>) →
/// <c>finish</c> (<see cref="Finish"/>) or <c>abort</c> (<see cref="Dispose"/> without a finish).
/// </summary>
/// <remarks>
/// <para>The rules it holds once: the sampling decision is made at the request head, and an
/// exchange that is not sampled keeps no body bytes unless a cache rule covers it (the cache keys
/// on the request body and records the response); the short-circuit deadline and fault policy are
/// <see cref="ShortCircuitPolicy"/>'s; an answer given by the agent is recorded with
/// <see cref="ShortCircuitPolicy.CacheHeader"/>; the trace fields are copied into the exchange here.</para>
/// <para>Buffer ownership: the body buffers (and a request body read ahead for a body-keyed lookup)
/// are rented and belong to this object. <see cref="Finish"/> returns the body buffers, or hands a
/// body's array to the exchange instead of copying it (<see cref="BodyLease"/>: the pipeline, then the
/// exporter, return it once nothing reads the body); the front end
/// disposes the capture when it is done with the traffic (a <c>using</c> or <c>finally</c>), which
/// returns everything still held, whether the exchange finished, failed or was abandoned.</para>
/// <para>Thread safety: appends, the response head and the finish share a lock, because a long
/// stream may be finished by the capture deadline on a timer thread while its bytes still flow
/// (uncontended in the common case).</para>
/// </remarks>
public sealed class ExchangeCapture : IDisposable
{
    private readonly CapturePipeline _pipeline;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private BodyCaptureBuffer? _requestBody;
    private BodyCaptureBuffer? _responseBody;
    private byte[]? _readAhead;
    private int _readAheadLength;
    private bool _requestBodyDone;

    // A body that came whole and is kept by reference instead of copied (AppendLast*Body).
    private ReadOnlyMemory<byte>? _requestWhole;
    private ReadOnlyMemory<byte>? _responseWhole;

    // A gRPC call's streams, split into messages as they pass (null for any other exchange).
    private GrpcFrameReader? _grpcRequest;
    private GrpcFrameReader? _grpcResponse;

    // An SSE response's events or a WebSocket's messages, once the response head says so (StreamCapture).
    private StreamCapture? _stream;
    private bool _finished;
    private bool _disposed;

    // True once Finish handed the exchange to the pipeline, which then owns its body arrays.
    private bool _handedOff;

    internal ExchangeCapture(CapturePipeline pipeline, TimeProvider time, Exchange exchange, PropagationResult trace, bool sampled, bool mayShortCircuit)
    {
        _pipeline = pipeline;
        _time = time;
        Exchange = exchange;
        Trace = trace;
        Sampled = sampled;
        MayShortCircuit = mayShortCircuit;
        KeepsBodies = sampled || mayShortCircuit;

        // The one place the trace fields reach the exchange.
        exchange.SetTraceIds(trace.BinaryTraceId, trace.BinarySpanId, trace.BinaryParentSpanId);
        exchange.SessionId = trace.SessionId;
        if (KeepsBodies && GrpcSpanAttributes.IsGrpc(exchange.RequestHeaders.Get("content-type")))
        {
            // The body buffer holds the stream's bytes already: the readers locate the messages in it instead of copying them.
            _grpcRequest = new GrpcFrameReader(pipeline.GrpcLimits, exchange.RequestHeaders.Get("grpc-encoding"), callerKeepsStream: true, pipeline.Budget.Arrays);
        }

        pipeline.Metrics.CapturesActive.Inc();
    }

    /// <summary>The exchange being filled in.</summary>
    public Exchange Exchange { get; }

    /// <summary>The trace context of the exchange and the headers to forward.</summary>
    public PropagationResult Trace { get; }

    /// <summary>The sampling decision (<c>sampling.by</c>, <c>sampling.ratio</c>), made at the request head.</summary>
    public bool Sampled { get; }

    /// <summary>True when the short-circuit (the cache) may answer this request: ask it once the request is known.</summary>
    public bool MayShortCircuit { get; }

    /// <summary>
    /// True when body bytes are worth copying: the exchange is sampled, or the short-circuit covers
    /// it. False: the front end can skip the bodies altogether (ext_proc's mode override, no tee in the proxy).
    /// </summary>
    public bool KeepsBodies { get; }

    /// <summary>Copies request body bytes (up to the capture limit) unless bodies are not kept or the request body is complete.</summary>
    public void AppendRequestBody(ReadOnlySpan<byte> bytes)
    {
        if (!KeepsBodies)
        {
            return;
        }

        lock (_gate)
        {
            if (_finished || (_stream?.AppendRequest(bytes, Elapsed()) ?? _requestBodyDone))
            {
                return;
            }

            _requestBody ??= new BodyCaptureBuffer(_pipeline.MaxRequestBodyBytes, _pipeline.Budget, ExpectedLength(Exchange.RequestHeaders, bytes));
            _requestBody.Append(bytes);
            _grpcRequest?.Append(bytes, Elapsed(), _requestBody.Captured);
        }
    }

    /// <summary>
    /// The last request body bytes that will be seen, in one piece that nobody changes afterwards
    /// (ext_proc's BUFFERED body, in the message's own array). When nothing of the body came before
    /// and it is within the capture limit it is kept by reference, not copied, and true is returned
    /// (a rented array is then the exchange's to return: <see cref="Exchange.HoldBodyArray"/>);
    /// anything else is appended as a chunk (copied).
    /// </summary>
    public bool AppendLastRequestBody(ReadOnlyMemory<byte> bytes)
    {
        if (!KeepsBodies)
        {
            return false;
        }

        lock (_gate)
        {
            if (KeepWhole(ref _requestWhole, _requestBody, _requestBodyDone, _pipeline.MaxRequestBodyBytes, bytes))
            {
                return true;
            }
        }

        AppendRequestBody(bytes.Span);
        return false;
    }

    /// <summary>
    /// Ends the request body (the request is over, or its response started): decodes what was kept
    /// into <see cref="Exchange.RequestBody"/>. <paramref name="ended"/> false means the body was cut
    /// off before its end (what was seen is a prefix). Only the first call counts.
    /// </summary>
    public void CompleteRequestBody(bool ended)
    {
        lock (_gate)
        {
            if (_requestBodyDone || _finished)
            {
                return;
            }

            _requestBodyDone = true;
            var buffer = _requestBody;
            _requestBody = null;
            if (buffer is not null)
            {
                Exchange.RequestBody = CompleteBody(buffer, ended, Exchange.RequestHeaders, _grpcRequest);
            }
            else if (_requestWhole is { } whole)
            {
                _requestWhole = null;
                Exchange.RequestBody = CompleteWhole(whole, ended, Exchange.RequestHeaders);
            }
        }
    }

    /// <summary>
    /// Reads the request body ahead, up to the capture limit plus one byte (to tell a body of exactly
    /// the limit from a longer one), for a body-keyed lookup. The array is rented and owned by this
    /// capture until it is disposed, also when reading throws. When the whole body was read it becomes
    /// <see cref="Exchange.RequestBody"/> for the lookup. Returns what was read (valid until disposal)
    /// and whether that is the whole body.
    /// </summary>
    public async ValueTask<(ReadOnlyMemory<byte> Body, bool Complete)> ReadRequestBodyAheadAsync(Stream body, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (_readAhead is not null)
        {
            throw new InvalidOperationException("The request body was already read ahead.");
        }

        var limit = _pipeline.MaxRequestBodyBytes;
        var wanted = limit + 1;
        _readAhead = ArrayPool<byte>.Shared.Rent(Math.Min(wanted, 16 * 1024));
        while (true)
        {
            if (_readAheadLength == _readAhead.Length)
            {
                if (_readAheadLength >= wanted)
                {
                    return ReadAheadResult(complete: false);
                }

                var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(wanted, (long)_readAhead.Length * 2));
                _readAhead.AsSpan(0, _readAheadLength).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(_readAhead);
                _readAhead = larger;
            }

            var room = Math.Min(_readAhead.Length, wanted) - _readAheadLength;
            if (room == 0)
            {
                return ReadAheadResult(complete: false);
            }

            var read = await body.ReadAsync(_readAhead.AsMemory(_readAheadLength, room), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return ReadAheadResult(complete: true);
            }

            _readAheadLength += read;
        }
    }

    // What was read ahead becomes the request body the lookup sees: the whole body, or (over the
    // capture limit) a truncated prefix, which cannot be keyed exactly.
    private (ReadOnlyMemory<byte> Body, bool Complete) ReadAheadResult(bool complete)
    {
        var read = _readAhead.AsMemory(0, _readAheadLength);
        var kept = complete ? read : read[..Math.Min(read.Length, _pipeline.MaxRequestBodyBytes)];
        Exchange.RequestBody = BodyCapture.Create(
            kept,
            read.Length,
            truncated: !complete,
            Exchange.RequestHeaders.Get("content-type"),
            Exchange.RequestHeaders.Get("content-encoding"),
            _pipeline.MaxDecodedBodyBytes);
        return (read, complete);
    }

    /// <summary>
    /// Asks the short-circuit under <see cref="ShortCircuitPolicy"/> (deadline: <c>fallback_timeout_ms</c>,
    /// else <c>async_timeout_ms</c>, capped at <paramref name="frontEndCap"/>; a timeout or fault is a
    /// miss). On an answer the exchange records it (status, headers, <see cref="ShortCircuitPolicy.CacheHeader"/>,
    /// body, and a request body read ahead) and the front end sends it, then calls <see cref="Finish"/>.
    /// </summary>
    public async ValueTask<ShortCircuitResponse?> TryShortCircuitAsync(TimeSpan? frontEndCap, Action<Exception> onFault, CancellationToken cancellationToken)
    {
        if (!MayShortCircuit)
        {
            return null;
        }

        var deadline = ShortCircuitPolicy.Deadline(_pipeline.Options, frontEndCap);
        var answer = await ShortCircuitPolicy.AskAsync(_pipeline, Exchange, deadline, onFault, cancellationToken).ConfigureAwait(false);
        if (answer is null)
        {
            return null;
        }

        lock (_gate)
        {
            ShortCircuitPolicy.RecordAnswer(Exchange, answer);
            if (_readAhead is not null && !_requestBodyDone)
            {
                // The upstream never reads the body that was read ahead: capture it here.
                _requestBody ??= new BodyCaptureBuffer(_pipeline.MaxRequestBodyBytes, _pipeline.Budget, DeclaredLength(Exchange.RequestHeaders));
                _requestBody.Append(_readAhead.AsSpan(0, _readAheadLength));
            }

            if (KeepsBodies)
            {
                if (_responseBody is { } upstream)
                {
                    _grpcResponse?.Detach(upstream.Captured);
                }

                _responseBody?.Dispose();
                _responseBody = new BodyCaptureBuffer(_pipeline.MaxResponseBodyBytes, _pipeline.Budget);
                _responseBody.Append(answer.Body.Span);
            }
        }

        return answer;
    }

    /// <summary>Records the response head: <paramref name="addHeaders"/> adds the fields to the exchange's response headers.</summary>
    public void RecordResponseHead<TState>(int? status, TState state, Action<TState, HeaderList> addHeaders)
    {
        ArgumentNullException.ThrowIfNull(addHeaders);
        lock (_gate)
        {
            if (_finished)
            {
                return;
            }

            if (status is not null)
            {
                Exchange.StatusCode = status;
            }

            addHeaders(state, Exchange.ResponseHeaders);
            // A gRPC call is followed as its messages (GrpcFrameReader), never as an event stream or a
            // WebSocket (no upgrade in HTTP/2): its head and trailers skip StreamCapture's three lookups.
            if (KeepsBodies && _grpcRequest is null)
            {
                if (_stream is null)
                {
                    _stream = StreamCapture.Begin(Exchange, _pipeline.StreamLimits, _pipeline.Budget, out var overBudget);
                    if (overBudget)
                    {
                        _pipeline.Metrics.CaptureBudgetExceeded.Inc();
                    }
                }
            }
        }
    }

    /// <summary>Copies response body bytes (up to the capture limit) unless bodies are not kept.</summary>
    public void AppendResponseBody(ReadOnlySpan<byte> bytes)
    {
        if (!KeepsBodies)
        {
            return;
        }

        lock (_gate)
        {
            if (_finished)
            {
                return;
            }

            if (_stream is not null)
            {
                _stream.AppendResponse(bytes, Elapsed());
                return;
            }

            _responseBody ??= new BodyCaptureBuffer(_pipeline.MaxResponseBodyBytes, _pipeline.Budget, ExpectedLength(Exchange.ResponseHeaders, bytes));
            _responseBody.Append(bytes);
            if (_grpcRequest is not null)
            {
                // The response's grpc-encoding is known once its head was recorded.
                _grpcResponse ??= new GrpcFrameReader(_pipeline.GrpcLimits, Exchange.ResponseHeaders.Get("grpc-encoding"), callerKeepsStream: true, _pipeline.Budget.Arrays);
                _grpcResponse.Append(bytes, Elapsed(), _responseBody.Captured);
            }
        }
    }

    /// <summary>
    /// The last response body bytes that will be seen, in one piece that nobody changes afterwards
    /// (ext_proc's BUFFERED body): kept by reference when nothing of the body came before and it is
    /// within the capture limit (true is returned), otherwise appended as a chunk (see <see cref="AppendLastRequestBody"/>).
    /// </summary>
    public bool AppendLastResponseBody(ReadOnlyMemory<byte> bytes)
    {
        if (!KeepsBodies)
        {
            return false;
        }

        lock (_gate)
        {
            if (KeepWhole(ref _responseWhole, _responseBody, done: false, _pipeline.MaxResponseBodyBytes, bytes))
            {
                return true;
            }
        }

        AppendResponseBody(bytes.Span);
        return false;
    }

    // Under _gate: keeps a body that came in one piece by reference, when nothing of it came before
    // (no buffer, no whole body yet), it is not a stream or gRPC call, and it fits the capture limit.
    private bool KeepWhole(ref ReadOnlyMemory<byte>? whole, BodyCaptureBuffer? buffer, bool done, int limit, ReadOnlyMemory<byte> bytes)
    {
        if (_finished || done || _stream is not null || _grpcRequest is not null || buffer is not null
            || whole is not null || bytes.Length > limit)
        {
            return false;
        }

        whole = bytes;
        return true;
    }

    /// <summary>
    /// Finishes the exchange once (later calls do nothing): completes both bodies (a body that did
    /// not reach its end, <paramref name="requestEnded"/> / <paramref name="responseEnded"/> false, is
    /// marked truncated), stamps the end time and outcome, returns the body buffers and hands the
    /// exchange to the pipeline (cache recording, sampling, redaction, export). A completed exchange
    /// without a response status is recorded as cancelled: the response never came.
    /// </summary>
    public void Finish(ExchangeOutcome outcome, string? error, bool requestEnded = true, bool responseEnded = true)
    {
        lock (_gate)
        {
            if (_finished)
            {
                return;
            }

            _finished = true;
            var exchange = Exchange;
            if (!_requestBodyDone && _requestBody is { } request)
            {
                _requestBody = null;
                exchange.RequestBody = CompleteBody(request, requestEnded, exchange.RequestHeaders, _grpcRequest);
            }
            else if (!_requestBodyDone && _requestWhole is { } requestWhole)
            {
                exchange.RequestBody = CompleteWhole(requestWhole, requestEnded, exchange.RequestHeaders);
            }

            _requestBodyDone = true;
            if (_responseBody is { } response)
            {
                _responseBody = null;
                exchange.ResponseBody = CompleteBody(response, responseEnded, exchange.ResponseHeaders, _grpcResponse);
            }
            else if (_responseWhole is { } responseWhole)
            {
                exchange.ResponseBody = CompleteWhole(responseWhole, responseEnded, exchange.ResponseHeaders);
            }

            _requestWhole = null;
            _responseWhole = null;

            exchange.EndTime = _time.GetUtcNow();
            if (_stream is { } stream)
            {
                // A stream finished at its deadline goes on for as long as it lives: its buffers go back now.
                stream.Finish(exchange, outcome, Sampled ? _pipeline.Redactor : null, _pipeline.MaxResponseBodyBytes, _pipeline.MaxDecodedBodyBytes);
                stream.Count(_pipeline.Metrics);
                stream.Dispose();
                _stream = null;
            }

            if (_grpcRequest is not null)
            {
                RecordGrpc(exchange, outcome);
            }

            if (outcome == ExchangeOutcome.Completed && exchange.StatusCode is null)
            {
                outcome = ExchangeOutcome.Cancelled;
                error ??= "the exchange ended before the response headers";
            }

            exchange.Outcome = outcome;
            exchange.Error = error;
            _handedOff = true;
        }

        _pipeline.Complete(Exchange, Sampled);
    }

    /// <summary>
    /// Returns every buffer still held (bodies of an exchange that never finished, the request body
    /// read ahead). An exchange that was not finished is abandoned: nothing is exported.
    /// </summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _finished = true;
            _requestBody?.Dispose();
            _requestBody = null;
            _responseBody?.Dispose();
            _responseBody = null;
            _requestWhole = null;
            _responseWhole = null;
            _grpcRequest?.Dispose();
            _grpcRequest = null;
            _grpcResponse?.Dispose();
            _grpcResponse = null;
            _stream?.Dispose();
            _stream = null;
            if (!_handedOff)
            {
                // Abandoned (or failed before the hand-off): nobody will read the bodies.
                Exchange.ReturnBodyArrays();
            }

            if (_readAhead is { } readAhead)
            {
                _readAhead = null;
                ArrayPool<byte>.Shared.Return(readAhead);
            }
        }

        _pipeline.Metrics.CapturesActive.Dec();
    }

    /// <summary>True when the response turned out to be a stream (server-sent events, a WebSocket) followed as events or messages.</summary>
    public bool FollowsStream => Volatile.Read(ref _stream) is not null;

    /// <summary>True when the response is a server-sent event stream followed as events.</summary>
    public bool FollowsEventStream => Volatile.Read(ref _stream) is { IsEventStream: true };

    /// <summary>True once the exchange's WebSocket finished its closing handshake (both close frames seen): the front end may finish it.</summary>
    public bool StreamClosed
    {
        get
        {
            lock (_gate)
            {
                return _stream?.Closed == true;
            }
        }
    }

    private TimeSpan Elapsed() => _time.GetUtcNow() - Exchange.StartTime;

    /// <summary>
    /// Writes the gRPC facts of a finished call as span attributes: service and method (OpenTelemetry
    /// RPC conventions), each direction's messages, and the status from the trailers — or from the
    /// headers of a trailers-only response, which carries grpc-status there. Both front ends put
    /// trailers among the response headers, so one lookup finds either.
    /// </summary>
    private void RecordGrpc(Exchange exchange, ExchangeOutcome outcome)
    {
        var attributes = exchange.Attributes;

        // The RPC attributes below (up to six): the dictionary grows once, not twice.
        attributes.EnsureCapacity(attributes.Count + 6);
        attributes[GrpcSpanAttributes.RpcSystem] = "grpc";
        if (GrpcSpanAttributes.ParsePath(exchange.Path) is var (service, method))
        {
            attributes[GrpcSpanAttributes.RpcService] = service;
            attributes[GrpcSpanAttributes.RpcMethod] = method;
        }

        // A stream cut off mid-message keeps that message as truncated (Complete). The lists stay bytes
        // until the pipeline has redacted them and writes their attributes (GrpcCallMessages).
        _grpcRequest!.Complete();
        _grpcResponse?.Complete();
        _pipeline.Metrics.CountStream(
            Metrics.StreamKinds.Grpc,
            _grpcRequest.MessageCount + (_grpcResponse?.MessageCount ?? 0),
            _grpcRequest.TotalBytes + (_grpcResponse?.TotalBytes ?? 0));
        exchange.GrpcCall = new GrpcCallMessages(List(_grpcRequest), _grpcResponse is null ? null : List(_grpcResponse));
        HoldMessageArrays(exchange, _grpcRequest);
        if (_grpcResponse is not null)
        {
            HoldMessageArrays(exchange, _grpcResponse);
        }

        var headers = exchange.ResponseHeaders;
        if (GrpcCallStatus.Parse(headers.Get("grpc-status"), headers.Get("grpc-message"), headers.Get("grpc-status-details-bin")) is { } status)
        {
            // A string here; the span encoders write it as the int the RPC conventions ask for.
            attributes[GrpcSpanAttributes.RpcStatusCode] = GrpcCallStatus.CodeText(status.Code);
            attributes[GrpcSpanAttributes.StatusName] = status.Name;
            if (status.Message is not null)
            {
                attributes[GrpcSpanAttributes.StatusMessage] = status.Message;
            }

            if (status.Details is not null)
            {
                attributes[GrpcSpanAttributes.StatusDetails] = GrpcSpanAttributes.EncodeStatusDetails(status.Details);
            }
        }
        // A capture deadline (TimedOut) leaves a stream still open: its status is not known yet.
        else if (outcome is ExchangeOutcome.Cancelled or ExchangeOutcome.Failed || (outcome == ExchangeOutcome.Completed && exchange.StatusCode is null))
        {
            RecordInferredGrpcStatus(exchange, outcome);
        }
    }

    private static GrpcMessageList List(GrpcFrameReader reader) => new(reader.MessageCount, reader.Truncated, reader.Messages);

    // The rented arrays of messages the reader copied out of a cut body live as long as the exchange's lists.
    private static void HoldMessageArrays(Exchange exchange, GrpcFrameReader reader)
    {
        var leases = reader.TakeLeases();
        for (var i = 0; i < leases.Count; i++)
        {
            exchange.HoldBodyArray(leases[i]);
        }
    }

    /// <summary>
    /// A call that ended without a gRPC status (the client reset the stream, the deadline passed,
    /// the upstream failed) gets the status its client sees, marked as inferred by the agent:
    /// DEADLINE_EXCEEDED once the request's <c>grpc-timeout</c> ran out, UNAVAILABLE when the
    /// upstream failed (gRPC maps the proxy's 502/504 so), else CANCELLED.
    /// </summary>
    private static void RecordInferredGrpcStatus(Exchange exchange, ExchangeOutcome outcome)
    {
        // The client counts its deadline from before the request reached us, so a reset seen a
        // little before the full timeout here is still its expiry: allow a tenth of it, at most 1 s.
        var timeout = GrpcTimeout.Parse(exchange.RequestHeaders.Get("grpc-timeout"));
        var elapsed = exchange.EndTime - exchange.StartTime;
        var expired = timeout is { } t && elapsed >= t - TimeSpan.FromTicks(Math.Min(t.Ticks / 10, TimeSpan.TicksPerSecond));
        var code = expired ? 4 : outcome == ExchangeOutcome.Failed ? 14 : 1;
        var attributes = exchange.Attributes;
        attributes[GrpcSpanAttributes.RpcStatusCode] = GrpcCallStatus.CodeText(code);
        attributes[GrpcSpanAttributes.StatusName] = GrpcCallStatus.NameOf(code);
        attributes[GrpcSpanAttributes.StatusMessage] = code switch
        {
            4 => "deadline exceeded (grpc-timeout " + exchange.RequestHeaders.Get("grpc-timeout") + ")",
            14 => "the upstream failed before a gRPC status",
            _ => "the call ended without a gRPC status",
        };
        attributes[GrpcSpanAttributes.StatusInferred] = "true";
    }

    // `grpc`: the reader of the same stream, whose messages may lie in the buffer by reference: they
    // become slices of the body when it keeps the bytes as captured, else they are copied out first.
    private CapturedBody CompleteBody(BodyCaptureBuffer buffer, bool ended, HeaderList headers, GrpcFrameReader? grpc)
    {
        if (buffer.BudgetExceeded)
        {
            _pipeline.Metrics.CaptureBudgetExceeded.Inc();
        }

        // Each looked up once: a gRPC call's body asks for both twice below.
        var contentType = headers.Get("content-type");
        var contentEncoding = headers.Get("content-encoding");
        var shareBytes = grpc is not null && !buffer.Truncated && BodyCapture.KeepsCapturedBytes(contentType, contentEncoding);
        if (grpc is not null && !shareBytes)
        {
            grpc.Detach(buffer.Captured);
        }

        CapturedBody body;
        if (MayShortCircuit)
        {
            // A cache lookup may still read the request body after the exchange is exported (a
            // lookup past its deadline goes on in the background): such a body gets its own copy.
            body = buffer.Complete(contentType, contentEncoding, _pipeline.MaxDecodedBodyBytes);
        }
        else
        {
            body = buffer.Complete(contentType, contentEncoding, _pipeline.MaxDecodedBodyBytes, out var lease);
            if (lease is not null)
            {
                Exchange.HoldBodyArray(lease);
            }
        }

        if (shareBytes)
        {
            // The messages share the body's lifetime (a leased array goes back once the export is done with both).
            grpc!.ResolveFrom(body.Content);
        }

        return ended ? body : Cut(body, headers);
    }

    private CapturedBody CompleteWhole(ReadOnlyMemory<byte> whole, bool ended, HeaderList headers)
    {
        var body = BodyCapture.CreateOwned(whole, whole.Length, truncated: false, headers.Get("content-type"), headers.Get("content-encoding"), _pipeline.MaxDecodedBodyBytes);
        return ended ? body : Cut(body, headers);
    }

    // What a body's first array is sized for: its content-length or, for a gRPC call's body (which
    // has none), the first message's frame when the first chunk holds only part of it. A 64 KiB
    // message otherwise grew the array from its first DATA frame (16 KiB) to 32 and 64 KiB, copying
    // 48 KiB each way; a first chunk that holds its whole message (a 1 KiB unary call, a stream's
    // small messages) keeps the usual first array, which the later messages grow from.
    private long ExpectedLength(HeaderList headers, ReadOnlySpan<byte> first)
    {
        var declared = DeclaredLength(headers);
        if (declared < 0 && _grpcRequest is not null && GrpcFrameReader.FirstFrameLength(first) is var frame && frame > first.Length)
        {
            return frame;
        }

        return declared;
    }

    // The body's content-length, or -1 when absent or not a number.
    private static long DeclaredLength(HeaderList headers) =>
        long.TryParse(headers.Get("content-length"), NumberStyles.None, CultureInfo.InvariantCulture, out var length) ? length : -1;

    private static CapturedBody Cut(CapturedBody body, HeaderList headers)
    {
        // The body stopped before its end (BUFFERED_PARTIAL over the limit, a cancelled stream):
        // what was seen is a prefix; its size is what content-length says, if anything.
        var declared = DeclaredLength(headers);
        return body with { Truncated = true, OriginalSize = declared > body.OriginalSize ? declared : -1 };
    }
}
