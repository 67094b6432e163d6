using System.Text;
using System.Text.RegularExpressions;
using SpIstio.Core.Capture;

namespace SpIstio.Core.Redaction;

public sealed partial class Redactor
{
    private static bool IsXml(ReadOnlySpan<char> mediaType) =>
        mediaType.EndsWith("/xml", StringComparison.OrdinalIgnoreCase) || mediaType.EndsWith("+xml", StringComparison.OrdinalIgnoreCase);

    private static bool LooksLikeXml(ReadOnlySpan<byte> content)
    {
        var trimmed = content.TrimStart(" \t\r\n"u8);
        return trimmed.Length > 1 && trimmed[0] == (byte)'<' && (char.IsAsciiLetter((char)trimmed[1]) || trimmed[1] is (byte)'?' or (byte)'!');
    }

    /// <summary>
    /// Redacts XML (SOAP, AWS STS, SAML…): the text of an element and the value of an attribute
    /// whose local name is sensitive (<c>&lt;SecretAccessKey&gt;</c>, <c>password="…"</c>) or
    /// personal data, then every value pattern in the whole document.
    /// </summary>
    private byte[]? RedactXml(ReadOnlySpan<byte> content, Scan scan, ref int count)
    {
        byte[]? fields = null;
        if ((scan & Scan.Names) != 0)
        {
            var text = Encoding.UTF8.GetString(content);
            var redacted = ReplaceNamedValues(XmlElementPattern(), text, ref count);
            redacted = ReplaceNamedValues(XmlAttributePattern(), redacted, ref count);
            if (!ReferenceEquals(redacted, text))
            {
                fields = Encoding.UTF8.GetBytes(redacted);
            }
        }

        return RedactValuesIn(fields ?? content, scan & ~Scan.Names, ref count) ?? fields;
    }

    private string ReplaceNamedValues(Regex pattern, string text, ref int count)
    {
        StringBuilder? output = null;
        var copied = 0;
        for (var match = pattern.Match(text); match.Success; match = match.NextMatch())
        {
            var name = match.Groups["name"].ValueSpan;
            var value = match.Groups["value"];
            if (value.Length == 0 || value.ValueSpan.StartsWith(Marker, StringComparison.Ordinal) || value.ValueSpan.IsWhiteSpace())
            {
                continue;
            }

            string replacement;
            if (_names.IsSensitive(name))
            {
                replacement = Replacement(value.Value);
            }
            else if (_pii != Configuration.PiiMode.Keep && _names.IsPii(name))
            {
                replacement = PiiFieldReplacement(value.Value);
            }
            else
            {
                continue;
            }

            output ??= new StringBuilder(text.Length + 32);
            output.Append(text, copied, value.Index - copied);
            output.Append(replacement);
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

    // An element's text up to the next tag, or a CDATA section without ']' in it. Non-backtracking.
    [GeneratedRegex("""
        <(?:[\w.-]+:)?(?<name>[\w.-]+)(?:\s[^<>]*)?>(?:<!\[CDATA\[(?<value>[^\]]*)\]\]>|(?<value>[^<]+))
        """, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture)]
    private static partial Regex XmlElementPattern();

    [GeneratedRegex("""
        \s(?:[\w.-]+:)?(?<name>[\w.-]+)\s*=\s*(?:"(?<value>[^"<]*)"|'(?<value>[^'<]*)')
        """, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture)]
    private static partial Regex XmlAttributePattern();

    /// <summary>
    /// Redacts a multipart body part by part: a part whose field name is sensitive (or personal
    /// data) is replaced whole; a text part (no content type, or a textual one) is redacted as
    /// its own media type; binary parts are left alone. A body cut by the capture limit is
    /// handled up to the cut.
    /// </summary>
    private byte[]? RedactMultipart(ReadOnlySpan<byte> content, string contentType, bool truncated, ref int count)
    {
        var boundary = MultipartBoundary(contentType);
        if (boundary is null)
        {
            return RedactValuesIn(content, PreScan(content, names: false) & ~Scan.Names, ref count);
        }

        var delimiter = Encoding.ASCII.GetBytes("--" + boundary);
        var splicer = new Splicer(content);
        Span<byte> scratch = stackalloc byte[ReplacementMaxBytes];
        try
        {
            var position = content.IndexOf(delimiter);
            while (position >= 0)
            {
                var afterDelimiter = position + delimiter.Length;
                if (afterDelimiter + 2 > content.Length || content.Slice(afterDelimiter, 2).SequenceEqual("--"u8))
                {
                    break;
                }

                var headersEnd = content[afterDelimiter..].IndexOf("\r\n\r\n"u8);
                var separator = 4;
                if (headersEnd < 0)
                {
                    headersEnd = content[afterDelimiter..].IndexOf("\n\n"u8);
                    separator = 2;
                }

                if (headersEnd < 0)
                {
                    break;
                }

                var headers = content.Slice(afterDelimiter, headersEnd);
                var start = afterDelimiter + headersEnd + separator;
                var next = content[start..].IndexOf(delimiter);
                var end = next < 0 ? content.Length : start + next;
                var contentEnd = end;
                if (next >= 0)
                {
                    // The line break before the delimiter belongs to the delimiter.
                    if (contentEnd > start && content[contentEnd - 1] == (byte)'\n')
                    {
                        contentEnd--;
                    }

                    if (contentEnd > start && content[contentEnd - 1] == (byte)'\r')
                    {
                        contentEnd--;
                    }
                }

                RedactPart(ref splicer, content, headers, start, contentEnd, truncated && next < 0, scratch, ref count);
                position = next < 0 ? -1 : end;
            }

            return splicer.Finish();
        }
        finally
        {
            splicer.Release();
        }
    }

    private void RedactPart(ref Splicer splicer, ReadOnlySpan<byte> content, ReadOnlySpan<byte> headers, int start, int end, bool cut, scoped Span<byte> scratch, ref int count)
    {
        if (end <= start)
        {
            return;
        }

        var headerText = Encoding.UTF8.GetString(headers);
        var name = HeaderParameter(headerText, "name");
        var value = content[start..end];
        if (name is not null && !IsMarked(value))
        {
            if (_names.IsSensitive(name))
            {
                splicer.Replace(start, end, scratch[..ReplacementOf(value, scratch)]);
                count++;
                return;
            }

            if (_pii != Configuration.PiiMode.Keep && _names.IsPii(name))
            {
                splicer.Replace(start, end, scratch[..PiiFieldReplacementOf(value, scratch)]);
                count++;
                return;
            }
        }

        var partType = PartContentType(headerText);
        var mediaType = MediaType.Parse(partType, out _);
        if (!mediaType.IsEmpty && !MediaType.IsTextual(mediaType))
        {
            return;
        }

        var rewritten = RedactContent(value, mediaType.IsEmpty ? "text/plain" : mediaType, cut, ref count);
        if (rewritten is not null)
        {
            splicer.Replace(start, end, rewritten);
        }
    }

    private static string? MultipartBoundary(string contentType)
    {
        var boundary = HeaderParameter(contentType, "boundary");
        return string.IsNullOrEmpty(boundary) || boundary.Length > 200 ? null : boundary;
    }

    private static string? PartContentType(string headers)
    {
        foreach (var line in headers.Split('\n'))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line.AsSpan(0, colon).Trim().Equals("content-type", StringComparison.OrdinalIgnoreCase))
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return null;
    }

    /// <summary>The value of <c>name=</c> / <c>name="…"</c> in a header (content-type boundary, content-disposition name).</summary>
    private static string? HeaderParameter(string header, string parameter)
    {
        var position = 0;
        while (position < header.Length)
        {
            var at = header.IndexOf(parameter + "=", position, StringComparison.OrdinalIgnoreCase);
            if (at < 0)
            {
                return null;
            }

            position = at + parameter.Length + 1;
            if (at > 0 && header[at - 1] is not (';' or ' ' or '\t'))
            {
                continue;
            }

            if (position < header.Length && header[position] == '"')
            {
                var close = header.IndexOf('"', position + 1);
                return close < 0 ? header[(position + 1)..] : header[(position + 1)..close];
            }

            var end = header.IndexOfAny([';', '\r', '\n', ' '], position);
            return end < 0 ? header[position..] : header[position..end];
        }

        return null;
    }
}
