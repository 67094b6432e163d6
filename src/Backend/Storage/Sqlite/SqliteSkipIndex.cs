using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace SpIstio.Backend.Storage.Sqlite;

/// <summary>
/// The text index's second half: words with a digit and at least four characters (ids, codes,
/// long numbers) go into a small Bloom filter per span instead of FTS5, kept 128 to a row
/// (<c>spans_skip</c>, one row per block of 128 row ids); a query checks the spans whose filter
/// may hold one of its such words against their own search text, so answers stay exact. Such a
/// word seen in several spans of the indexer's recent window (<see cref="CommonSkipWords"/>: a
/// port, a year, <c>sha256</c>) goes to FTS5 as it is from then on, where common words are cheap.
/// </summary>
/// <remarks>
/// Such words are mostly unique to their span, and a unique word is what FTS5 pays most for: a new
/// term in its hash, in the sort at each flush and in every merge, ~9-11 bytes of index each. In the
/// bench's spans they are ~30 of ~86 words but ~190 of ~250 bytes a span of the FTS5 index and about
/// two thirds of its insert CPU (bench/README.md, "Backend", issue 14 rounds 10 and 11). A filter
/// per span rather than per block: a span holding the word is the only one checked (a block filter
/// had all 256 spans of its block decoded), and ~16.5 bits a word at the bench's ~30 such words a
/// span make a false "maybe" ~0.05 % a span and word.
/// </remarks>
internal static class SqliteSkipIndex
{
    /// <summary>Row ids per block (a power of two: a row's block is its id shifted right).</summary>
    public const int BlockShift = 7;

    /// <summary>Bytes of one span's filter.</summary>
    public const int SlotBytes = 62;

    /// <summary>
    /// Bytes of one block's row: 128 filters of 62 bytes, two rows to a 16 KiB page (cell and page
    /// headers included), so a row never spills onto an overflow page.
    /// </summary>
    public const int FilterBytes = SlotBytes << BlockShift;

    private const uint SlotBits = SlotBytes * 8;

    // ln 2 x 16.5 bits a word (at ~30 words a span) rounded down: the false rate is (1/2)^k at half fill.
    private const int Probes = 11;

    /// <summary>Whether a word goes to the filters instead of FTS5 (unless it is common).</summary>
    public static bool IsSkipWord(ReadOnlySpan<char> word) => word.Length >= 4 && word.ContainsAnyInRange('0', '9');

    /// <summary>The 64-bit hash a word is filed under (the UTF-16 code units: words come from <see cref="SearchText"/> at both ends).</summary>
    public static ulong Hash(ReadOnlySpan<char> word) => XxHash3.HashToUInt64(MemoryMarshal.AsBytes(word));

    /// <summary>The filter of span <paramref name="spanId"/> within its block's row.</summary>
    public static Span<byte> SlotOf(byte[] row, long spanId) => row.AsSpan((int)(spanId & ((1 << BlockShift) - 1)) * SlotBytes, SlotBytes);

    /// <summary>
    /// Splits a span's search text: its skip words that are not common are added to
    /// <paramref name="slot"/>, the rest written to <paramref name="fts"/> (at least as long as
    /// <paramref name="text"/>) for FTS5, separated by spaces as in the text. Returns the chars
    /// written (0: nothing left for FTS5). Written into the caller's buffer rather than a string of
    /// its own: a new string and its scratch array a span were a third of the bytes the store
    /// allocated a span, and the collections they caused ~1/3 of its GC time (bench/README.md,
    /// 2026-11-29, issue 14 (sqlcpu)).
    /// </summary>
    public static int Split(string text, Span<byte> slot, CommonSkipWords common, Span<char> fts)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(common);
        ReadOnlySpan<char> rest = text;
        int kept = 0;
        while (!rest.IsEmpty)
        {
            int space = rest.IndexOf(' ');
            var word = space < 0 ? rest : rest[..space];
            rest = space < 0 ? [] : rest[(space + 1)..];
            if (IsSkipWord(word))
            {
                ulong hash = Hash(word);
                if (!common.Observe(hash))
                {
                    Add(slot, hash);
                    continue;
                }
            }

            if (kept > 0)
            {
                fts[kept++] = ' ';
            }

            word.CopyTo(fts[kept..]);
            kept += word.Length;
        }

        common.EndSpan();
        return kept;
    }

    /// <summary>The query's skip words as their hashes, for <see cref="MayHoldAny"/>.</summary>
    public static ulong[] QueryHashes(IReadOnlyList<string> words)
    {
        ArgumentNullException.ThrowIfNull(words);
        var hashes = new ulong[words.Count];
        for (int i = 0; i < words.Count; i++)
        {
            hashes[i] = Hash(words[i]);
        }

        return hashes;
    }

    /// <summary>Whether a span's filter may hold one of the hashed words (false: it holds none of them).</summary>
    public static bool MayHoldAny(ReadOnlySpan<byte> slot, ReadOnlySpan<ulong> hashes)
    {
        foreach (ulong hash in hashes)
        {
            if (MayHold(slot, hash))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>ORs <paramref name="from"/> into <paramref name="into"/> (a pass's bits into what the block already held).</summary>
    public static void Merge(byte[] into, ReadOnlySpan<byte> from)
    {
        ArgumentNullException.ThrowIfNull(into);
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
    public static bool Holds(string? text, IReadOnlyList<string> words) => SearchText.Holds(text, words);

    private static bool MayHold(ReadOnlySpan<byte> slot, ulong hash)
    {
        for (uint probe = 0; probe < Probes; probe++)
        {
            uint bit = BitOf(hash, probe);
            if ((slot[(int)(bit >> 3)] & (1 << (int)(bit & 7))) == 0)
            {
                return false;
            }
        }

        return true;
    }

    private static void Add(Span<byte> slot, ulong hash)
    {
        for (uint probe = 0; probe < Probes; probe++)
        {
            uint bit = BitOf(hash, probe);
            slot[(int)(bit >> 3)] |= (byte)(1 << (int)(bit & 7));
        }
    }

    // The filter bit of a word's probe: double hashing (the hash's halves, the second made odd),
    // mapped onto [0, SlotBits) by Lemire's multiply-shift instead of a division. Adding and
    // asking both go through it, so they always pick the same bits.
    private static uint BitOf(ulong hash, uint probe)
    {
        uint mixed = unchecked((uint)hash + (probe * ((uint)(hash >> 32) | 1)));
        return (uint)(((ulong)mixed * SlotBits) >> 32);
    }
}

/// <summary>
/// The skip words this process's indexer files in FTS5 as they are: those seen in
/// <see cref="Threshold"/> spans of a window of <see cref="WindowSpans"/>. A common word left in the
/// filters would make a query for it check most spans; counted per window, a word goes to the
/// filters at most <see cref="Threshold"/> − 1 times per window before it is common, so a query
/// checks at most ~0.1 % of the spans for a word FTS5 does not hold and the filters do.
/// </summary>
/// <remarks>
/// Per process and in memory: after a restart a common word goes to the filters again for its
/// first few spans. Both places are always searched, so where a word went never changes an answer,
/// only what the query checks. Used by the indexer only, one pass at a time (before it takes the
/// store's write lock).
/// </remarks>
internal sealed class CommonSkipWords
{
    /// <summary>Spans a window counts words over.</summary>
    public const int WindowSpans = 2048;

    /// <summary>Spans of one window a word must be in to become common.</summary>
    public const int Threshold = 3;

    // Bounds on what the process holds: 1 MiB of counts, ~1.2 MB of common words. A window
    // holding more distinct words than the counts' bound (spans with hundreds of ids) ends early.
    private const int MaxCounted = Slots / 2;
    private const int MaxCommon = 65_536;

    // The counts: an open-addressing table, twice the bound's slots so it is at most half full,
    // each slot a word's hash with its count (0 = empty; never above Threshold) in the low two
    // bits. Most skip words are unique ids, so a span's ~30 words are ~30 inserts at random places
    // in a table this size: one cache line a word here, where a Dictionary<ulong, int> touched its
    // bucket and its entry, and growing and clearing it were 2 % of the SQLite store's ingest
    // profile (bench/README.md, 2026-11-29, issue 14 (lead)). Two bits fewer of the hash compared
    // make two words one word at a rate of 2^-62 a pair.
    private const int CountBits = 2;
    private const ulong CountMask = (1 << CountBits) - 1;
    private const int SlotsLog2 = 17;
    private const int Slots = 1 << SlotsLog2;

    // A count up to Threshold must fit its bits: a larger Threshold fails to compile here.
    private const ulong CountBitsHoldThreshold = CountMask - Threshold;

    private readonly ulong[] _counts = new ulong[Slots];
    private readonly HashSet<ulong> _common = [];
    private int _counted;
    private int _spans;

    /// <summary>Counts a span's word; true when the word is (now) common.</summary>
    public bool Observe(ulong hash)
    {
        if (_common.Contains(hash))
        {
            return true;
        }

        ulong key = hash & ~CountMask;
        int slot = (int)(hash >> (64 - SlotsLog2));
        while (true)
        {
            ulong entry = _counts[slot];
            if (entry == 0)
            {
                if (_counted == MaxCounted)
                {
                    // One span with more distinct words than the bound: the window ends here, so the
                    // table stays at most half full and a probe always finds an empty slot.
                    Clear();
                    return Observe(hash);
                }

                // A first span: it stays in the filters (Threshold is at least 2).
                _counts[slot] = key | 1;
                _counted++;
                return false;
            }

            if ((entry & ~CountMask) == key)
            {
                ulong count = (entry & CountMask) + 1;
                if (count < Threshold || _common.Count >= MaxCommon)
                {
                    _counts[slot] = key | Math.Min(count, CountMask);
                    return false;
                }

                // Common from now on: _common answers for it; its slot stays taken (open
                // addressing cannot empty a slot others may have probed past) until the window ends.
                _common.Add(hash);
                return true;
            }

            slot = (slot + 1) & (Slots - 1);
        }
    }

    /// <summary>Ends a span's words (a span's words are distinct: a count is a number of spans).</summary>
    public void EndSpan()
    {
        if (++_spans >= WindowSpans || _counted >= MaxCounted)
        {
            Clear();
        }
    }

    private void Clear()
    {
        Array.Clear(_counts);
        _counted = 0;
        _spans = 0;
    }
}
