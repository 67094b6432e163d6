using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace SpIstio.Backend.Storage.Sqlite;

/// <summary>
/// The text index's second half: words with a digit and at least four characters (ids, codes,
/// long numbers) go into a Bloom filter per block of 256 row ids (<c>spans_skip</c>) instead of
/// FTS5, and a query's candidates from a block whose filter holds all its such words are checked
/// against the span's own search text, so answers stay exact.
/// </summary>
/// <remarks>
/// Such words are mostly unique to their span, and a unique word is what FTS5 pays most for: a new
/// term in its hash, in the sort at each flush and in every merge, ~9-11 bytes of index each. In the
/// bench's spans they are ~30 of ~86 words but ~190 of ~250 bytes a span of the FTS5 index and about
/// two thirds of its insert CPU (bench/README.md, "Backend", issue 14 round 10). A filter costs ~31 B
/// a span. Words people filter sessions by (cities, hosts, short numbers, status words) stay in FTS5.
/// </remarks>
internal static class SqliteSkipIndex
{
    /// <summary>Row ids per block (a power of two: a row's block is its id shifted right).</summary>
    public const int BlockShift = 8;

    /// <summary>
    /// Bytes of one block's filter: two blocks fit a 16 KiB page (cell and page headers included),
    /// so a filter never spills onto an overflow page. ~8.3 bits a word at the bench's ~30 such words
    /// a span: a block answers "maybe" for a word it lacks ~2 % of the time.
    /// </summary>
    public const int FilterBytes = 7936;

    private const uint FilterBits = FilterBytes * 8;
    private const int Probes = 6;

    /// <summary>Whether a word goes to the block filters instead of FTS5.</summary>
    public static bool IsSkipWord(ReadOnlySpan<char> word) => word.Length >= 4 && word.ContainsAnyInRange('0', '9');

    /// <summary>The 64-bit hash a word is filed under (the UTF-16 code units: words come from <see cref="SearchText"/> at both ends).</summary>
    public static ulong Hash(ReadOnlySpan<char> word) => XxHash3.HashToUInt64(MemoryMarshal.AsBytes(word));

    /// <summary>
    /// Splits a span's search text: its skip words are added to <paramref name="filter"/>, the rest
    /// returned for FTS5 (null when none is left).
    /// </summary>
    public static string? Split(string text, byte[] filter)
    {
        ReadOnlySpan<char> rest = text;
        int kept = 0;
        char[]? output = null;
        while (!rest.IsEmpty)
        {
            int space = rest.IndexOf(' ');
            var word = space < 0 ? rest : rest[..space];
            rest = space < 0 ? [] : rest[(space + 1)..];
            if (IsSkipWord(word))
            {
                Add(filter, Hash(word));
                continue;
            }

            output ??= new char[text.Length];
            if (kept > 0)
            {
                output[kept++] = ' ';
            }

            word.CopyTo(output.AsSpan(kept));
            kept += word.Length;
        }

        return kept == 0 ? null : kept == text.Length ? text : new string(output!, 0, kept);
    }

    /// <summary>The query's skip words as their hashes, 8 bytes each, for <see cref="MayHold"/>.</summary>
    public static byte[] QueryHashes(IReadOnlyList<string> words)
    {
        var hashes = new byte[words.Count * 8];
        for (int i = 0; i < words.Count; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(hashes.AsSpan(i * 8), Hash(words[i]));
        }

        return hashes;
    }

    /// <summary>Whether a block's filter may hold every hashed word (false: it holds at least one of them not).</summary>
    public static bool MayHold(ReadOnlySpan<byte> filter, ReadOnlySpan<byte> hashes)
    {
        if (filter.Length != FilterBytes)
        {
            return true;
        }

        for (int at = 0; at + 8 <= hashes.Length; at += 8)
        {
            ulong hash = BinaryPrimitives.ReadUInt64LittleEndian(hashes[at..]);
            for (uint probe = 0, h1 = (uint)hash, h2 = (uint)(hash >> 32) | 1; probe < Probes; probe++)
            {
                uint bit = Bit(unchecked(h1 + (probe * h2)));
                if ((filter[(int)(bit >> 3)] & (1 << (int)(bit & 7))) == 0)
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>ORs <paramref name="from"/> into <paramref name="into"/> (a pass's bits into what the block already held).</summary>
    public static void Merge(byte[] into, ReadOnlySpan<byte> from)
    {
        if (from.Length != FilterBytes)
        {
            return;
        }

        for (int i = 0; i < FilterBytes; i += 8)
        {
            ulong merged = BinaryPrimitives.ReadUInt64LittleEndian(into.AsSpan(i)) | BinaryPrimitives.ReadUInt64LittleEndian(from[i..]);
            BinaryPrimitives.WriteUInt64LittleEndian(into.AsSpan(i), merged);
        }
    }

    /// <summary>Whether a span's search text holds every word (the exact check behind a filter's "maybe").</summary>
    public static bool Holds(string? text, IReadOnlyList<string> words)
    {
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

    private static void Add(byte[] filter, ulong hash)
    {
        for (uint probe = 0, h1 = (uint)hash, h2 = (uint)(hash >> 32) | 1; probe < Probes; probe++)
        {
            uint bit = Bit(unchecked(h1 + (probe * h2)));
            filter[bit >> 3] |= (byte)(1 << (int)(bit & 7));
        }
    }

    // Lemire's multiply-shift: a 32-bit hash onto [0, FilterBits) without a division.
    private static uint Bit(uint hash) => (uint)(((ulong)hash * FilterBits) >> 32);
}
