using System.Globalization;
using System.Text;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Storage;

public sealed class BodyCodecJsonColumnsTests
{
    private const byte JsonColumnsCodec = 4;

    public static TheoryData<string> EdgeCases => new()
    {
        // Whitespace, key order and numbers exactly as written.
        "{ \"b\" : 1.50 ,\n\t\"a\":[ 1e3, -0, 0.0, 1E-7, -12.5e+3 ]\r\n}",
        // Numbers stored as varints (canonical decimals) beside ones that must stay text: leading
        // zeros, negative zero, a bare point, too many digits or fraction digits, exponents.
        "[0,-1,0.05,-0.5,0.00,10.10,999999999999999999,-999999999999999999,1.000001,007,-0,-0.0,1.,.5,-,--1,1.2.3,1234567890123456789,0.0000001,1e5,9223372036854775808]",
        // Escapes, a quote and a backslash inside strings, keys and values alike.
        "{\"k\\\"ey\":\"va\\\\l\\\"ue\",\"u\":\"\\u00e9\\n\",\"e\":\"\\\\\"}",
        // Keys against the one the last record leads to expect: a longer key starting with it, the
        // order swapped, escaped quotes inside a repeated key, a key with no value, a body cut
        // where the expected key's closing quote would be.
        "[{\"id\":1,\"idx\":2},{\"idx\":3,\"id\":4},{\"id\":5,\"id\\\"x\":6},{\"i\\\"d\":7,\"i\\\"d\":\"8\"},{\"id\"}]",
        "[{\"id\":1},{\"id\":2},{\"id",
        // Duplicate keys, empty strings and containers, literals.
        "{\"a\":1,\"a\":\"x\",\"a\":{},\"a\":[],\"b\":\"\",\"c\":true,\"d\":null,\"e\":false}",
        // Truncated inside a value string, a key, a number, after a backslash.
        "[{\"id\":1,\"city\":\"lis", "[{\"id\":1,\"ci", "[{\"id\":1,\"n\":12", "[{\"id\":1,\"s\":\"ab\\",
        // Not JSON at all, though it starts like it.
        "{this is not json: 12 apples, \"quoted\" and 'single'} 7 9 - -- e5",
        // Unbalanced and mismatched brackets.
        "]]]}}}{[{\"a\":[1,2}]]]]]]}",
        // Numbers and strings glued together, outside any object.
        "[1\"\"2\"x\"3,-,--1..2ee,\"\"\"\"]",
        // Bytes the model cannot carry outside strings: a tail from there.
        "{\"a\":1,\"b\":2}\0\0\0\0 padding",
        "{\"a\":\"\u0001 in a string\",\"b\":\u0002}",
    };

    [Theory]
    [MemberData(nameof(EdgeCases))]
    public void JsonColumns_RoundTripEdgeCasesByteForByte(string text)
    {
        // Padded past the codec's minimum, so the JSON columns are tried on every case.
        byte[] body = Encoding.UTF8.GetBytes(text + new string(' ', 300) + "[" + Records(10) + "]");
        byte[] bare = Encoding.UTF8.GetBytes(text);

        AssertRoundTrips(body);
        AssertRoundTrips(bare);
        AssertRoundTrips(Encoding.UTF8.GetBytes("[" + Records(8) + "]" + text));
    }

    [Fact]
    public void JsonColumns_RecordArraysAreStoredAsColumnsAndSmallerThanPlainZstd()
    {
        byte[] body = Encoding.UTF8.GetBytes("{\"items\":[" + Records(40) + "]}");

        var stored = BodyCodec.Encode(body)!;
        var plain = BodyCodec.Encode(body, jsonColumns: false)!;

        Assert.Equal(JsonColumnsCodec, stored[0]);
        Assert.Equal(3, plain[0]);
        Assert.True(stored.Length < plain.Length, $"columns {stored.Length} B, plain zstd {plain.Length} B");
        Assert.Equal(body, BodyCodec.Decode(stored));
        Assert.Equal(0, BodyCodec.DictionaryIdOf(stored));
        Assert.Equal(body.Length, BodyCodec.DecodedLength(stored.AsSpan(0, BodyCodec.HeadBytes), stored.Length));
    }

    [Fact]
    public void JsonColumns_WithADictionaryTrainedOnSplitSamplesRoundTripAndNameIt()
    {
        var random = new Random(11);
        var samples = Enumerable.Range(0, 300).Select(i => BodyCodec.DictionarySample(Encoding.UTF8.GetBytes("[" + Records(20, random) + "]"))).ToList();
        byte[] trained = ZstdSharp.DictBuilder.TrainFromBuffer(samples, 8192);
        CodecDictionary.MarkTrainedOnJsonColumns(trained);
        using var dictionary = new CodecDictionary(9, 1, trained);
        using var dictionaries = new CodecDictionaries(
            (_, _) => Task.FromResult<(long, byte[])?>(null), _ => (1, trained), (_, _) => Task.FromResult(9L), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        byte[] body = Encoding.UTF8.GetBytes("[" + Records(20, random) + "]");

        var stored = BodyCodec.Encode(body, dictionary)!;

        Assert.Equal(JsonColumnsCodec, stored[0]);
        Assert.Equal(9, BodyCodec.DictionaryIdOf(stored));
        Assert.True(stored.Length < BodyCodec.Encode(body)!.Length);
        Assert.Equal(body, BodyCodec.Decode(stored, dictionaries));
    }

    [Fact]
    public void JsonColumns_StoreCanonicalDecimalsAsVarintsAndOthersAsText()
    {
        // As text a number costs its digits and a terminator; a canonical decimal's varint is
        // shorter than its digits, so the split form of such numbers is smaller than the input.
        var random = new Random(3);
        byte[] decimals = Encoding.UTF8.GetBytes("[" + string.Join(',', Enumerable.Range(0, 200).Select(_ => string.Create(CultureInfo.InvariantCulture, $"{random.Next(1_000_000)}.{random.Next(10, 100)}"))) + "]");
        byte[] exponents = Encoding.UTF8.GetBytes("[" + string.Join(',', Enumerable.Range(0, 200).Select(_ => string.Create(CultureInfo.InvariantCulture, $"{random.Next(1_000_000)}e{random.Next(10, 100)}"))) + "]");
        var split = new byte[JsonColumns.MaxSplitLength(decimals.Length)];

        Assert.InRange(JsonColumns.Split(decimals, split), 0, decimals.Length * 3 / 4);
        Assert.InRange(JsonColumns.Split(exponents, split), exponents.Length + 200, split.Length);
        AssertRoundTrips(decimals);
        AssertRoundTrips(exponents);
    }

    [Fact]
    public void JsonColumns_AreNotUsedWithADictionaryTrainedOnRawBodies()
    {
        // A dictionary trained before JSON columns existed (on raw JSON, no mark) serves plain zstd
        // better: bodies encoded with it stay plain zstd until its tenant has trained a new one
        // (SqliteSpanStoreTests).
        var random = new Random(5);
        byte[] trained = ZstdSharp.DictBuilder.TrainFromBuffer(Enumerable.Range(0, 300).Select(_ => Encoding.UTF8.GetBytes("[" + Records(20, random) + "]")), 8192);
        using var raw = new CodecDictionary(4, 1, trained);
        byte[] marked = (byte[])trained.Clone();
        CodecDictionary.MarkTrainedOnJsonColumns(marked);
        using var columns = new CodecDictionary(5, 1, marked);
        using var dictionaries = new CodecDictionaries(
            (_, _) => Task.FromResult<(long, byte[])?>(null), id => (1, id == 4 ? trained : marked), (_, _) => Task.FromResult(4L), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        byte[] body = Encoding.UTF8.GetBytes("[" + Records(20, random) + "]");

        var stored = BodyCodec.Encode(body, raw)!;
        var storedWithMark = BodyCodec.Encode(body, columns)!;

        Assert.False(raw.TrainedOnJsonColumns);
        Assert.True(columns.TrainedOnJsonColumns);
        Assert.Equal(3, stored[0]);
        Assert.Equal(JsonColumnsCodec, storedWithMark[0]);
        Assert.Equal(body, BodyCodec.Decode(stored, dictionaries));
        Assert.Equal(body, BodyCodec.Decode(storedWithMark, dictionaries));
    }

    [Fact]
    public void JsonColumns_RoundTripThousandsOfGeneratedAndMutatedBodies()
    {
        var random = new Random(20261128);
        for (int i = 0; i < 4000; i++)
        {
            byte[] body = Encoding.UTF8.GetBytes(Generate(random, 0));
            switch (random.Next(5))
            {
                case 0:
                    body = body[..random.Next(body.Length + 1)];
                    break;
                case 1:
                    for (int m = random.Next(1, 4); m > 0 && body.Length > 0; m--)
                    {
                        body[random.Next(body.Length)] = (byte)random.Next(256);
                    }

                    break;
                case 2:
                    body = [.. body.Take(body.Length / 2), .. "\"\\{[:,"u8.ToArray()[random.Next(6)..], .. body.Skip(body.Length / 2)];
                    break;
                case 3:
                    body = [.. body.Where((_, index) => index % 17 != random.Next(17))];
                    break;
            }

            AssertRoundTrips(body);
        }
    }

    [Fact]
    public void JsonColumns_HostileBodiesRoundTripWithinBoundedForms()
    {
        // Nesting past the depth limit, more keys than streams, and the shapes that grow the split
        // form most (one-digit numbers and empty strings, each a mark and a terminator more).
        string deep = new string('[', 100_000) + "1" + new string(']', 100_000);
        string keys = "{" + string.Join(',', Enumerable.Range(0, 5000).Select(i => $"\"k{i}\":{i}")) + "}";
        string digits = "[" + string.Join(',', Enumerable.Repeat("1", 20_000)) + "]";
        string glued = "[" + string.Concat(Enumerable.Repeat("1\"\"", 20_000)) + "]";

        foreach (string text in new[] { deep, keys, digits, glued })
        {
            byte[] body = Encoding.UTF8.GetBytes(text);
            var split = new byte[JsonColumns.MaxSplitLength(body.Length)];
            int length = JsonColumns.Split(body, split);

            Assert.InRange(length, -1, split.Length);
            AssertRoundTrips(body);
        }
    }

    [Fact]
    public void JsonColumns_ALargeBodyIsStoredAndReadWithScratchNearItsSize()
    {
        // A body at a raised attribute cap: its split form, value list and frame are scratch the
        // codec drops afterwards. The value list was sized 16 bytes a body byte (64 MiB here) and
        // kept by the shared pool for the rest of the process; the bound below allows the split
        // form (room for 3 bytes a byte), the list grown by doubling to what the body holds (16
        // bytes a value, ~7 MiB in all here), the frame and the copies.
        byte[] body = Encoding.UTF8.GetBytes("{\"items\":[" + Records(80_000) + "]}");
        Assert.InRange(body.Length, 4 << 20, 8 << 20);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var stored = BodyCodec.Encode(body)!;
        long encoding = GC.GetAllocatedBytesForCurrentThread() - before;
        before = GC.GetAllocatedBytesForCurrentThread();
        var decoded = BodyCodec.Decode(stored);
        long decoding = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(JsonColumnsCodec, stored[0]);
        Assert.Equal(body, decoded);
        Assert.InRange(encoding, 0, 8L * body.Length);
        Assert.InRange(decoding, 0, 3L * body.Length);
    }

    [Fact]
    public void JsonColumns_CorruptValuesFailAsCorruptNotAsCrashes()
    {
        byte[] body = Encoding.UTF8.GetBytes("{\"items\":[" + Records(30) + "]}");
        var stored = BodyCodec.Encode(body)!;
        Assert.Equal(JsonColumnsCodec, stored[0]);

        Assert.Throws<InvalidDataException>(() => BodyCodec.Decode(stored[..(stored.Length / 2)]));
        Assert.Throws<InvalidDataException>(() => BodyCodec.Decode(stored[..4]));
        var split = new byte[JsonColumns.MaxSplitLength(body.Length)];
        int length = JsonColumns.Split(body, split);
        for (int cut = 0; cut < length; cut += 7)
        {
            var output = new byte[body.Length];
            Assert.Throws<InvalidDataException>(() => JsonColumns.Join(split.AsSpan(0, cut), output));
        }
    }

    private static void AssertRoundTrips(byte[] body)
    {
        var stored = BodyCodec.Encode(body);
        Assert.Equal(body, BodyCodec.Decode(stored));
        JsonColumnsSplitFormTests.AssertJoins(body);
    }

    private static string Records(int count, Random? random = null)
    {
        random ??= new Random(count);
        return string.Join(',', Enumerable.Range(0, count).Select(_ => string.Create(CultureInfo.InvariantCulture,
            $$"""{"id":{{random.Next(1_000_000)}},"city":"{{(random.Next(3) switch { 0 => "lisbon", 1 => "paris", _ => "oslo" })}}","price":{{random.Next(20, 900)}}.{{random.Next(100):D2}},"seats":{{random.Next(300)}}}""")));
    }

    private static string Generate(Random random, int depth)
    {
        string[] scalars = ["0", "-0", "1.50", "1e3", "-12.5E+3", "true", "false", "null", "\"\"", "\"a\\\"b\"", "\"\\\\\"", "\"\\u00e9 é\"", "\"paris\"", "123456"];
        string ws = random.Next(4) == 0 ? " \n\t"[..random.Next(1, 4)] : "";
        switch (depth > 6 ? 0 : random.Next(4))
        {
            case 0:
                return ws + scalars[random.Next(scalars.Length)] + ws;
            case 1:
                return ws + "[" + string.Join("," + ws, Enumerable.Range(0, random.Next(8)).Select(_ => Generate(random, depth + 1))) + "]";
            default:
                string[] keys = ["id", "city", "a\\\"k", "", "price", "items", "id"];
                return ws + "{" + string.Join(",", Enumerable.Range(0, random.Next(8)).Select(_ => ws + "\"" + keys[random.Next(keys.Length)] + "\"" + ws + ":" + Generate(random, depth + 1))) + "}";
        }
    }
}
