using System.Buffers;
using System.Text;

namespace SpIstio.Backend.Storage;

/// <summary>
/// The text a span is found by (<c>q</c>): authority, path, query and the start of each text
/// body, reduced to lower-case words separated by spaces, each distinct word once. Both stores
/// index this same string and split queries the same way, so SQLite FTS5 and PostgreSQL's
/// <c>simple</c> text search agree on what matches (PostgreSQL's parser would otherwise keep
/// <c>/api/flights/42</c> as one token while FTS5 splits it).
/// </summary>
/// <remarks>
/// Search asks whether a span holds every word of the query (neither store keeps positions:
/// FTS5 <c>detail=none</c>), so a word's second occurrence adds nothing a query can see. JSON
/// bodies repeat their keys in every element (<c>"id"</c>, <c>"price"</c>, …): dropping the
/// repeats here halves the words the index's tokenizer and hash table handle per span
/// (bench/README.md, "Backend").
/// </remarks>
internal static class SearchText
{
    /// <summary>
    /// Bytes of each body that are indexed. Bodies are full of unique tokens (ids, prices, codes),
    /// and every indexed byte costs ingest rate and disk (bench/README.md, "Backend": indexing 2 KiB
    /// halved the SQLite rate and took disk from 0.52x to 0.76x raw); the first 512 bytes hold the
    /// top-level fields people search for (ids, names, error messages).
    /// </summary>
    public const int MaxBodyBytes = 512;

    // Per ASCII character: itself lower-cased when char.IsLetterOrDigit holds for it, else 0;
    // built from those two functions, so the table and the non-ASCII path cannot disagree.
    private static readonly byte[] AsciiWordChars = BuildAsciiWordChars();

    // One writer per thread: Build runs on the ingest path of every span, in parallel (EncodedSpan.EncodeAll).
    [ThreadStatic]
    private static TermWriter? t_writer;

    /// <summary>The normalised search text of a span, or null when it has nothing to search.</summary>
    public static string? Build(StoredSpan span)
    {
        ArgumentNullException.ThrowIfNull(span);
        return Build(span.Authority, span.Path, span.Query, span.RequestBody.Span, span.ResponseBody.Span);
    }

    /// <summary>The normalised search text of a span's indexed parts, or null when they have nothing to search.</summary>
    public static string? Build(string? authority, string? path, string? query, ReadOnlySpan<byte> requestBody, ReadOnlySpan<byte> responseBody)
    {
        var writer = Writer();
        writer.Append(authority);
        writer.Append(path);
        writer.Append(query);
        writer.AppendBody(requestBody);
        writer.AppendBody(responseBody);
        return writer.Take();
    }

    /// <summary>The distinct words of a user's query, normalised like the indexed text; empty when it has none.</summary>
    public static string[] Terms(string? query)
    {
        if (string.IsNullOrWhiteSpace(query))
        {
            return [];
        }

        var writer = Writer();
        writer.Append(query);
        return writer.Take()?.Split(' ') ?? [];
    }

    /// <summary>Whether a span's search text holds every word (the exact check behind a store's "maybe": a filter's, a packed prefix's).</summary>
    public static bool Holds(string? text, IReadOnlyList<string> words)
    {
        ArgumentNullException.ThrowIfNull(words);
        if (text is null)
        {
            return false;
        }

        foreach (string word in words)
        {
            if (!HoldsWord(text, word))
            {
                return false;
            }
        }

        return true;
    }

    private static bool HoldsWord(string text, string word)
    {
        for (int from = 0; ;)
        {
            int at = text.IndexOf(word, from, StringComparison.Ordinal);
            if (at < 0)
            {
                return false;
            }

            int end = at + word.Length;
            if ((at == 0 || text[at - 1] == ' ') && (end == text.Length || text[end] == ' '))
            {
                return true;
            }

            from = at + 1;
        }
    }

    private static byte[] BuildAsciiWordChars()
    {
        var table = new byte[128];
        for (int c = 0; c < table.Length; c++)
        {
            table[c] = char.IsLetterOrDigit((char)c) ? (byte)char.ToLowerInvariant((char)c) : (byte)0;
        }

        return table;
    }

    private static TermWriter Writer()
    {
        var writer = t_writer ??= new TermWriter();
        writer.Reset();
        return writer;
    }

    /// <summary>
    /// Writes lower-cased words into one buffer and keeps each distinct word once: an
    /// open-addressing set over the words already written (no string per word).
    /// </summary>
    private sealed class TermWriter
    {
        private const int InitialSlots = 256;
        private const int InitialChars = 2048;

        private char[] _text = new char[InitialChars];
        private int _length;

        // Per slot: the word's start in _text + 1 (0 = empty), its length and its hash.
        private int[] _starts = new int[InitialSlots];
        private int[] _lengths = new int[InitialSlots];
        private uint[] _hashes = new uint[InitialSlots];
        private int _count;

        public void Reset()
        {
            _length = 0;
            if (_starts.Length > 16 * InitialSlots)
            {
                // One huge text (a long query string) must not keep its tables alive on this thread.
                _starts = new int[InitialSlots];
                _lengths = new int[InitialSlots];
                _hashes = new uint[InitialSlots];
            }
            else if (_count > 0)
            {
                Array.Clear(_starts);
            }

            if (_text.Length > 16 * InitialChars)
            {
                _text = new char[InitialChars];
            }

            _count = 0;
        }

        public string? Take() => _length == 0 ? null : new string(_text, 0, _length);

        public void AppendBody(ReadOnlySpan<byte> body)
        {
            if (body.IsEmpty)
            {
                return;
            }

            var slice = body.Length > MaxBodyBytes ? body[..MaxBodyBytes] : body;

            // A NUL byte early on means binary (images, protobuf): nothing worth indexing.
            if (slice.Contains((byte)0))
            {
                return;
            }

            char[] rented = ArrayPool<char>.Shared.Rent(Encoding.UTF8.GetMaxCharCount(slice.Length));
            try
            {
                int count = Encoding.UTF8.GetChars(slice, rented);
                Append(rented.AsSpan(0, count));
            }
            finally
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }

        public void Append(ReadOnlySpan<char> text)
        {
            // Words are separated by at least one other character, so the output (a space per
            // word) is never longer than the input plus one.
            if (_text.Length < _length + text.Length + 1)
            {
                Array.Resize(ref _text, Math.Max(_text.Length * 2, _length + text.Length + 1));
            }

            char[] output = _text;
            int length = _length;
            int i = 0;
            while (i < text.Length)
            {
                char c = WordChar(text[i++]);
                if (c == '\0')
                {
                    continue;
                }

                int mark = length;
                if (length > 0)
                {
                    output[length++] = ' ';
                }

                int start = length;
                uint hash = 2166136261;
                while (true)
                {
                    output[length++] = c;
                    hash = (hash ^ c) * 16777619;
                    if (i == text.Length || (c = WordChar(text[i++])) == '\0')
                    {
                        break;
                    }
                }

                if (!Add(start, length - start, hash))
                {
                    length = mark;
                }
            }

            _length = length;
        }

        // The character lower-cased when it belongs to a word, else '\0'. ASCII (nearly all of
        // what is indexed: hosts, paths, JSON) from a table: char.IsLetterOrDigit and
        // ToLowerInvariant per character were most of this writer's time (bench/README.md, "Backend").
        private static char WordChar(char c) =>
            c < 128 ? (char)AsciiWordChars[c] : char.IsLetterOrDigit(c) ? char.ToLowerInvariant(c) : '\0';

        // Adds the word at start; false when the same word is already in the set.
        private bool Add(int start, int length, uint hash)
        {
            if ((_count + 1) * 2 > _starts.Length)
            {
                Grow();
            }

            int mask = _starts.Length - 1;
            var word = _text.AsSpan(start, length);
            for (int slot = (int)(hash & (uint)mask); ; slot = (slot + 1) & mask)
            {
                if (_starts[slot] == 0)
                {
                    _starts[slot] = start + 1;
                    _lengths[slot] = length;
                    _hashes[slot] = hash;
                    _count++;
                    return true;
                }

                if (_hashes[slot] == hash && _lengths[slot] == length && _text.AsSpan(_starts[slot] - 1, length).SequenceEqual(word))
                {
                    return false;
                }
            }
        }

        private void Grow()
        {
            var starts = _starts;
            var lengths = _lengths;
            var hashes = _hashes;
            _starts = new int[starts.Length * 2];
            _lengths = new int[starts.Length * 2];
            _hashes = new uint[starts.Length * 2];
            int mask = _starts.Length - 1;
            for (int i = 0; i < starts.Length; i++)
            {
                if (starts[i] == 0)
                {
                    continue;
                }

                int slot = (int)(hashes[i] & (uint)mask);
                while (_starts[slot] != 0)
                {
                    slot = (slot + 1) & mask;
                }

                _starts[slot] = starts[i];
                _lengths[slot] = lengths[i];
                _hashes[slot] = hashes[i];
            }
        }
    }
}
