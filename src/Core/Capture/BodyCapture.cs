using System.Buffers;
using System.Text;
using SpIstio.Core.Model;

namespace SpIstio.Core.Capture;

/// <summary>
/// Turns captured body bytes into a <see cref="CapturedBody"/>: undoes gzip / deflate / br under a
/// cap, tells text from binary, and re-encodes text in another charset as UTF-8, so a Text body's
/// content is always UTF-8 and a Binary body is carried as base64.
/// </summary>
public static class BodyCapture
{
    /// <summary>Builds the captured body from bytes already collected (see <see cref="BodyCaptureBuffer"/>).</summary>
    /// <param name="captured">The first bytes of the body as they were on the wire (still content-encoded).</param>
    /// <param name="originalSize">The body's size on the wire as far as it was seen; kept as <see cref="CapturedBody.OriginalSize"/>.</param>
    /// <param name="truncated">True when <paramref name="captured"/> is shorter than the body.</param>
    /// <param name="contentType">The content-type header, for the text/binary decision and the charset.</param>
    /// <param name="contentEncoding">The content-encoding header.</param>
    /// <param name="maxDecodedBytes">Most bytes a coded body may inflate to; 0 or less keeps coded bodies raw.</param>
    /// <returns>
    /// The body. When decoding fails (corrupt data) or the coding is unknown the raw bytes are kept
    /// as <see cref="BodyKind.Binary"/> with <see cref="CapturedBody.Decoded"/> false.
    /// </returns>
    public static CapturedBody Create(
        ReadOnlyMemory<byte> captured,
        long originalSize,
        bool truncated,
        string? contentType,
        string? contentEncoding,
        int maxDecodedBytes) =>
        CreateCore(captured, owned: false, originalSize, truncated, contentType, contentEncoding, maxDecodedBytes);

    /// <summary>
    /// True when <see cref="Create(ReadOnlyMemory{byte}, long, bool, string?, string?, int)"/> (or
    /// <see cref="CreateOwned"/>) of a whole (not truncated) body of this type and coding keeps the
    /// captured bytes exactly, all of them: no content coding to undo, no charset to transcode from.
    /// A reader of the same bytes (a gRPC call's messages) may then refer to the body's content.
    /// </summary>
    public static bool KeepsCapturedBytes(string? contentType, string? contentEncoding)
    {
        if (ContentDecoder.Parse(contentEncoding) != ContentCoding.Identity)
        {
            return false;
        }

        // Classify's one rewrite of an identity-coded body; valid UTF-8 text of a whole body is kept whole.
        var mediaType = MediaType.Parse(contentType, out var charset);
        return !(MediaType.IsTextual(mediaType) && !charset.IsEmpty && !TextSniffer.IsUtf8Compatible(charset));
    }

    /// <summary>
    /// Like <see cref="Create(ReadOnlyMemory{byte}, long, bool, string?, string?, int)"/> for bytes the
    /// caller hands over and nobody changes afterwards (an immutable protobuf <c>ByteString</c>'s
    /// memory): a body kept as it came (no content coding, UTF-8 text or binary) refers to
    /// <paramref name="body"/> instead of copying it.
    /// </summary>
    public static CapturedBody CreateOwned(
        ReadOnlyMemory<byte> body,
        long originalSize,
        bool truncated,
        string? contentType,
        string? contentEncoding,
        int maxDecodedBytes) =>
        CreateCore(body, owned: true, originalSize, truncated, contentType, contentEncoding, maxDecodedBytes);

    private static CapturedBody CreateCore(
        ReadOnlyMemory<byte> captured,
        bool owned,
        long originalSize,
        bool truncated,
        string? contentType,
        string? contentEncoding,
        int maxDecodedBytes)
    {
        if (captured.IsEmpty)
        {
            return new CapturedBody(ReadOnlyMemory<byte>.Empty, originalSize, truncated, BodyKind.Empty, contentType, contentEncoding);
        }

        var coding = ContentDecoder.Parse(contentEncoding);
        if (coding == ContentCoding.Identity)
        {
            return Classify(captured.Span, owned ? captured : default, originalSize, truncated, contentType, contentEncoding, decoded: false);
        }

        if (coding == ContentCoding.Unknown || maxDecodedBytes <= 0)
        {
            return Raw(captured.Span, originalSize, truncated, contentType, contentEncoding);
        }

        using var decoded = ContentDecoder.TryDecode(captured, truncated, coding, maxDecodedBytes, out var decodedTruncated);
        if (decoded is null)
        {
            return Raw(captured.Span, originalSize, truncated, contentType, contentEncoding);
        }

        if (decoded.Length == 0)
        {
            return new CapturedBody(ReadOnlyMemory<byte>.Empty, originalSize, decodedTruncated, BodyKind.Empty, contentType, contentEncoding, Decoded: true);
        }

        return Classify(decoded.Captured, default, originalSize, decodedTruncated, contentType, contentEncoding, decoded: true);
    }

    private static CapturedBody Raw(ReadOnlySpan<byte> bytes, long originalSize, bool truncated, string? contentType, string? contentEncoding) =>
        new(bytes.ToArray(), originalSize, truncated, BodyKind.Binary, contentType, contentEncoding);

    // An owned body (non-empty owned) is kept by reference when all of it is kept; anything else
    // is copied out of the caller's buffer.
    private static CapturedBody Classify(
        ReadOnlySpan<byte> content,
        ReadOnlyMemory<byte> owned,
        long originalSize,
        bool truncated,
        string? contentType,
        string? contentEncoding,
        bool decoded)
    {
        var mediaType = MediaType.Parse(contentType, out var charset);
        var declaredText = MediaType.IsTextual(mediaType);
        if (declaredText && !charset.IsEmpty && !TextSniffer.IsUtf8Compatible(charset))
        {
            var encoding = CharsetResolver.Resolve(charset);
            if (encoding is not null)
            {
                // Encoding.UTF8 writes a replacement character for anything it cannot encode: valid by construction.
                return new CapturedBody(Transcode(content, encoding, truncated), originalSize, truncated, BodyKind.Text, contentType, contentEncoding, decoded).MarkUtf8();
            }

            // An unknown charset says nothing reliable: fall through and judge the bytes alone.
            declaredText = false;
        }

        var textLength = TextSniffer.ValidUtf8Length(content, truncated);
        var isText = textLength >= 0 && (declaredText || TextSniffer.LooksLikeText(content[..textLength]));

        // Declared text that is not valid UTF-8 is kept exactly (as Binary) rather than repaired
        // with replacement characters: base64 loses nothing.
        var kept = isText ? textLength : content.Length;
        var bytes = !owned.IsEmpty && kept == owned.Length ? owned : CopyOf(content[..kept]);
        var body = new CapturedBody(bytes, originalSize, truncated, isText ? BodyKind.Text : BodyKind.Binary, contentType, contentEncoding, decoded);
        return isText ? body.MarkUtf8() : body;
    }

    // The copy is overwritten in full at once, so the GC need not zero it first (a 64 KiB memset per
    // captured body showed in the capture proxy's profile).
    private static byte[] CopyOf(ReadOnlySpan<byte> content)
    {
        var copy = GC.AllocateUninitializedArray<byte>(content.Length);
        content.CopyTo(copy);
        return copy;
    }

    private static byte[] Transcode(ReadOnlySpan<byte> content, Encoding encoding, bool truncated)
    {
        // Not flushing a truncated body drops a multi-byte character cut in half instead of
        // turning it into a replacement character.
        var decoder = encoding.GetDecoder();
        var charCount = decoder.GetCharCount(content, flush: !truncated);
        var chars = ArrayPool<char>.Shared.Rent(Math.Max(charCount, 1));
        try
        {
            var written = decoder.GetChars(content, chars, flush: !truncated);
            var text = chars.AsSpan(0, written);
            var result = new byte[Encoding.UTF8.GetByteCount(text)];
            Encoding.UTF8.GetBytes(text, result);
            return result;
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
        }
    }
}
