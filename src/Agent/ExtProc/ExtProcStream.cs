using Grpc.Core;
using Microsoft.AspNetCore.Http;
using SpIstio.Agent.Cache;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Services;
using SpIstio.Core.Streams;
using AppendAction = SpIstio.Agent.ExtProc.Proto.Core.HeaderValueOption.Types.HeaderAppendAction;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// The ext_proc adapter of one exchange: translates Envoy's message sequence on one stream into
/// the <see cref="ExchangeCapture"/> lifecycle (request head, body chunks, short-circuit, response
/// head, body chunks, finish) and the lifecycle's decisions back into ext_proc answers. Used by
/// one stream's loop only.
/// </summary>
internal sealed class ExtProcStream : IDisposable
{
    /// <summary>Key of the filter's entry in <c>ProcessingRequest.attributes</c>.</summary>
    public const string AttributesKey = "envoy.filters.http.ext_proc";

    /// <summary>The attribute naming the Envoy cluster of the exchange.</summary>
    public const string ClusterNameAttribute = "xds.cluster_name";

    /// <summary>gRPC initial metadata an EnvoyFilter may set: inbound|outbound|server|client.</summary>
    public const string DirectionMetadata = "x-sp-direction";

    /// <summary>gRPC initial metadata an EnvoyFilter may set: the workload's service name.</summary>
    public const string ServiceNameMetadata = "x-sp-service-name";

    /// <summary>Exchange attribute listing the request trailer names (the fields are in the request headers).</summary>
    public const string RequestTrailersAttribute = "sp.request.trailers";

    /// <summary>Exchange attribute listing the response trailer names (the fields are in the response headers).</summary>
    public const string ResponseTrailersAttribute = "sp.response.trailers";

    /// <summary>Header marking a response the agent gave itself.</summary>
    public const string CacheHeader = ShortCircuitPolicy.CacheHeader;

    // ExtProcRequest.Type of each message: its field number in ProcessingRequest less 2.
    private const int RequestHeadersType = 0;
    private const int ResponseHeadersType = 1;
    private const int RequestBodyType = 2;
    private const int ResponseBodyType = 3;
    private const int RequestTrailersType = 4;
    private const int ResponseTrailersType = 5;

    /// <summary>Prefix of Envoy attributes copied into <see cref="Exchange.Attributes"/>.</summary>
    private const string EnvoyAttributePrefix = "envoy.";

    private readonly CapturePipeline _pipeline;
    private readonly ExtProcOptions _options;
    private readonly ServerCallContext _context;
    private readonly TimeProvider _time;
    private readonly Exchange _exchange = new();

    private ExchangeCapture? _capture;
    private bool _requestSeen;
    private bool _requestComplete;
    private bool _requestBodyDone;
    private bool _responseComplete;
    private bool _finalised;
    private ExchangeOutcome? _deferredOutcome;
    private string? _deferredError;
    private BodySendMode _requestBodyMode;
    private BodySendMode? _responseBodyMode;
    private string? _clusterName;
    private IHeaderDictionary? _httpHeaders;
    private bool _httpHeadersResolved;

    // Set once a call context without an HttpContext was seen (see HttpRequestHeaders).
    private static bool _noHttpContextSeen;

    public ExtProcStream(CapturePipeline pipeline, ExtProcOptions options, ServerCallContext context, TimeProvider time)
    {
        _pipeline = pipeline;
        _options = options;
        _context = context;
        _time = time;
    }

    /// <summary>The exchange being assembled.</summary>
    public Exchange Exchange => _exchange;

    /// <summary>True once the request is complete and the short-circuit should be asked before answering.</summary>
    public bool ShortCircuitDue { get; private set; }

    /// <summary>True once the exchange was finalised (its response complete, or answered by the agent).</summary>
    public bool Finalised => _finalised;

    /// <summary>
    /// Takes one message into the exchange and returns the answer for synchronous mode (the
    /// caller drops it in observability mode). Never null.
    /// </summary>
    public ExtProcAnswer Handle(ExtProcRequest request)
    {
        ShortCircuitDue = false;
        switch (request.Type)
        {
            case RequestHeadersType:
                return OnRequestHeaders(request);
            case RequestBodyType:
                OnRequestBody(request);

                // Copied by the capture, or not wanted: the array goes back now (a kept one was taken).
                request.ReturnBodyArray();
                break;
            case RequestTrailersType:
                OnRequestTrailers(request);
                break;
            case ResponseHeadersType:
                OnResponseHeaders(request);
                if (NeedsStreamedEvents())
                {
                    return ExtProcResponses.EventStreamResponseHeaders;
                }

                break;
            case ResponseBodyType:
                OnResponseBody(request);
                request.ReturnBodyArray();
                break;
            case ResponseTrailersType:
                OnResponseTrailers(request);
                break;
        }

        return ExtProcResponses.Continue(request.Type);
    }

    /// <summary>
    /// Asks the short-circuit whether the agent answers the request itself. Returns the
    /// ImmediateResponse to send (and finalises the exchange as a cache hit), or null for a miss
    /// or a lookup past its deadline. A throwing short-circuit propagates (the caller fails open).
    /// </summary>
    public async ValueTask<ExtProcAnswer?> TryShortCircuitAsync(Action<Exception> onFault, CancellationToken streamToken)
    {
        ShortCircuitDue = false;
        var answer = _capture is null ? null : await _capture.TryShortCircuitAsync(_options.ShortCircuitTimeout, onFault, streamToken).ConfigureAwait(false);
        if (answer is null)
        {
            return null;
        }

        var mutation = new HeaderMutation();
        var headers = answer.ClientHeaders;
        for (var i = 0; i < headers.Count; i++)
        {
            var (name, value) = headers[i];

            // The first field of a name replaces Envoy's default (content-type), repeats append (set-cookie).
            var action = FirstIndexOf(headers, name) == i ? AppendAction.OverwriteIfExistsOrAdd : AppendAction.AppendIfExistsOrAdd;
            mutation.SetHeaders.Add(HeaderText.Option(name, value, action));
        }

        _responseComplete = true;
        FinishAfterAnswer(ExchangeOutcome.Completed, null);

        var immediate = new ImmediateResponse
        {
            Status = new Proto.Type.HttpStatus { Code = (Proto.Type.StatusCode)answer.StatusCode },
            Headers = mutation,
            Body = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(answer.Body),
            Details = answer.Outcome == CacheOutcome.Hit ? "sp_agent_cache_hit" : "sp_agent_cache_refused",
        };
        if (GrpcAnswers.IsGrpc(answer.Headers))
        {
            ShapeGrpc(immediate, answer);
        }

        return new ExtProcAnswer.Message(new ProcessingResponse { ImmediateResponse = immediate });
    }

    /// <summary>
    /// A gRPC answer through Envoy (issue 18 §5). An ImmediateResponse has no trailers, and Envoy
    /// sends any local reply to a gRPC request as a trailers-only response (HTTP 200, content-type
    /// application/grpc, <c>grpc-status</c> from <c>grpc_status</c>, <c>grpc-message</c> from the
    /// body text: Envoy's <c>Utility::sendLocalReply</c>). So the status goes in <c>grpc_status</c>
    /// and, with the message, in the headers; a non-OK answer's body is its message text. An OK
    /// answer keeps its length-prefixed message as the body, for an ext_proc client that sends it;
    /// Envoy itself drops it (docs/ARCHITECTURE.md says so: OK answers to gRPC calls need the proxy).
    /// </summary>
    private static void ShapeGrpc(ImmediateResponse immediate, ShortCircuitResponse answer)
    {
        var code = GrpcAnswers.StatusOf(answer);
        if (answer.Trailers is { } trailers)
        {
            foreach (var (name, value) in trailers)
            {
                immediate.Headers.SetHeaders.Add(HeaderText.Option(name, value, AppendAction.OverwriteIfExistsOrAdd));
            }
        }

        if (code is not { } status)
        {
            return;
        }

        immediate.GrpcStatus = new GrpcStatus { Status = (uint)status };
        if (status != 0)
        {
            immediate.Body = Google.Protobuf.ByteString.CopyFromUtf8(GrpcAnswers.MessageOf(answer) ?? "");
        }
    }

    /// <summary>
    /// Finalises the exchange once: completes the body buffers, stamps the end time and hands a
    /// followed exchange to the pipeline (which samples, redacts, counts and queues it). A finish
    /// the last message left for after its answer (<see cref="FinishDeferred"/>) runs instead, with
    /// the outcome that message gave: the exchange was complete, whatever ended the stream since.
    /// </summary>
    public void Finish(ExchangeOutcome outcome, string? error)
    {
        if (_deferredOutcome is not null)
        {
            FinishDeferred();
            return;
        }

        if (_finalised)
        {
            return;
        }

        _finalised = true;

        // Without a capture (no headers yet, or the rules skip the exchange) there is nothing to finish.
        _capture?.Finish(outcome, error, requestEnded: _requestComplete, responseEnded: _responseComplete);
    }

    /// <summary>
    /// Runs the finish the last message asked for (nothing when none is due). The stream loop calls
    /// it once that message's answer is on its way to Envoy: completing the bodies, redaction and
    /// queueing for export are capture work, and a synchronous answer never waits for it.
    /// </summary>
    public void FinishDeferred()
    {
        if (_deferredOutcome is not { } outcome)
        {
            return;
        }

        _deferredOutcome = null;
        var error = _deferredError;
        _deferredError = null;
        _capture?.Finish(outcome, error, requestEnded: _requestComplete, responseEnded: _responseComplete);
    }

    /// <summary>Returns the capture's buffers; an exchange that was never finalised is abandoned.</summary>
    public void Dispose()
    {
        _deferredOutcome = null;
        _finalised = true;
        _capture?.Dispose();
    }

    private ExtProcAnswer OnRequestHeaders(ExtProcRequest request)
    {
        if (_requestSeen)
        {
            // A second request_headers on one stream breaks the protocol; answer, change nothing.
            return ExtProcResponses.Continue(0);
        }

        _requestSeen = true;
        _exchange.StartTime = _time.GetUtcNow();
        if (request.HasProtocolConfig)
        {
            _requestBodyMode = request.RequestBodyMode;
            _responseBodyMode = request.ResponseBodyMode;
        }

        ReadAttributes(request.Attributes);

        // Envoys before 1.31 send attributes inside HttpHeaders.
        ReadAttributes(request.HeaderAttributes);
        ReadRequestHeaders(request.Headers);

        var direction = ResolveDirection();
        _exchange.Direction = direction;
        _exchange.ServiceName = ServiceNameResolver.Resolve(
            _pipeline.Options.ServiceName,
            _exchange.RequestHeaders,
            MetadataValue(ServiceNameMetadata),
            direction == TrafficDirection.Inbound ? _clusterName : null);

        var capture = _pipeline.Begin(_exchange, _time);
        if (capture is null)
        {
            return ExtProcResponses.SkipRequestHeaders;
        }

        _capture = capture;
        if (request.EndOfStream)
        {
            _requestComplete = true;
        }

        ShortCircuitDue = _requestComplete && capture.MayShortCircuit;

        // An unsampled exchange still forwards its trace context, but nothing more of it is needed
        // (unless a cache rule covers it: the cache keys on the request body and records the response).
        byte[]? modeOverride = null;
        if (!capture.KeepsBodies)
        {
            modeOverride = ExtProcResponses.SkipRestBytes;
        }
        else if (StreamSpanAttributes.IsWebSocketUpgradeRequest(_exchange.RequestHeaders.Get("upgrade")))
        {
            modeOverride = ExtProcResponses.UpgradeHandshakeOnlyBytes;
        }
        else if (GrpcSpanAttributes.IsGrpc(_exchange.RequestHeaders.Get("content-type")))
        {
            modeOverride = ExtProcResponses.GrpcStreamedBytes;
            _requestBodyMode = BodySendMode.Streamed;
        }

        return new ExtProcAnswer.TraceHeaders(capture.Trace, modeOverride);
    }

    private void OnRequestBody(ExtProcRequest body)
    {
        if (_capture is not { } capture || _requestComplete || _requestBodyDone)
        {
            return;
        }

        // BUFFERED_PARTIAL sends one message; without end_of_stream the rest of the body passes unseen.
        if (body.EndOfStream || _requestBodyMode == BodySendMode.BufferedPartial)
        {
            // The last bytes of the body Envoy sends; the message's body array is its own and never
            // changes, so a whole body (BUFFERED) is kept by reference rather than copied. Not so when
            // a cache lookup may read it: a lookup past its deadline goes on in the background, after
            // the exchange is exported and its arrays returned, so it gets a copy the GC owns.
            if (capture.MayShortCircuit)
            {
                capture.AppendLastRequestBody(body.Body.ToArray());
            }
            else
            {
                HoldIfKept(capture.AppendLastRequestBody(body.Body), body);
            }

            _requestComplete = body.EndOfStream;
            _requestBodyDone = true;
            capture.CompleteRequestBody(ended: body.EndOfStream);
            ShortCircuitDue = capture.MayShortCircuit;
        }
        else
        {
            capture.AppendRequestBody(body.Body.Span);
        }
    }

    private void OnRequestTrailers(ExtProcRequest trailers)
    {
        if (_capture is not { } capture)
        {
            return;
        }

        AddTrailers(trailers.Headers, _exchange.RequestHeaders, RequestTrailersAttribute);
        _requestComplete = true;
        _requestBodyDone = true;
        capture.CompleteRequestBody(ended: true);
        ShortCircuitDue = capture.MayShortCircuit;
    }

    private void OnResponseHeaders(ExtProcRequest request)
    {
        if (_capture is not { } capture)
        {
            return;
        }

        // The request is over once its response starts, whatever of its body was seen.
        _requestBodyDone = true;
        capture.CompleteRequestBody(ended: _requestComplete);
        ReadAttributes(request.Attributes);
        if (request.HasHeaderMap)
        {
            int? status = null;
            var headers = request.Headers;
            for (var i = 0; i < headers.Length; i++)
            {
                if (string.Equals(headers[i].Key, ":status", StringComparison.Ordinal)
                    && HeaderText.TryParseStatus(headers[i].Value, out var code))
                {
                    status = code;
                }
            }

            capture.RecordResponseHead(status, request, static (message, target) =>
            {
                var fields = message.Headers;
                target.EnsureCapacity(target.Count + fields.Length);
                foreach (var field in fields)
                {
                    if (field.Key.Length == 0 || field.Key[0] != ':')
                    {
                        target.Add(field.Key, field.Value);
                    }
                }
            });
        }

        if (request.EndOfStream || capture.Exchange.StatusCode == 101)
        {
            // A 101 ends what ext_proc can capture: the frames after it are not an HTTP body
            // (capturing WebSocket messages is the capture proxy's; see UpgradeHandshakeOnly).
            _responseComplete = true;
            FinishAfterAnswer(ExchangeOutcome.Completed, null);
        }
    }

    private void OnResponseBody(ExtProcRequest body)
    {
        if (_capture is not { } capture || _finalised)
        {
            return;
        }

        if (body.EndOfStream)
        {
            // A whole body (BUFFERED) is kept by reference, as for the request (the cache's recorder copies it).
            HoldIfKept(capture.AppendLastResponseBody(body.Body), body);
            _responseComplete = true;
            FinishAfterAnswer(ExchangeOutcome.Completed, null);
            return;
        }

        capture.AppendResponseBody(body.Body.Span);
        if (capture.FollowsStream && _time.GetUtcNow() - _exchange.StartTime >= _pipeline.StreamDeadline)
        {
            // No timer here: a stream past capture.streams.max_duration_ms is exported at its next
            // chunk; the chunks after it pass uncaptured (each still answered).
            FinishAfterAnswer(ExchangeOutcome.TimedOut, "stream still open at the capture deadline");
        }
    }

    // A body the capture keeps by reference: its rented array is the exchange's, returned once the
    // export (or whoever ends the exchange's life) is done with it.
    private void HoldIfKept(bool kept, ExtProcRequest body)
    {
        if (kept && body.TakeBodyArray() is { } array)
        {
            _exchange.HoldBodyArray(new BodyLease(array));
        }
    }

    // The exchange is over as of this message: later messages see it finalised, but the capture work
    // (FinishDeferred) waits until this message's answer is written.
    private void FinishAfterAnswer(ExchangeOutcome outcome, string? error)
    {
        if (_finalised)
        {
            return;
        }

        _finalised = true;
        _deferredOutcome = outcome;
        _deferredError = error;
    }

    // An event stream must not wait in Envoy's buffer: unless the filter already streams response
    // bodies (or sends none: the operator's choice), ask for STREAMED (needs allow_mode_override).
    // Without a protocol_config (Envoy before 1.31) the mode is unknown, and asking is harmless.
    private bool NeedsStreamedEvents() =>
        _capture is { FollowsEventStream: true }
        && _responseBodyMode is not (BodySendMode.Streamed or BodySendMode.FullDuplexStreamed or BodySendMode.None)
        && !_finalised;

    private void OnResponseTrailers(ExtProcRequest trailers)
    {
        if (_capture is null || _finalised)
        {
            return;
        }

        AddTrailers(trailers.Headers, _exchange.ResponseHeaders, ResponseTrailersAttribute);
        _responseComplete = true;
        FinishAfterAnswer(ExchangeOutcome.Completed, null);
    }

    private void ReadRequestHeaders(ReadOnlySpan<KeyValuePair<string, string>> headers)
    {
        string? host = null;
        _exchange.RequestHeaders.EnsureCapacity(_exchange.RequestHeaders.Count + headers.Length);
        foreach (var (key, value) in headers)
        {
            if (key.Length > 0 && key[0] == ':')
            {
                switch (key)
                {
                    case ":method":
                        _exchange.Method = value;
                        break;
                    case ":path":
                        _exchange.SetTarget(value);
                        break;
                    case ":scheme":
                        _exchange.Scheme = value;
                        break;
                    case ":authority":
                        _exchange.Authority = value;
                        break;
                }

                continue;
            }

            if (string.Equals(key, "host", StringComparison.Ordinal))
            {
                host = value;
            }

            _exchange.RequestHeaders.Add(key, value);
        }

        if (_exchange.Authority.Length == 0 && host is not null)
        {
            _exchange.Authority = host;
        }
    }

    // The scalar fields of the filter's attributes (ProcessingRequestReader reads them as text).
    private void ReadAttributes(List<KeyValuePair<string, string?>>? attributes)
    {
        if (attributes is null)
        {
            return;
        }

        foreach (var (key, text) in attributes)
        {
            if (text is null)
            {
                continue;
            }

            if (string.Equals(key, ClusterNameAttribute, StringComparison.Ordinal))
            {
                _clusterName = text;
            }

            _exchange.Attributes[string.Concat(EnvoyAttributePrefix, key)] = text;
        }
    }

    private TrafficDirection ResolveDirection()
    {
        switch (_pipeline.Options.TrafficDirection)
        {
            case DirectionSetting.Inbound:
                return TrafficDirection.Inbound;
            case DirectionSetting.Outbound:
                return TrafficDirection.Outbound;
        }

        if (ClusterName.TryParse(_clusterName, out var fromCluster, out _, out _))
        {
            return fromCluster;
        }

        var fromMetadata = MetadataValue(DirectionMetadata);
        if (fromMetadata is not null)
        {
            if (string.Equals(fromMetadata, "inbound", StringComparison.OrdinalIgnoreCase)
                || string.Equals(fromMetadata, "server", StringComparison.OrdinalIgnoreCase))
            {
                return TrafficDirection.Inbound;
            }

            if (string.Equals(fromMetadata, "outbound", StringComparison.OrdinalIgnoreCase)
                || string.Equals(fromMetadata, "client", StringComparison.OrdinalIgnoreCase))
            {
                return TrafficDirection.Outbound;
            }
        }

        return _options.DefaultDirection;
    }

    private string? MetadataValue(string key)
    {
        // grpc-dotnet builds ServerCallContext.RequestHeaders by copying every header of the call
        // into a new Metadata on first use (~2 % of the agent's CPU per 2 KiB exchange, issue 13);
        // the HTTP/2 request's own header dictionary answers the same lookup without copying.
        // The metadata keys read here are lower-case text keys (no "-bin"), so both give the same value.
        if (HttpRequestHeaders() is { } http)
        {
            var values = http[key];
            return values.Count == 0 ? null : values[0];
        }

        var headers = _context.RequestHeaders;
        for (var i = 0; i < headers.Count; i++)
        {
            var entry = headers[i];
            if (!entry.IsBinary && string.Equals(entry.Key, key, StringComparison.Ordinal))
            {
                return entry.Value;
            }
        }

        return null;
    }

    // The call's HTTP request headers when ASP.NET Core hosts the service (always, in the agent);
    // null for a call context built in memory (the bench's in-process run), which has no HttpContext.
    private IHeaderDictionary? HttpRequestHeaders()
    {
        if (_httpHeadersResolved)
        {
            return _httpHeaders;
        }

        _httpHeadersResolved = true;
        _httpHeaders = HttpContextOf(_context)?.Request.Headers;
        return _httpHeaders;
    }

    /// <summary>
    /// The call's HTTP context when ASP.NET Core hosts the service (always, in the agent); null for a
    /// call context built in memory (the bench's in-process run, unit tests).
    /// </summary>
    internal static HttpContext? HttpContextOf(ServerCallContext context)
    {
        if (Volatile.Read(ref _noHttpContextSeen))
        {
            return null;
        }

        try
        {
            return context.GetHttpContext();
        }
        catch (InvalidOperationException)
        {
            // Not hosted by ASP.NET Core: asking again would throw again, so stop asking.
            Volatile.Write(ref _noHttpContextSeen, true);
            return null;
        }
    }

    private void AddTrailers(ReadOnlySpan<KeyValuePair<string, string>> headers, HeaderList target, string attribute)
    {
        if (headers.IsEmpty)
        {
            return;
        }

        // Trailers are header fields sent after the body (RFC 9110 §6.5): they join the header
        // list, so redaction and the span's http.*.header.* attributes cover them, and their names
        // are listed in an attribute so a reader can tell them apart. Only exchanges with
        // trailers (gRPC, some streaming APIs) get here, so the string building is off the common path.
        var names = new string[headers.Length];
        for (var i = 0; i < headers.Length; i++)
        {
            target.Add(headers[i].Key, headers[i].Value);
            names[i] = headers[i].Key;
        }

        _exchange.Attributes[attribute] = string.Join(',', names);
    }

    private static int FirstIndexOf(HeaderList headers, string name)
    {
        for (var i = 0; i < headers.Count; i++)
        {
            if (string.Equals(headers[i].Key, name, StringComparison.OrdinalIgnoreCase))
            {
                return i;
            }
        }

        return -1;
    }
}
