namespace SpIstio.Core.Redaction;

public sealed partial class Redactor
{
    private const int MinCardDigits = 13;
    private const int MaxCardDigits = 19;

    // A run of digit groups longer than this is scanned in pieces; no card has more groups.
    private const int MaxGroups = 24;

    /// <summary>
    /// Replaces card numbers in <c>source[from..to]</c>: 13–19 digits, optionally in groups
    /// separated by one space or dash, starting with 2–6 (the issuer ranges of Visa, Mastercard,
    /// Amex, Discover, JCB, UnionPay, Maestro) and passing the Luhn check.
    /// </summary>
    /// <remarks>
    /// The leading-digit rule keeps millisecond timestamps (13 digits starting with 1) readable;
    /// Luhn keeps nine in ten arbitrary order ids readable. A run of groups is searched for the
    /// longest valid window of whole groups, so a card followed by its CVV ("4111 1111 1111 1111
    /// 123") is still found. Digits glued to letters, a dot or a plus sign are not a card.
    /// </remarks>
    private static void ScanCards(ReadOnlySpan<byte> source, int from, int to, ref Findings findings)
    {
        Span<int> starts = stackalloc int[MaxGroups];
        Span<int> ends = stackalloc int[MaxGroups];
        var i = from;
        while (i < to)
        {
            var offset = source[i..to].IndexOfAnyInRange((byte)'0', (byte)'9');
            if (offset < 0)
            {
                return;
            }

            var runStart = i + offset;
            var groups = 0;
            var j = runStart;
            while (true)
            {
                starts[groups] = j;
                while (j < to && IsDigit(source[j]))
                {
                    j++;
                }

                ends[groups++] = j;
                if (groups < MaxGroups && j + 1 < to && source[j] is (byte)' ' or (byte)'-' && IsDigit(source[j + 1]))
                {
                    j++;
                    continue;
                }

                break;
            }

            i = j;
            var before = runStart > 0 ? source[runStart - 1] : (byte)' ';
            var after = j < source.Length ? source[j] : (byte)' ';
            if (IsGlue(before) || char.IsAsciiLetter((char)after))
            {
                continue;
            }

            var g0 = 0;
            while (g0 < groups)
            {
                var match = LongestCardWindow(source, starts, ends, g0, groups);
                if (match < 0)
                {
                    g0++;
                    continue;
                }

                findings.Add(starts[g0], ends[match], FindingKind.Card);
                g0 = match + 1;
            }
        }
    }

    private static int LongestCardWindow(ReadOnlySpan<byte> source, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, int first, int groups)
    {
        if (source[starts[first]] is < (byte)'2' or > (byte)'6')
        {
            return -1;
        }

        var best = -1;
        var digits = 0;
        for (var last = first; last < groups; last++)
        {
            digits += ends[last] - starts[last];
            if (digits > MaxCardDigits)
            {
                break;
            }

            if (digits >= MinCardDigits && PassesLuhn(source[starts[first]..ends[last]]))
            {
                best = last;
            }
        }

        return best;
    }

    /// <summary>True when the JSON number token is a bare card number (no sign, fraction or exponent).</summary>
    private static bool IsCardNumberToken(ReadOnlySpan<byte> number) =>
        number.Length is >= MinCardDigits and <= MaxCardDigits
        && number[0] is >= (byte)'2' and <= (byte)'6'
        && !number.ContainsAnyExceptInRange((byte)'0', (byte)'9')
        && PassesLuhn(number);

    private static bool PassesLuhn(ReadOnlySpan<byte> text)
    {
        var sum = 0;
        var doubled = false;
        for (var k = text.Length - 1; k >= 0; k--)
        {
            var b = text[k];
            if (!IsDigit(b))
            {
                continue;
            }

            var d = b - '0';
            if (doubled)
            {
                d *= 2;
                if (d > 9)
                {
                    d -= 9;
                }
            }

            sum += d;
            doubled = !doubled;
        }

        return sum % 10 == 0;
    }

    private static bool IsDigit(byte b) => b is >= (byte)'0' and <= (byte)'9';

    private static bool IsGlue(byte b) => char.IsAsciiLetter((char)b) || b is (byte)'.' or (byte)'+' or (byte)'_';
}
