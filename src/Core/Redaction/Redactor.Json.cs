using System.Buffers;
using System.Text.Json;

namespace SpIstio.Core.Redaction;

public sealed partial class Redactor
{
    private static readonly JsonReaderOptions _jsonOptions = new()
    {
        // Comments and trailing commas are tolerated so a lenient body still takes the exact
        // path; bytes between tokens are copied as they are, so comments survive.
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        MaxDepth = 256,
    };

    /// <summary>
    /// Redacts a JSON body by splicing: the reader finds the byte range of each sensitive value
    /// and of each card number, and everything else is copied byte for byte, so formatting,
    /// escapes and number spellings are preserved. A truncated body is read as a partial block:
    /// tokens up to the cut are handled exactly, and a sensitive value cut in half is replaced up
    /// to the end.
    /// </summary>
    /// <returns>False when the body is not JSON (the caller falls back to the pattern scan).</returns>
    private bool TryRedactJson(ReadOnlySpan<byte> json, bool truncated, Scan scan, scoped in AnchorHits hits, out byte[]? rewritten, ref int count)
    {
        var found = 0;
        var values = scan & ~Scan.Names;

        // With the anchors known, a string needs the value detectors only when one lies in it,
        // unless a detector that is not anchored (e-mail, digits, patterns) is wanted.
        var anchoredOnly = hits.Usable && (values & ~AnchoredValues) == Scan.None;
        var nextHit = 0;
        Span<byte> scratch = stackalloc byte[ReplacementMaxBytes];
        var splicer = new Splicer(json);
        try
        {
            var reader = new Utf8JsonReader(json, isFinalBlock: !truncated, new JsonReaderState(_jsonOptions));
            var complete = true;
            while (complete && reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName when (scan & Scan.Names) != 0:
                        var kind = NameKind(ref reader);
                        if (kind != NameKindNone)
                        {
                            complete = RedactPropertyValue(ref reader, ref splicer, json, kind == NameKindPii, ref found);
                        }

                        break;
                    case JsonTokenType.String when values != Scan.None:
                        var from = (int)reader.TokenStartIndex + 1;
                        var to = (int)reader.BytesConsumed - 1;
                        if (anchoredOnly)
                        {
                            while (nextHit < hits.Count && hits[nextHit].Position < from)
                            {
                                nextHit++;
                            }

                            if (nextHit == hits.Count || hits[nextHit].Position >= to)
                            {
                                break;
                            }
                        }

                        ScanValues(ref splicer, json, from, to, values, in hits, ref found);
                        break;
                    case JsonTokenType.Number when _cardNumbers && (scan & Scan.Digits) != 0:
                        var start = (int)reader.TokenStartIndex;
                        var end = (int)reader.BytesConsumed;
                        if (IsCardNumberToken(json[start..end]))
                        {
                            splicer.ReplaceQuoted(start, end, scratch[..ReplacementOf(json[start..end], scratch)]);
                            found++;
                        }

                        break;
                }
            }

            if (complete && truncated && values != Scan.None)
            {
                // The token cut by the capture limit was never returned by the reader.
                ScanValues(ref splicer, json, (int)reader.BytesConsumed, json.Length, values, in hits, ref found);
            }

            rewritten = splicer.Finish();
            count += found;
            return true;
        }
        catch (JsonException)
        {
            rewritten = null;
            return false;
        }
        finally
        {
            splicer.Release();
        }
    }

    private const int NameKindNone = 0;
    private const int NameKindSecret = 1;
    private const int NameKindPii = 2;

    private int NameKind(ref Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped)
        {
            return KindOfName(reader.ValueSpan);
        }

        // An escaped name ("pass\u0077ord") is unescaped before judging it.
        var length = reader.ValueSpan.Length;
        byte[]? rented = null;
        var buffer = length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var written = reader.CopyString(buffer);
            return KindOfName(buffer[..written]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private int KindOfName(ReadOnlySpan<byte> name) =>
        _names.IsSensitive(name) ? NameKindSecret : _pii != Configuration.PiiMode.Keep && _names.IsPii(name) ? NameKindPii : NameKindNone;

    /// <summary>Replaces the value after a sensitive property name; false when the body ended inside it.</summary>
    private bool RedactPropertyValue(ref Utf8JsonReader reader, ref Splicer splicer, ReadOnlySpan<byte> json, bool pii, ref int found)
    {
        Span<byte> scratch = stackalloc byte[ReplacementMaxBytes];
        var afterName = (int)reader.BytesConsumed;
        if (!reader.Read())
        {
            RedactCutValue(ref splicer, json, afterName, scratch, ref found);
            return false;
        }

        var start = (int)reader.TokenStartIndex;
        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
        {
            if (!reader.TrySkip())
            {
                RedactCutValue(ref splicer, json, start, scratch, ref found);
                return false;
            }
        }

        var end = (int)reader.BytesConsumed;
        int length;
        if (reader.TokenType == JsonTokenType.String)
        {
            if (!reader.ValueIsEscaped && IsMarked(reader.ValueSpan))
            {
                return true;
            }

            length = pii ? PiiFieldReplacementOf(reader.ValueSpan, scratch)
                : reader.ValueIsEscaped ? ReplacementOfEscaped(ref reader, scratch) : ReplacementOf(reader.ValueSpan, scratch);
        }
        else if (pii && reader.TokenType is JsonTokenType.Null or JsonTokenType.True or JsonTokenType.False)
        {
            // Nothing personal in a null or a flag ("phoneVerified": true).
            return true;
        }
        else
        {
            length = pii ? PiiFieldReplacementOf(json[start..end], scratch) : ReplacementOf(json[start..end], scratch);
        }

        splicer.ReplaceQuoted(start, end, scratch[..length]);
        found++;
        return true;
    }

    private int ReplacementOfEscaped(ref Utf8JsonReader reader, scoped Span<byte> scratch)
    {
        var length = reader.ValueSpan.Length;
        byte[]? rented = null;
        var buffer = length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var written = reader.CopyString(buffer);
            return ReplacementOf(buffer[..written], scratch);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Replaces everything from the value's first byte to the end of a truncated body.</summary>
    private void RedactCutValue(ref Splicer splicer, ReadOnlySpan<byte> json, int from, scoped Span<byte> scratch, ref int found)
    {
        var rest = json[from..];
        var skip = rest.Length - rest.TrimStart(" \t\r\n:"u8).Length;
        var start = from + skip;
        if (start >= json.Length)
        {
            return;
        }

        var value = json[start..].Trim("\""u8);
        splicer.ReplaceQuoted(start, json.Length, scratch[..ReplacementOf(value, scratch)]);
        found++;
    }
}
