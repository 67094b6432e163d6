using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace SpIstio.Core.Redaction;

/// <summary>What <see cref="PreScanPass.Next"/> found.</summary>
internal enum PassEvent
{
    /// <summary>The end of the content: nothing more to report.</summary>
    End,

    /// <summary>An anchor of the <see cref="AnchorScanner"/> starts at the position (its flags given).</summary>
    Anchor,

    /// <summary>An <c>@</c>, <c>\</c> or <c>&amp;</c> (as asked for by <see cref="PreScanPass.Specials"/>) at the position.</summary>
    Special,

    /// <summary>Seven digits or chain separators (<c> -.()</c>) in a row start at the position.</summary>
    Chain,
}

/// <summary>
/// The redaction pre-scan's one pass over a body's bytes, 16 at a time (32 on AVX2:
/// <see cref="LoadWideBlocks"/>): every 16-byte load feeds
/// the anchor filter (<see cref="AnchorScanner"/>'s Teddy tables), the digit-run classification
/// and the search for the few single bytes the pre-scan needs (<c>@</c>, the <c>\</c> of
/// <c>\u</c> escapes, the <c>&amp;</c> of <c>&amp;#</c> references), so the body is read once
/// instead of once per search. Needs <see cref="AnchorScanner.IsVectorized"/>.
/// </summary>
/// <remarks>
/// <para>
/// The anchor filter looks each byte up once (its low and high nibble in three pairs of tables, one
/// pair per fingerprint position) and lines the three results up with the previous block's
/// (<c>palignr</c> / <c>ext</c>) instead of loading the block three times: lane <c>j</c> of the
/// block at <c>i</c> stands for an anchor starting at <c>i + j - 2</c>.
/// </para>
/// <para>
/// Two more look-ups of the same nibbles classify each byte: digit (bit 7), chain separator
/// (bit 6), <c>@</c>, <c>\</c>, <c>&amp;</c> (bits 5, 4, 3). Each class is a set of low nibbles
/// under one high nibble, so ANDing the two look-ups is exact. A run of seven chain bytes is
/// found on the chain masks of two consecutive blocks, so it is reported one block late: lane
/// <c>j</c> of that window mask stands for <c>i + j - 16</c>.
/// </para>
/// <para>
/// Blocks are classified two at a time and what they leave is reported by the pair (32 lanes).
/// Events come in no particular order across kinds; the caller accumulates flags and sorts its
/// hits. The last bytes are read from a zero-padded copy (zero is no class and no anchor's first byte).
/// </para>
/// </remarks>
internal ref struct PreScanPass
{
    /// <summary>Class bits of <c>@</c>, <c>\</c> and <c>&amp;</c>.</summary>
    public const byte At = 0x20;
    public const byte Backslash = 0x10;
    public const byte Ampersand = 0x08;

    private const byte Digit = 0x80;
    private const byte Separator = 0x40;
    private const int Width = 16;

    // Low-nibble and high-nibble tables of the byte classes (bit values above).
    private static readonly Vector128<byte> _classLow = Vector128.Create(
        (byte)(Digit | Separator | At), Digit, Digit, Digit, Digit, Digit, (byte)(Digit | Ampersand), Digit,
        (byte)(Digit | Separator), (byte)(Digit | Separator), 0, 0, Backslash, Separator, Separator, 0);

    private static readonly Vector128<byte> _classHigh = Vector128.Create(
        (byte)0, 0, (byte)(Separator | Ampersand), Digit, At, Backslash, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    private readonly ReadOnlySpan<byte> _content;
    private readonly AnchorScanner _scanner;

    // The next pair of blocks to load.
    private int _next;

    // What the last pair of blocks left to report: lane bits and the position of lane 0.
    private uint _anchorLanes;
    private int _anchorBase;
    private uint _specialLanes;
    private int _specialBase;
    private uint _chainLanes;
    private int _chainBase;

    // The previous block's anchor look-ups for positions 0 and 1, and its chain mask.
    private Vector128<byte> _previous0;
    private Vector128<byte> _previous1;
    private uint _previousChains;

    // No chain window is reported before this position (the caller has looked at the run there).
    private int _chainFrom;

    public PreScanPass(AnchorScanner scanner, ReadOnlySpan<byte> content, bool chains)
    {
        _scanner = scanner;
        _content = content;
        Anchors = true;
        Chains = chains;
        Specials = At | Backslash | Ampersand;
    }

    /// <summary>Whether anchors are still looked for.</summary>
    public bool Anchors { get; set; }

    /// <summary>Whether runs of chain bytes are still looked for.</summary>
    public bool Chains { get; set; }

    /// <summary>Which of <see cref="At"/>, <see cref="Backslash"/>, <see cref="Ampersand"/> are still looked for.</summary>
    public byte Specials { get; set; }

    /// <summary>No run of chain bytes starting before <paramref name="position"/> is reported.</summary>
    public void SkipChainsBefore(int position)
    {
        _chainFrom = Math.Max(_chainFrom, position);
        if (_chainLanes != 0)
        {
            var skip = position - _chainBase;
            _chainLanes = skip >= 32 ? 0 : skip <= 0 ? _chainLanes : _chainLanes & (uint.MaxValue << skip);
        }
    }

    /// <summary>The next event; <see cref="PassEvent.End"/> when the content holds no more of what is looked for.</summary>
    public PassEvent Next(out int position, out Scan flags)
    {
        flags = Scan.None;
        while (true)
        {
            if (Chains && _chainLanes != 0)
            {
                position = _chainBase + BitOperations.TrailingZeroCount(_chainLanes);
                _chainLanes &= _chainLanes - 1;
                return PassEvent.Chain;
            }

            while (Specials != 0 && _specialLanes != 0)
            {
                position = _specialBase + BitOperations.TrailingZeroCount(_specialLanes);
                _specialLanes &= _specialLanes - 1;
                if ((Class(_content[position]) & Specials) != 0)
                {
                    return PassEvent.Special;
                }
            }

            while (Anchors && _anchorLanes != 0)
            {
                position = _anchorBase + BitOperations.TrailingZeroCount(_anchorLanes);
                _anchorLanes &= _anchorLanes - 1;
                flags = _scanner.Verify(_content, position);
                if (flags != Scan.None)
                {
                    return PassEvent.Anchor;
                }
            }

            if ((!Anchors && !Chains && Specials == 0) || !(Avx2.IsSupported ? LoadWideBlocks() : LoadBlocks()))
            {
                position = _content.Length;
                return PassEvent.End;
            }
        }
    }

    /// <summary>The class bits of one byte (the scalar twin of the vector classification).</summary>
    public static byte Class(byte b) => (byte)(_classLow[b & 0xF] & _classHigh[b >> 4]);

    /// <summary>
    /// Classifies pairs of blocks until one leaves something to report (true) or the content ends
    /// (false). The tables and the state carried from pair to pair live in locals while it runs.
    /// </summary>
    /// <remarks>
    /// Two blocks a step, their lane masks joined into 32 bits (the fields' width): one test of
    /// each kind, one run search over the chain masks and one loop check a pair instead of a
    /// block. On x86-64-v2 the flag tests, the scalar run search and the loop control were about
    /// a third of a block's instructions; the vector work per block is the same.
    /// </remarks>
    private bool LoadBlocks()
    {
        var content = _content;
        ref var start = ref MemoryMarshal.GetReference(content);
        var length = content.Length;
        var nibble = Vector128.Create((byte)0x0F);
        var low0 = _scanner.Low(0);
        var high0 = _scanner.High(0);
        var low1 = _scanner.Low(1);
        var high1 = _scanner.High(1);
        var low2 = _scanner.Low(2);
        var high2 = _scanner.High(2);
        var classLow = _classLow;
        var classHigh = _classHigh;
        var specials = Vector128.Create(Specials);
        var anchors = Anchors;
        var chains = Chains;
        var classify = chains || Specials != 0;
        var previous0 = _previous0;
        var previous1 = _previous1;
        var previousChains = _previousChains;

        // The first block holding the content's end (zero-padded) and one of zeros after it, which
        // lets the last anchor lanes and chain windows through; a pair may read one zero block
        // more, where nothing can be reported (lanes past the end are masked, zeros are no class).
        var last = (length / Width * Width) + Width;
        var i = _next;
        var found = false;
        while (!found && i <= last)
        {
            Vector128<byte> a, b;
            if (i + (2 * Width) <= length)
            {
                a = Vector128.LoadUnsafe(ref start, (nuint)i);
                b = Vector128.LoadUnsafe(ref start, (nuint)(i + Width));
            }
            else
            {
                a = Block(ref start, i, length);
                b = Block(ref start, i + Width, length);
            }

            var lowA = a & nibble;
            var highA = Vector128.ShiftRightLogical(a.AsUInt16(), 4).AsByte() & nibble;
            var lowB = b & nibble;
            var highB = Vector128.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & nibble;
            if (anchors)
            {
                var t0 = AnchorScanner.Lookup(low0, lowA) & AnchorScanner.Lookup(high0, highA);
                var t1 = AnchorScanner.Lookup(low1, lowA) & AnchorScanner.Lookup(high1, highA);
                var t2 = AnchorScanner.Lookup(low2, lowA) & AnchorScanner.Lookup(high2, highA);
                var candidatesA = AlignRight(t0, previous0, 14) & AlignRight(t1, previous1, 15) & t2;
                previous0 = AnchorScanner.Lookup(low0, lowB) & AnchorScanner.Lookup(high0, highB);
                previous1 = AnchorScanner.Lookup(low1, lowB) & AnchorScanner.Lookup(high1, highB);
                t2 = AnchorScanner.Lookup(low2, lowB) & AnchorScanner.Lookup(high2, highB);
                var candidatesB = AlignRight(previous0, t0, 14) & AlignRight(previous1, t1, 15) & t2;
                if ((candidatesA | candidatesB) != Vector128<byte>.Zero)
                {
                    var lanes = (~Vector128.Equals(candidatesA, Vector128<byte>.Zero).ExtractMostSignificantBits() & 0xFFFF)
                        | (~Vector128.Equals(candidatesB, Vector128<byte>.Zero).ExtractMostSignificantBits() << Width);
                    found = KeepAnchors(content, lanes & LanesBelow(length - (i - 2)), i - 2);
                }
            }

            if (classify)
            {
                var classesA = AnchorScanner.Lookup(classLow, lowA) & AnchorScanner.Lookup(classHigh, highA);
                var classesB = AnchorScanner.Lookup(classLow, lowB) & AnchorScanner.Lookup(classHigh, highB);
                if (chains)
                {
                    // Bit 7 of (c | c << 1): a digit (bit 7) or a separator (bit 6). Bit k of `both`
                    // stands for i - 16 + k: the previous pair's second block, then this pair's two.
                    var maskA = (classesA | (classesA + classesA)).ExtractMostSignificantBits();
                    var maskB = (classesB | (classesB + classesB)).ExtractMostSignificantBits();
                    var both = ((ulong)(maskA | (maskB << Width)) << Width) | previousChains;
                    previousChains = maskB;

                    // A run starting in the second block waits for the next pair.
                    found |= KeepChains(both, i - Width);
                }

                var specialA = classesA & specials;
                var specialB = classesB & specials;
                if ((specialA | specialB) != Vector128<byte>.Zero)
                {
                    found |= KeepSpecials(
                        (~Vector128.Equals(specialA, Vector128<byte>.Zero).ExtractMostSignificantBits() & 0xFFFF)
                        | (~Vector128.Equals(specialB, Vector128<byte>.Zero).ExtractMostSignificantBits() << Width),
                        i,
                        length);
                }
            }

            i += 2 * Width;
        }

        _next = i;
        _previous0 = previous0;
        _previous1 = previous1;
        _previousChains = previousChains;
        return found;
    }

    /// <summary>
    /// <see cref="LoadBlocks"/> on AVX2, 32 bytes a step: the same classification and the same
    /// 32-lane reports, half the instructions. Where it runs: the JIT on an AVX2 machine, and the
    /// agent's x86-64-v3 build (a Native AOT binary compiled for x86-64-v2 has AVX2 compiled out).
    /// </summary>
    /// <remarks>
    /// The content is loaded once a step, as in <see cref="LoadBlocks"/>, and the look-ups of the first
    /// two fingerprint positions are lined up with the previous step's: AVX2's byte alignment works
    /// within each 128-bit half, so one cross-half permute a position joins the previous step's upper
    /// half to this step's lower half first (<c>vperm2i128</c>, then <c>vpalignr</c>). Lane <c>j</c> of
    /// the step at <c>i</c> stands for an anchor starting at <c>i + j - 2</c>. The chain window of the
    /// step at <c>i</c> is the previous step's 32 lanes (<c>i - 32</c> on), its runs looking ahead into
    /// this step's. Only the chain mask is carried between calls; the two look-ups are computed again
    /// from the previous step's bytes when the loop is entered after a report.
    /// </remarks>
    private bool LoadWideBlocks()
    {
        const int Step = 2 * Width;
        var content = _content;
        ref var start = ref MemoryMarshal.GetReference(content);
        var length = content.Length;
        var nibble = Vector256.Create((byte)0x0F);
        var low0 = Vector256.Create(_scanner.Low(0), _scanner.Low(0));
        var high0 = Vector256.Create(_scanner.High(0), _scanner.High(0));
        var low1 = Vector256.Create(_scanner.Low(1), _scanner.Low(1));
        var high1 = Vector256.Create(_scanner.High(1), _scanner.High(1));
        var low2 = Vector256.Create(_scanner.Low(2), _scanner.Low(2));
        var high2 = Vector256.Create(_scanner.High(2), _scanner.High(2));
        var classLow = Vector256.Create(_classLow, _classLow);
        var classHigh = Vector256.Create(_classHigh, _classHigh);
        var specials = Vector256.Create(Specials);
        var anchors = Anchors;
        var chains = Chains;
        var previousChains = _previousChains;

        // The previous step's look-ups of the first two positions: none before the content.
        var i = _next;
        var previous0 = Vector256<byte>.Zero;
        var previous1 = Vector256<byte>.Zero;
        if (anchors && i > 0)
        {
            // The previous step's bytes as that step read them (zero-padded past the end).
            var before = PaddedWide(ref start, i - Step, length);
            var lows = before & nibble;
            var highs = Vector256.ShiftRightLogical(before.AsUInt16(), 4).AsByte() & nibble;
            previous0 = Avx2.Shuffle(low0, lows) & Avx2.Shuffle(high0, highs);
            previous1 = Avx2.Shuffle(low1, lows) & Avx2.Shuffle(high1, highs);
        }

        // Steps run until the last chain window (32 lanes behind the step) has passed the end; past
        // the end the loads are zeros, which are no class and no anchor's first byte.
        var found = false;
        while (!found && i - Step < length)
        {
            // The step's bytes: from the content, or at its end zero-padded.
            var block = i <= length - Step ? Vector256.LoadUnsafe(ref start, (nuint)i) : PaddedWide(ref start, i, length);

            // The vector work first, the reports after it, so that few vectors are live across a
            // report's branch: the AOT compiler keeps those on the stack, stored and loaded again
            // every step (it did so for the content's nibbles when the anchor report came first).
            var lows = block & nibble;
            var highs = Vector256.ShiftRightLogical(block.AsUInt16(), 4).AsByte() & nibble;
            var classes = Avx2.Shuffle(classLow, lows) & Avx2.Shuffle(classHigh, highs);
            var candidates = Vector256<byte>.Zero;
            if (anchors)
            {
                var t0 = Avx2.Shuffle(low0, lows) & Avx2.Shuffle(high0, highs);
                var t1 = Avx2.Shuffle(low1, lows) & Avx2.Shuffle(high1, highs);
                var t2 = Avx2.Shuffle(low2, lows) & Avx2.Shuffle(high2, highs);

                // Lane j: position 0 two bytes back, position 1 one byte back, position 2 here.
                candidates = Avx2.AlignRight(t0, Avx2.Permute2x128(previous0, t0, 0x21), 14)
                    & Avx2.AlignRight(t1, Avx2.Permute2x128(previous1, t1, 0x21), 15)
                    & t2;
                previous0 = t0;
                previous1 = t1;
            }

            if (chains)
            {
                // Bit k of `both` stands for i - 32 + k: the previous step's lanes, then this one's.
                var mask = (classes | (classes + classes)).ExtractMostSignificantBits();
                var both = ((ulong)mask << Step) | previousChains;
                previousChains = mask;
                found |= KeepChains(both, i - Step);
            }

            // Zero when no special byte is looked for (Specials is 0).
            var special = classes & specials;
            if (special != Vector256<byte>.Zero)
            {
                found |= KeepSpecials(~Vector256.Equals(special, Vector256<byte>.Zero).ExtractMostSignificantBits(), i, length);
            }

            if (candidates != Vector256<byte>.Zero)
            {
                var lanes = ~Vector256.Equals(candidates, Vector256<byte>.Zero).ExtractMostSignificantBits();
                found |= KeepAnchors(content, lanes & LanesBelow(length - (i - 2)), i - 2);
            }

            i += Step;
        }

        _next = i;
        _previousChains = previousChains;
        return found;
    }

    /// <summary>
    /// Keeps the lanes of <paramref name="lanes"/> (lane <c>j</c>: an anchor starting at
    /// <paramref name="at"/> + <c>j</c>) whose three bytes start an anchor, for <see cref="Next"/>;
    /// true when one is left. Most lanes the nibble filter lets through are chance: checked here, so
    /// only an anchor ends the loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool KeepAnchors(ReadOnlySpan<byte> content, uint lanes, int at)
    {
        for (var rest = lanes; rest != 0; rest &= rest - 1)
        {
            var lane = BitOperations.TrailingZeroCount(rest);
            if (!_scanner.Starts(content, at + lane))
            {
                lanes &= ~(1u << lane);
            }
        }

        _anchorBase = at;
        _anchorLanes = lanes;
        return lanes != 0;
    }

    /// <summary>
    /// Keeps, for <see cref="Next"/>, the runs of seven chain bytes (the fewest digits worth a look)
    /// starting in the 32 lanes from <paramref name="at"/>, from the chain mask <paramref name="both"/>
    /// (bit k: the byte at <paramref name="at"/> + k) and not before <c>_chainFrom</c>; true when one is left.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool KeepChains(ulong both, int at)
    {
        // Bit k set when bits k..k+6 are: runs of 2, of 4, of 7.
        var runs = both & (both >> 1);
        runs &= runs >> 2;
        runs &= runs >> 3;
        var window = (uint)runs;
        if (window == 0)
        {
            return false;
        }

        _chainBase = at;
        var skip = _chainFrom - at;
        _chainLanes = skip >= 32 ? 0 : skip <= 0 ? window : window & (uint.MaxValue << skip);
        return _chainLanes != 0;
    }

    /// <summary>Keeps the lanes of <paramref name="lanes"/> (lane <c>j</c>: a special byte at <paramref name="at"/> + <c>j</c>) inside the content, for <see cref="Next"/>; true when one is left.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool KeepSpecials(uint lanes, int at, int length)
    {
        _specialBase = at;
        _specialLanes = lanes & LanesBelow(length - at);
        return _specialLanes != 0;
    }

    /// <summary>The block at <paramref name="i"/>: the content's bytes there, zero-padded past <paramref name="length"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Block(ref byte start, int i, int length) =>
        i + Width <= length ? Vector128.LoadUnsafe(ref start, (nuint)i) : Padded(ref start, i, length);

    /// <summary>The bytes from <paramref name="i"/> to <paramref name="length"/>, zero-padded to a block.</summary>
    /// <remarks>
    /// Copied byte by byte, without a call: every vector register is caller-saved on x64 Unix, and
    /// with a call in <see cref="LoadBlocks"/>' loop (a span copy and a vector returned through memory)
    /// the JIT kept every block's 16 bytes on the stack, stored and loaded again, not only the last two.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Padded(ref byte start, int i, int length)
    {
        var block = Vector128<byte>.Zero;
        ref var lanes = ref Unsafe.As<Vector128<byte>, byte>(ref block);
        for (var k = i; k < length; k++)
        {
            Unsafe.Add(ref lanes, k - i) = Unsafe.Add(ref start, k);
        }

        return block;
    }

    /// <summary><see cref="Padded"/> for <see cref="LoadWideBlocks"/>: the 32 bytes from <paramref name="i"/>, zero-padded past <paramref name="length"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> PaddedWide(ref byte start, int i, int length)
    {
        var block = Vector256<byte>.Zero;
        ref var lanes = ref Unsafe.As<Vector256<byte>, byte>(ref block);
        for (var k = i; k < length && k < i + Vector256<byte>.Count; k++)
        {
            Unsafe.Add(ref lanes, k - i) = Unsafe.Add(ref start, k);
        }

        return block;
    }

    // Lanes 0..count-1 of a pair (all 32 from 32 on, none at 0 or below).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint LanesBelow(int count) => count >= 2 * Width ? uint.MaxValue : count <= 0 ? 0 : (1u << count) - 1;

    // (left:right) shifted right by `shift` bytes: the last bytes of `right`, then the first of `left`.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> AlignRight(Vector128<byte> left, Vector128<byte> right, [ConstantExpected(Min = 0, Max = 15)] byte shift) =>
        Ssse3.IsSupported ? Ssse3.AlignRight(left, right, shift) : AdvSimd.ExtractVector128(right, left, shift);
}
