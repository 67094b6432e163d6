using System.Buffers;
using System.Text;
using SpIstio.Core.Model;

namespace SpIstio.Core.Capture;

/// <summary>
/// How a captured body travels as a span attribute string: Text as its UTF-8 string, Binary as
/// base64. The "is base64" marker is returned beside the value for the caller to carry as its own
/// attribute, so a text body is never mistaken for base64 or the other way round.
/// </summary>
public static class BodyEncoding
{
    /// <summary>The attribute value for <paramref name="body"/>; <paramref name="base64"/> says whether it is base64.</summary>
    public static string ToAttributeValue(CapturedBody body, out bool base64)
    {
        ArgumentNullException.ThrowIfNull(body);
        base64 = body.Kind == BodyKind.Binary;
        var content = body.Content.Span;
        if (content.IsEmpty)
        {
            return "";
        }

        return base64 ? Convert.ToBase64String(content) : Encoding.UTF8.GetString(content);
    }

    /// <summary>
    /// The body carried by an attribute value written by <see cref="ToAttributeValue"/> (or by
    /// another agent): base64 is decoded to a Binary body, anything else is UTF-8 text. A value
    /// flagged base64 that is not valid base64 is kept as text rather than lost.
    /// </summary>
    public static CapturedBody FromAttributeValue(
        string value,
        bool base64,
        long originalSize = -1,
        bool truncated = false,
        string? contentType = null,
        string? contentEncoding = null,
        bool decoded = false)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length == 0)
        {
            return new CapturedBody(ReadOnlyMemory<byte>.Empty, originalSize, truncated, BodyKind.Empty, contentType, contentEncoding, decoded);
        }

        if (base64)
        {
            var rented = ArrayPool<byte>.Shared.Rent(Base64MaxDecodedLength(value.Length));
            try
            {
                if (Convert.TryFromBase64String(value, rented, out var written))
                {
                    return new CapturedBody(rented.AsSpan(0, written).ToArray(), originalSize, truncated, BodyKind.Binary, contentType, contentEncoding, decoded);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        return new CapturedBody(Encoding.UTF8.GetBytes(value), originalSize, truncated, BodyKind.Text, contentType, contentEncoding, decoded);
    }

    private static int Base64MaxDecodedLength(int length) => ((length + 3) / 4) * 3;
}
