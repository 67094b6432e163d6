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
        Time("headers + attributes: codec encode", spans, s => (BodyCodec.EncodeString(s.RequestHeadersJson)?.Length ?? 0) + (BodyCodec.EncodeString(s.ResponseHeadersJson)?.Length ?? 0) + (BodyCodec.EncodeString(s.AttributesJson)?.Length ?? 0));
        Time("search text", spans, s => SearchText.Build(s)?.Length ?? 0);
        Time("whole encode (EncodedSpan, one core)", spans, s => (int)EncodedSpan.EncodeAll([s])[0].StoredBytes);
    }

    private static void Time(string what, List<StoredSpan> spans, Func<StoredSpan, int> work)
    {
        long bytes = 0;
        foreach (var s in spans.Take(256))
        {
            work(s);
        }

        long start = Stopwatch.GetTimestamp();
        foreach (var s in spans)
        {
            bytes += work(s);
        }

        double us = Stopwatch.GetElapsedTime(start).TotalMicroseconds / spans.Count;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {what}: {us:N1} µs, {(double)bytes / spans.Count:N0} B out"));
    }
}
