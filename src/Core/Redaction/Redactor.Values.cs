using System.Buffers;
using System.Text;

namespace SpIstio.Core.Redaction;

public sealed partial class Redactor
{
    // Bytes that may continue a base64url / token run.
    private static readonly SearchValues<byte> _tokenChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"u8);

    private static readonly SearchValues<byte> _letters =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    private static readonly SearchValues<byte> _hexDigits = SearchValues.Create("0123456789ABCDEFabcdef"u8);

    // Where a phone number can start: a digit, a '+' (E.164) or '(' (a bracketed area code).
    private static readonly SearchValues<byte> _phoneStarts = SearchValues.Create("0123456789+("u8);

    private static readonly (byte[] Prefix, int MinRest, bool Underscore)[] _prefixedTokens =
    [
        ("ghp_"u8.ToArray(), 30, false), ("gho_"u8.ToArray(), 30, false), ("ghu_"u8.ToArray(), 30, false),
        ("ghs_"u8.ToArray(), 30, false), ("ghr_"u8.ToArray(), 30, false), ("github_pat_"u8.ToArray(), 22, true),
        ("sk_live_"u8.ToArray(), 10, false), ("rk_live_"u8.ToArray(), 10, false), ("AIza"u8.ToArray(), 30, true),
    ];

    /// <summary>
    /// Replaces every value pattern found in <c>source[from..to]</c> (the detectors named in
    /// <paramref name="scan"/>), in order, through <paramref name="splicer"/>.
    /// </summary>
    private void ScanValues(ref Splicer splicer, ReadOnlySpan<byte> source, int from, int to, Scan scan, ref int count)
    {
        var none = default(AnchorHits);
        ScanValues(ref splicer, source, from, to, scan, in none, ref count);
    }

    /// <summary>
    /// <see cref="ScanValues(ref Splicer, ReadOnlySpan{byte}, int, int, Scan, ref int)"/> where the
    /// pre-scan of <paramref name="source"/> recorded its anchors in <paramref name="hits"/>.
    /// </summary>
    private void ScanValues(ref Splicer splicer, ReadOnlySpan<byte> source, int from, int to, Scan scan, scoped in AnchorHits hits, ref int count)
    {
        var findings = default(Findings);
        try
        {
            CollectValues(source, from, to, scan, in hits, ref findings);
            if (findings.Count == 0)
            {
                return;
            }

            Span<byte> scratch = stackalloc byte[ReplacementMaxBytes];
            foreach (var finding in findings.Ordered())
            {
                var value = source[finding.Start..finding.End];
                if (IsMarked(value))
                {
                    continue;
                }

                splicer.Replace(finding.Start, finding.End, scratch[..ReplacementOf(value, finding.Kind, scratch)]);
                count++;
            }
        }
        finally
        {
            findings.Release();
        }
    }

    /// <summary>
    /// Runs the detectors selected by <paramref name="scan"/> over <c>source[from..to]</c>; those whose
    /// matches start at their anchor look only at the anchors in <paramref name="hits"/> when it is usable.
    /// </summary>
    private void CollectValues(ReadOnlySpan<byte> source, int from, int to, Scan scan, scoped in AnchorHits hits, ref Findings findings)
    {
        if (to <= from)
        {
            return;
        }

        if (hits.Usable && (scan & AnchoredValues) != 0)
        {
            CollectAnchored(source, from, to, scan & AnchoredValues, in hits, ref findings);
            scan &= ~AnchoredValues;
        }

        var pii = _pii != Configuration.PiiMode.Keep;
        if (pii && (scan & Scan.Email) != 0)
        {
            FindEmails(source, from, to, ref findings);
        }

        if ((scan & Scan.Jwt) != 0)
        {
            FindJwts(source, from, to, ref findings);
        }

        if ((scan & Scan.Aws) != 0)
        {
            FindAwsKeyIds(source, from, to, ref findings);
        }

        if ((scan & Scan.Prefix) != 0)
        {
            FindPrefixedTokens(source, from, to, ref findings);
        }

        if ((scan & Scan.Pem) != 0)
        {
            FindPemBlocks(source, from, to, ref findings);
        }

        if ((scan & Scan.Bearer) != 0)
        {
            FindBearerTokens(source, from, to, ref findings);
        }

        if ((scan & Scan.AwsSecret) != 0)
        {
            FindAwsSecrets(source, from, to, ref findings);
        }

        if ((scan & Scan.Digits) != 0)
        {
            if (_cardNumbers)
            {
                FindCards(source, from, to, ref findings);
            }

            if (pii)
            {
                FindPhones(source, from, to, ref findings);
            }
        }

        if ((scan & Scan.Patterns) != 0 && _patterns.Length > 0)
        {
            FindPatterns(source, from, to, ref findings);
        }
    }

    /// <summary>
    /// E-mail addresses: a local part of letters, digits and <c>._%+-</c>, an <c>@</c>, and a
    /// domain of at least two labels whose last is 2+ letters.
    /// </summary>
    private static void FindEmails(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        var i = from;
        while (i < to)
        {
            var offset = s[i..to].IndexOf((byte)'@');
            if (offset < 0)
            {
                return;
            }

            var at = i + offset;
            i = at + 1;
            var start = at;
            while (start > from)
            {
                if (IsLocalPartChar(s[start - 1]))
                {
                    start--;
                }
                else if (s[start - 1] == (byte)'\\' && IsUnicodeEscape(s, start - 1, at))
                {
                    // A JSON writer's "\u002B" for '+' is part of the address; taken whole, so no half escape is left.
                    start--;
                }
                else
                {
                    break;
                }
            }

            // The letter of another escape ("\n" before the address in a JSON string) is not part of it.
            if (start > from && s[start - 1] == (byte)'\\')
            {
                start++;
            }

            while (start < at && s[start] == (byte)'.')
            {
                start++;
            }

            if (start >= at)
            {
                continue;
            }

            var end = at + 1;
            var lastDot = -1;
            while (end < to)
            {
                var b = s[end];
                if (IsAsciiLetterOrDigit(b) || b == (byte)'-')
                {
                    end++;
                }
                else if (b == (byte)'.' && end + 1 < to && IsAsciiLetterOrDigit(s[end + 1]) && end > at + 1)
                {
                    lastDot = end++;
                }
                else
                {
                    break;
                }
            }

            // The top-level domain is letters only, so "v1.2@3.45" and "icon@2x.5" are not addresses.
            if (lastDot < 0 || end - lastDot - 1 < 2 || s[(lastDot + 1)..end].ContainsAnyExcept(_letters))
            {
                continue;
            }

            findings.Add(start, end, FindingKind.Email);
            i = end;
        }
    }

    /// <summary>
    /// The anchored detectors at each anchor the pre-scan found in <c>source[from..to]</c>: the same
    /// findings as their own searches (every match starts at an anchor; a candidate inside the
    /// detector's previous finding is skipped, as its search does), without searching the region.
    /// </summary>
    private static void CollectAnchored(ReadOnlySpan<byte> s, int from, int to, Scan scan, scoped in AnchorHits hits, ref Findings findings)
    {
        // Where each detector's last finding ended (one slot per token prefix, then the other five).
        Span<int> reached = stackalloc int[PrefixKinds + 5];
        reached.Fill(int.MinValue);
        const int Jwt = PrefixKinds, Aws = PrefixKinds + 1, Pem = PrefixKinds + 2, Bearer = PrefixKinds + 3, AwsSecret = PrefixKinds + 4;
        for (var h = hits.FirstAtOrAfter(from); h < hits.Count; h++)
        {
            var (at, flags) = hits[h];
            if (at >= to)
            {
                return;
            }

            flags &= scan;
            int end;
            if ((flags & Scan.Jwt) != 0 && at >= reached[Jwt] && (end = JwtEnd(s, at, from, to)) > 0)
            {
                findings.Add(at, end, FindingKind.Secret);
                reached[Jwt] = end;
            }

            if ((flags & Scan.Aws) != 0 && at >= reached[Aws] && (end = AwsKeyIdEnd(s, at, from, to)) > 0)
            {
                findings.Add(at, end, FindingKind.Secret);
                reached[Aws] = end;
            }

            if ((flags & Scan.Prefix) != 0 && PrefixKindAt(s, at, to) is var kind and >= 0 && at >= reached[kind]
                && (end = PrefixedTokenEnd(s, at, from, to, kind)) > 0)
            {
                findings.Add(at, end, FindingKind.Secret);
                reached[kind] = end;
            }

            if ((flags & Scan.Pem) != 0 && at >= reached[Pem] && (end = PemBlockEnd(s, at, to)) > 0)
            {
                findings.Add(at, end, FindingKind.Secret);
                reached[Pem] = end;
            }

            if ((flags & Scan.Bearer) != 0 && at >= reached[Bearer] && (end = BearerTokenEnd(s, at, from, to, out var token)) > 0)
            {
                findings.Add(token, end, FindingKind.Secret);
                reached[Bearer] = end;
            }

            if ((flags & Scan.AwsSecret) != 0 && at >= reached[AwsSecret] && (end = AwsSecretEnd(s, at, to, out var key)) > 0)
            {
                findings.Add(key, end, FindingKind.Secret);
                reached[AwsSecret] = end;
            }
        }
    }

    /// <summary>
    /// Of the anchored detectors in <paramref name="flags"/> whose anchors are three or four letters
    /// (<see cref="ShapeChecked"/>), those that can match at the anchor at <paramref name="at"/>:
    /// each checks its shape on the whole content, without what it checks before the anchor
    /// (the byte before it), or past the match (the byte after an AWS key id), because a detector
    /// later runs on a region (a JSON string, a protobuf field) whose edges are not the content's.
    /// Each shape only needs bytes from the anchor on, and a region cut earlier never gives more of
    /// them, so a shape that fails here fails in every region the detector is given (a rewrite by
    /// field name inserts a replacement that starts with <c>"</c> or <c>[</c>, which ends any of
    /// these shapes as a region's end does). Random base64 holds a few such anchors in every 64 KiB
    /// (<c>eyJ</c>, <c>xox</c> in any case); rejected here, they no longer cost a JSON read of the body.
    /// </summary>
    private static Scan ShapesAt(ReadOnlySpan<byte> s, int at, Scan flags)
    {
        if ((flags & Scan.Jwt) != 0 && JwtEnd(s, at, at, s.Length) < 0)
        {
            flags &= ~Scan.Jwt;
        }

        if ((flags & Scan.Aws) != 0 && !IsAwsKeyIdShape(s, at, s.Length))
        {
            flags &= ~Scan.Aws;
        }

        if ((flags & Scan.Prefix) != 0 && (PrefixKindAt(s, at, s.Length) is not (var kind and >= 0) || PrefixedTokenEnd(s, at, at, s.Length, kind) < 0))
        {
            flags &= ~Scan.Prefix;
        }

        return flags;
    }

    /// <summary>JWTs: <c>eyJ…</c>, then two more base64url segments separated by dots (a fourth and fifth for JWE).</summary>
    private static void FindJwts(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        var i = from;
        while (i < to)
        {
            var offset = s[i..to].IndexOf("eyJ"u8);
            if (offset < 0)
            {
                return;
            }

            var start = i + offset;
            var end = JwtEnd(s, start, from, to);
            if (end > 0)
            {
                findings.Add(start, end, FindingKind.Secret);
                i = end;
            }
            else
            {
                i = start + 3;
            }
        }
    }

    /// <summary>The end of the JWT starting at <paramref name="start"/>, or -1.</summary>
    private static int JwtEnd(ReadOnlySpan<byte> s, int start, int from, int to)
    {
        if (!s[start..to].StartsWith("eyJ"u8) || (start > from && _tokenChars.Contains(s[start - 1])))
        {
            return -1;
        }

        var end = TokenRunEnd(s, start, to);
        var segments = 1;
        if (end - start < 10)
        {
            return -1;
        }

        while (segments < 5 && end < to && s[end] == (byte)'.')
        {
            var next = TokenRunEnd(s, end + 1, to);
            if (next == end + 1 && segments < 2)
            {
                break;
            }

            end = next;
            segments++;
        }

        return segments >= 3 ? end : -1;
    }

    /// <summary>AWS access key ids: a four-letter type prefix (AKIA, ASIA, …) and 16 upper-case letters or digits.</summary>
    private static void FindAwsKeyIds(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        var i = from;
        while (i + 20 <= to)
        {
            var offset = s[i..(to - 19)].IndexOf((byte)'A');
            if (offset < 0)
            {
                return;
            }

            var start = i + offset;
            var end = AwsKeyIdEnd(s, start, from, to);
            if (end > 0)
            {
                findings.Add(start, end, FindingKind.Secret);
                i = end;
            }
            else
            {
                i = start + 1;
            }
        }
    }

    /// <summary>The end of the AWS access key id starting at <paramref name="start"/>, or -1.</summary>
    private static int AwsKeyIdEnd(ReadOnlySpan<byte> s, int start, int from, int to)
    {
        if (!IsAwsKeyIdShape(s, start, to)
            || (start > from && IsAsciiLetterOrDigit(s[start - 1]))
            || (start + 20 < to && IsAsciiLetterOrDigit(s[start + 20])))
        {
            return -1;
        }

        return start + 20;
    }

    /// <summary>A type prefix and 16 upper-case letters or digits at <paramref name="start"/>, whatever is around them.</summary>
    private static bool IsAwsKeyIdShape(ReadOnlySpan<byte> s, int start, int to)
    {
        // Every type prefix is A??A: one look at the fourth byte rules out nearly every 'A'.
        if (start + 20 > to || s[start] != (byte)'A' || s[start + 3] != (byte)'A')
        {
            return false;
        }

        var type = s.Slice(start + 1, 2);
        return (type.SequenceEqual("KI"u8) || type.SequenceEqual("SI"u8) || type.SequenceEqual("GP"u8)
            || type.SequenceEqual("ID"u8) || type.SequenceEqual("RO"u8) || type.SequenceEqual("IP"u8)
            || type.SequenceEqual("NP"u8) || type.SequenceEqual("NV"u8) || type.SequenceEqual("PK"u8)
            || type.SequenceEqual("BI"u8) || type.SequenceEqual("CC"u8))
            && !s.Slice(start + 4, 16).ContainsAnyExcept("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"u8);
    }

    // The token prefixes (_prefixedTokens), then Slack's xox?-.
    private const int PrefixKinds = 10;

    /// <summary>Tokens with a well-known prefix: GitHub, Stripe live keys, Google API keys, Slack <c>xox?-</c>.</summary>
    private static void FindPrefixedTokens(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        for (var kind = 0; kind < PrefixKinds; kind++)
        {
            var prefix = kind < _prefixedTokens.Length ? _prefixedTokens[kind].Prefix : "xox"u8;
            var i = from;
            while (i < to)
            {
                var offset = s[i..to].IndexOf(prefix);
                if (offset < 0)
                {
                    break;
                }

                var start = i + offset;
                var end = PrefixedTokenEnd(s, start, from, to, kind);
                if (end > 0)
                {
                    findings.Add(start, end, FindingKind.Secret);
                    i = end;
                }
                else
                {
                    i = start + prefix.Length;
                }
            }
        }
    }

    /// <summary>Which token prefix (kind) starts at <paramref name="start"/>, or -1 (no two share a start).</summary>
    private static int PrefixKindAt(ReadOnlySpan<byte> s, int start, int to)
    {
        var rest = s[start..to];
        for (var kind = 0; kind < _prefixedTokens.Length; kind++)
        {
            if (rest.StartsWith(_prefixedTokens[kind].Prefix))
            {
                return kind;
            }
        }

        return rest.StartsWith("xox"u8) ? PrefixKinds - 1 : -1;
    }

    /// <summary>The end of the token of this prefix kind (its prefix is at <paramref name="start"/>), or -1.</summary>
    private static int PrefixedTokenEnd(ReadOnlySpan<byte> s, int start, int from, int to, int kind)
    {
        if (start > from && IsAsciiLetterOrDigit(s[start - 1]))
        {
            return -1;
        }

        int end;
        if (kind == PrefixKinds - 1)
        {
            // Slack: xox, a lower-case type letter, a dash, then at least ten letters, digits or dashes.
            if (start + 5 > to || !char.IsAsciiLetterLower((char)s[start + 3]) || s[start + 4] != (byte)'-')
            {
                return -1;
            }

            end = start + 5;
            while (end < to && (IsAsciiLetterOrDigit(s[end]) || s[end] == (byte)'-'))
            {
                end++;
            }

            return end - start - 5 >= 10 ? end : -1;
        }

        var (prefix, minRest, underscore) = _prefixedTokens[kind];
        var restStart = start + prefix.Length;
        end = restStart;
        while (end < to && (IsAsciiLetterOrDigit(s[end]) || (underscore && s[end] is (byte)'_' or (byte)'-')))
        {
            end++;
        }

        return end - restStart >= minRest ? end : -1;
    }

    /// <summary>PEM private key blocks, BEGIN line to END line (to the end of the region when cut).</summary>
    private static void FindPemBlocks(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        var i = from;
        while (i < to)
        {
            var offset = s[i..to].IndexOf("-----BEGIN "u8);
            if (offset < 0)
            {
                return;
            }

            var start = i + offset;
            var end = PemBlockEnd(s, start, to);
            if (end > 0)
            {
                findings.Add(start, end, FindingKind.Secret);
                i = end;
            }
            else
            {
                i = start + 11;
            }
        }
    }

    /// <summary>The end of the PEM private key block starting at <paramref name="start"/>, or -1.</summary>
    private static int PemBlockEnd(ReadOnlySpan<byte> s, int start, int to)
    {
        if (!s[start..to].StartsWith("-----BEGIN "u8))
        {
            return -1;
        }

        var headerEnd = s[(start + 11)..to].IndexOf("-----"u8);
        if (headerEnd < 0 || headerEnd > 64 || s.Slice(start + 11, headerEnd).IndexOf("PRIVATE KEY"u8) < 0)
        {
            return -1;
        }

        var afterHeader = start + 11 + headerEnd + 5;
        var endLine = s[afterHeader..to].IndexOf("-----END "u8);
        if (endLine < 0)
        {
            return to;
        }

        var close = s[(afterHeader + endLine + 9)..to].IndexOf("-----"u8);
        return close < 0 ? to : afterHeader + endLine + 9 + close + 5;
    }

    /// <summary>
    /// <c>Bearer &lt;token&gt;</c> anywhere (any case): the token is replaced when it is at least 20
    /// characters, or at least 8 with a digit or symbol in it, so prose ("the bearer of") stays.
    /// </summary>
    private static void FindBearerTokens(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        var i = from;
        while (i + 7 < to)
        {
            var offset = s[i..to].IndexOfAny((byte)'b', (byte)'B');
            if (offset < 0)
            {
                return;
            }

            var start = i + offset;
            var end = BearerTokenEnd(s, start, from, to, out var tokenStart);
            if (end > 0)
            {
                findings.Add(tokenStart, end, FindingKind.Secret);
                i = end;
            }
            else
            {
                i = start + 1;
            }
        }
    }

    /// <summary>The end of the bearer token after the <c>bearer</c> at <paramref name="start"/>, or -1; <paramref name="tokenStart"/> is where it starts.</summary>
    private static int BearerTokenEnd(ReadOnlySpan<byte> s, int start, int from, int to, out int tokenStart)
    {
        tokenStart = start + 6;
        if (start + 7 >= to || !Ascii.EqualsIgnoreCase(s.Slice(start, 6), "bearer"u8)
            || (start > from && char.IsAsciiLetter((char)s[start - 1])))
        {
            return -1;
        }

        while (tokenStart < to && s[tokenStart] is (byte)' ' or (byte)'\t')
        {
            tokenStart++;
        }

        if (tokenStart == start + 6)
        {
            return -1;
        }

        var end = tokenStart;
        var symbols = false;
        while (end < to && (IsAsciiLetterOrDigit(s[end]) || s[end] is (byte)'-' or (byte)'.' or (byte)'_' or (byte)'~' or (byte)'+' or (byte)'/'))
        {
            symbols |= !char.IsAsciiLetter((char)s[end]);
            end++;
        }

        while (end < to && s[end] == (byte)'=')
        {
            end++;
        }

        var length = end - tokenStart;
        return length >= 20 || (length >= 8 && symbols) ? end : -1;
    }

    /// <summary>
    /// A 40-character AWS secret access key, only where the text names it: <c>aws_secret…</c>
    /// (any case, <c>_</c> or <c>-</c>) followed by up to 8 of <c>"' :=</c> and the key. Random
    /// 40-character base64 runs elsewhere are left alone.
    /// </summary>
    private static void FindAwsSecrets(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        var i = from;
        while (i + 10 < to)
        {
            var offset = s[i..to].IndexOfAny((byte)'a', (byte)'A');
            if (offset < 0)
            {
                return;
            }

            var start = i + offset;
            var end = AwsSecretEnd(s, start, to, out var keyStart);
            if (end > 0)
            {
                findings.Add(keyStart, end, FindingKind.Secret);
                i = end;
            }
            else
            {
                i = start + 1;
            }
        }
    }

    /// <summary>The end of the AWS secret key named by the <c>aws_secret…</c> at <paramref name="start"/>, or -1; <paramref name="keyStart"/> is where it starts.</summary>
    private static int AwsSecretEnd(ReadOnlySpan<byte> s, int start, int to, out int keyStart)
    {
        keyStart = start;
        if (start + 10 > to || !Ascii.EqualsIgnoreCase(s.Slice(start, 3), "aws"u8)
            || s[start + 3] is not ((byte)'_' or (byte)'-')
            || !Ascii.EqualsIgnoreCase(s.Slice(start + 4, 6), "secret"u8))
        {
            return -1;
        }

        var p = start + 10;
        while (p < to && (char.IsAsciiLetter((char)s[p]) || s[p] is (byte)'_' or (byte)'-'))
        {
            p++;
        }

        var gap = 0;
        while (p < to && gap < 8 && s[p] is (byte)' ' or (byte)'"' or (byte)'\'' or (byte)':' or (byte)'=' or (byte)'\t')
        {
            p++;
            gap++;
        }

        var end = p;
        while (end < to && (IsAsciiLetterOrDigit(s[end]) || s[end] is (byte)'/' or (byte)'+' or (byte)'='))
        {
            end++;
        }

        keyStart = p;
        return end - p == 40 ? end : -1;
    }

    /// <summary>
    /// Phone numbers: E.164 (<c>+</c>, 7–15 digits, optional space/dash/dot/bracket separators);
    /// North American <c>(415) 555-2671</c>, <c>415-555-2671</c>, <c>1 415 555 2671</c>; and
    /// trunk-prefixed national forms (first digit 0, two or more groups with one kind of
    /// separator, 9–12 digits: <c>020 7946 0958</c>, <c>06 12 34 56 78</c>). Digits glued to
    /// letters, <c>_ . / -</c> are not a phone; unseparated digit runs (ids, timestamps) never are.
    /// </summary>
    private static void FindPhones(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        Span<int> starts = stackalloc int[MaxGroups];
        Span<int> ends = stackalloc int[MaxGroups];
        var i = from;
        while (i < to)
        {
            var offset = s[i..to].IndexOfAny(_phoneStarts);
            if (offset < 0)
            {
                return;
            }

            var start = i + offset;
            if (IsDigit(s[start]) && start - 6 >= from && Ascii.EqualsIgnoreCase(s.Slice(start - 6, 6), "\\u002b"u8))
            {
                // A JSON writer's escaped '+' (System.Text.Json escapes it by default).
                var escapedEnd = E164End(s, start, to);
                if (escapedEnd > start && (escapedEnd >= to || !(IsAsciiLetterOrDigit(s[escapedEnd]) || s[escapedEnd] == (byte)'_')))
                {
                    findings.Add(start - 6, escapedEnd, FindingKind.Phone);
                    i = escapedEnd;
                }
                else
                {
                    i = start + 1;
                }

                continue;
            }

            var before = start > from ? s[start - 1] : (byte)' ';
            if (IsAsciiLetterOrDigit(before) || before is (byte)'_' or (byte)'.' or (byte)'/' or (byte)'-' or (byte)'+' or (byte)'\\')
            {
                i = start + 1;
                if (IsDigit(s[start]))
                {
                    // Skip the rest of a glued digit run.
                    var rest = s[i..to].IndexOfAnyExceptInRange((byte)'0', (byte)'9');
                    i = rest < 0 ? to : i + rest;
                }

                continue;
            }

            int end;
            if (s[start] == (byte)'+')
            {
                end = E164End(s, start + 1, to);
            }
            else if (s[start] == (byte)'(')
            {
                end = BracketedNanpEnd(s, start, to);
            }
            else
            {
                var groups = DigitGroups(s, start, to, starts, ends, out var separator);
                end = groups > 0 ? ends[groups - 1] : start + 1;
                if (!IsNationalPhone(s, starts[..groups], ends[..groups], separator))
                {
                    i = end;
                    continue;
                }
            }

            if (end > start && (end >= to || !(IsAsciiLetterOrDigit(s[end]) || s[end] == (byte)'_')))
            {
                findings.Add(start, end, FindingKind.Phone);
                i = end;
            }
            else
            {
                i = start + 1;
            }
        }
    }

    /// <summary>End of an E.164 number whose digits start at <paramref name="p"/>, or -1.</summary>
    private static int E164End(ReadOnlySpan<byte> s, int p, int to)
    {
        if (p >= to || !IsDigit(s[p]))
        {
            return -1;
        }

        var digits = 0;
        var end = p;
        var groups = 0;
        while (p < to && groups < 8)
        {
            var runEnd = p;
            while (runEnd < to && IsDigit(s[runEnd]))
            {
                runEnd++;
            }

            if (runEnd == p)
            {
                break;
            }

            digits += runEnd - p;
            groups++;
            end = runEnd;
            var q = runEnd;
            if (q < to && s[q] == (byte)')')
            {
                end = ++q;
            }

            var separators = 0;
            while (q < to && separators < 2 && s[q] is (byte)' ' or (byte)'-' or (byte)'.' or (byte)'(')
            {
                q++;
                separators++;
            }

            if (separators == 0 || q >= to || !IsDigit(s[q]))
            {
                break;
            }

            p = q;
        }

        return digits is >= 7 and <= 15 ? end : -1;
    }

    /// <summary>End of <c>(ddd) ddd-dddd</c> starting at the bracket, or -1.</summary>
    private static int BracketedNanpEnd(ReadOnlySpan<byte> s, int p, int to)
    {
        if (p + 13 > to || !IsDigitRun(s.Slice(p + 1, 3)) || s[p + 4] != (byte)')' || s[p + 1] is < (byte)'2')
        {
            return -1;
        }

        var q = p + 5;
        if (s[q] == (byte)' ')
        {
            q++;
        }

        if (q + 8 > to || !IsDigitRun(s.Slice(q, 3)) || s[q + 3] is not ((byte)'-' or (byte)'.' or (byte)' ') || !IsDigitRun(s.Slice(q + 4, 4)))
        {
            return -1;
        }

        return q + 8 < to && IsDigit(s[q + 8]) ? -1 : q + 8;
    }

    /// <summary>Splits a run of digit groups joined by single separators (space, dash, dot); returns the group count.</summary>
    private static int DigitGroups(ReadOnlySpan<byte> s, int p, int to, Span<int> starts, Span<int> ends, out byte separator)
    {
        separator = 0;
        var groups = 0;
        while (true)
        {
            starts[groups] = p;
            while (p < to && IsDigit(s[p]))
            {
                p++;
            }

            ends[groups++] = p;
            if (groups < starts.Length && p + 1 < to && s[p] is (byte)' ' or (byte)'-' or (byte)'.' && IsDigit(s[p + 1]))
            {
                if (separator == 0)
                {
                    separator = s[p];
                }
                else if (separator != s[p])
                {
                    separator = (byte)'*';
                }

                p++;
                continue;
            }

            return groups;
        }
    }

    private static bool IsNationalPhone(ReadOnlySpan<byte> s, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, byte separator)
    {
        var groups = starts.Length;
        if (groups < 2 || separator == (byte)'*')
        {
            return false;
        }

        Span<int> lengths = stackalloc int[groups];
        var digits = 0;
        for (var g = 0; g < groups; g++)
        {
            lengths[g] = ends[g] - starts[g];
            digits += lengths[g];
        }

        var first = s[starts[0]];
        if (groups == 3 && lengths[0] == 3 && lengths[1] == 3 && lengths[2] == 4 && first >= (byte)'2')
        {
            return true;
        }

        if (groups == 4 && first == (byte)'1' && lengths[0] == 1 && lengths[1] == 3 && lengths[2] == 3 && lengths[3] == 4)
        {
            return true;
        }

        // Trunk prefix 0: dates (8 digits) stay below 9 digits; with dots, a decimal ("0.123456789")
        // is two groups, so dotted numbers need three.
        // The prefix and area code make the first group at least two digits ("0-306-40615-2" is an ISBN).
        return first == (byte)'0' && lengths[0] >= 2 && digits is >= 9 and <= 12 && (separator != (byte)'.' || groups >= 3);
    }

    /// <summary>Card numbers (rules on <see cref="ScanCards"/>) as findings.</summary>
    private static void FindCards(ReadOnlySpan<byte> s, int from, int to, ref Findings findings) =>
        ScanCards(s, from, to, ref findings);

    /// <summary>The operator's patterns, run over the region decoded as UTF-16.</summary>
    private void FindPatterns(ReadOnlySpan<byte> s, int from, int to, ref Findings findings)
    {
        var region = s[from..to];
        var chars = ArrayPool<char>.Shared.Rent(region.Length);
        try
        {
            var length = Encoding.UTF8.GetChars(region, chars);
            var text = chars.AsSpan(0, length);
            var ascii = length == region.Length;
            foreach (var pattern in _patterns)
            {
                foreach (var match in pattern.EnumerateMatches(text))
                {
                    if (match.Length == 0)
                    {
                        continue;
                    }

                    var start = ascii ? match.Index : Encoding.UTF8.GetByteCount(text[..match.Index]);
                    var end = ascii ? match.Index + match.Length : start + Encoding.UTF8.GetByteCount(text.Slice(match.Index, match.Length));
                    findings.Add(from + start, from + end, FindingKind.Secret);
                }
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
        }
    }

    private static int TokenRunEnd(ReadOnlySpan<byte> s, int p, int to)
    {
        var run = s[p..to].IndexOfAnyExcept(_tokenChars);
        return run < 0 ? to : p + run;
    }

    private static bool IsUnicodeEscape(ReadOnlySpan<byte> s, int backslash, int limit) =>
        backslash + 6 <= limit && s[backslash + 1] == (byte)'u' && !s.Slice(backslash + 2, 4).ContainsAnyExcept(_hexDigits);

    private static bool IsDigitRun(ReadOnlySpan<byte> s) => !s.ContainsAnyExceptInRange((byte)'0', (byte)'9');

    private static bool IsAsciiLetterOrDigit(byte b) => char.IsAsciiLetterOrDigit((char)b);

    private static bool IsLocalPartChar(byte b) => IsAsciiLetterOrDigit(b) || b is (byte)'.' or (byte)'_' or (byte)'%' or (byte)'+' or (byte)'-';
}
