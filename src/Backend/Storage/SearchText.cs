using System.Buffers;
using System.Text;

namespace SpIstio.Backend.Storage;

/// <summary>
/// The text a span is found by (<c>q</c>): authority, path, query and the start of each text
/// body, reduced to lower-case words separated by spaces. Both stores index this same string
/// and split queries the same way, so SQLite FTS5 and PostgreSQL's <c>simple</c> text search
/// agree on what matches (PostgreSQL's parser would otherwise keep <c>/api/flights/42</c> as one
/// token while FTS5 splits it).
/// </summary>
internal static class SearchText
{
    /// <summary>
    /// Bytes of each body that are indexed. Bodies are full of unique tokens (ids, prices, codes),
    /// and every indexed byte costs ingest rate and disk (bench/README.md, "Backend": indexing 2 KiB
    /// halved the SQLite rate and took disk from 0.52x to 0.76x raw); the first 512 bytes hold the
    /// top-level fields people search for (ids, names, error messages).
    /// </summary>
    public const int MaxBodyBytes = 512;

    /// <summary>The normalised search text of a span, or null when it has nothing to search.</summary>
    public static string? Build(StoredSpan span)
    {
        var builder = new StringBuilder(256);
        Append(builder, span.Authority);
        Append(builder, span.Path);
        Append(builder, span.Query);
        AppendBody(builder, span.RequestBody.Span);
        AppendBody(builder, span.ResponseBody.Span);
        return builder.Length == 0 ? null : builder.ToString();
    }

    /// <summary>The words of a user's query, normalised like the indexed text; empty when it has none.</summary>
    public static string[] Terms(string? query)
    {
        if (string.IsNullOrWhiteSpace(query))
        {
            return [];
        }

        var builder = new StringBuilder(query.Length);
        Append(builder, query);
        return builder.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    private static void AppendBody(StringBuilder builder, ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return;
        }

        var slice = body.Length > MaxBodyBytes ? body[..MaxBodyBytes] : body;

        // A NUL byte early on means binary (images, protobuf): nothing worth indexing.
        if (slice[..Math.Min(slice.Length, 512)].Contains((byte)0))
        {
            return;
        }

        char[] rented = ArrayPool<char>.Shared.Rent(Encoding.UTF8.GetMaxCharCount(slice.Length));
        try
        {
            int count = Encoding.UTF8.GetChars(slice, rented);
            Append(builder, rented.AsSpan(0, count));
        }
        finally
        {
            ArrayPool<char>.Shared.Return(rented);
        }
    }

    private static void Append(StringBuilder builder, ReadOnlySpan<char> text)
    {
        bool inWord = false;
        foreach (char c in text)
        {
            if (char.IsLetterOrDigit(c))
            {
                if (!inWord && builder.Length > 0)
                {
                    builder.Append(' ');
                }

                builder.Append(char.ToLowerInvariant(c));
                inWord = true;
            }
            else
            {
                inWord = false;
            }
        }
    }
}
