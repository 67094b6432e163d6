using System.IO.Compression;
using System.Runtime.InteropServices;

namespace SpIstio.Core.Capture;

/// <summary>A content-coding the capture can undo.</summary>
internal enum ContentCoding
{
    /// <summary>No coding (absent or <c>identity</c>).</summary>
    Identity,

    /// <summary><c>gzip</c> / <c>x-gzip</c>.</summary>
    Gzip,

    /// <summary><c>deflate</c>: zlib-wrapped per RFC 9110 §8.4.1.2, raw deflate from servers that get it wrong.</summary>
    Deflate,

    /// <summary><c>br</c>.</summary>
    Brotli,

    /// <summary>Anything else (zstd, compress, a stack of codings): kept raw.</summary>
    Unknown,
}

/// <summary>Undoes a content-coding for capture, never producing more than a fixed number of bytes.</summary>
internal static class ContentDecoder
{
    /// <summary>Parses a content-encoding header value.</summary>
    /// <remarks>
    /// A list of codings is accepted when at most one of them is not <c>identity</c>; a real stack
    /// (<c>gzip, br</c>) is so rare that it is kept raw rather than decoded twice under one cap.
    /// </remarks>
    public static ContentCoding Parse(string? contentEncoding)
    {
        if (string.IsNullOrWhiteSpace(contentEncoding))
        {
            return ContentCoding.Identity;
        }

        var result = ContentCoding.Identity;
        var rest = contentEncoding.AsSpan();
        while (!rest.IsEmpty)
        {
            var comma = rest.IndexOf(',');
            var token = (comma < 0 ? rest : rest[..comma]).Trim();
            rest = comma < 0 ? default : rest[(comma + 1)..];
            var coding = ParseOne(token);
            if (coding == ContentCoding.Identity)
            {
                continue;
            }

            if (result != ContentCoding.Identity)
            {
                return ContentCoding.Unknown;
            }

            result = coding;
        }

        return result;
    }

    /// <summary>
    /// Decodes <paramref name="input"/> into a new buffer holding at most <paramref name="maxOutput"/>
    /// bytes; returns null when the input is not valid in that coding. The caller owns the buffer.
    /// </summary>
    /// <param name="input">The captured (possibly cut) coded bytes.</param>
    /// <param name="inputTruncated">True when <paramref name="input"/> is only a prefix of the body: an error at the cut then ends the output instead of rejecting it.</param>
    /// <param name="coding">Gzip, Deflate or Brotli.</param>
    /// <param name="maxOutput">Most decoded bytes kept; reading stops there, so a decompression bomb costs no more.</param>
    /// <param name="outputTruncated">True when the output is not the whole decoded body.</param>
    public static BodyCaptureBuffer? TryDecode(
        ReadOnlyMemory<byte> input,
        bool inputTruncated,
        ContentCoding coding,
        int maxOutput,
        out bool outputTruncated)
    {
        var output = new BodyCaptureBuffer(maxOutput);
        try
        {
            using (var source = Open(input, coding))
            {
                ReadBounded(source, output);
            }

            outputTruncated = inputTruncated || output.Truncated;
            return output;
        }
        catch (Exception ex) when (ex is InvalidDataException or InvalidOperationException or IOException)
        {
            // At the cut of a truncated body the stream reports bad or missing data: the prefix
            // before it is still the start of the real body. Anywhere else it is corrupt.
            if (inputTruncated && output.Length > 0)
            {
                outputTruncated = true;
                return output;
            }

            output.Dispose();
            outputTruncated = false;
            return null;
        }
    }

    private static ContentCoding ParseOne(ReadOnlySpan<char> token)
    {
        if (token.IsEmpty || token.Equals("identity", StringComparison.OrdinalIgnoreCase))
        {
            return ContentCoding.Identity;
        }

        if (token.Equals("gzip", StringComparison.OrdinalIgnoreCase) || token.Equals("x-gzip", StringComparison.OrdinalIgnoreCase))
        {
            return ContentCoding.Gzip;
        }

        if (token.Equals("deflate", StringComparison.OrdinalIgnoreCase))
        {
            return ContentCoding.Deflate;
        }

        return token.Equals("br", StringComparison.OrdinalIgnoreCase) ? ContentCoding.Brotli : ContentCoding.Unknown;
    }

    private static Stream Open(ReadOnlyMemory<byte> input, ContentCoding coding)
    {
        var raw = MemoryMarshal.TryGetArray(input, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(input.ToArray(), writable: false);
        return coding switch
        {
            ContentCoding.Gzip => new GZipStream(raw, CompressionMode.Decompress),
            ContentCoding.Deflate => LooksLikeZlib(input.Span)
                ? new ZLibStream(raw, CompressionMode.Decompress)
                : new DeflateStream(raw, CompressionMode.Decompress),
            ContentCoding.Brotli => new BrotliStream(raw, CompressionMode.Decompress),
            _ => throw new ArgumentOutOfRangeException(nameof(coding), coding, "Not a decodable coding."),
        };
    }

    // RFC 1950 header: compression method 8, window <= 32 KiB, and the check bits make the
    // first two bytes a multiple of 31. Raw deflate rarely satisfies all three.
    private static bool LooksLikeZlib(ReadOnlySpan<byte> data) =>
        data.Length >= 2
        && (data[0] & 0x0F) == 8
        && (data[0] >> 4) <= 7
        && ((data[0] << 8) | data[1]) % 31 == 0;

    private static void ReadBounded(Stream source, BodyCaptureBuffer output)
    {
        while (true)
        {
            var free = output.GetFreeSpan();
            if (free.IsEmpty)
            {
                // At the cap: one more byte tells "exactly the cap" from "more than the cap"
                // without inflating the rest.
                Span<byte> probe = stackalloc byte[1];
                if (source.Read(probe) > 0)
                {
                    output.CountDropped(1);
                }

                return;
            }

            var read = source.Read(free);
            if (read == 0)
            {
                return;
            }

            output.Advance(read);
        }
    }
}
