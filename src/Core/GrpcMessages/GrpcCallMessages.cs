using SpIstio.Core.Model;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// A captured gRPC call's message lists between the capture and the span: the capture fills them
/// in at the finish, the redaction rewrites their payloads in place (one walk per message, whose
/// result the framed body reuses), and after <see cref="Seal"/> the span encoders write each list
/// once as its attribute, straight from the bytes (<see cref="GrpcSpanAttributes.ToAnyValue"/>: the
/// payloads as bytes, no base64). Before, the lists were encoded at the
/// finish and the redaction decoded them again (JSON and base64) to walk them, then encoded them
/// once more; after that, as .NET strings that the span encoder transcoded twice (to size, to write).
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

    // The request / response body as the redaction left it when it had compared every byte of it with
    // the start of the list's frames and changed neither (Redactor.RedactGrpcBody): Seal then checks
    // only the lengths and flags, not the bytes again (a 64 KiB body was compared twice a direction).
    internal CapturedBody? RequestFramesChecked { get; set; }

    internal CapturedBody? ResponseFramesChecked { get; set; }

    /// <summary>
    /// True once <see cref="Seal"/> ran (the pipeline, after the redaction): the span encoders then
    /// write the lists as the <see cref="GrpcSpanAttributes.RequestMessages"/> /
    /// <see cref="GrpcSpanAttributes.ResponseMessages"/> attributes, straight from the payload bytes.
    /// </summary>
    public bool Sealed { get; private set; }

    /// <summary>
    /// Hands the (redacted) message lists of <paramref name="exchange"/> to the span encoders, which
    /// write each as its attribute from the bytes (<see cref="GrpcSpanAttributes.ToAnyValue"/>;
    /// no string is built); nothing for an exchange without any. A body that is exactly its list's
    /// frames (a unary or streaming call captured whole, after the redaction rewrote both alike), or
    /// their start when the body limit cut it (<see cref="GrpcSpanAttributes.IsFramesPrefixOf(CapturedBody, GrpcMessageList)"/>), is
    /// marked <see cref="CapturedBody.MessageFrames"/>: the span carries its bytes once.
    /// </summary>
    public static void Seal(Exchange exchange)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        if (exchange.GrpcCall is not { } call)
        {
            return;
        }

        call.Sealed = true;
        exchange.Attributes.Remove(GrpcSpanAttributes.RequestMessages);
        exchange.Attributes.Remove(GrpcSpanAttributes.ResponseMessages);
        exchange.RequestBody = MarkFrames(exchange.RequestBody, call.Request, ReferenceEquals(exchange.RequestBody, call.RequestFramesChecked));
        if (call.Response is { } response)
        {
            exchange.ResponseBody = MarkFrames(exchange.ResponseBody, response, ReferenceEquals(exchange.ResponseBody, call.ResponseFramesChecked));
        }
    }

    // A body that is its list's frames, whole or cut by the body limit where the list holds more of
    // the stream (a 64 KiB message past both limits), goes out as a reference to the list.
    private static CapturedBody MarkFrames(CapturedBody body, GrpcMessageList list, bool bytesChecked) =>
        GrpcSpanAttributes.IsFramesOf(body, list, bytesChecked) || GrpcSpanAttributes.IsFramesPrefixOf(body, list, bytesChecked)
            ? body with { MessageFrames = true }
            : body;

    /// <summary>
    /// The JSON of one list attribute (<paramref name="key"/>: <see cref="GrpcSpanAttributes.RequestMessages"/>
    /// or <see cref="GrpcSpanAttributes.ResponseMessages"/>) as the span will carry it: from the sealed
    /// lists, else from the attribute itself; null when there is none.
    /// </summary>
    public static string? Text(Exchange exchange, string key)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        if (exchange.GrpcCall is { Sealed: true } call)
        {
            var list = string.Equals(key, GrpcSpanAttributes.RequestMessages, StringComparison.Ordinal) ? call.Request
                : string.Equals(key, GrpcSpanAttributes.ResponseMessages, StringComparison.Ordinal) ? call.Response
                : null;
            return list is null ? null : GrpcSpanAttributes.EncodeMessages(list);
        }

        return exchange.Attributes.TryGetValue(key, out var text) ? text : null;
    }

    /// <summary>
    /// What the sealed lists add to an export: their payload bytes and the entries around them
    /// (<see cref="GrpcSpanAttributes.ToAnyValue"/>; at most 148 bytes a message, 128 a list with its key).
    /// </summary>
    public long EstimatedBytes()
    {
        long bytes = 0;
        foreach (var list in (ReadOnlySpan<GrpcMessageList?>)[Request, Response])
        {
            if (list is null)
            {
                continue;
            }

            bytes += 128;
            var messages = list.Messages;
            for (var i = 0; i < messages.Count; i++)
            {
                bytes += messages[i].Payload.Length + 160L;
            }
        }

        return bytes;
    }
}
