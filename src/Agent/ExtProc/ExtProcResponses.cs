using Google.Protobuf;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Filter;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;
using HeaderSendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.HeaderSendMode;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// The answers that carry nothing but "continue" (with a mode override for some), encoded once
/// (<see cref="ExtProcAnswer.Fixed"/>) and shared by every stream, and the mode overrides the
/// request-headers answer carries. The messages are never mutated after they are built.
/// </summary>
internal static class ExtProcResponses
{
    /// <summary>
    /// Sent with the request-headers answer of an exchange the agent does not follow (rules skip
    /// it, or its trace is not sampled): no bodies, no response headers, no trailers. Envoy applies
    /// it only when the filter sets <c>allow_mode_override</c>; otherwise the agent answers
    /// whatever still comes with <see cref="Continue"/>.
    /// </summary>
    public static readonly ProcessingMode SkipRest = new()
    {
        RequestHeaderMode = HeaderSendMode.Skip,
        RequestBodyMode = BodySendMode.None,
        RequestTrailerMode = HeaderSendMode.Skip,
        ResponseHeaderMode = HeaderSendMode.Skip,
        ResponseBodyMode = BodySendMode.None,
        ResponseTrailerMode = HeaderSendMode.Skip,
    };

    /// <summary>
    /// Sent with the request-headers answer of a gRPC call: bodies STREAMED and trailers sent, in
    /// whatever mode the filter is configured. A BUFFERED body is held by Envoy until its end, so a
    /// client or bidirectional stream (and, for the response, a server stream) would stall; and the
    /// call's status is in the trailers. Envoy replaces its processing mode with this one as a
    /// whole, so every field is set.
    /// </summary>
    public static readonly ProcessingMode GrpcStreamed = new()
    {
        RequestHeaderMode = HeaderSendMode.Send,
        RequestBodyMode = BodySendMode.Streamed,
        RequestTrailerMode = HeaderSendMode.Send,
        ResponseHeaderMode = HeaderSendMode.Send,
        ResponseBodyMode = BodySendMode.Streamed,
        ResponseTrailerMode = HeaderSendMode.Send,
    };

    /// <summary>
    /// Sent with the request-headers answer of a WebSocket upgrade: the response headers (the 101)
    /// and nothing else. After the upgrade Envoy passes the frames as an opaque body, which is not
    /// an HTTP message to capture, and an upgrade request with a BUFFERED or STREAMED request body
    /// hangs the handshake in some Envoy releases (envoyproxy/envoy#47048, #47081): the handshake is
    /// the capture here; the frames are the capture proxy's.
    /// </summary>
    public static readonly ProcessingMode UpgradeHandshakeOnly = new()
    {
        RequestHeaderMode = HeaderSendMode.Send,
        RequestBodyMode = BodySendMode.None,
        RequestTrailerMode = HeaderSendMode.Skip,
        ResponseHeaderMode = HeaderSendMode.Send,
        ResponseBodyMode = BodySendMode.None,
        ResponseTrailerMode = HeaderSendMode.Skip,
    };

    /// <summary>
    /// The response-headers answer of a server-sent event stream when the filter buffers response
    /// bodies: the rest of the response STREAMED, so each event reaches the client (and the capture)
    /// as it comes; a BUFFERED body would hold the stream until its end, and BUFFERED_PARTIAL would
    /// cut the capture at Envoy's buffer limit. Envoy replaces the whole processing mode, so every
    /// field is set (the request fields no longer matter).
    /// </summary>
    public static readonly ExtProcAnswer EventStreamResponseHeaders = new ExtProcAnswer.Fixed(new()
    {
        ResponseHeaders = new HeadersResponse { Response = new CommonResponse() },
        ModeOverride = new ProcessingMode
        {
            RequestHeaderMode = HeaderSendMode.Send,
            RequestBodyMode = BodySendMode.None,
            RequestTrailerMode = HeaderSendMode.Skip,
            ResponseHeaderMode = HeaderSendMode.Send,
            ResponseBodyMode = BodySendMode.Streamed,
            ResponseTrailerMode = HeaderSendMode.Send,
        },
    });

    /// <summary>Continue after request headers, and send nothing more for this exchange.</summary>
    public static readonly ExtProcAnswer SkipRequestHeaders = new ExtProcAnswer.Fixed(new()
    {
        RequestHeaders = new HeadersResponse { Response = new CommonResponse() },
        ModeOverride = SkipRest,
    });

    /// <summary><see cref="SkipRest"/> encoded, for <see cref="ExtProcAnswer.TraceHeaders"/>.</summary>
    public static readonly byte[] SkipRestBytes = SkipRest.ToByteArray();

    /// <summary><see cref="GrpcStreamed"/> encoded, for <see cref="ExtProcAnswer.TraceHeaders"/>.</summary>
    public static readonly byte[] GrpcStreamedBytes = GrpcStreamed.ToByteArray();

    /// <summary><see cref="UpgradeHandshakeOnly"/> encoded, for <see cref="ExtProcAnswer.TraceHeaders"/>.</summary>
    public static readonly byte[] UpgradeHandshakeOnlyBytes = UpgradeHandshakeOnly.ToByteArray();

    private static readonly ExtProcAnswer[] _continue =
    [
        new ExtProcAnswer.Fixed(new() { RequestHeaders = new HeadersResponse { Response = new CommonResponse() } }),
        new ExtProcAnswer.Fixed(new() { ResponseHeaders = new HeadersResponse { Response = new CommonResponse() } }),
        new ExtProcAnswer.Fixed(new() { RequestBody = new BodyResponse { Response = new CommonResponse() } }),
        new ExtProcAnswer.Fixed(new() { ResponseBody = new BodyResponse { Response = new CommonResponse() } }),
        new ExtProcAnswer.Fixed(new() { RequestTrailers = new TrailersResponse() }),
        new ExtProcAnswer.Fixed(new() { ResponseTrailers = new TrailersResponse() }),
    ];

    /// <summary>The plain CONTINUE answer to a message of type <paramref name="messageType"/> (an index of <see cref="Metrics.AgentMetrics.MessageTypes"/>).</summary>
    public static ExtProcAnswer Continue(int messageType) => _continue[messageType];
}
