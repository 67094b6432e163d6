using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Storage;

public sealed class StorageHelpersTests
{
    [Theory]
    [InlineData("/api/flights/42", "/api/flights/{id}")]
    [InlineData("/api/flights/42/seats/7", "/api/flights/{id}/seats/{id}")]
    [InlineData("/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/orders/{id}")]
    [InlineData("/blobs/5f3a9c1e77", "/blobs/{id}")]
    [InlineData("/api/flights/search?from=LIS", "/api/flights/search")]
    [InlineData("/api/cafe/deadbeef", "/api/cafe/deadbeef")]
    [InlineData("/api/v2/items/", "/api/v2/items/")]
    [InlineData("", "/")]
    [InlineData(null, "/")]
    public void FromPath_ReplacesIdentifierSegments(string? path, string expected) =>
        Assert.Equal(expected, RouteTemplate.FromPath(path));

    [Fact]
    public void SearchText_KeepsEachWordOnceLowerCasedInFirstSeenOrder()
    {
        byte[] json = System.Text.Encoding.UTF8.GetBytes("{\"city\":\"Paris\",\"id\":42,\"items\":[{\"city\":\"ROME\",\"id\":7},{\"city\":\"paris\"}]}");
        byte[] binary = [1, 0, 2, 3];

        string? text = SearchText.Build("Flights:8080", "/api/Flights/42", "q=Ünïcode&q=ünïcode", json, binary);

        Assert.Equal("flights 8080 api 42 q ünïcode city paris id items rome 7", text);
        Assert.Null(SearchText.Build(null, "/", null, binary, default));
    }

    [Fact]
    public void SearchText_SplitsAndLowerCasesEveryCharacterAsUnicodeLettersAndDigitsDo()
    {
        // Each character of the first 1,024 (ASCII, Latin-1, Greek, Cyrillic) between two words:
        // a letter or digit joins them into one lower-cased word, anything else separates them.
        for (int c = 1; c < 1024; c++)
        {
            char ch = (char)c;
            string expected = char.IsLetterOrDigit(ch) ? "ab" + char.ToLowerInvariant(ch) + "cd" : "ab cd";

            Assert.Equal(expected, SearchText.Build(null, "aB" + ch + "Cd", null, default, default));
        }
    }

    [Fact]
    public void SearchText_TermsAreDistinctAcrossManyWords()
    {
        // More distinct words than the writer's first table holds, each twice.
        string[] words = [.. Enumerable.Range(0, 1500).Select(i => "w" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))];
        string query = string.Join(' ', words) + " " + string.Join(", ", words.Reverse()).ToUpperInvariant();

        Assert.Equal(words, SearchText.Terms(query));
        Assert.Equal(["paris"], SearchText.Terms("Paris PARIS paris"));
        Assert.Empty(SearchText.Terms(" --- "));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(50)]
    [InlineData(5000)]
    public void BodyCodec_RoundTripsTextAndBinary(int size)
    {
        var text = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"a\":1},", size / 8 + 1)))[..size];
        var binary = new byte[size];
        new Random(size).NextBytes(binary);

        Assert.Equal(text, BodyCodec.Decode(BodyCodec.Encode(text)));
        Assert.Equal(binary, BodyCodec.Decode(BodyCodec.Encode(binary)));
    }

    [Fact]
    public void BodyCodec_StillReadsValuesStoredWithBrotliBeforeZstd()
    {
        var json = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 50).Select(i => $"{{\"id\":{i}}},")));
        var brotli = new byte[json.Length + 64];
        Assert.True(System.IO.Compression.BrotliEncoder.TryCompress(json, brotli.AsSpan(5), out int written, 3, 18));
        brotli[0] = 1;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(brotli.AsSpan(1), json.Length);
        var stored = brotli[..(written + 5)];

        Assert.Equal(json, BodyCodec.Decode(stored));
        Assert.Equal(json.Length, BodyCodec.DecodedLength(stored.AsSpan(0, BodyCodec.HeadBytes), stored.Length));
    }

    [Fact]
    public void BodyCodec_StillReadsZstdFramesWithTheirMagicNumber()
    {
        // Codec 2, written before frames went magicless: the header, then a whole zstd frame.
        var json = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 300).Select(i => $"{{\"id\":{i}}},")));
        using var compressor = new ZstdSharp.Compressor(1);
        compressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_contentSizeFlag, 0);
        var frame = compressor.Wrap(json).ToArray();
        byte[] stored = [2, 0, (byte)(json.Length | 0x80), (byte)(json.Length >> 7), .. frame];

        Assert.True(json.Length is >= 128 and < 16384);
        Assert.Equal(json, BodyCodec.Decode(stored));
        Assert.Equal(json.Length, BodyCodec.DecodedLength(stored.AsSpan(0, BodyCodec.HeadBytes), stored.Length));
        Assert.Equal(json, BodyCodec.Decode(BodyCodec.Encode(json)));
    }

    [Theory]
    [InlineData(true, 4)]
    [InlineData(false, 3)]
    public void BodyCodec_HeaderNamesTheDictionaryAndTheDecodedLength(bool jsonColumns, byte codec)
    {
        // A JSON body is stored as JSON columns (codec 4) unless they are turned off, when it is
        // plain magicless zstd (codec 3, what rows written before codec 4 hold): both headers are
        // read the same way.
        var json = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 500).Select(i => $"{{\"id\":{i}}},")));
        var stored = BodyCodec.Encode(json, jsonColumns: jsonColumns)!;

        Assert.Equal(codec, stored[0]);
        // A magicless frame: zstd's magic number (28 B5 2F FD) does not follow the header.
        Assert.Equal(-1, stored.AsSpan(0, 12).IndexOf([(byte)0x28, (byte)0xB5, (byte)0x2F, (byte)0xFD]));
        Assert.Equal(0, BodyCodec.DictionaryIdOf(stored));
        Assert.Equal(json.Length, BodyCodec.DecodedLength(stored.AsSpan(0, BodyCodec.HeadBytes), stored.Length));
        Assert.Equal(json, BodyCodec.Decode(stored));
        var needsDictionary = (byte[])stored.Clone();
        needsDictionary[1] = 7;
        Assert.Contains("dictionary 7", Assert.Throws<InvalidDataException>(() => BodyCodec.Decode(needsDictionary)).Message);
    }

    [Fact]
    public void BodyCodec_CompressesRepetitiveBodiesAndNeverGrowsRandomOnesBeyondTheFlag()
    {
        var json = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 100).Select(i => $"{{\"id\":{i},\"city\":\"Lisbon\"}},")));
        var random = new byte[2048];
        new Random(1).NextBytes(random);

        Assert.True(BodyCodec.Encode(json)!.Length < json.Length / 3);
        Assert.Equal(random.Length + 1, BodyCodec.Encode(random)!.Length);
    }

    [Fact]
    public void BodyCodec_WithADictionaryCompressesShortValuesItHolds()
    {
        // A tenant's short values (response headers, attributes) repeat whole; without a dictionary
        // they stay raw (framing would cost more), with one they shrink to a match and round-trip.
        string headers = """[["content-type","application/json"],["server","envoy"],["x-envoy-upstream-service-time","12"]]""";
        string attributes = """{"http.request.body.size":2048,"http.response.body.size":2048}""";
        var samples = Enumerable.Range(0, 400).Select(i => System.Text.Encoding.UTF8.GetBytes(
            (i % 3) switch { 0 => headers, 1 => attributes, _ => $$"""{"items":[{"id":{{i * 7919 % 100000}},"city":"paris","price":{{i % 900}}.{{i % 100}}}]}""" }));
        byte[] trained = ZstdSharp.DictBuilder.TrainFromBuffer(samples, 4096);
        using var dictionary = new CodecDictionary(3, 1, trained);
        using var dictionaries = new CodecDictionaries(
            (_, _) => Task.FromResult<(long, byte[])?>(null), _ => (1, trained), (_, _) => Task.FromResult(3L), NullLogger.Instance);

        foreach (string value in new[] { headers, attributes })
        {
            var plain = BodyCodec.EncodeString(value)!;
            var stored = BodyCodec.EncodeString(value, dictionary)!;

            Assert.Equal(value.Length + 1, plain.Length);
            Assert.True(stored.Length < value.Length / 2, $"{value.Length} bytes stored as {stored.Length}");
            Assert.Equal(3, BodyCodec.DictionaryIdOf(stored));
            Assert.Equal(value, BodyCodec.DecodeString(stored, dictionaries));
            Assert.Equal(value.Length, BodyCodec.DecodedLength(stored.AsSpan(0, Math.Min(stored.Length, BodyCodec.HeadBytes)), stored.Length));
        }

        // Too short for any match to pay for a frame: stored as it is.
        Assert.Equal(new byte[] { 0, (byte)'{', (byte)'}' }, BodyCodec.EncodeString("{}", dictionary));
    }

    [Theory]
    [InlineData("")]
    [InlineData("mysql:Server=x")]
    [InlineData("sqlite:")]
    [InlineData("sqlite:./x.db?journal=off")]
    [InlineData("postgres:")]
    [InlineData("postgres:Hots=x;Password=hunter2")]
    public void Open_InvalidSpec_ThrowsNamingTheSpecButNoPassword(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => SpanStoreFactory.Open(spec, NullLoggerFactory.Instance));

        Assert.Contains("store spec", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", e.Message, StringComparison.Ordinal);
        if (spec.Length > 0)
        {
            Assert.Contains(spec.Split(';')[0], e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void SessionCursor_RoundTripsAndRejectsForeignText()
    {
        string cursor = SessionCursor.Format(1234567890123, "sess|ion/1");

        Assert.Equal((1234567890123L, "sess|ion/1"), SessionCursor.Parse(cursor));
        Assert.Throws<ArgumentException>(() => SessionCursor.Parse("bm90LWEtY3Vyc29y"));
    }
}
