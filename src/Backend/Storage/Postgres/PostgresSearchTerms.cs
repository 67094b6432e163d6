using System.Globalization;
using System.IO.Hashing;
using System.Text;

namespace SpIstio.Backend.Storage.Postgres;

/// <summary>
/// What PostgreSQL's text index holds for a word of <see cref="SearchText"/>: its 64-bit XxHash3
/// of the UTF-8 bytes, in a <c>BIGINT[]</c> per span under a GIN index. The backend computes the
/// hashes, so the server neither parses tsvector text nor compares variable-length lexemes while
/// it merges the index. A hash stands for its word: two different words share one with
/// probability 2^-64 per pair, far below any other error the store can make, so a query asks
/// for spans whose array contains every term's hash and does not recheck the words.
/// </summary>
internal static class PostgresSearchTerms
{
    private const int StackBytes = 512;

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
