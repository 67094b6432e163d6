using System.Diagnostics;
using System.Globalization;
using SpIstio.Backend.Storage;

/// <summary>
/// Where one span's ingest time goes (bench/README.md, "Backend", <c>--profile</c>): the parts of
/// <see cref="EncodedSpan"/> (body and header compression, search text) timed one by one on one
/// core over the benchmark's workload, so a lever's effect is seen apart from the store's commit.
/// </summary>
internal static class ProfileBench
{
    public static void Run(int batches)
    {
        var workload = new Workload(11);
        long raw = 0;
        var spans = new List<StoredSpan>();
        for (int i = 0; i < batches; i++)
        {
            spans.AddRange(workload.NextBatch(ref raw));
        }

        Console.WriteLine($"profile: {spans.Count:N0} spans, one core, µs per span");
        Time("bodies: codec encode (2 bodies)", spans, s => (BodyCodec.Encode(s.RequestBody.Span)?.Length ?? 0) + (BodyCodec.Encode(s.ResponseBody.Span)?.Length ?? 0));
        byte[] split = new byte[JsonColumns.MaxSplitLength(4096)];
        Time("bodies: JSON columns split alone (2 bodies)", spans, s => JsonColumns.Split(s.RequestBody.Span, split) + JsonColumns.Split(s.ResponseBody.Span, split));
        // Trained as the store trains a tenant's dictionary: on the form zstd sees (the split form).
        var samples = spans.Take(CodecDictionaries.SampleValues / 2).SelectMany(s => new[] { BodyCodec.DictionarySample(s.RequestBody.Span), BodyCodec.DictionarySample(s.ResponseBody.Span) });
        byte[] trained = ZstdSharp.DictBuilder.TrainFromBuffer(samples, CodecDictionaries.DictionaryBytes);
        CodecDictionary.MarkTrainedOnJsonColumns(trained);
        using var dictionary = new CodecDictionary(1, 1, trained);
        using var dictionaries = new CodecDictionaries(
            (_, _) => Task.FromResult<(long, byte[])?>(null), _ => (1, trained), (_, _) => Task.FromResult(1L), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Time("bodies: codec encode with a tenant dictionary", spans, s => (BodyCodec.Encode(s.RequestBody.Span, dictionary)?.Length ?? 0) + (BodyCodec.Encode(s.ResponseBody.Span, dictionary)?.Length ?? 0));
        var encoded = spans.Select(s => BodyCodec.Encode(s.RequestBody.Span, dictionary)).ToList();
        int next = 0;
        Time("request body: codec decode with the dictionary", spans, _ => BodyCodec.Decode(encoded[next++ % encoded.Count], dictionaries).Length);
        Time("headers + attributes: codec encode", spans, s => (BodyCodec.EncodeString(s.RequestHeadersJson)?.Length ?? 0) + (BodyCodec.EncodeString(s.ResponseHeadersJson)?.Length ?? 0) + (BodyCodec.EncodeString(s.AttributesJson)?.Length ?? 0));
        // As ingest encodes them once the tenant has a dictionary, trained as the store trains it (on
        // all five values of each span, CodecDictionaries.Observe): three frames of 60-190 bytes a span,
        // where zstd's per-frame work (context reset, entropy tables) outweighs the bytes.
        var allSamples = spans.Take(CodecDictionaries.SampleValues / 5).SelectMany(s => new[]
        {
            BodyCodec.DictionarySample(s.RequestBody.Span), BodyCodec.DictionarySample(s.ResponseBody.Span),
            System.Text.Encoding.UTF8.GetBytes(s.RequestHeadersJson!), System.Text.Encoding.UTF8.GetBytes(s.ResponseHeadersJson!), System.Text.Encoding.UTF8.GetBytes(s.AttributesJson),
        });
        byte[] storeTrained = ZstdSharp.DictBuilder.TrainFromBuffer(allSamples, CodecDictionaries.DictionaryBytes);
        CodecDictionary.MarkTrainedOnJsonColumns(storeTrained);
        using var storeDictionary = new CodecDictionary(2, 1, storeTrained);
        Time("headers + attributes: codec encode with a dictionary trained as the store trains one", spans, s => (BodyCodec.EncodeString(s.RequestHeadersJson, storeDictionary)?.Length ?? 0) + (BodyCodec.EncodeString(s.ResponseHeadersJson, storeDictionary)?.Length ?? 0) + (BodyCodec.EncodeString(s.AttributesJson, storeDictionary)?.Length ?? 0));
        Time("search text", spans, s => SearchText.Build(s)?.Length ?? 0);
        Time("whole encode (EncodedSpan, one core)", spans, s => (int)EncodedSpan.EncodeAll([s])[0].StoredBytes);
        // The SQLite indexer's split of a span's search text (before its write lock): ids and codes
        // into the span's filter unless common, the rest into its FTS5 text. Each pass counts the
        // words afresh: the store sees every id once, and a pass over spans already counted would
        // find most of them common.
        var texts = spans.ToDictionary(s => s, s => SearchText.Build(s) ?? "");
        var common = new SpIstio.Backend.Storage.Sqlite.CommonSkipWords();
        byte[] slot = new byte[SpIstio.Backend.Storage.Sqlite.SqliteSkipIndex.SlotBytes];
        char[] fts = new char[texts.Values.Max(t => t.Length)];
        Time("SQLite indexer: search text split into filter and FTS5 words", spans, s =>
        {
            if (ReferenceEquals(s, spans[0]))
            {
                common = new();
            }

            return SpIstio.Backend.Storage.Sqlite.SqliteSkipIndex.Split(texts[s], slot, common, fts);
        });
    }

    private const int Passes = 5;

    private static void Time(string what, List<StoredSpan> spans, Func<StoredSpan, int> work)
    {
        long bytes = 0;
        // One whole pass first: the managed zstd port's large methods need thousands of calls to
        // reach their optimised tier, and a short warm-up made it look three times slower than it is.
        foreach (var s in spans)
        {
            work(s);
        }

        // The fastest of a few passes: on a loaded machine a pass's CPU time also holds cache misses
        // and frequency drops caused by its neighbours, which only add.
        double us = double.MaxValue, cpu = double.MaxValue;
        for (int pass = 0; pass < Passes; pass++)
        {
            bytes = 0;
            long start = Stopwatch.GetTimestamp();
            var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
            foreach (var s in spans)
            {
                bytes += work(s);
            }

            us = Math.Min(us, Stopwatch.GetElapsedTime(start).TotalMicroseconds / spans.Count);
            // CPU time too: on a loaded machine the wall-clock time includes waiting for a core.
            cpu = Math.Min(cpu, (Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalMicroseconds / spans.Count);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {what}: {us:N1} µs ({cpu:N1} µs of process CPU; the fastest of {Passes} passes), {(double)bytes / spans.Count:N0} B out"));
    }
}
