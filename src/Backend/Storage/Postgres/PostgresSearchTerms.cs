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
/// for spans whose hashes contain every term's and does not recheck the words. Buckets in a large
/// share of the spans (<see cref="PostgresCommonBuckets"/>) are left out of the index, and so are
/// the buckets of id words (<see cref="IsIdWord"/>), which <see cref="PostgresIdFilter"/> finds.
/// </summary>
/// <remarks>
/// Short numbers (<see cref="IsShortNumber"/>: 1,110 words) go into <c>spans.numbers</c>
/// (<c>SMALLINT[]</c>) as their exact <see cref="NumberCode"/>, with neither a hash nor a bucket.
/// The index's cost is per posting (bench/README.md, "Backend"), and the prices, counts and cents
/// of JSON bodies were ~40 % of a span's postings while each such word is in a large share of the
/// spans, where a posting list narrows little; and a code takes 2 bytes of the row, a hash 8. A
/// query finds them through its other words' buckets and the row's codes; a query of short numbers
/// only reads the tenant's rows. Rows stored before (<c>numbers</c> null) hold every word's hash.
/// </remarks>
internal static class PostgresSearchTerms
{
    private const int StackBytes = 512;

    /// <summary>Words of at most this many ASCII digits are short numbers (<see cref="IsShortNumber"/>).</summary>
    public const int MaxShortNumberDigits = 3;

    // One list per thread: OfBatch hashes a batch's spans in parallel.
    [ThreadStatic]
    private static List<long>? t_hashes;

    [ThreadStatic]
    private static List<short>? t_buckets;

    [ThreadStatic]
    private static List<short>? t_numbers;

    [ThreadStatic]
    private static List<long>? t_idHashes;

    /// <summary>
    /// Whether a word is an id word: at least four characters with a digit (ids, codes, long
    /// numbers; never a short number). Such words are mostly unique to their span, and a unique
    /// word is what the GIN index pays most for (~24 of a bench span's ~29 postings), while
    /// narrowing a query to a few spans is what a per-batch Bloom filter does as well
    /// (<see cref="PostgresIdFilter"/>). The same rule as SQLite's skip filters.
    /// </summary>
    public static bool IsIdWord(ReadOnlySpan<char> word) => word.Length >= 4 && word.ContainsAnyInRange('0', '9');

    /// <summary>Whether a word is 1 to <see cref="MaxShortNumberDigits"/> ASCII digits ("7", "42", "007", "999").</summary>
    public static bool IsShortNumber(ReadOnlySpan<char> word) =>
        !word.IsEmpty && word.Length <= MaxShortNumberDigits && !word.ContainsAnyExceptInRange('0', '9');

    /// <summary>
    /// A short number's code, one per word (leading zeros count: "7", "07" and "007" differ): its
    /// value plus the count of shorter words, 0-9, 10-109 and 110-1109.
    /// </summary>
    public static short NumberCode(ReadOnlySpan<char> shortNumber)
    {
        int value = 0;
        int offset = 0;
        for (int i = 0; i < shortNumber.Length; i++)
        {
            value = (value * 10) + (shortNumber[i] - '0');
            offset = (offset * 10) + (i == 0 ? 0 : 10);
        }

        return (short)(value + offset);
    }

    /// <summary>
    /// The hashes of each span's search text (<see cref="EncodedSpan.SearchText"/>), their
    /// buckets but the <paramref name="common"/> ones and the id words' and its short numbers'
    /// codes, written with the span (the id words go to the batch's <see cref="PostgresIdFilter"/>);
    /// empty for a span without one. Hashing is spread over the cores like encoding.
    /// </summary>
    public static SpanTerms[] OfBatch(EncodedSpan[] spans, PostgresCommonBuckets.Set common)
    {
        ArgumentNullException.ThrowIfNull(spans);
        var result = new SpanTerms[spans.Length];
        if (spans.Length >= 64)
        {
            Parallel.For(0, spans.Length, i => result[i] = Of(spans[i].SearchText, common, idWordsFiltered: true));
        }
        else
        {
            for (int i = 0; i < spans.Length; i++)
            {
                result[i] = Of(spans[i].SearchText, common, idWordsFiltered: true);
            }
        }

        return result;
    }

    /// <summary>The bucket of a hash: its top 16 bits, signed. The text index holds buckets (at most 65,536 keys) rather than hashes.</summary>
    public static short Bucket(long hash) => (short)(hash >> 48);

    /// <summary>
    /// What a span stores of its search text's words, its buckets but the <paramref name="common"/>
    /// ones; empty without a text. With <paramref name="idWordsFiltered"/> the id words'
    /// buckets are left out too (their hashes come first in <see cref="SpanTerms.Hashes"/>, for
    /// the batch's filter): only for spans whose batch stores a filter in the same transaction.
    /// </summary>
    public static SpanTerms Of(string? searchText, PostgresCommonBuckets.Set common, bool idWordsFiltered)
    {
        if (searchText is null)
        {
            return new SpanTerms([], [], [], 0);
        }

        var hashes = t_hashes ??= new List<long>(256);
        var buckets = t_buckets ??= new List<short>(256);
        var numbers = t_numbers ??= new List<short>(256);
        var idHashes = t_idHashes ??= new List<long>(64);
        hashes.Clear();
        buckets.Clear();
        numbers.Clear();
        idHashes.Clear();

        // SearchText already holds each distinct word once, so they are not deduplicated again.
        foreach (var range in searchText.AsSpan().Split(' '))
        {
            var word = searchText.AsSpan(range);
            if (word.IsEmpty)
            {
                continue;
            }

            if (IsShortNumber(word))
            {
                numbers.Add(NumberCode(word));
            }
            else if (idWordsFiltered && IsIdWord(word))
            {
                idHashes.Add(Hash(word));
            }
            else
            {
                long hash = Hash(word);
                hashes.Add(hash);
                buckets.Add(Bucket(hash));
            }
        }

        return new SpanTerms([.. idHashes, .. hashes], SortedDistinct(buckets, common), [.. numbers], idHashes.Count);
    }

    // Sorted and distinct, as the index's key extraction leaves them (its sort then finds them in
    // order), without the common ones.
    private static short[] SortedDistinct(List<short> buckets, PostgresCommonBuckets.Set common)
    {
        var sorted = buckets.ToArray();
        Array.Sort(sorted);
        int kept = 0;
        for (int i = 0; i < sorted.Length; i++)
        {
            if ((kept == 0 || sorted[i] != sorted[kept - 1]) && !common.Contains(sorted[i]))
            {
                sorted[kept++] = sorted[i];
            }
        }

        return sorted[..kept];
    }

    /// <summary>
    /// A span's word hashes (exact; the first <paramref name="IdWords"/> are its id words', whose
    /// buckets are not in <paramref name="Buckets"/>), their distinct buckets that are in the
    /// index and its short numbers' codes (exact).
    /// </summary>
    public readonly record struct SpanTerms(long[] Hashes, short[] Buckets, short[] Numbers, int IdWords);

    /// <summary>
    /// What a query looks for, in the parameters of the text condition: the hashes of its words
    /// (<c>@q</c>, as a <c>bigint[]</c> literal) and the buckets of those that are not id words
    /// but the ones this process knows are <paramref name="common"/> (<c>@qb</c>), its id words'
    /// buckets (<c>@qib</c>, what rows stored before the id filters index) and filter probes
    /// (<c>@qip</c>, <see cref="PostgresIdFilter.Probes"/>), its short numbers' codes
    /// (<c>@qn</c>) and their hashes (<c>@qnh</c>, what rows stored before codes hold).
    /// </summary>
    public static QueryTerms OfQuery(string[] terms, PostgresCommonBuckets.Set common)
    {
        ArgumentNullException.ThrowIfNull(terms);
        var hashes = new StringBuilder("{");
        var buckets = new List<short>(terms.Length);
        var idBuckets = new List<short>();
        var idProbes = new List<long>();
        var numbers = new List<short>();
        var numberHashes = new List<long>();
        foreach (string term in terms)
        {
            if (IsShortNumber(term))
            {
                numbers.Add(NumberCode(term));
                numberHashes.Add(Hash(term));
            }
            else
            {
                long hash = Hash(term);
                hashes.Append(hashes.Length > 1 ? "," : string.Empty).Append(hash.ToString(CultureInfo.InvariantCulture));
                if (IsIdWord(term))
                {
                    idBuckets.Add(Bucket(hash));
                    PostgresIdFilter.Probes(hash, idProbes);
                }
                else
                {
                    buckets.Add(Bucket(hash));
                }
            }
        }

        return new QueryTerms(hashes.Append('}').ToString(), SortedDistinct(buckets, common), SortedDistinct(idBuckets, common), [.. idProbes], [.. numbers], [.. numberHashes]);
    }

    /// <summary>Whether a query has an id word (<see cref="IsIdWord"/>): its text condition then also asks the id filters.</summary>
    public static bool HasIdWord(string[] terms) => Array.Exists(terms, term => IsIdWord(term));

    /// <summary>The parameters of a text query (<see cref="OfQuery"/>).</summary>
    public readonly record struct QueryTerms(string Hashes, short[] Buckets, short[] IdBuckets, long[] IdProbes, short[] Numbers, long[] NumberHashes);

    /// <summary>The hash of one word.</summary>
    public static long Hash(ReadOnlySpan<char> word)
    {
        int max = Encoding.UTF8.GetMaxByteCount(word.Length);
        Span<byte> bytes = max <= StackBytes ? stackalloc byte[StackBytes] : new byte[max];
        int length = Encoding.UTF8.GetBytes(word, bytes);
        return unchecked((long)XxHash3.HashToUInt64(bytes[..length]));
    }
}
