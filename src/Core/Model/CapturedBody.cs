namespace SpIstio.Core.Model;

/// <summary>
/// A bounded copy of a message body as captured: at most the configured limit, decoded from its
/// content-encoding when it could be, with what was lost recorded beside it.
/// </summary>
/// <param name="Content">The captured bytes (after decoding when <see cref="Decoded"/> is true).</param>
/// <param name="OriginalSize">
/// Size of the body on the wire in bytes, as far as it was seen; -1 when unknown.
/// </param>
/// <param name="Truncated">True when <see cref="Content"/> is shorter than the body.</param>
/// <param name="Kind">Whether the content is text (shown as text) or binary (kept as base64).</param>
/// <param name="ContentType">The message's content-type header, if any.</param>
/// <param name="ContentEncoding">The content-encoding the body had on the wire, if any.</param>
/// <param name="Decoded">True when <see cref="Content"/> was decoded from <see cref="ContentEncoding"/>.</param>
public sealed record CapturedBody(
    ReadOnlyMemory<byte> Content,
    long OriginalSize,
    bool Truncated,
    BodyKind Kind,
    string? ContentType = null,
    string? ContentEncoding = null,
    bool Decoded = false)
{
    /// <summary>No body.</summary>
    public static CapturedBody Empty { get; } = new(ReadOnlyMemory<byte>.Empty, 0, false, BodyKind.Empty);

    /// <summary>
    /// True when <see cref="Content"/> is the length-prefixed frames of the exchange's captured gRPC
    /// message list (<see cref="GrpcMessages.GrpcCallMessages"/>): exactly them, or, when the body is
    /// <see cref="Truncated"/>, their first <c>Content.Length</c> bytes. The span encoders then send
    /// the list only, marked <see cref="Otlp.OtlpAttributes.GrpcMessageFrames"/> (or
    /// <see cref="Otlp.OtlpAttributes.GrpcMessageFramesPrefix"/> with the length), and the reader
    /// rebuilds the body from it.
    /// </summary>
    public bool MessageFrames { get; init; }

    // The content BodyCapture proved valid UTF-8 (Text bodies it built); compared with Content by
    // reference, so a body whose content was replaced (redaction's `with { Content = … }`) is checked again.
    private ReadOnlyMemory<byte> _validUtf8;

    /// <summary>True when nothing was captured.</summary>
    public bool IsEmpty => Content.IsEmpty;

    /// <summary>
    /// True when <see cref="Content"/> is known to be valid UTF-8 without reading it again: it is the
    /// very memory <see cref="Capture.BodyCapture"/> validated (or produced by transcoding) when it
    /// built this Text body. The span encoders otherwise validate a Text body's 64 KiB once more.
    /// </summary>
    internal bool IsKnownUtf8 => !_validUtf8.IsEmpty && _validUtf8.Equals(Content);

    /// <summary>This body, marked as holding valid UTF-8 (its current <see cref="Content"/>).</summary>
    internal CapturedBody MarkUtf8()
    {
        _validUtf8 = Content;
        return this;
    }
}

/// <summary>How a captured body is to be carried and shown.</summary>
public enum BodyKind
{
    /// <summary>No bytes.</summary>
    Empty,

    /// <summary>Text in a known charset; carried as a string.</summary>
    Text,

    /// <summary>Anything else; carried as base64 with a marker.</summary>
    Binary,
}
