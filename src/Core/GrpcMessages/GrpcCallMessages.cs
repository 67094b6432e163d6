using SpIstio.Core.Model;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// A captured gRPC call's message lists between the capture and the span: the capture fills them
/// in at the finish, the redaction rewrites their payloads in place (one walk per message, whose
/// result the framed body reuses), and <see cref="WriteAttributes"/> encodes each list once as its
/// JSON attribute. Before, the lists were encoded at the finish and the redaction decoded them
/// again (JSON and base64) to walk them, then encoded them once more.
/// </summary>
public sealed class GrpcCallMessages
{
    /// <summary>Holds a call's message lists.</summary>
    /// <param name="request">The request stream's messages.</param>
    /// <param name="response">The response stream's messages; null when no response body was seen.</param>
    public GrpcCallMessages(GrpcMessageList request, GrpcMessageList? response)
    {
        ArgumentNullException.ThrowIfNull(request);
        Request = request;
        Response = response;
    }

    /// <summary>The request stream's messages.</summary>
    public GrpcMessageList Request { get; set; }

    /// <summary>The response stream's messages; null when no response body was seen.</summary>
    public GrpcMessageList? Response { get; set; }

    /// <summary>True once the redaction walked both lists (and the framed bodies): it does not walk them again.</summary>
    public bool Redacted { get; set; }

    /// <summary>
    /// Writes the pending message lists of <paramref name="exchange"/> as its
    /// <see cref="GrpcSpanAttributes.RequestMessages"/> / <see cref="GrpcSpanAttributes.ResponseMessages"/>
    /// attributes and clears them; nothing for an exchange without any. A body that is exactly its
    /// list's frames (a unary or streaming call captured whole, after the redaction rewrote both
    /// alike) is marked <see cref="CapturedBody.MessageFrames"/>: the span carries its bytes once.
    /// </summary>
    public static void WriteAttributes(Exchange exchange)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        if (exchange.GrpcCall is not { } call)
        {
            return;
        }

        exchange.GrpcCall = null;
        exchange.Attributes[GrpcSpanAttributes.RequestMessages] = GrpcSpanAttributes.EncodeMessages(call.Request);
        if (GrpcSpanAttributes.IsFramesOf(exchange.RequestBody, call.Request))
        {
            exchange.RequestBody = exchange.RequestBody with { MessageFrames = true };
        }

        if (call.Response is { } response)
        {
            exchange.Attributes[GrpcSpanAttributes.ResponseMessages] = GrpcSpanAttributes.EncodeMessages(response);
            if (GrpcSpanAttributes.IsFramesOf(exchange.ResponseBody, response))
            {
                exchange.ResponseBody = exchange.ResponseBody with { MessageFrames = true };
            }
        }
    }
}
