using System.IO.Compression;
using System.Text;
using SpIstio.Core.Capture;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Common;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Core.Tests.Capture;

public sealed class BodyCaptureTests
{
    private const string Json = "{\"destination\":\"Lisbon\",\"nights\":3,\"note\":\"ça va\"}";

    [Theory]
    [InlineData("gzip")]
    [InlineData("x-gzip")]
    [InlineData("deflate")]
    [InlineData("br")]
    public void Create_CompressedJson_IsDecodedToText(string encoding)
    {
        var wire = Compress(Encoding.UTF8.GetBytes(Json), encoding);

        var body = Capture(wire, 64 * 1024, "application/json", encoding, 1024 * 1024);

        Assert.Equal(Json, Encoding.UTF8.GetString(body.Content.Span));
        Assert.True(body.Decoded);
        Assert.False(body.Truncated);
        Assert.Equal(BodyKind.Text, body.Kind);
        Assert.Equal(wire.Length, body.OriginalSize);
        Assert.Equal(encoding, body.ContentEncoding);
    }

    [Fact]
    public void CreateOwned_KeepsAWholeBodyByReferenceAndCopiesWhatItChanges()
    {
        var json = Encoding.UTF8.GetBytes(Json);
        var binary = new byte[] { 0x00, 0xff, 0x10, 0x80, 0x00, 0x01 };
        var cutText = Encoding.UTF8.GetBytes("caf\u00e9").AsMemory(0, 4); // the 2-byte é cut in half
        var gzip = Compress(json, "gzip");

        var text = BodyCapture.CreateOwned(json, json.Length, false, "application/json", null, 1024 * 1024);
        var bytes = BodyCapture.CreateOwned(binary, binary.Length, false, "application/octet-stream", null, 1024 * 1024);
        var cut = BodyCapture.CreateOwned(cutText, 5, true, "text/plain", null, 1024 * 1024);
        var decoded = BodyCapture.CreateOwned(gzip, gzip.Length, false, "application/json", "gzip", 1024 * 1024);
        var copied = BodyCapture.Create(json, json.Length, false, "application/json", null, 1024 * 1024);

        Assert.True(text.Content.Span == json.AsSpan());
        Assert.Equal(BodyKind.Text, text.Kind);
        Assert.True(bytes.Content.Span == binary.AsSpan());
        Assert.Equal(BodyKind.Binary, bytes.Kind);
        Assert.Equal("caf", Encoding.UTF8.GetString(cut.Content.Span));
        Assert.False(cut.Content.Span.Overlaps(cutText.Span));
        Assert.Equal(Json, Encoding.UTF8.GetString(decoded.Content.Span));
        Assert.False(decoded.Content.Span.Overlaps(gzip));
        Assert.Equal(Json, Encoding.UTF8.GetString(copied.Content.Span));
        Assert.False(copied.Content.Span.Overlaps(json));
    }

    [Fact]
    public void Create_RawDeflateWithoutZlibWrapper_IsStillDecoded()
    {
        using var output = new MemoryStream();
        using (var deflate = new DeflateStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            deflate.Write(Encoding.UTF8.GetBytes(Json));
        }

        var body = Capture(output.ToArray(), 64 * 1024, "application/json", "deflate", 1024 * 1024);

        Assert.Equal(Json, Encoding.UTF8.GetString(body.Content.Span));
        Assert.True(body.Decoded);
    }

    [Fact]
    public void Create_GzipBomb_StopsAtTheDecodedCapAndIsTruncated()
    {
        var bomb = Compress(new byte[10 * 1024 * 1024], "gzip");
        Assert.True(bomb.Length < 64 * 1024, "the bomb should fit in the capture limit");
        const int cap = 256 * 1024;

        var body = Capture(bomb, 64 * 1024, "application/octet-stream", "gzip", cap);

        Assert.Equal(cap, body.Content.Length);
        Assert.True(body.Truncated);
        Assert.True(body.Decoded);
        Assert.Equal(bomb.Length, body.OriginalSize);
    }

    [Fact]
    public void Create_DecodedExactlyAtTheCap_IsNotTruncated()
    {
        var text = new string('a', 1000);
        var wire = Compress(Encoding.ASCII.GetBytes(text), "gzip");

        var body = Capture(wire, 64 * 1024, "text/plain", "gzip", 1000);

        Assert.Equal(1000, body.Content.Length);
        Assert.False(body.Truncated);
    }

    [Fact]
    public void Create_GzipCutByTheCaptureLimit_DecodesThePrefix()
    {
        var lines = string.Concat(Enumerable.Range(0, 4000).Select(i => $"line {i} of a long log with some entropy {i * 7919 % 1000}\n"));
        var wire = Compress(Encoding.ASCII.GetBytes(lines), "gzip");
        var limit = wire.Length / 2;

        var body = Capture(wire, limit, "text/plain", "gzip", 1024 * 1024);

        Assert.True(body.Decoded);
        Assert.True(body.Truncated);
        Assert.Equal(wire.Length, body.OriginalSize);
        Assert.True(body.Content.Length > 1000);
        Assert.StartsWith(Encoding.ASCII.GetString(body.Content.Span), lines, StringComparison.Ordinal);
        Assert.Equal(BodyKind.Text, body.Kind);
    }

    [Fact]
    public void Create_CorruptGzip_KeepsRawBytesAsBinary()
    {
        var wire = Compress(Encoding.UTF8.GetBytes(Json), "gzip");
        for (var i = 10; i < wire.Length - 8; i++)
        {
            wire[i] ^= 0x5A;
        }

        var body = Capture(wire, 64 * 1024, "application/json", "gzip", 1024 * 1024);

        Assert.Equal(BodyKind.Binary, body.Kind);
        Assert.False(body.Decoded);
        Assert.Equal(wire, body.Content.ToArray());
    }

    [Fact]
    public void Create_UnknownEncoding_KeepsRawBytesAsBinary()
    {
        var wire = new byte[] { 0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3 };

        var body = Capture(wire, 64 * 1024, "application/json", "zstd", 1024 * 1024);

        Assert.Equal(BodyKind.Binary, body.Kind);
        Assert.False(body.Decoded);
        Assert.Equal(wire, body.Content.ToArray());
    }

    [Fact]
    public void Create_Latin1Charset_IsTranscodedToUtf8()
    {
        var wire = Encoding.Latin1.GetBytes("café crème à Zürich");

        var body = Capture(wire, 64 * 1024, "text/plain; charset=ISO-8859-1", null, 1024);

        Assert.Equal(BodyKind.Text, body.Kind);
        Assert.Equal("café crème à Zürich", Encoding.UTF8.GetString(body.Content.Span));
    }

    [Fact]
    public void Create_Windows1252Charset_IsTranscodedToUtf8()
    {
        var wire = new byte[] { 0x80, 0x20, 0x35 }; // "€ 5" in windows-1252

        var body = Capture(wire, 64 * 1024, "text/html; charset=\"windows-1252\"", null, 1024);

        Assert.Equal("€ 5", Encoding.UTF8.GetString(body.Content.Span));
    }

    [Fact]
    public void Create_Utf16Charset_IsTranscodedToUtf8()
    {
        var wire = Encoding.BigEndianUnicode.GetBytes("{\"city\":\"Kraków\"}");

        var body = Capture(wire, 64 * 1024, "application/json; charset=utf-16be", null, 1024);

        Assert.Equal("{\"city\":\"Kraków\"}", Encoding.UTF8.GetString(body.Content.Span));
    }

    [Fact]
    public void Create_PngBytes_AreBinary()
    {
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52];

        var body = Capture(png, 64 * 1024, null, null, 1024);

        Assert.Equal(BodyKind.Binary, body.Kind);
        Assert.Equal(png, body.Content.ToArray());
    }

    [Fact]
    public void Create_Utf8WithoutContentType_IsSniffedAsText()
    {
        var body = Capture(Encoding.UTF8.GetBytes(Json), 64 * 1024, null, null, 1024);

        Assert.Equal(BodyKind.Text, body.Kind);
    }

    [Fact]
    public void Create_TextWithNulBytesWithoutContentType_IsBinary()
    {
        var body = Capture("abc\0def"u8.ToArray(), 64 * 1024, "application/octet-stream", null, 1024);

        Assert.Equal(BodyKind.Binary, body.Kind);
    }

    [Fact]
    public void Create_MultiByteCharacterCutByTheLimit_StaysTextWithoutTheHalfCharacter()
    {
        var wire = Encoding.UTF8.GetBytes("prix: 5€"); // '€' is 3 bytes at the end
        var limit = wire.Length - 1;

        var body = Capture(wire, limit, null, null, 1024);

        Assert.Equal(BodyKind.Text, body.Kind);
        Assert.True(body.Truncated);
        Assert.Equal("prix: 5", Encoding.UTF8.GetString(body.Content.Span));
    }

    [Fact]
    public void Create_DeclaredJsonThatIsNotUtf8_IsKeptExactlyAsBinary()
    {
        byte[] wire = [0x7B, 0xFF, 0xFE, 0x7D];

        var body = Capture(wire, 64 * 1024, "application/json", null, 1024);

        Assert.Equal(BodyKind.Binary, body.Kind);
        Assert.Equal(wire, body.Content.ToArray());
    }

    [Fact]
    public void SpanBody_BinaryBody_RoundTripsThroughBase64()
    {
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 255, 128];
        var body = Capture(png, 1024, "image/png", null, 1024);

        var span = ExchangeSpanMapper.ToSpan(new Exchange { RequestBody = body });
        var value = Attribute(span, OtlpAttributes.RequestBody);
        var base64 = Attribute(span, OtlpAttributes.RequestBodyMetaPrefix + OtlpAttributes.BodyEncodingSuffix) == OtlpAttributes.Base64;
        var back = ExchangeSpanMapper.FromSpan(span, resource: null).RequestBody;

        Assert.True(base64);
        Assert.Equal(Convert.ToBase64String(png), value);
        Assert.Equal(BodyKind.Binary, back.Kind);
        Assert.Equal(png, back.Content.ToArray());
        Assert.Equal(png.Length, back.OriginalSize);
    }

    [Fact]
    public void SpanBody_TextBody_IsCarriedAsItsString()
    {
        var body = Capture(Encoding.UTF8.GetBytes(Json), 1024, "application/json", null, 1024);

        var span = ExchangeSpanMapper.ToSpan(new Exchange { RequestBody = body });
        var value = Attribute(span, OtlpAttributes.RequestBody);
        var base64 = Attribute(span, OtlpAttributes.RequestBodyMetaPrefix + OtlpAttributes.BodyEncodingSuffix) == OtlpAttributes.Base64;
        var back = ExchangeSpanMapper.FromSpan(span, resource: null).RequestBody;

        Assert.False(base64);
        Assert.Equal(Json, value);
        Assert.Equal(BodyKind.Text, back.Kind);
        Assert.Equal(body.Content.ToArray(), back.Content.ToArray());
    }

    [Fact]
    public void SpanBody_InvalidBase64FlaggedAsBase64_IsKeptAsText()
    {
        var span = new OtlpSpan();
        span.Attributes.Add(new KeyValue { Key = OtlpAttributes.RequestBody, Value = new AnyValue { StringValue = "not base64!" } });
        span.Attributes.Add(new KeyValue { Key = OtlpAttributes.RequestBodyMetaPrefix + OtlpAttributes.BodyEncodingSuffix, Value = new AnyValue { StringValue = OtlpAttributes.Base64 } });

        var back = ExchangeSpanMapper.FromSpan(span, resource: null).RequestBody;

        Assert.Equal(BodyKind.Text, back.Kind);
        Assert.Equal("not base64!", Encoding.UTF8.GetString(back.Content.Span));
    }

    private static string? Attribute(OtlpSpan span, string key)
    {
        foreach (var kv in span.Attributes)
        {
            if (kv.Key == key)
            {
                return kv.Value.StringValue;
            }
        }

        return null;
    }

    private static CapturedBody Capture(byte[] wire, int limit, string? contentType, string? encoding, int maxDecoded)
    {
        using var buffer = new BodyCaptureBuffer(limit);
        for (var offset = 0; offset < wire.Length; offset += 1000)
        {
            buffer.Append(wire.AsSpan(offset, Math.Min(1000, wire.Length - offset)));
        }

        return buffer.Complete(contentType, encoding, maxDecoded);
    }

    private static byte[] Compress(byte[] data, string encoding)
    {
        using var output = new MemoryStream();
        using (Stream compressor = encoding switch
        {
            "gzip" or "x-gzip" => new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true),
            "deflate" => new ZLibStream(output, CompressionLevel.Optimal, leaveOpen: true),
            "br" => new BrotliStream(output, CompressionLevel.Optimal, leaveOpen: true),
            _ => throw new ArgumentOutOfRangeException(nameof(encoding)),
        })
        {
            compressor.Write(data);
        }

        return output.ToArray();
    }
}
