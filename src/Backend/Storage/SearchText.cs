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
    /// <summary>Bytes of each body that are indexed; enough for the fields people search for.</summary>
    public const int MaxBodyBytes = 4096;

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
