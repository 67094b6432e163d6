using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using System.Text;

namespace SpIstio.Core.Redaction;

/// <summary>
/// Finds where any of a fixed set of ASCII anchors starts in UTF-8 bytes, ignoring the case of
/// ASCII letters: the redaction pre-scan's anchor search, run on the body's own bytes.
/// </summary>
/// <remarks>
/// <para>
/// A Teddy-style filter, 16 bytes at a time (run by <see cref="PreScanPass"/>): each anchor goes
/// into one of 8 buckets, and for each of the first <see cref="Fingerprint"/> positions two 16-entry
/// tables (indexed by a byte's low and high nibble) hold the bits of the buckets that accept that
/// byte there. Two table look-ups (<c>pshufb</c> on x86, <c>tbl</c> on arm64) per position and
/// loaded vector, lined up over three consecutive bytes and ANDed, leave a bucket bit in a lane only
/// where the three bytes could start one of that bucket's anchors. A lane let through is checked
/// (<see cref="Starts"/>) against a bitmap of the hashes of the
/// anchors' first three (case-folded) bytes, and only then compared with the anchors that start
/// with its byte. Both cases of a letter are put in the tables, so case folding costs nothing per byte.
/// </para>
/// <para>
/// It replaces <c>SearchValues&lt;string&gt;</c> over a lower-cased UTF-16 copy of the body (the BCL
/// has no multi-string search over bytes): no widening pass, half the bytes to read, and one pass
/// for all anchors instead of one per group of 24. Buckets are filled greedily so that the
/// estimated rate of false candidates on printable text stays lowest (anchors that share their
/// leading bytes end up together).
/// </para>
/// <para>
/// An anchor byte of 0xFF stands for any non-ASCII byte (<see cref="SensitiveNames"/> writes a
/// configured name's non-ASCII characters so); an anchor shorter than the fingerprint accepts any
/// byte past its end (and the end of the input).
/// </para>
/// <para>
/// Anchors whose flags are all in the constructor's <c>matchCase</c> are matched as spelled: the
/// value detectors behind them (<c>eyJ</c>, <c>AKIA</c>, <c>ghp_</c>, <c>-----BEGIN</c>, …) only
/// match that spelling, and in base64 or hex a letter anchor that ignores case lets through 2³ to
/// 2⁴ times the chance positions. The hash bitmap stays case-folded for all (a superset).
/// </para>
/// </remarks>
internal sealed class AnchorScanner
{
    private const int Buckets = 8;
    private const int Fingerprint = 3;

    // The last position a vector block reads: a block at i loads i..i+15 shifted by up to two.
    private const int Overhang = Fingerprint - 1;

    private const byte NonAscii = 0xFF;

    // ASCII letters lower-cased, every non-ASCII byte as NonAscii: what an anchor byte is compared with.
    private static readonly byte[] _fold = Enumerable.Range(0, 256)
        .Select(b => (byte)(b is >= 'A' and <= 'Z' ? b | 0x20 : b >= 0x80 ? NonAscii : b)).ToArray();

    // Folded for every anchor but those matched as spelled (_exact).
    private readonly byte[][] _anchors;
    private readonly bool[] _exact;
    private readonly Scan[] _flags;

    // The anchors by their first (folded) byte.
    private readonly int[][] _byFirst = new int[256][];

    // A bit per hash of three folded bytes that start an anchor: most lanes the nibble filter lets
    // through are rejected by one look-up in these 8 KiB, before any anchor is compared.
    private readonly ulong[] _triples = new ulong[1024];

    // Per fingerprint position: the bucket bits accepting each low / high nibble.
    private readonly Vector128<byte>[] _low = new Vector128<byte>[Fingerprint];
    private readonly Vector128<byte>[] _high = new Vector128<byte>[Fingerprint];

    /// <param name="anchors">The anchors and the flags each stands for.</param>
    /// <param name="matchCase">Flags whose anchors are matched as spelled; an anchor with any other flag ignores ASCII case.</param>
    public AnchorScanner(IEnumerable<(string Anchor, Scan Flag)> anchors, Scan matchCase = Scan.None)
    {
        var list = anchors
            .Where(a => a.Anchor.Length > 0)
            .Select(a => (Exact: (a.Flag & ~matchCase) == Scan.None, a.Anchor, a.Flag))
            .Select(a => (a.Exact, Bytes: a.Exact ? Encoding.ASCII.GetBytes(a.Anchor) : ToBytes(a.Anchor), a.Flag))
            .GroupBy(a => (a.Exact ? "=" : "~") + Convert.ToHexString(a.Bytes), StringComparer.Ordinal)
            .Select(g => (g.First().Exact, g.First().Bytes, Flag: g.Aggregate(Scan.None, (all, a) => all | a.Flag)))
            .OrderBy(a => Convert.ToHexString(a.Bytes), StringComparer.Ordinal)
            .ToArray();
        _anchors = list.Select(a => a.Bytes).ToArray();
        _exact = list.Select(a => a.Exact).ToArray();
        _flags = list.Select(a => a.Flag).ToArray();
        Possible = _flags.Aggregate(Scan.None, (all, f) => all | f);
        for (var first = 0; first < 256; first++)
        {
            _byFirst[first] = Enumerable.Range(0, _anchors.Length).Where(a => _fold[_anchors[a][0]] == first).ToArray();
        }

        foreach (var anchor in _anchors)
        {
            AddTriples(anchor.Select(b => _fold[b]).ToArray());
        }

        var bucketOf = AssignBuckets(_anchors, _exact);
        var low = new byte[Fingerprint, 16];
        var high = new byte[Fingerprint, 16];
        for (var a = 0; a < _anchors.Length; a++)
        {
            var bit = (byte)(1 << bucketOf[a]);
            for (var k = 0; k < Fingerprint; k++)
            {
                var (lows, highs) = Nibbles(_anchors[a], _exact[a], k);
                for (var n = 0; n < 16; n++)
                {
                    low[k, n] |= (lows & (1 << n)) != 0 ? bit : (byte)0;
                    high[k, n] |= (highs & (1 << n)) != 0 ? bit : (byte)0;
                }
            }
        }

        for (var k = 0; k < Fingerprint; k++)
        {
            _low[k] = Vector128.Create(Row(low, k));
            _high[k] = Vector128.Create(Row(high, k));
        }
    }

    /// <summary>Every flag an anchor of this scanner carries.</summary>
    public Scan Possible { get; }

    /// <summary>True when the filter runs 16 bytes at a time (SSSE3 or arm64); otherwise a byte at a time.</summary>
    public static bool IsVectorized => Ssse3.IsSupported || AdvSimd.Arm64.IsSupported;

    /// <summary>
    /// The first position at or after <paramref name="from"/> where an anchor starts, with the flags
    /// of every anchor starting there; -1 when there is none. A byte at a time: where the byte
    /// shuffle is hardware, <see cref="PreScanPass"/> runs the filter 16 bytes at a time instead.
    /// </summary>
    public int Next(ReadOnlySpan<byte> content, int from, out Scan flags)
    {
        for (var i = from; i < content.Length; i++)
        {
            flags = Verify(content, i);
            if (flags != Scan.None)
            {
                return i;
            }
        }

        flags = Scan.None;
        return -1;
    }

    /// <summary>Each lane of <paramref name="index"/> (0-15) replaced by that entry of <paramref name="table"/>; needs <see cref="IsVectorized"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Lookup(Vector128<byte> table, Vector128<byte> index) =>
        Ssse3.IsSupported ? Ssse3.Shuffle(table, index) : AdvSimd.Arm64.VectorTableLookup(table, index);

    /// <summary>The low-nibble table of fingerprint position <paramref name="k"/> (bucket bits).</summary>
    public Vector128<byte> Low(int k) => _low[k];

    /// <summary>The high-nibble table of fingerprint position <paramref name="k"/> (bucket bits).</summary>
    public Vector128<byte> High(int k) => _high[k];

    /// <summary>
    /// False when no anchor can start at <paramref name="position"/>: its three bytes are not the
    /// start of any anchor (one look-up in the bitmap); true means <see cref="Verify"/> may find one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Starts(ReadOnlySpan<byte> content, int position)
    {
        if (position + Overhang >= content.Length)
        {
            return true;
        }

        var hash = Hash(_fold[content[position]], _fold[content[position + 1]], _fold[content[position + 2]]);
        return (_triples[hash >> 6] & (1UL << (int)hash)) != 0;
    }

    /// <summary>The flags of the anchors that start at <paramref name="position"/>.</summary>
    public Scan Verify(ReadOnlySpan<byte> content, int position)
    {
        var first = _fold[content[position]];
        if (position + Overhang < content.Length)
        {
            var hash = Hash(first, _fold[content[position + 1]], _fold[content[position + 2]]);
            if ((_triples[hash >> 6] & (1UL << (int)hash)) == 0)
            {
                return Scan.None;
            }
        }

        var flags = Scan.None;
        var rest = content[position..];
        foreach (var a in _byFirst[first])
        {
            if (StartsWith(rest, _anchors[a], _exact[a]))
            {
                flags |= _flags[a];
            }
        }

        return flags;
    }

    private static uint Hash(byte first, byte second, byte third) =>
        ((first | ((uint)second << 8) | ((uint)third << 16)) * 0x9E3779B1u) >> 16;

    /// <summary>Sets the bits of every three folded bytes <paramref name="anchor"/> can start with.</summary>
    private void AddTriples(byte[] anchor)
    {
        if (anchor.Length == 1)
        {
            Array.Fill(_triples, ulong.MaxValue);
            return;
        }

        // A two-byte anchor is followed by any byte.
        var thirds = anchor.Length > 2 ? [anchor[2]] : Enumerable.Range(0, 256).Select(b => (byte)b).Distinct().ToArray();
        foreach (var third in thirds)
        {
            var hash = Hash(anchor[0], anchor[1], third);
            _triples[hash >> 6] |= 1UL << (int)hash;
        }
    }

    private static bool StartsWith(ReadOnlySpan<byte> text, byte[] anchor, bool exact)
    {
        if (text.Length < anchor.Length)
        {
            return false;
        }

        if (exact)
        {
            return text.StartsWith(anchor);
        }

        for (var k = 0; k < anchor.Length; k++)
        {
            if (_fold[text[k]] != anchor[k])
            {
                return false;
            }
        }

        return true;
    }

    private static byte[] ToBytes(string anchor) =>
        anchor.Select(c => c < (char)0x80 ? _fold[c] : NonAscii).ToArray();

    /// <summary>
    /// The low and high nibbles (as 16-bit sets) of the bytes <paramref name="anchor"/> accepts at
    /// position <paramref name="k"/>: its byte (both cases of a letter unless <paramref name="exact"/>); any byte past its end.
    /// </summary>
    private static (int Lows, int Highs) Nibbles(byte[] anchor, bool exact, int k)
    {
        int lows = 0, highs = 0;
        for (var value = 0; value < 256; value++)
        {
            if (k >= anchor.Length || (exact ? value == anchor[k] : _fold[value] == anchor[k]))
            {
                lows |= 1 << (value & 0xF);
                highs |= 1 << (value >> 4);
            }
        }

        return (lows, highs);
    }

    /// <summary>
    /// Puts each anchor in one of the buckets so that the share of positions of printable text the
    /// filter lets through stays low: greedily, then moving anchors while that lowers it.
    /// </summary>
    private static int[] AssignBuckets(byte[][] anchors, bool[] exact)
    {
        var nibbles = anchors.Select((a, i) => Enumerable.Range(0, Fingerprint).Select(k => Nibbles(a, exact[i], k)).ToArray()).ToArray();
        var bucketOf = new int[anchors.Length];
        var members = Enumerable.Range(0, Buckets).Select(_ => new List<int>()).ToArray();

        double Rate(List<int> bucket, int add, int skip)
        {
            var rate = 1.0;
            for (var k = 0; k < Fingerprint; k++)
            {
                int lows = 0, highs = 0, count = 0;
                foreach (var a in bucket.Append(add))
                {
                    if (a >= 0 && a != skip)
                    {
                        (lows, highs) = (lows | nibbles[a][k].Lows, highs | nibbles[a][k].Highs);
                        count++;
                    }
                }

                if (count == 0)
                {
                    return 0;
                }

                // Printable ASCII: high nibble 2 to 7, without 0x7F.
                var printable = (BitOperations.PopCount((uint)lows) * BitOperations.PopCount((uint)highs & 0xFC))
                    - ((highs & 0x80) != 0 && (lows & 0x8000) != 0 ? 1 : 0);
                rate *= printable / 95.0;
            }

            return rate;
        }

        for (var a = 0; a < anchors.Length; a++)
        {
            var best = Enumerable.Range(0, Buckets).MinBy(b => Rate(members[b], a, -1) - Rate(members[b], -1, -1));
            members[best].Add(a);
            bucketOf[a] = best;
        }

        for (var pass = 0; pass < 20; pass++)
        {
            var moved = false;
            for (var a = 0; a < anchors.Length; a++)
            {
                var current = bucketOf[a];
                var saving = Rate(members[current], -1, -1) - Rate(members[current], -1, a);
                var best = current;
                var bestCost = saving;
                for (var b = 0; b < Buckets; b++)
                {
                    var cost = Rate(members[b], a, -1) - Rate(members[b], -1, -1);
                    if (b != current && cost < bestCost - 1e-12)
                    {
                        (best, bestCost) = (b, cost);
                    }
                }

                if (best != current)
                {
                    members[current].Remove(a);
                    members[best].Add(a);
                    bucketOf[a] = best;
                    moved = true;
                }
            }

            if (!moved)
            {
                break;
            }
        }

        return bucketOf;
    }

    private static byte[] Row(byte[,] table, int k)
    {
        var row = new byte[16];
        for (var n = 0; n < 16; n++)
        {
            row[n] = table[k, n];
        }

        return row;
    }
}
