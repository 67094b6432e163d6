using System.Buffers;
using System.Numerics;
using System.Runtime.Intrinsics;
using System.Text;

namespace SpIstio.Core.Redaction;

/// <summary>Which detectors a region needs, as found by the pre-scan.</summary>
[Flags]
internal enum Scan
{
    None = 0,

    /// <summary>A piece of a sensitive or personal-data field name, or an escape that could hide one.</summary>
    Names = 1,
    Email = 2,
    Jwt = 4,
    Aws = 8,
    Prefix = 16,
    Pem = 32,
    Bearer = 64,
    AwsSecret = 128,

    /// <summary>A digit run shaped like a card or phone number.</summary>
    Digits = 256,

    /// <summary>An operator pattern matched.</summary>
    Patterns = 512,

    /// <summary>Every detector: short values (headers, query values) are scanned without a pre-scan.</summary>
    All = Names | Email | Jwt | Aws | Prefix | Pem | Bearer | AwsSecret | Digits | Patterns,
}

/// <summary>
/// Where the pre-scan found the anchors of the value detectors whose matches start at their
/// anchor (JWT, AWS key id, token prefixes, PEM, bearer, AWS secret), in order: those detectors
/// then look only there instead of searching the whole region again (a 64 KiB random body holds
/// a few anchors by chance; each detector's own search over it cost more than the pre-scan).
/// Pooled; past <see cref="MaxHits"/> it gives up (<see cref="Usable"/> false) and the detectors
/// search their regions as before. Not collecting (<c>default</c>) is the header path.
/// </summary>
internal ref struct AnchorHits
{
    public const int MaxHits = 1024;

    private (int Position, Scan Flags)[]? _items;
    private int _count;
    private bool _overflow;

    public AnchorHits(bool collect)
    {
        Collects = collect;
    }

    /// <summary>True when hits are recorded.</summary>
    public bool Collects { get; }

    /// <summary>True when the hits are complete and the detectors may rely on them.</summary>
    public readonly bool Usable => Collects && !_overflow;

    public readonly int Count => _count;

    public readonly (int Position, Scan Flags) this[int index] => _items![index];

    public void Add(int position, Scan flags)
    {
        if (!Collects || _overflow)
        {
            return;
        }

        if (_count == MaxHits)
        {
            _overflow = true;
            return;
        }

        _items ??= ArrayPool<(int, Scan)>.Shared.Rent(16);
        if (_count == _items.Length)
        {
            var next = ArrayPool<(int, Scan)>.Shared.Rent(_items.Length * 2);
            _items.AsSpan(0, _count).CopyTo(next);
            ArrayPool<(int, Scan)>.Shared.Return(_items);
            _items = next;
        }

        _items[_count++] = (position, flags);
    }

    /// <summary>Puts the hits in position order (each anchor group was searched on its own).</summary>
    public readonly void Complete()
    {
        if (_items is not null && _count > 1)
        {
            _items.AsSpan(0, _count).Sort(static (a, b) => a.Position.CompareTo(b.Position));
        }
    }

    /// <summary>Index of the first hit at or after <paramref name="position"/>.</summary>
    public readonly int FirstAtOrAfter(int position)
    {
        int lo = 0, hi = _count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_items![mid].Position < position)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    public void Release()
    {
        if (_items is not null)
        {
            ArrayPool<(int, Scan)>.Shared.Return(_items);
            _items = null;
            _count = 0;
        }
    }
}

public sealed partial class Redactor
{
    // Fewest digits in a chain worth a look: the shortest phone number the detectors accept.
    private const int MinChainDigits = 7;

    // Room the detectors get before a chain for a '+', '(' or an escaped plus ("\u002B").
    private const int ChainLeadBytes = 7;

    // Fewest digits of a phone number without a '+': a national number with a trunk prefix (NANP has 10).
    private const int NationalPhoneMinDigits = 9;

    // The detectors whose every match starts at one of their anchors (AnchorHits).
    private const Scan AnchoredValues = Scan.Jwt | Scan.Aws | Scan.Prefix | Scan.Pem | Scan.Bearer | Scan.AwsSecret;

    // The anchored detectors whose shape the pre-scan checks at each anchor (ShapesAt): their
    // anchors are short enough to turn up by chance in base64 and hex. The other three (PEM,
    // bearer, AWS secret) have anchors of six letters or more and are left to their detectors.
    private const Scan ShapeChecked = Scan.Jwt | Scan.Aws | Scan.Prefix;

    // The detectors that match their anchor only as spelled in _valueAnchors (JwtEnd, AwsKeyIdEnd,
    // PrefixKindAt, PemBlockEnd compare case-sensitively): the pre-scan matches their anchors so
    // too. Bearer and the AWS secret's name are matched in any case, as are field names.
    private const Scan CaseMatchedValues = Scan.Jwt | Scan.Aws | Scan.Prefix | Scan.Pem;

    // Anchors of the value detectors, spelled as the detectors match them; the name anchors come from SensitiveNames.
    private static readonly (string Anchor, Scan Flag)[] _valueAnchors =
    [
        ("eyJ", Scan.Jwt),
        ("AKIA", Scan.Aws), ("ASIA", Scan.Aws), ("AGPA", Scan.Aws), ("AIDA", Scan.Aws), ("AROA", Scan.Aws),
        ("AIPA", Scan.Aws), ("ANPA", Scan.Aws), ("ANVA", Scan.Aws), ("APKA", Scan.Aws), ("ABIA", Scan.Aws), ("ACCA", Scan.Aws),
        ("ghp_", Scan.Prefix), ("gho_", Scan.Prefix), ("ghu_", Scan.Prefix), ("ghs_", Scan.Prefix), ("ghr_", Scan.Prefix),
        ("github_pat_", Scan.Prefix), ("xox", Scan.Prefix), ("sk_live_", Scan.Prefix), ("rk_live_", Scan.Prefix), ("AIza", Scan.Prefix),
        ("-----BEGIN", Scan.Pem),
        ("bearer", Scan.Bearer),
        ("aws_secret", Scan.AwsSecret), ("aws-secret", Scan.AwsSecret),
    ];

    /// <summary>
    /// Decides, without parsing, which detectors a body needs; <see cref="Scan.None"/> proves it
    /// has nothing to redact, and the body is returned untouched without a JSON read or a copy.
    /// </summary>
    /// <remarks>
    /// One vectorised pass over the body's own UTF-8 bytes (<see cref="PreScanPass"/>) finds every
    /// anchor (<see cref="AnchorScanner"/>): the pieces of sensitive field names and <c>bearer</c>,
    /// ASCII case ignored, and the detectors' prefixes as they spell them (<c>eyJ</c>, <c>AKIA</c>,
    /// <c>ghp_</c>, <c>-----BEGIN</c>, …), the short ones only where their shape follows
    /// (<see cref="ShapesAt"/>); the same loads find <c>@</c>, escapes and the runs of digits worth a
    /// look, whose shape the card and phone detectors then judge on the raw bytes. Where the byte
    /// shuffle is not hardware, each of these is a search of its own. Operator patterns run once
    /// over the whole body.
    /// </remarks>
    private Scan PreScan(ReadOnlySpan<byte> content, bool names = true)
    {
        var hits = default(AnchorHits);
        return PreScan(content, ref hits, names);
    }

    /// <summary>
    /// <see cref="PreScan(ReadOnlySpan{byte}, bool)"/>, also recording in <paramref name="hits"/> (when it
    /// collects) where each value detector's anchor was found, so the detectors look only there;
    /// <paramref name="names"/> false skips the field-name anchors (the caller ignores <see cref="Scan.Names"/>).
    /// </summary>
    private Scan PreScan(ReadOnlySpan<byte> content, ref AnchorHits hits, bool names, bool xml = true) =>
        PreScan(content, ref hits, names, xml, content.Length, out _);

    /// <summary>
    /// The pre-scan of <paramref name="content"/> and, from the same pass over its bytes, the verdict
    /// <see cref="PreScan(ReadOnlySpan{byte}, bool)"/> gives the content's first
    /// <paramref name="prefixLength"/> bytes on their own (<paramref name="prefixScan"/>): every
    /// event inside the prefix is judged again on the prefix alone, its lookahead ending at the
    /// prefix's end (a digit run, a token's shape or a name's closing quote the end cuts can decide
    /// differently there). A gRPC body cut by its limit holds a few bytes less of its last message
    /// than the call's message list; this gives the body's frame its verdict without a second scan
    /// of the same bytes.
    /// </summary>
    private Scan PreScan(ReadOnlySpan<byte> content, ref AnchorHits hits, bool names, bool xml, int prefixLength, out Scan prefixScan)
    {
        var split = prefixLength < content.Length;
        var scan = Scan.None;
        prefixScan = Scan.None;

        // Operator patterns see the body as it is (decoded, not lower-cased).
        if (_patterns.Length > 0)
        {
            scan |= MatchesPattern(content) ? Scan.Patterns : Scan.None;
            prefixScan |= split && MatchesPattern(content[..prefixLength]) ? Scan.Patterns : Scan.None;
        }

        // A value on its own (a header, a query value) has no field names in it.
        var anchors = names ? _anchorScanner : _valueAnchorScanner;
        var digits = _cardNumbers || _pii != Configuration.PiiMode.Keep;
        if (AnchorScanner.IsVectorized)
        {
            scan |= OnePass(content, anchors, ref hits, digits, xml, prefixLength, ref prefixScan);
        }
        else
        {
            scan |= SearchEach(content, anchors, ref hits, digits, xml);
            if (split)
            {
                // Without the one pass, the prefix is searched on its own.
                var none = default(AnchorHits);
                prefixScan |= SearchEach(content[..prefixLength], anchors, ref none, digits, xml);
            }
        }

        hits.Complete();
        if (!split)
        {
            prefixScan = scan;
        }

        return scan;
    }

    /// <summary>
    /// The pre-scan in one pass over the bytes (<see cref="PreScanPass"/>); with
    /// <paramref name="prefixLength"/> below the content's length, also the verdict of that prefix
    /// on its own, added to <paramref name="prefixScan"/>. The pass stops looking for a kind of
    /// event only once neither verdict can gain from it, and an event one verdict no longer needs
    /// adds only flags it holds already, so each verdict is the one a pass of its own would give.
    /// </summary>
    private Scan OnePass(ReadOnlySpan<byte> content, AnchorScanner anchors, ref AnchorHits hits, bool digits, bool xml, int prefixLength, ref Scan prefixScan)
    {
        var whole = new PassView(content, new NameContext(_nameContext, xml));
        var split = prefixLength < content.Length;
        var prefix = new PassView(content[..prefixLength], new NameContext(_nameContext, xml));
        var pass = new PreScanPass(anchors, content, chains: digits);
        while (true)
        {
            switch (pass.Next(out var position, out var flags))
            {
                case PassEvent.End:
                    prefixScan |= prefix.Scan;
                    return whole.Scan;
                case PassEvent.Anchor:
                    flags = whole.Anchor(position, flags);
                    if ((flags & AnchoredValues) != 0)
                    {
                        hits.Add(position, flags & AnchoredValues);
                    }

                    if (split && position < prefixLength)
                    {
                        // An anchor the prefix's end cuts is none of the prefix's (a shorter one at the same place may be).
                        prefix.Anchor(position, anchors.Verify(prefix.Content, position));
                    }

                    // Searched to the end while hits are collected for the anchored detectors;
                    // otherwise it stops once everything it can find was found.
                    pass.Anchors = hits.Usable || whole.Lacks(anchors.Possible) || (split && prefix.Lacks(anchors.Possible));
                    break;
                case PassEvent.Special:
                    whole.Special(position);
                    if (split && position < prefixLength)
                    {
                        prefix.Special(position);
                    }

                    pass.Specials = (byte)(whole.SpecialsWanted | (split ? prefix.SpecialsWanted : 0));
                    break;
                case PassEvent.Chain:
                    // Runs judged clean are not reported again (for the shorter run when the prefix's end cuts one).
                    var skip = int.MaxValue;
                    if (whole.Lacks(Scan.Digits))
                    {
                        ChainAt(ref whole, position, ref skip);
                    }

                    if (split && position + MinChainDigits <= prefixLength && prefix.Lacks(Scan.Digits))
                    {
                        ChainAt(ref prefix, position, ref skip);
                    }

                    if (!whole.Lacks(Scan.Digits) && (!split || !prefix.Lacks(Scan.Digits)))
                    {
                        pass.Chains = false;
                    }
                    else if (skip != int.MaxValue)
                    {
                        pass.SkipChainsBefore(skip);
                    }

                    break;
            }
        }
    }

    /// <summary>
    /// Judges the run of chain bytes around <paramref name="position"/> in the view's content: a
    /// card or phone number found sets <see cref="Scan.Digits"/>, a clean run lowers <paramref name="skip"/> to its end.
    /// </summary>
    private void ChainAt(ref PassView view, int position, ref int skip)
    {
        var from = position;
        ExpandRun(view.Content, position, ref from, out var runStart, out var runEnd);
        if (HasDigitChain(view.Content, runStart, runEnd))
        {
            view.Scan |= Scan.Digits;
        }
        else
        {
            skip = Math.Min(skip, runEnd);
        }
    }

    /// <summary>One verdict <see cref="OnePass"/> builds from the pass's events: the content's, or a prefix's on its own bytes.</summary>
    private ref struct PassView
    {
        public readonly ReadOnlySpan<byte> Content;
        public Scan Scan;
        private NameContext _names;

        public PassView(ReadOnlySpan<byte> content, NameContext names)
        {
            Content = content;
            _names = names;
        }

        /// <summary>Which of the pass's specials are still worth reporting: escapes only until names are needed, none once both are.</summary>
        public readonly byte SpecialsWanted => (Scan & Scan.Email) == 0 ? (byte)(PreScanPass.At | PreScanPass.Backslash | PreScanPass.Ampersand)
            : (Scan & Scan.Names) == 0 ? (byte)(PreScanPass.Backslash | PreScanPass.Ampersand) : (byte)0;

        public readonly bool Lacks(Scan flags) => (Scan & flags) != flags;

        /// <summary>Counts the anchors at <paramref name="position"/> (see <see cref="CountedFlags"/>); returns the flags that counted.</summary>
        public Scan Anchor(int position, Scan flags)
        {
            if (flags == Scan.None)
            {
                return flags;
            }

            flags = CountedFlags(Content, position, flags, Scan, ref _names);
            Scan |= flags;
            return flags;
        }

        public void Special(int position)
        {
            var next = position + 1 < Content.Length ? Content[position + 1] : (byte)0;
            Scan |= Content[position] switch
            {
                (byte)'@' => Scan.Email,

                // Escapes can spell a name or an '@' the raw bytes do not show.
                (byte)'\\' when next == (byte)'u' => Scan.Names | Scan.Email,
                (byte)'&' when next == (byte)'#' => Scan.Names | Scan.Email,
                _ => Scan.None,
            };
        }
    }

    /// <summary>
    /// The pre-scan as one search per kind (<c>@</c>, escapes, anchors, digit runs), where the
    /// byte shuffle <see cref="PreScanPass"/> needs is not hardware.
    /// </summary>
    private Scan SearchEach(ReadOnlySpan<byte> content, AnchorScanner anchors, ref AnchorHits hits, bool digits, bool xml)
    {
        // Anchors shorter than the scanner's three-byte fingerprint are searched on their own.
        var scan = Scan.None;
        if (content.Contains((byte)'@'))
        {
            scan |= Scan.Email;
        }

        // Escapes can spell a name or an '@' the raw bytes do not show.
        if (content.IndexOf("\\u"u8) >= 0 || content.IndexOf("&#"u8) >= 0)
        {
            scan |= Scan.Names | Scan.Email;
        }

        var names = new NameContext(_nameContext, xml);
        var position = 0;
        while (position < content.Length && (hits.Usable || (scan & anchors.Possible) != anchors.Possible))
        {
            position = anchors.Next(content, position, out var flags);
            if (position < 0)
            {
                break;
            }

            flags = CountedFlags(content, position, flags, scan, ref names);
            scan |= flags;
            if ((flags & AnchoredValues) != 0)
            {
                hits.Add(position, flags & AnchoredValues);
            }

            position++;
        }

        if (digits && HasDigitCandidate(content))
        {
            scan |= Scan.Digits;
        }

        return scan;
    }

    /// <summary>
    /// The flags of the anchors at <paramref name="position"/> that count: a field name's only in a
    /// name's context (once, until one counted), a short value anchor only where its detector's
    /// shape follows it (<see cref="ShapesAt"/>).
    /// </summary>
    private static Scan CountedFlags(ReadOnlySpan<byte> content, int position, Scan flags, Scan scan, ref NameContext names)
    {
        if ((flags & Scan.Names) != 0 && (scan & Scan.Names) == 0 && !names.InContext(content, position))
        {
            flags &= ~Scan.Names;
        }

        return (flags & ShapeChecked) != 0 ? ShapesAt(content, position, flags) : flags;
    }

    private bool MatchesPattern(ReadOnlySpan<byte> content)
    {
        var rented = ArrayPool<char>.Shared.Rent(Math.Max(content.Length, 1));
        try
        {
            var text = rented.AsSpan(0, Encoding.UTF8.GetChars(content, rented));
            foreach (var pattern in _patterns)
            {
                if (pattern.IsMatch(text))
                {
                    return true;
                }
            }

            return false;
        }
        finally
        {
            ArrayPool<char>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// True when a card or phone detector finds something. Only a chain of at least 7 digits
    /// (joined by up to two of <c> -.()</c>, the separators every card and phone form uses) is
    /// handed to the detectors, and such a chain lies inside a run of at least 7 bytes that are all
    /// digits or separators: a vectorised search finds those runs, so the ids, prices, counts and
    /// base64 a body is full of (one byte in six of base64 is a digit) cost no per-digit work.
    /// </summary>
    private bool HasDigitCandidate(ReadOnlySpan<byte> content)
    {
        var from = 0;
        while (NextChainRun(content, ref from, out var runStart, out var runEnd))
        {
            if (HasDigitChain(content, runStart, runEnd))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Finds the next run of at least <see cref="MinChainDigits"/> bytes that are digits or chain
    /// separators at or after <paramref name="from"/>, 16 bytes at a time, and moves
    /// <paramref name="from"/> past it (the pre-scan's search of its own where the byte shuffle
    /// <see cref="PreScanPass"/> needs is not hardware).
    /// </summary>
    private static bool NextChainRun(ReadOnlySpan<byte> content, ref int from, out int start, out int end)
    {
        // `carry`: how many chain bytes end the previous block, so a run across blocks is seen.
        var carry = 0;
        var i = from;
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + Vector128<byte>.Count <= content.Length; i += Vector128<byte>.Count)
            {
                var mask = ChainMask(Vector128.Create(content.Slice(i, Vector128<byte>.Count)));
                if (ChainRunInBlock(mask, Vector128<byte>.Count, ref carry) is var at and >= 0)
                {
                    return ExpandRun(content, i + at, ref from, out start, out end);
                }
            }
        }

        for (var run = carry; i < content.Length; i++)
        {
            run = IsChainByte(content[i]) ? run + 1 : 0;
            if (run >= MinChainDigits)
            {
                return ExpandRun(content, i, ref from, out start, out end);
            }
        }

        from = content.Length;
        start = end = content.Length;
        return false;
    }

    /// <summary>Bit k set when byte k of the block is a digit or a chain separator (<c> -.()</c>).</summary>
    private static uint ChainMask(Vector128<byte> v) =>
        (Vector128.LessThanOrEqual(v - Vector128.Create((byte)'0'), Vector128.Create((byte)9))
            | Vector128.Equals(v, Vector128.Create((byte)' ')) | Vector128.Equals(v, Vector128.Create((byte)'-'))
            | Vector128.Equals(v, Vector128.Create((byte)'.')) | Vector128.Equals(v, Vector128.Create((byte)'('))
            | Vector128.Equals(v, Vector128.Create((byte)')'))).ExtractMostSignificantBits();

    /// <summary>
    /// Where in a block of <paramref name="width"/> bytes (chain bytes in <paramref name="mask"/>) a
    /// run of <see cref="MinChainDigits"/> chain bytes is known to lie (0 when it began in earlier
    /// blocks), or -1, updating <paramref name="carry"/> for the next block.
    /// </summary>
    private static int ChainRunInBlock(uint mask, int width, ref int carry)
    {
        var full = width == 32 ? uint.MaxValue : (1u << width) - 1;
        var gaps = ~mask & full;
        if (carry > 0 && carry + (gaps == 0 ? width : BitOperations.TrailingZeroCount(gaps)) >= MinChainDigits)
        {
            return 0;
        }

        // Bit k of `seven` is set when bytes k..k+6 of the block are all chain bytes.
        var seven = mask & (mask >> 1) & (mask >> 2) & (mask >> 3) & (mask >> 4) & (mask >> 5) & (mask >> 6);
        if (seven != 0)
        {
            return BitOperations.TrailingZeroCount(seven);
        }

        // The chain bytes ending the block: the leading zeros of the gaps, counted within the block.
        carry = gaps == 0 ? carry + width : BitOperations.LeadingZeroCount(gaps << (32 - width));
        return -1;
    }

    private static bool ExpandRun(ReadOnlySpan<byte> content, int inside, ref int from, out int start, out int end)
    {
        start = inside;
        while (start > 0 && IsChainByte(content[start - 1]))
        {
            start--;
        }

        end = inside;
        while (end < content.Length && IsChainByte(content[end]))
        {
            end++;
        }

        from = end;
        return true;
    }

    private static bool IsChainByte(byte b) => IsDigit(b) || b is (byte)' ' or (byte)'-' or (byte)'.' or (byte)'(' or (byte)')';

    /// <summary>Runs the card and phone detectors on each chain of at least 7 digits in <c>content[runStart..runEnd]</c>.</summary>
    private bool HasDigitChain(ReadOnlySpan<byte> content, int runStart, int runEnd)
    {
        var i = runStart;
        while (i < runEnd)
        {
            var offset = content[i..runEnd].IndexOfAnyInRange((byte)'0', (byte)'9');
            if (offset < 0)
            {
                return false;
            }

            var start = i + offset;
            var p = start;
            var digits = 0;
            int end;
            while (true)
            {
                end = p;
                while (end < runEnd && IsDigit(content[end]))
                {
                    end++;
                }

                digits += end - p;
                var gap = 0;
                while (gap < 2 && end + gap < runEnd && content[end + gap] is (byte)' ' or (byte)'-' or (byte)'.' or (byte)'(' or (byte)')')
                {
                    gap++;
                }

                if (gap > 0 && end + gap < runEnd && IsDigit(content[end + gap]))
                {
                    p = end + gap;
                    continue;
                }

                break;
            }

            if (digits >= MinChainDigits && MayBeCardOrPhone(content, start, digits))
            {
                var from = Math.Max(0, start - ChainLeadBytes);
                var to = Math.Min(content.Length, end + 1);
                var findings = default(Findings);
                try
                {
                    if (_cardNumbers)
                    {
                        FindCards(content, from, to, ref findings);
                    }

                    if (_pii != Configuration.PiiMode.Keep)
                    {
                        FindPhones(content, from, to, ref findings);
                    }

                    if (findings.Count > 0)
                    {
                        return true;
                    }
                }
                finally
                {
                    findings.Release();
                }
            }

            i = end;
        }

        return false;
    }

    /// <summary>
    /// False when the detectors cannot find anything in the region <see cref="HasDigitChain"/> gives
    /// them for a chain of <paramref name="digits"/> digits starting at <paramref name="start"/>,
    /// decided before any card or phone parsing (a JSON body of <c>"R 1234-5678"</c> references
    /// holds hundreds of such chains).
    /// </summary>
    /// <remarks>
    /// A card (13 digits) and a national or bracketed phone number (9) lie within one chain: their
    /// groups are joined by one or two separators, which the chain joins too, and what lies before
    /// the chain is not joined to it. A shorter chain can only be (the end of) an E.164 number,
    /// whose <c>+</c>, or the <c>b</c> of the escaped <c>\u002B</c> before its first digit, lies in
    /// the 7 bytes before the chain the detectors are given.
    /// </remarks>
    private static bool MayBeCardOrPhone(ReadOnlySpan<byte> content, int start, int digits) =>
        digits >= NationalPhoneMinDigits || content[Math.Max(0, start - ChainLeadBytes)..start].IndexOfAny((byte)'+', (byte)'b', (byte)'B') >= 0;

    private static (string Anchor, Scan Flag)[] AnchorTable(SensitiveNames names) =>
        names.Anchors().Select(a => (a, Scan.Names)).Concat(_valueAnchors).ToArray();
}
