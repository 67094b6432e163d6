using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Core.Redaction;

/// <summary>
/// Removes secrets from an <see cref="Exchange"/> before it leaves the process: sensitive headers,
/// sensitive query and form parameters, sensitive JSON fields at any depth, and card numbers in
/// text bodies. Built once from <see cref="RedactionOptions"/>; thread-safe; per exchange it
/// allocates only the rewritten values.
/// </summary>
/// <remarks>
/// Which field names count as sensitive is described on <see cref="IsSensitiveField(ReadOnlySpan{char})"/>.
/// A replaced value becomes <see cref="MaskValue"/> (mode mask) or
/// <c>[REDACTED:hmac-sha256:&lt;16 hex&gt;]</c> (mode hash: the first 64 bits of
/// HMAC-SHA256(hash_key, value), so equal values stay joinable across exchanges without being
/// readable). Both start with <see cref="Marker"/>.
/// </remarks>
public sealed partial class Redactor
{
    /// <summary>What every replacement starts with, so a UI can mark redacted values.</summary>
    public const string Marker = "[REDACTED";

    /// <summary>The replacement in mask mode.</summary>
    public const string MaskValue = "[REDACTED]";

    /// <summary>Exchange attribute holding how many values were redacted (set only when some were).</summary>
    public const string CountAttribute = "sp.redacted.count";

    /// <summary>Headers redacted unless kept: the credentials the original agent and its users send.</summary>
    public static readonly IReadOnlyList<string> BuiltInHeaders =
        ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-public-key"];

    private const int HashHexChars = 16;
    private const int StackLimit = 256;
    private const int ReplacementMaxBytes = 64;

    private readonly bool _enabled;
    private readonly bool _hash;
    private readonly byte[] _key;
    private readonly bool _cardNumbers;
    private readonly HashSet<string> _headers;
    private readonly HashSet<string> _keepHeaders;
    private readonly SensitiveNames _names;

    private Redactor(RedactionOptions options)
    {
        _enabled = options.Enabled;
        _hash = options.Mode == RedactionMode.Hash;
        _key = Encoding.UTF8.GetBytes(options.HashKey ?? "");
        _cardNumbers = options.CardNumbers;
        _keepHeaders = new HashSet<string>(options.KeepHeaders.Select(h => h.Trim()), StringComparer.OrdinalIgnoreCase);
        _headers = new HashSet<string>(
            BuiltInHeaders.Concat(options.Headers.Select(h => h.Trim())).Where(h => h.Length > 0 && !_keepHeaders.Contains(h)),
            StringComparer.OrdinalIgnoreCase);
        _names = new SensitiveNames(options.Fields, options.KeepFields);
    }

    /// <summary>True unless redaction was switched off.</summary>
    public bool Enabled => _enabled;

    private static ReadOnlySpan<byte> MaskBytes => "[REDACTED]"u8;

    private static ReadOnlySpan<byte> HashPrefixBytes => "[REDACTED:hmac-sha256:"u8;

    private static ReadOnlySpan<byte> MarkerBytes => "[REDACTED"u8;

    /// <summary>Builds a redactor from validated options.</summary>
    /// <exception cref="ArgumentException">Mode hash without a hash_key.</exception>
    public static Redactor Create(RedactionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Enabled && options.Mode == RedactionMode.Hash && string.IsNullOrEmpty(options.HashKey))
        {
            throw new ArgumentException("redaction.hash_key is required when redaction.mode is hash.", nameof(options));
        }

        return new Redactor(options);
    }

    /// <summary>
    /// Redacts <paramref name="exchange"/> in place: headers, query string, and Text bodies.
    /// Records the number of replaced values in <see cref="CountAttribute"/> when it is not zero.
    /// </summary>
    /// <returns>How many values were replaced.</returns>
    public int Redact(Exchange exchange)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        if (!_enabled)
        {
            return 0;
        }

        var count = RedactHeaders(exchange.RequestHeaders) + RedactHeaders(exchange.ResponseHeaders);
        if (!string.IsNullOrEmpty(exchange.Query))
        {
            exchange.Query = RedactPairs(exchange.Query, plusIsSpace: false, ref count);
        }

        exchange.RequestBody = RedactTextBody(exchange.RequestBody, ref count);
        exchange.ResponseBody = RedactTextBody(exchange.ResponseBody, ref count);

        if (count > 0)
        {
            // A second pass finds nothing new (replacements are skipped), so adding keeps the total right.
            var previous = exchange.Attributes.TryGetValue(CountAttribute, out var text)
                && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
            exchange.Attributes[CountAttribute] = (previous + count).ToString(CultureInfo.InvariantCulture);
        }

        return count;
    }

    /// <summary>
    /// Redacts one body (JSON fields, form fields, card numbers); a body that is not Text is
    /// returned as it is. Size and truncation flags keep describing the wire body.
    /// </summary>
    public CapturedBody RedactBody(CapturedBody body, out int redacted)
    {
        ArgumentNullException.ThrowIfNull(body);
        redacted = 0;
        return _enabled ? RedactTextBody(body, ref redacted) : body;
    }

    /// <summary>True when a header of this name is redacted.</summary>
    /// <remarks>
    /// The built-in names and <c>headers</c>, plus any header whose name looks like a sensitive
    /// field (<c>x-auth-token</c>, <c>x-amz-security-token</c>), minus <c>keep_headers</c>.
    /// </remarks>
    public bool IsSensitiveHeader(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _headers.Contains(name) || (!_keepHeaders.Contains(name) && _names.IsSensitive(name.AsSpan()));
    }

    /// <summary>True when a JSON / form / query field of this name is redacted (rules on <see cref="SensitiveNames"/>).</summary>
    public bool IsSensitiveField(ReadOnlySpan<char> name) => _names.IsSensitive(name);

    /// <summary>The replacement for <paramref name="value"/> in the configured mode.</summary>
    public string Replacement(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!_hash)
        {
            return MaskValue;
        }

        Span<byte> token = stackalloc byte[ReplacementMaxBytes];
        return Encoding.ASCII.GetString(token[..ReplacementOfChars(value, token)]);
    }

    private int RedactHeaders(HeaderList headers)
    {
        var count = 0;
        for (var i = 0; i < headers.Count; i++)
        {
            var (name, value) = headers[i];
            if (value.Length > 0 && !IsMarked(value) && IsSensitiveHeader(name))
            {
                headers.SetValueAt(i, Replacement(value));
                count++;
            }
        }

        return count;
    }

    /// <summary>Redacts the values of sensitive <c>name=value</c> pairs in a query string or form body.</summary>
    private string RedactPairs(string input, bool plusIsSpace, ref int count)
    {
        StringBuilder? output = null;
        var copied = 0;
        var position = 0;
        while (position <= input.Length)
        {
            var amp = input.IndexOf('&', position);
            var end = amp < 0 ? input.Length : amp;
            var equals = input.IndexOf('=', position, end - position);
            if (equals > position && equals + 1 < end)
            {
                var rawName = input.AsSpan(position, equals - position);
                var rawValue = input.AsSpan(equals + 1, end - equals - 1);
                if (!rawValue.StartsWith(Marker, StringComparison.Ordinal)
                    && _names.IsSensitive(UnescapeIfNeeded(rawName, plusIsSpace)))
                {
                    output ??= new StringBuilder(input.Length + 32);
                    output.Append(input, copied, equals + 1 - copied);
                    output.Append(_hash ? Replacement(UnescapeIfNeeded(rawValue, plusIsSpace).ToString()) : MaskValue);
                    copied = end;
                    count++;
                }
            }

            if (amp < 0)
            {
                break;
            }

            position = amp + 1;
        }

        if (output is null)
        {
            return input;
        }

        output.Append(input, copied, input.Length - copied);
        return output.ToString();
    }

    private static ReadOnlySpan<char> UnescapeIfNeeded(ReadOnlySpan<char> raw, bool plusIsSpace)
    {
        var hasPlus = plusIsSpace && raw.Contains('+');
        if (!hasPlus && !raw.Contains('%'))
        {
            return raw;
        }

        var text = raw.ToString();
        if (hasPlus)
        {
            text = text.Replace('+', ' ');
        }

        return Uri.UnescapeDataString(text);
    }

    private CapturedBody RedactTextBody(CapturedBody body, ref int count)
    {
        if (body.Kind != BodyKind.Text || body.Content.IsEmpty)
        {
            return body;
        }

        var content = body.Content.Span;
        var mediaType = MediaType.Parse(body.ContentType, out _);
        byte[]? rewritten;
        if (MediaType.IsForm(mediaType))
        {
            rewritten = RedactForm(content, ref count);
        }
        else if ((MediaType.IsJson(mediaType) || LooksLikeJson(content)) && TryRedactJson(content, body.Truncated, out rewritten, ref count))
        {
            // Done: JSON values, including card numbers inside them, were handled token by token.
        }
        else
        {
            rewritten = RedactText(content, ref count);
        }

        return rewritten is null ? body : body with { Content = rewritten };
    }

    private byte[]? RedactForm(ReadOnlySpan<byte> content, ref int count)
    {
        var text = Encoding.UTF8.GetString(content);
        var redacted = RedactPairs(text, plusIsSpace: true, ref count);
        var bytes = ReferenceEquals(redacted, text) ? null : Encoding.UTF8.GetBytes(redacted);
        return RedactCardsIn(bytes ?? content, ref count) ?? bytes;
    }

    private byte[]? RedactCardsIn(ReadOnlySpan<byte> content, ref int count)
    {
        if (!_cardNumbers)
        {
            return null;
        }

        var splicer = new Splicer(content);
        try
        {
            ScanCards(ref splicer, content, 0, content.Length, ref count);
            return splicer.Finish();
        }
        finally
        {
            splicer.Release();
        }
    }

    private static bool LooksLikeJson(ReadOnlySpan<byte> content)
    {
        var trimmed = content.TrimStart(" \t\r\n"u8);
        return !trimmed.IsEmpty && trimmed[0] is (byte)'{' or (byte)'[';
    }

    private static bool IsMarked(string value) => value.StartsWith(Marker, StringComparison.Ordinal);

    private static bool IsMarked(ReadOnlySpan<byte> value) => value.StartsWith(MarkerBytes);

    /// <summary>
    /// Writes the replacement of a UTF-8 value (the mask, or the hash token) into
    /// <paramref name="scratch"/> (<see cref="ReplacementMaxBytes"/> long); returns its length.
    /// </summary>
    private int ReplacementOf(scoped ReadOnlySpan<byte> value, scoped Span<byte> scratch)
    {
        if (!_hash)
        {
            MaskBytes.CopyTo(scratch);
            return MaskBytes.Length;
        }

        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(_key, value, mac);
        HashPrefixBytes.CopyTo(scratch);
        var position = HashPrefixBytes.Length;
        for (var i = 0; i < HashHexChars / 2; i++)
        {
            scratch[position++] = HexDigit(mac[i] >> 4);
            scratch[position++] = HexDigit(mac[i] & 0xF);
        }

        scratch[position++] = (byte)']';
        return position;
    }

    private int ReplacementOfChars(scoped ReadOnlySpan<char> value, scoped Span<byte> scratch)
    {
        byte[]? rented = null;
        var maxBytes = Encoding.UTF8.GetMaxByteCount(value.Length);
        var utf8 = maxBytes <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        try
        {
            var written = Encoding.UTF8.GetBytes(value, utf8);
            return ReplacementOf(utf8[..written], scratch);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static byte HexDigit(int nibble) => (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
}
