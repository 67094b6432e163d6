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
            return new SpanTerms([], [], [], 0, [], []);
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

        long[] allHashes = [.. idHashes, .. hashes];
        short[] codes = [.. numbers];
        return new SpanTerms(allHashes, SortedDistinct(buckets, common), codes, idHashes.Count, PackHashes(allHashes), PackNumbers(codes));
    }

    /// <summary>Bytes of one entry of <c>spans.packed_terms</c> (<see cref="PackHash"/>).</summary>
    public const int PackedHashBytes = 5;

    /// <summary>Bytes of one entry of <c>spans.packed_numbers</c> (<see cref="PackNumber"/>).</summary>
    public const int PackedNumberBytes = 2;

    /// <summary>
    /// A hash as one entry of <c>spans.packed_terms</c>: its top 35 bits, 7 a byte, the first
    /// byte with its top bit set and the other four with it clear, so a query's entry (looked for
    /// with <c>LIKE</c>) can only match a row's entries at the first byte of one, never across two.
    /// 5 bytes instead of the 8 of a <c>bigint[]</c> element (and the array's 24-byte header). It
    /// is a prefix: another word of the row may share it (~46 / 2^35 a row and query word), so a
    /// match is a "maybe" that the span's rebuilt search text settles (PostgresSpanStore).
    /// </summary>
    public static void PackHash(long hash, Span<byte> entry)
    {
        ulong h = unchecked((ulong)hash);
        entry[0] = (byte)(0x80 | (int)(h >> 57));
        for (int i = 1; i < PackedHashBytes; i++)
        {
            entry[i] = (byte)((h >> (57 - (7 * i))) & 0x7F);
        }
    }

    /// <summary>
    /// A short number's code (<see cref="NumberCode"/>, 0-1109) as one entry of
    /// <c>spans.packed_numbers</c>: the top bit set in the first byte only, as in
    /// <see cref="PackHash"/>, so a match starts only at an entry; exact (7 + 7 bits hold the code).
    /// </summary>
    public static void PackNumber(short code, Span<byte> entry)
    {
        entry[0] = (byte)(0x80 | (code >> 7));
        entry[1] = (byte)(code & 0x7F);
    }

    private static byte[] PackHashes(long[] hashes)
    {
        var packed = new byte[hashes.Length * PackedHashBytes];
        for (int i = 0; i < hashes.Length; i++)
        {
            PackHash(hashes[i], packed.AsSpan(i * PackedHashBytes, PackedHashBytes));
        }

        return packed;
    }

    private static byte[] PackNumbers(short[] codes)
    {
        var packed = new byte[codes.Length * PackedNumberBytes];
        for (int i = 0; i < codes.Length; i++)
        {
            PackNumber(codes[i], packed.AsSpan(i * PackedNumberBytes, PackedNumberBytes));
        }

        return packed;
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
    /// index, its short numbers' codes (exact), and the hashes and codes packed as new rows store
    /// them (<see cref="PackHash"/>, <see cref="PackNumber"/>).
    /// </summary>
    public readonly record struct SpanTerms(long[] Hashes, short[] Buckets, short[] Numbers, int IdWords, byte[] PackedHashes, byte[] PackedNumbers);

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
        var packedHashes = new List<byte[]>();
        var packedNumbers = new List<byte[]>();
        foreach (string term in terms)
        {
            if (IsShortNumber(term))
            {
                short code = NumberCode(term);
                numbers.Add(code);
                numberHashes.Add(Hash(term));
                var entry = new byte[PackedNumberBytes];
                PackNumber(code, entry);
                packedNumbers.Add(entry);
            }
            else
            {
                long hash = Hash(term);
                var entry = new byte[PackedHashBytes];
                PackHash(hash, entry);
                packedHashes.Add(entry);
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

        return new QueryTerms(hashes.Append('}').ToString(), SortedDistinct(buckets, common), SortedDistinct(idBuckets, common), [.. idProbes], [.. numbers], [.. numberHashes], [.. packedHashes], [.. packedNumbers]);
    }

    /// <summary>Whether a query has an id word (<see cref="IsIdWord"/>): its text condition then also asks the id filters.</summary>
    public static bool HasIdWord(string[] terms) => Array.Exists(terms, term => IsIdWord(term));

    /// <summary>
    /// The parameters of a text query (<see cref="OfQuery"/>), and the entries that rows stored
    /// packed are checked for (<c>@qp0</c>… and <c>@qpn0</c>…, one per word that is not a short
    /// number and one per short number, in the order of the terms: <see cref="PackedCounts"/>).
    /// </summary>
    public readonly record struct QueryTerms(string Hashes, short[] Buckets, short[] IdBuckets, long[] IdProbes, short[] Numbers, long[] NumberHashes, byte[][] PackedHashes, byte[][] PackedNumbers);

    /// <summary>How many packed hash entries and number entries a query of these terms checks (as <see cref="OfQuery"/> makes them).</summary>
    public static (int Hashes, int Numbers) PackedCounts(string[] terms)
    {
        int numbers = Array.FindAll(terms, term => IsShortNumber(term)).Length;
        return (terms.Length - numbers, numbers);
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
