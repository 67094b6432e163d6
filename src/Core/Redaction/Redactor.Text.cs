using System.Text;
using System.Text.RegularExpressions;

namespace SpIstio.Core.Redaction;

public sealed partial class Redactor
{
    /// <summary>
    /// Redacts a text body that is not valid JSON (a JSON body cut mid-way by something other
    /// than the capture limit, JSON inside a text/plain log line, broken JSON): every
    /// <c>"name": value</c> pair whose name is sensitive gets its value replaced, including a
    /// string value left unterminated at the end. Then card numbers.
    /// </summary>
    /// <remarks>
    /// Only string and scalar values are matched here; an object value in broken JSON is not
    /// removed whole, but its own sensitive fields are pairs and are matched in turn.
    /// </remarks>
    private byte[]? RedactText(ReadOnlySpan<byte> content, Scan scan, scoped in AnchorHits hits, ref int count)
    {
        byte[]? fields = null;
        if ((scan & Scan.Names) != 0 && content.Contains((byte)'"'))
        {
            var text = Encoding.UTF8.GetString(content);
            var redacted = RedactPairsByPattern(text, ref count);
            if (!ReferenceEquals(redacted, text))
            {
                fields = Encoding.UTF8.GetBytes(redacted);
            }
        }

        if (fields is not null)
        {
            // Rewritten: the anchors' offsets no longer apply.
            return RedactValuesIn(fields, scan & ~Scan.Names, ref count) ?? fields;
        }

        return RedactValuesIn(content, scan & ~Scan.Names, in hits, ref count);
    }

    /// <summary>Runs the value detectors over a whole payload; null when nothing was found.</summary>
    private byte[]? RedactValuesIn(ReadOnlySpan<byte> content, Scan scan, ref int count)
    {
        var none = default(AnchorHits);
        return RedactValuesIn(content, scan, in none, ref count);
    }

    /// <summary>Runs the value detectors over a whole payload whose anchors are in <paramref name="hits"/>; null when nothing was found.</summary>
    private byte[]? RedactValuesIn(ReadOnlySpan<byte> content, Scan scan, scoped in AnchorHits hits, ref int count)
    {
        if (scan == Scan.None)
        {
            return null;
        }

        var splicer = new Splicer(content);
        try
        {
            ScanValues(ref splicer, content, 0, content.Length, scan, in hits, ref count);
            return splicer.Finish();
        }
        finally
        {
            splicer.Release();
        }
    }

    private string RedactPairsByPattern(string text, ref int count)
    {
        StringBuilder? output = null;
        var copied = 0;
        Span<byte> scratch = stackalloc byte[ReplacementMaxBytes];
        for (var match = JsonPairPattern().Match(text); match.Success; match = match.NextMatch())
        {
            var value = match.Groups["value"];
            var name = match.Groups["name"].ValueSpan;
            var pii = false;
            if (!_names.IsSensitive(name))
            {
                if (_pii == Configuration.PiiMode.Keep || !_names.IsPii(name))
                {
                    continue;
                }

                pii = true;
            }

            var inner = value.ValueSpan;
            if (inner.Length > 0 && inner[0] == '"')
            {
                inner = inner.Length > 1 && inner[^1] == '"' ? inner[1..^1] : inner[1..];
            }

            if (inner.StartsWith(Marker, StringComparison.Ordinal))
            {
                continue;
            }

            output ??= new StringBuilder(text.Length + 32);
            output.Append(text, copied, value.Index - copied);
            output.Append('"');
            var length = pii ? Encoding.ASCII.GetBytes(PiiFieldReplacement(inner.ToString()), scratch) : ReplacementOfChars(inner, scratch);
            foreach (var b in scratch[..length])
            {
                output.Append((char)b);
            }

            output.Append('"');
            copied = value.Index + value.Length;
            count++;
        }

        if (output is null)
        {
            return text;
        }

        output.Append(text, copied, text.Length - copied);
        return output.ToString();
    }

    // Non-backtracking: linear in the body whatever it holds. A string value may run to the end
    // of the input unterminated (the body was cut inside it).
    [GeneratedRegex("""
        "(?<name>(?:[^"\\\r\n]|\\.)+)"\s*:\s*(?<value>"(?:[^"\\]|\\.)*"?|[^\s,}\]\["{]+)
        """, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture)]
    private static partial Regex JsonPairPattern();
}
