using System.Diagnostics;
using System.Globalization;
using System.Text;
using SpIstio.Backend.Storage;

/// <summary>
/// Body codec alone, per JSON shape (bench/README.md, 2026-11-28, issue 14 (jsoncodec)): bytes, encode and decode
/// CPU per body for plain zstd and for JSON columns, each with a dictionary trained on the shape's
/// first <see cref="CodecDictionaries.SampleValues"/> bodies as a store trains a tenant's.
/// </summary>
internal static class CodecBench
{
    private const int Bodies = 512;

    public static void Run(int rounds)
    {
        var random = new Random(7);
        var workload = new Workload(3);
        long ignored = 0;
        var shapes = new (string Name, Func<byte[]> Next)[]
        {
            ("bench records 2 KiB (cut)", () => workload.NextBatch(ref ignored)[0].ResponseBody.ToArray()),
            ("nested order ~1.5 KiB", () => Order(random)),
            ("GraphQL edges ~3 KiB", () => GraphQl(random)),
            ("single object < 256 B", () => Single(random)),
            ("long strings ~4 KiB", () => LongStrings(random)),
            ("records 16 KiB", () => Records(random, 16384)),
            ("records 64 KiB", () => Records(random, 65536)),
            ("records 256 KiB", () => Records(random, 262144)),
        };

        Console.WriteLine($"{"shape",-28} {"codec",-22} {"raw B",7} {"stored B",9} {"ratio",6} {"enc us",7} {"dec us",7}");
        foreach (var (name, next) in shapes)
        {
            var train = Enumerable.Range(0, CodecDictionaries.SampleValues).Select(_ => next()).ToList();
            var bodies = Enumerable.Range(0, Bodies).Select(_ => next()).ToList();
            byte[] trained = ZstdSharp.DictBuilder.TrainFromBuffer(train.Select(b => b.Length > CodecDictionaries.SampleBytes ? b[..CodecDictionaries.SampleBytes] : b), CodecDictionaries.DictionaryBytes);
            // As a store samples a tenant's values (the form the codec compresses) since JSON columns.
            byte[] trainedSplit = ZstdSharp.DictBuilder.TrainFromBuffer(train.Select(b => BodyCodec.DictionarySample(b.AsSpan(0, Math.Min(b.Length, CodecDictionaries.SampleBytes)))), CodecDictionaries.DictionaryBytes);
            CodecDictionary.MarkTrainedOnJsonColumns(trainedSplit);
            using var dictionary = new CodecDictionary(1, 1, trained);
            using var splitDictionary = new CodecDictionary(2, 1, trainedSplit);
            // Reads resolve dictionary 1 through a store's registry, as a store's reads do.
            using var dictionaries = new CodecDictionaries((_, _) => Task.FromResult<(long, byte[])?>(null), id => (1, id == 1 ? trained : trainedSplit), (_, _) => Task.FromResult(1L), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            foreach (var (codec, withDictionary, columns) in new[] { ("zstd", false, false), ("zstd+dict", true, false), ("columns", false, true), ("columns, raw dict (old)", true, true), ("columns+split dict", true, true) })
            {
                var d = withDictionary ? (codec.EndsWith("split dict", StringComparison.Ordinal) ? splitDictionary : dictionary) : null;
                byte[][] stored = [.. bodies.Select(b => BodyCodec.Encode(b, d, columns)!)];
                long raw = bodies.Sum(b => (long)b.Length), bytes = stored.Sum(b => (long)b.Length);
                for (int i = 0; i < bodies.Count; i++)
                {
                    if (!BodyCodec.Decode(stored[i], withDictionary ? dictionaries : null).AsSpan().SequenceEqual(bodies[i]))
                    {
                        throw new InvalidOperationException($"{name} {codec}: body {i} does not round-trip");
                    }
                }

                var dictionariesForRead = withDictionary ? dictionaries : null;
                double encode = CpuMicroseconds(rounds, () =>
                {
                    foreach (var b in bodies)
                    {
                        BodyCodec.Encode(b, d, columns);
                    }
                });
                double decode = CpuMicroseconds(rounds, () =>
                {
                    foreach (var s in stored)
                    {
                        BodyCodec.Decode(s, dictionariesForRead);
                    }
                });
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name,-28} {codec,-22} {raw / Bodies,7} {bytes / Bodies,9} {(double)bytes / raw,6:N3} {encode / Bodies,7:N2} {decode / Bodies,7:N2}"));
            }
        }
    }

    // Process CPU (all threads, GC included) per round: wall time on a shared machine is noise.
    private static double CpuMicroseconds(int rounds, Action round)
    {
        round();
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var before = process.TotalProcessorTime;
        for (int r = 0; r < rounds; r++)
        {
            round();
        }

        process.Refresh();
        return (process.TotalProcessorTime - before).TotalMicroseconds / rounds;
    }

    private static string City(Random random) => Workload.Cities[random.Next(Workload.Cities.Length)];

    private static byte[] Order(Random random)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $$$"""{"order":{"id":"ord-{{{random.Next(1_000_000)}}}","status":"{{{(random.Next(3) == 0 ? "paid" : "open")}}}","customer":{"id":{{{random.Next(100_000)}}},"name":"Customer {{{random.Next(5000)}}}","email":"c{{{random.Next(5000)}}}@example.com","address":{"street":"{{{random.Next(300)}}} Main St","city":"{{{City(random)}}}","zip":"{{{random.Next(10000, 99999)}}}"}},"lines":[""");
        int lines = random.Next(3, 9);
        for (int i = 0; i < lines; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $$$"""{{{(i > 0 ? "," : "")}}}{"sku":"SKU-{{{random.Next(10000)}}}","qty":{{{random.Next(1, 5)}}},"unitPrice":{{{random.Next(1, 300)}}}.{{{random.Next(100):D2}}},"options":{"gift":{{{(random.Next(2) == 0 ? "true" : "false")}}},"note":null}}""");
        }

        sb.Append(CultureInfo.InvariantCulture, $$$"""],"total":{{{random.Next(10, 2000)}}}.{{{random.Next(100):D2}}},"currency":"EUR","createdAt":"2026-11-{{{random.Next(1, 28):D2}}}T{{{random.Next(24):D2}}}:{{{random.Next(60):D2}}}:{{{random.Next(60):D2}}}Z"}}""");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static byte[] GraphQl(Random random)
    {
        var sb = new StringBuilder("{\n  \"data\": {\n    \"search\": {\n      \"edges\": [\n");
        int edges = random.Next(10, 16);
        for (int i = 0; i < edges; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $$"""
                        {
                          "node": {
                            "__typename": "Hotel",
                            "id": "SG90ZWw6{{random.Next(1_000_000):D7}}",
                            "name": "Hotel {{City(random)}} {{random.Next(100)}}",
                            "rating": {{random.Next(10, 50) / 10.0}},
                            "available": {{(random.Next(2) == 0 ? "true" : "false")}}
                          },
                          "cursor": "Y3Vyc29y{{random.Next(100000)}}"
                        }{{(i + 1 < edges ? "," : "")}}

                """);
        }

        sb.Append(CultureInfo.InvariantCulture, $"      ],\n      \"pageInfo\": {{ \"hasNextPage\": true, \"endCursor\": \"Y3Vyc29y{random.Next(100000)}\" }}\n    }}\n  }}\n}}");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static byte[] Single(Random random) => Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
        $$"""{"id":{{random.Next(1_000_000)}},"city":"{{City(random)}}","price":{{random.Next(20, 900)}}.{{random.Next(100):D2}},"seats":{{random.Next(300)}},"token":"{{Guid.NewGuid():N}}"}"""));

    private static byte[] LongStrings(Random random)
    {
        string[] words = ["the", "flight", "departs", "from", "terminal", "gate", "baggage", "allowance", "fare", "rules", "apply", "refund", "change", "fee", "seat", "window", "aisle"];
        var sb = new StringBuilder("{\"reviews\":[");
        for (int i = 0; i < 4; i++)
        {
            sb.Append(CultureInfo.InvariantCulture, $$"""{{(i > 0 ? "," : "")}}{"id":{{random.Next(100000)}},"text":""").Append('"');
            for (int w = 0; w < 150; w++)
            {
                sb.Append(words[random.Next(words.Length)]).Append(w % 12 == 11 ? ". " : " ");
            }

            sb.Append("\"}");
        }

        sb.Append("]}");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static byte[] Records(Random random, int size)
    {
        var sb = new StringBuilder("{\"items\":[");
        while (sb.Length < size - 96)
        {
            sb.Append(CultureInfo.InvariantCulture, $$"""{"id":{{random.Next(1_000_000)}},"city":"{{City(random)}}","price":{{random.Next(20, 900)}}.{{random.Next(100):D2}},"seats":{{random.Next(300)}}},""");
        }

        sb.Append("{}]}");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }
}
