using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>
/// The split form is stored (codec 4) and tenant dictionaries are trained on it: rows on disk must
/// keep reading and a trained dictionary must keep fitting new rows, so <see cref="JsonColumns.Split"/>
/// must write the same bytes for every input, however it is made faster. The golden outputs in
/// TestData/json-columns/ were written once by the implementation of main at e4233ba.
/// </summary>
public sealed class JsonColumnsSplitFormTests
{
    /// <summary>Inputs covering each rule of the model; their split forms are in split-golden.txt, one line each, in this order.</summary>
    public static IReadOnlyList<(string Name, byte[] Input)> GoldenCases { get; } = BuildGoldenCases();

    /// <summary>How many generated inputs <see cref="Soup"/> makes; split-soup.txt holds a checksum of each one's split form.</summary>
    public const int SoupCount = 3000;

    [Fact]
    public void Split_WritesTheStoredFormOfMainForEveryGoldenCase()
    {
        string[] golden = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "TestData", "json-columns", "split-golden.txt"));
        Assert.Equal(GoldenCases.Count, golden.Length);
        for (int c = 0; c < GoldenCases.Count; c++)
        {
            var (name, input) = GoldenCases[c];
            string[] fields = golden[c].Split('\t');
            Assert.Equal(name, fields[0]);
            Assert.True(fields[1] == SplitHex(input), $"case '{name}': the split form changed");
            AssertJoins(input);
        }
    }

    [Fact]
    public void Split_WritesTheStoredFormOfMainForThousandsOfGeneratedInputs()
    {
        string[] golden = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "TestData", "json-columns", "split-soup.txt"));
        Assert.Equal(SoupCount, golden.Length);
        var inputs = Soup();
        int modelled = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            string checksum = SplitChecksum(inputs[i]);
            Assert.True(golden[i] == checksum, $"generated input {i} ({Convert.ToHexString(inputs[i])}): the split form changed");
            modelled += checksum == "-1" ? 0 : 1;
            AssertJoins(inputs[i]);
        }

        // The soup must exercise both outcomes, or it checks less than it seems to.
        Assert.InRange(modelled, SoupCount / 4, SoupCount - 100);
    }

    /// <summary>The split form as hex, or "-1" when the model covers less than half the input.</summary>
    public static string SplitHex(byte[] input)
    {
        var output = new byte[JsonColumns.MaxSplitLength(input.Length)];
        int length = JsonColumns.Split(input, output);
        return length < 0 ? "-1" : Convert.ToHexString(output, 0, length);
    }

    /// <summary>The length and the first 8 bytes of the SHA-256 of the split form, or "-1".</summary>
    public static string SplitChecksum(byte[] input)
    {
        var output = new byte[JsonColumns.MaxSplitLength(input.Length)];
        int length = JsonColumns.Split(input, output);
        return length < 0 ? "-1" : string.Create(CultureInfo.InvariantCulture, $"{length}:{Convert.ToHexString(SHA256.HashData(output.AsSpan(0, length)), 0, 8)}");
    }

    /// <summary>When the input has a split form, Join rebuilds the input from it byte for byte.</summary>
    internal static void AssertJoins(byte[] input)
    {
        var output = new byte[JsonColumns.MaxSplitLength(input.Length)];
        int length = JsonColumns.Split(input, output);
        if (length >= 0)
        {
            var joined = new byte[input.Length];
            JsonColumns.Join(output.AsSpan(0, length), joined);
            Assert.Equal(input, joined);
        }
    }

    private static List<(string, byte[])> BuildGoldenCases()
    {
        var cases = new List<(string, byte[])>();
        void Add(string name, string text) => cases.Add((name, Encoding.UTF8.GetBytes(text)));

        Add("empty", "");
        Add("records", "{\"items\":[" + Records(12, new Random(1)) + "]}");
        Add("records cut in a value", ("{\"items\":[" + Records(12, new Random(2)) + "]}")[..300]);
        Add("nested objects and arrays", "{\"a\":{\"b\":{\"c\":[1,[2,[3,{\"d\":\"deep\"}]],{\"e\":[]}]}},\"f\":[[],[{}],\"x\"],\"g\":{\"a\":\"same key, other stream?\"}}");
        Add("escapes", "{\"k\\\"ey\":\"va\\\\l\\\"ue\",\"u\":\"\\u00e9\\n\\t\\/\",\"e\":\"\\\\\",\"q\":\"\\\"\",\"multi\":\"é€😀\"}");
        Add("numbers", "[0,-1,1,12,-12,0.05,-0.5,0.00,10.10,1.5,-1.5,123.456789,1.123456,1.1234567,999999999999999999,-999999999999999999,"
            + "1000000000000000000,99999999999999999.9,1234567890123456789,-0,-0.0,-0.00,0.0,007,00,01.5,1.,.5,-,--1,1.2.3,1e5,1E5,1e-5,-1.5e+10,"
            + "1.0e3,0e0,1ee,1+2,9223372036854775808,18446744073709551616,3.,-.5]");
        Add("numbers as values of keys", "[{\"n\":1.25,\"m\":-0,\"x\":1e3},{\"n\":-2.5,\"m\":007,\"x\":12345678901234567890123}]");
        Add("literals and empties", "{\"a\":true,\"b\":false,\"c\":null,\"d\":\"\",\"e\":{},\"f\":[],\"g\":[true,false,null,\"\",{},[]]}");
        Add("whitespace everywhere", " {\n\t\"b\" : 1.50 ,\r\n  \"a\" :\t[ 1e3 , -0 , \"s\" ]\n , \"c\":{ } }\n ");
        Add("keys in and out of the expected order", "[{\"id\":1,\"idx\":2},{\"idx\":3,\"id\":4},{\"id\":5,\"id\\\"x\":6},{\"i\\\"d\":7,\"i\\\"d\":\"8\"},{\"id\"}]");
        Add("duplicate keys", "{\"a\":1,\"a\":\"x\",\"a\":{},\"a\":[],\"a\":[1,\"y\"],\"b\":2,\"a\":3}");
        Add("truncated in a value string", "[{\"id\":1,\"city\":\"lisbon\"},{\"id\":2,\"city\":\"lis");
        Add("truncated in a key", "[{\"id\":1,\"city\":\"lisbon\"},{\"id\":2,\"ci");
        Add("truncated in a number", "[{\"id\":1,\"n\":12},{\"id\":2,\"n\":1");
        Add("truncated after a backslash", "[{\"id\":1,\"s\":\"ab\"},{\"id\":2,\"s\":\"ab\\");
        Add("truncated where the expected key's quote would be", "[{\"id\":1},{\"id\":2},{\"id");
        Add("control byte outside a string", "{\"a\":1,\"b\":2}\0\0\0 padding");
        Add("control byte inside a string", "{\"a\":\"\u0001 in a string\",\"b\":\u0002}");
        Add("control byte early (model under half)", "{\"a\":\u0001" + new string('x', 40));
        Add("not json", "{this is not json: 12 apples, \"quoted\" and 'single'} 7 9 - -- e5");
        Add("unbalanced brackets", "]]]}}}{[{\"a\":[1,2}]]]]]]}");
        Add("glued tokens", "[1\"\"2\"x\"3,-,--1..2ee,\"\"\"\"]");
        Add("colon and comma soup", "{:,:\"a\"::\"b\",,\"c\"}{,}[,\"k\":1]");
        Add("depth past MaxDepth", new string('[', JsonColumns.MaxDepth + 6) + "1,\"x\"" + new string(']', JsonColumns.MaxDepth + 6));
        Add("depth past MaxDepth after records (a tail)", "[" + Records(6, new Random(3)) + "," + new string('{', JsonColumns.MaxDepth + 6) + "\"k\":1}]");
        Add("depth at MaxDepth", new string('[', JsonColumns.MaxDepth) + "1,\"x\"" + new string(']', JsonColumns.MaxDepth));
        Add("objects past MaxDepth", string.Concat(Enumerable.Repeat("{\"k\":", JsonColumns.MaxDepth + 2)) + "1" + new string('}', JsonColumns.MaxDepth + 2));
        Add("more keys than streams", "{" + string.Join(',', Enumerable.Range(0, JsonColumns.MaxKeyStreams + 10).Select(i => $"\"k{i}\":{i}.5")) + ",\"k3\":\"again\",\"k70\":\"shared\"}");
        Add("more keys than streams in records", "[" + string.Join(',', Enumerable.Range(0, 3).Select(r => "{" + string.Join(',', Enumerable.Range(0, 30).Select(i => $"\"f{(i * 7 + r) % 80}\":\"{r}{i}\"")) + "}")) + "]");
        Add("model under half", "[1,2]" + new string('\u0003', 20));
        Add("model exactly half", "[1,2,3]\u0003\u0003\u0003\u0003\u0003\u0003\u0003");
        Add("top-level scalars", "\"just a string\" 12 -3.5 true");
        Add("long string", "{\"s\":\"" + new string('z', 500) + "\\\"" + new string('y', 100) + "\"}");
        Add("bytes above ascii outside strings", "{\"a\":1,\"b\":\u00ff\u00fe,\"c\":2}");
        Add("bench body cut", BenchBody(new Random(7), 2048));
        return cases;
    }

    /// <summary>
    /// Generated inputs (seeded): the bench's record bodies and hand-shaped records cut at random points
    /// and lightly mutated, and JSON-ish token soup, so every branch of the model meets odd neighbours.
    /// </summary>
    public static List<byte[]> Soup()
    {
        var random = new Random(20261129);
        string[] tokens =
        [
            "{", "}", "[", "]", ",", ":", " ", "\n", "\t", "\r", "\"id\"", "\"city\"", "\"a\\\"k\"", "\"\"", "\"paris\"", "\"\\\\\"", "\"\\u00e9 é\"",
            "0", "-0", "1", "-1", "12.5", "-0.25", "007", "1.", ".5", "1e9", "-2.5E-3", "1234567890123456789012", "99999999999999999", "0.1234567",
            "true", "false", "null", "tru", "-", "+", "e", "\"", "\\", "\u0001", "\u007f", "é", "x",
        ];
        var inputs = new List<byte[]>(SoupCount);
        for (int n = 0; n < SoupCount; n++)
        {
            var text = new StringBuilder();
            switch (n % 3)
            {
                case 0:
                    text.Append(BenchBody(random, random.Next(50, 700)));
                    break;
                case 1:
                    text.Append('[').Append(Records(random.Next(1, 8), random)).Append(']');
                    for (int m = random.Next(4); m > 0; m--)
                    {
                        text.Insert(random.Next(text.Length + 1), tokens[random.Next(tokens.Length)]);
                    }

                    break;
                default:
                    for (int t = random.Next(1, 60); t > 0; t--)
                    {
                        text.Append(tokens[random.Next(tokens.Length)]);
                    }

                    break;
            }

            byte[] bytes = Encoding.UTF8.GetBytes(text.ToString());
            inputs.Add(random.Next(3) == 0 ? bytes : bytes[..random.Next(bytes.Length + 1)]);
        }

        return inputs;
    }

    private static string Records(int count, Random random) =>
        string.Join(',', Enumerable.Range(0, count).Select(_ =>
        {
            string city = random.Next(3) switch { 0 => "lisbon", 1 => "paris", _ => "o\\\"slo" };
            return string.Create(CultureInfo.InvariantCulture,
                $"{{\"id\":{random.Next(1_000_000)},\"city\":\"{city}\",\"price\":{random.Next(20, 900)}.{random.Next(100):D2},\"seats\":{random.Next(300)},"
                + $"\"tags\":[{random.Next(9)},\"t\"],\"geo\":{{\"lat\":{random.Next(-90, 90)}.5,\"lon\":-{random.Next(180)}}}}}");
        }));

    // The shape of bench/Backend.Benchmarks' bodies: records of five fields in an "items" array, cut at a length.
    private static string BenchBody(Random random, int size)
    {
        string[] cities = ["lisbon", "paris", "oslo", "berlin", "madrid", "rome", "vienna", "prague"];
        var text = new StringBuilder("{\"items\":[");
        while (text.Length < size)
        {
            text.Append(CultureInfo.InvariantCulture, $"{{\"id\":{random.Next(1_000_000)},\"city\":\"{cities[random.Next(cities.Length)]}\",\"price\":{random.Next(20, 900)}.{random.Next(100):D2},\"seats\":{random.Next(300)},\"code\":\"{(char)('A' + random.Next(26))}{(char)('A' + random.Next(26))}{random.Next(1000)}\"}},");
        }

        return text.ToString(0, size);
    }
}
