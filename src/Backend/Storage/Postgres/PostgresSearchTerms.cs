using System.Globalization;
using System.IO.Hashing;
using System.Text;

namespace SpIstio.Backend.Storage.Postgres;

/// <summary>
/// What PostgreSQL stores to find a span by a word of <see cref="SearchText"/>: the word's 64-bit
/// XxHash3 of the UTF-8 bytes, in <c>spans.terms</c> (<c>BIGINT[]</c>), and the hash's top 16
/// bits, its bucket, in <c>spans.term_buckets</c> under a GIN index. The backend computes both
/// while it encodes the batch, so the server neither parses text nor merges ~90 new keys a span
/// into the index (65,536 bucket keys whose posting lists grow at their ends). A bucket match is
/// only a candidate; the hashes decide. A hash stands for its word: two different words share one
/// with probability 2^-64 per pair, far below any other error the store can make, so a query asks
/// for spans whose hashes contain every term's and does not recheck the words.
/// </summary>
internal static class PostgresSearchTerms
{
    private const int StackBytes = 512;

    // One list per thread: OfBatch hashes a batch's spans in parallel.
    [ThreadStatic]
    private static List<long>? t_hashes;

    /// <summary>
    /// The hashes of a search text's words, appended to <paramref name="into"/>; returns how many.
    /// <see cref="SearchText"/> already holds each distinct word once, so they are not deduplicated again.
    /// </summary>
    public static int Append(string searchText, List<long> into)
    {
        ArgumentNullException.ThrowIfNull(searchText);
        ArgumentNullException.ThrowIfNull(into);
        int start = into.Count;
        foreach (var range in searchText.AsSpan().Split(' '))
        {
            var word = searchText.AsSpan(range);
            if (!word.IsEmpty)
            {
                into.Add(Hash(word));
            }
        }

        return into.Count - start;
    }

    /// <summary>
    /// The hashes of each span's search text (<see cref="EncodedSpan.SearchText"/>) and their
    /// buckets, written with the span; empty for a span without one. Hashing is spread over the
    /// cores like encoding.
    /// </summary>
    public static SpanTerms[] OfBatch(EncodedSpan[] spans)
    {
        ArgumentNullException.ThrowIfNull(spans);
        var result = new SpanTerms[spans.Length];
        if (spans.Length >= 64)
        {
            Parallel.For(0, spans.Length, i => result[i] = Of(spans[i].SearchText));
        }
        else
        {
            for (int i = 0; i < spans.Length; i++)
            {
                result[i] = Of(spans[i].SearchText);
            }
        }

        return result;
    }

    /// <summary>
    /// The bucket of a hash: its top 16 bits, signed. The text index holds buckets (at most 65,536
    /// keys) rather than hashes; <see cref="BucketsSql"/> is the same function in SQL.
    /// </summary>
    public static short Bucket(long hash) => (short)(hash >> 48);

    /// <summary>The distinct buckets of a <c>bigint[]</c> expression, sorted, as a <c>smallint[]</c> (<see cref="Bucket"/> in SQL).</summary>
    public static string BucketsSql(string hashes) =>
        "ARRAY(SELECT DISTINCT (b.h >> 48)::smallint FROM unnest(" + hashes + ") AS b(h) ORDER BY 1)";

    private static SpanTerms Of(string? searchText)
    {
        if (searchText is null)
        {
            return new SpanTerms([], []);
        }

        var hashes = t_hashes ??= new List<long>(256);
        hashes.Clear();
        Append(searchText, hashes);
        var buckets = new short[hashes.Count];
        for (int i = 0; i < buckets.Length; i++)
        {
            buckets[i] = Bucket(hashes[i]);
        }

        // Sorted and distinct, as the index's key extraction leaves them: its sort then finds them in order.
        Array.Sort(buckets);
        int distinct = buckets.Length == 0 ? 0 : 1;
        for (int i = 1; i < buckets.Length; i++)
        {
            if (buckets[i] != buckets[distinct - 1])
            {
                buckets[distinct++] = buckets[i];
            }
        }

        return new SpanTerms([.. hashes], buckets[..distinct]);
    }

    /// <summary>A span's word hashes (exact) and their distinct buckets (what the index holds).</summary>
    public readonly record struct SpanTerms(long[] Hashes, short[] Buckets);

    /// <summary>The query's terms as a <c>bigint[]</c> literal (the value of <c>@q</c>, cast by the condition).</summary>
    public static string QueryValue(string[] terms)
    {
        var builder = new StringBuilder("{");
        foreach (string term in terms)
        {
            builder.Append(builder.Length > 1 ? "," : string.Empty).Append(Hash(term).ToString(CultureInfo.InvariantCulture));
        }

        return builder.Append('}').ToString();
    }

    /// <summary>The hash of one word.</summary>
    public static long Hash(ReadOnlySpan<char> word)
    {
        int max = Encoding.UTF8.GetMaxByteCount(word.Length);
        Span<byte> bytes = max <= StackBytes ? stackalloc byte[StackBytes] : new byte[max];
        int length = Encoding.UTF8.GetBytes(word, bytes);
        return unchecked((long)XxHash3.HashToUInt64(bytes[..length]));
    }
}
