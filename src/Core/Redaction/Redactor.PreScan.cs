using System.Buffers;
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
    // Anchors of the value detectors; the name anchors come from SensitiveNames. Matched ignoring case.
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

        // Escapes can spell a name or an '@' the raw bytes do not show.
        ("\\u", Scan.Names | Scan.Email), ("&#", Scan.Names | Scan.Email),
        ("@", Scan.Email),
    ];

    /// <summary>
    /// Decides, without parsing, which detectors a body needs; <see cref="Scan.None"/> proves it
    /// has nothing to redact, and the body is returned untouched without a JSON read or a copy.
    /// </summary>
    /// <remarks>
    /// One vectorised multi-string search (<see cref="SearchValues{T}"/> of strings, ignoring
    /// case) over the body transcoded into a pooled UTF-16 buffer finds every anchor: the pieces
    /// of sensitive field names, the detectors' prefixes (<c>eyJ</c>, <c>AKIA</c>, <c>ghp_</c>,
    /// <c>-----BEGIN</c>, <c>bearer</c>, <c>@</c>, …) and escapes. Digits need a look at each
    /// run's shape, done by the card and phone detectors themselves on the raw bytes; operator
    /// patterns run once over the whole body.
    /// </remarks>
    private Scan PreScan(ReadOnlySpan<byte> content)
    {
        var scan = Scan.None;
        var rented = ArrayPool<char>.Shared.Rent(content.Length);
        try
        {
            var length = Encoding.UTF8.GetChars(content, rented);
            var text = rented.AsSpan(0, length);
            var position = 0;
            while (position < text.Length && (scan & _anchorFlags) != _anchorFlags)
            {
                var offset = text[position..].IndexOfAny(_anchors);
                if (offset < 0)
                {
                    break;
                }

                position += offset;
                scan |= AnchorFlagsAt(text[position..]);
                position++;
            }

            if (_patterns.Length > 0)
            {
                foreach (var pattern in _patterns)
                {
                    if (pattern.IsMatch(text))
                    {
                        scan |= Scan.Patterns;
                        break;
                    }
                }
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(rented);
        }

        if (_cardNumbers || _pii != Configuration.PiiMode.Keep)
        {
            var findings = default(Findings);
            try
            {
                if (_cardNumbers)
                {
                    FindCards(content, 0, content.Length, ref findings);
                }

                if (findings.Count == 0 && _pii != Configuration.PiiMode.Keep)
                {
                    FindPhones(content, 0, content.Length, ref findings);
                }

                if (findings.Count > 0)
                {
                    scan |= Scan.Digits;
                }
            }
            finally
            {
                findings.Release();
            }
        }

        return scan;
    }

    private Scan AnchorFlagsAt(ReadOnlySpan<char> text)
    {
        var flags = Scan.None;
        foreach (var (anchor, flag) in _anchorTable)
        {
            if (text.StartsWith(anchor, StringComparison.OrdinalIgnoreCase))
            {
                flags |= flag;
            }
        }

        return flags;
    }

    private static (string Anchor, Scan Flag)[] AnchorTable(SensitiveNames names) =>
        names.Anchors().Select(a => (a, Scan.Names)).Concat(_valueAnchors).ToArray();
}
