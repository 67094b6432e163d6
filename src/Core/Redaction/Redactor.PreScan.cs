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

public sealed partial class Redactor
{
    // Fewest digits in a chain worth a look: the shortest phone number the detectors accept.
    private const int MinChainDigits = 7;

    // Anchors of the value detectors, lower-case; the name anchors come from SensitiveNames.
    private static readonly (string Anchor, Scan Flag)[] _valueAnchors =
    [
        ("eyj", Scan.Jwt),
        ("akia", Scan.Aws), ("asia", Scan.Aws), ("agpa", Scan.Aws), ("aida", Scan.Aws), ("aroa", Scan.Aws),
        ("aipa", Scan.Aws), ("anpa", Scan.Aws), ("anva", Scan.Aws), ("apka", Scan.Aws), ("abia", Scan.Aws), ("acca", Scan.Aws),
        ("ghp_", Scan.Prefix), ("gho_", Scan.Prefix), ("ghu_", Scan.Prefix), ("ghs_", Scan.Prefix), ("ghr_", Scan.Prefix),
        ("github_pat_", Scan.Prefix), ("xox", Scan.Prefix), ("sk_live_", Scan.Prefix), ("rk_live_", Scan.Prefix), ("aiza", Scan.Prefix),
        ("-----begin", Scan.Pem),
        ("bearer", Scan.Bearer),
        ("aws_secret", Scan.AwsSecret), ("aws-secret", Scan.AwsSecret),

    ];

    /// <summary>
    /// Decides, without parsing, which detectors a body needs; <see cref="Scan.None"/> proves it
    /// has nothing to redact, and the body is returned untouched without a JSON read or a copy.
    /// </summary>
    /// <remarks>
    /// One vectorised multi-string search (<see cref="SearchValues{T}"/> of strings) over the body
    /// transcoded into a pooled UTF-16 buffer and ASCII-lower-cased finds every anchor: the pieces
    /// of sensitive field names, the detectors' prefixes (<c>eyJ</c>, <c>AKIA</c>, <c>ghp_</c>,
    /// <c>-----BEGIN</c>, <c>bearer</c>, <c>@</c>, …) and escapes. Digits need a look at each
    /// run's shape, done by the card and phone detectors themselves on the raw bytes; operator
    /// patterns run once over the whole body.
    /// </remarks>
    private Scan PreScan(ReadOnlySpan<byte> content)
    {
        // Short anchors are searched on the bytes: in the multi-string search they would force its slow path.
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

        var rented = ArrayPool<char>.Shared.Rent(content.Length);
        try
        {
            var length = Encoding.UTF8.GetChars(content, rented);
            var text = rented.AsSpan(0, length);

            // Operator patterns see the body as it is, before the anchors' lower-casing.
            foreach (var pattern in _patterns)
            {
                if (pattern.IsMatch(text))
                {
                    scan |= Scan.Patterns;
                    break;
                }
            }

            LowerAscii(text);
            foreach (var anchors in _anchorSearches)
            {
                var position = 0;
                while (position < text.Length && (scan & _anchorFlags) != _anchorFlags)
                {
                    var offset = text[position..].IndexOfAny(anchors);
                    if (offset < 0)
                    {
                        break;
                    }

                    position += offset;
                    scan |= AnchorFlagsAt(text[position..]);
                    position++;
                }
            }

        }
        finally
        {
            ArrayPool<char>.Shared.Return(rented);
        }

        if ((_cardNumbers || _pii != Configuration.PiiMode.Keep) && HasDigitCandidate(content))
        {
            scan |= Scan.Digits;
        }

        return scan;
    }

    /// <summary>
    /// Lower-cases the ASCII letters in place (vectorised), so the anchors are searched with an
    /// ordinal <see cref="SearchValues{T}"/>: an ignore-case one takes a far slower path.
    /// </summary>
    private static void LowerAscii(Span<char> text)
    {
        while (!text.IsEmpty)
        {
            if (Ascii.ToLowerInPlace(text, out var processed) == System.Buffers.OperationStatus.Done)
            {
                return;
            }

            // Stopped at a non-ASCII character: it can be in no anchor; go on after it.
            text = text[(processed + 1)..];
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
    /// separators at or after <paramref name="from"/>, 32 bytes at a time, and moves
    /// <paramref name="from"/> past it.
    /// </summary>
    private static bool NextChainRun(ReadOnlySpan<byte> content, ref int from, out int start, out int end)
    {
        // `carry`: how many chain bytes end the previous block, so a run across blocks is seen.
        var carry = 0;
        var i = from;
        while (i + Vector256<byte>.Count <= content.Length)
        {
            var v = Vector256.Create(content.Slice(i, Vector256<byte>.Count));
            var chain = Vector256.LessThanOrEqual(v - Vector256.Create((byte)'0'), Vector256.Create((byte)9))
                | Vector256.Equals(v, Vector256.Create((byte)' ')) | Vector256.Equals(v, Vector256.Create((byte)'-'))
                | Vector256.Equals(v, Vector256.Create((byte)'.')) | Vector256.Equals(v, Vector256.Create((byte)'('))
                | Vector256.Equals(v, Vector256.Create((byte)')'));
            var mask = chain.ExtractMostSignificantBits();
            if (carry > 0 && carry + BitOperations.TrailingZeroCount(~mask) >= MinChainDigits)
            {
                return ExpandRun(content, i, ref from, out start, out end);
            }

            // Bit k of `seven` is set when bytes k..k+6 of the block are all chain bytes.
            var seven = mask & (mask >> 1) & (mask >> 2) & (mask >> 3) & (mask >> 4) & (mask >> 5) & (mask >> 6);
            if (seven != 0)
            {
                return ExpandRun(content, i + BitOperations.TrailingZeroCount(seven), ref from, out start, out end);
            }

            carry = mask == uint.MaxValue ? carry + Vector256<byte>.Count : BitOperations.LeadingZeroCount(~mask);
            i += Vector256<byte>.Count;
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

            if (digits >= MinChainDigits)
            {
                // Room before the chain for a '+', '(' or an escaped plus ("\u002B").
                var from = Math.Max(0, start - 7);
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

    private Scan AnchorFlagsAt(ReadOnlySpan<char> text)
    {
        var flags = Scan.None;
        foreach (var (anchor, flag) in _anchorTable)
        {
            if (text.StartsWith(anchor, StringComparison.Ordinal))
            {
                flags |= flag;
            }
        }

        return flags;
    }

    /// <summary>
    /// The anchors as several small multi-string searches rather than one: the vectorised search
    /// (Teddy) sorts its strings into a few buckets, and past about two dozen strings the buckets
    /// let so many false candidates through that one search of all ~50 anchors over a 64 KiB
    /// random body costs ~300 us, while groups of at most 24 cost ~20 us each (measured with the
    /// built-in anchors on base64 of random bytes). Name and value anchors are grouped apart.
    /// </summary>
    private static SearchValues<string>[] AnchorSearches((string Anchor, Scan Flag)[] table)
    {
        const int GroupSize = 24;
        return table
            .GroupBy(a => a.Flag == Scan.Names)
            .SelectMany(kind => kind.Select(a => a.Anchor).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Chunk(GroupSize))
            .Select(group => SearchValues.Create(group, StringComparison.Ordinal))
            .ToArray();
    }

    private static (string Anchor, Scan Flag)[] AnchorTable(SensitiveNames names) =>
        names.Anchors().Select(a => (a, Scan.Names)).Concat(_valueAnchors).ToArray();
}
