using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;

namespace SpIstio.Core.Redaction;

/// <summary>
/// Removes secrets and personal data from an <see cref="Exchange"/> before it leaves the process.
/// Built once from <see cref="RedactionOptions"/>; thread-safe; per exchange it allocates only the
/// rewritten values.
/// </summary>
/// <remarks>
/// <para>
/// By name: sensitive headers, query / form / multipart fields, JSON fields at any depth and XML
/// elements and attributes (rules on <see cref="SensitiveNames"/>); fields named like a phone
/// number are personal data. By value, in every header of any name, query and form value and
/// body (JSON strings, XML, multipart parts, plain text), requests and responses: JWTs, AWS
/// access key ids, AWS secret keys where the text names them, GitHub / Slack / Stripe / Google
/// tokens, PEM private key blocks, bearer tokens, card numbers, e-mail addresses, phone numbers
/// and the operator's patterns. A vectorised pre-scan proves most bodies clean before any parse.
/// </para>
/// </remarks>
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

    /// <summary>What is redacted, one line each, as the configuration reference lists it.</summary>
    public static readonly IReadOnlyList<string> Coverage =
    [
        "**Places:** headers of any name, the query string (and the query of `:path`, `referer`, `location`), JSON bodies at any depth, form bodies, every text part of a multipart body, XML elements and attributes, and plain text. Binary bodies and binary multipart parts are not read.",
        "**By name, the whole value** (`mode`): headers `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key`, `x-public-key` and `headers`; any header, query / form / multipart field, JSON property or XML element / attribute whose name, lower-cased without `-_.` and spaces, contains `password`, `passwd`, `passphrase`, `secret`, `apikey`, `authorization`, `privatekey`, `cardnumber`, `ccnumber`, `creditcard`, `cvv`, `cvc`, `socialsecuritynumber`, ends with `token` or `ssn`, is `pwd`, `auth` or `pan`, or is one of `fields`; `keep_headers` / `keep_fields` win.",
        "**By value, anywhere** (`mode`): JWTs (`eyJ…` and two more base64url segments); AWS access key ids (`AKIA`, `ASIA`, … and 16 upper-case letters or digits); AWS secret keys (40 characters) only where the text names them (`aws_secret…` just before, or a field named like a secret); GitHub `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_`/`github_pat_`, Slack `xox?-`, Stripe `sk_live_`/`rk_live_` and Google `AIza` tokens; PEM private key blocks (BEGIN to END); the token after `Bearer` (20+ characters, or 8+ with a digit or symbol); card numbers (13-19 digits starting 2-6 that pass Luhn, `card_numbers`); matches of `patterns`.",
        "**Personal data** (`pii`: mask, hash or keep): e-mail addresses; phone numbers in E.164 (`+` and 7-15 digits, separators allowed), North American (`(415) 555-2671`, `415-555-2671`, `1 415 555 2671`) and trunk-prefixed national forms with separators (`020 7946 0958`, `06 12 34 56 78`: first group `0` and at least two digits, 9-12 digits); any value of a field or header named like `phone`, `mobile`, `msisdn`, `tel`, `cell`, `fax` or one of `pii_fields`. With `hash`, addresses are hashed lower-cased and phone numbers by their digits, so the same person joins across exchanges.",
        "**Kept:** digit runs without separators (ids, millisecond timestamps), dates and times, UUIDs, ISBNs, prices, IP addresses and versions, numbers glued to letters (`ORD-2024-000123`), and 40-character base64 runs nothing names as an AWS secret.",
        "**gRPC messages** (the captured message lists and the framed bodies): every string the schema-less walk finds (length-delimited fields that are valid UTF-8 text, nested messages walked) gets the value detectors above, always; with `capture.grpc.descriptor_sets`, string fields named as above are replaced whole and numeric fields so named are removed. Lengths are re-encoded, so the message stays valid protobuf; a gzip frame that needed redaction is stored uncompressed.",
        "A vectorised pre-scan (one pass over the body's bytes) proves most bodies have nothing to redact before any JSON or XML is parsed; such bodies are neither parsed nor copied.",
    ];

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
    private readonly PiiMode _pii;
    private readonly Regex[] _patterns;
    private readonly AnchorScanner _anchorScanner;
    private readonly AnchorScanner _valueAnchorScanner;

    // False when a configured name's anchor holds a byte the name-context check stops at.
    private readonly bool _nameContext;
    private readonly GrpcDescriptorSet _descriptors;

    // What RedactHeaders worked out before, under this redactor's rules (a new configuration builds
    // a new redactor, so a verdict never outlives the rules it was made under). Names: most
    // exchanges carry the same few dozen; 64 characters covers any common one. Values: only those
    // proven clean are kept, so the cache never holds anything redaction would have removed;
    // 256 characters covers user agents, accept lists and dates, at most ~300 KiB in all.
    private readonly StringVerdictCache<HeaderKind> _headerKinds = new(slots: 256, maxKeyChars: 64);
    private readonly StringVerdictCache<bool> _cleanHeaderValues = new(slots: 512, maxKeyChars: 256);

    private Redactor(RedactionOptions options, GrpcDescriptorSet descriptors)
    {
        _descriptors = descriptors;
        _enabled = options.Enabled;
        _hash = options.Mode == RedactionMode.Hash;
        _key = Encoding.UTF8.GetBytes(options.HashKey ?? "");
        _cardNumbers = options.CardNumbers;
        _keepHeaders = new HashSet<string>(options.KeepHeaders.Select(h => h.Trim()), StringComparer.OrdinalIgnoreCase);
        _headers = new HashSet<string>(
            BuiltInHeaders.Concat(options.Headers.Select(h => h.Trim())).Where(h => h.Length > 0 && !_keepHeaders.Contains(h)),
            StringComparer.OrdinalIgnoreCase);
        _names = new SensitiveNames(options.Fields, options.KeepFields, options.PiiFields);
        _pii = options.Pii;
        _patterns = options.Patterns.Where(p => p.Length > 0).Select(CompilePattern).ToArray();
        var anchors = AnchorTable(_names).Select(a => (a.Flag == Scan.Names ? a.Anchor.ToLowerInvariant() : a.Anchor, a.Flag)).ToArray();
        _anchorScanner = new AnchorScanner(anchors, CaseMatchedValues);
        _valueAnchorScanner = new AnchorScanner(anchors.Where(a => a.Flag != Scan.Names), CaseMatchedValues);
        _nameContext = NameContext.Applies(anchors.Where(a => a.Flag == Scan.Names).Select(a => a.Item1));
    }

    /// <summary>Why <paramref name="pattern"/> cannot be an operator pattern, or null when it can.</summary>
    public static string? PatternProblem(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.Length == 0)
        {
            return "is empty";
        }

        try
        {
            CompilePattern(pattern);
            return null;
        }
        catch (ArgumentException e)
        {
            return "is not a valid regular expression: " + e.Message;
        }
        catch (NotSupportedException e)
        {
            return "cannot run non-backtracking: " + e.Message;
        }
    }

    // Non-backtracking: linear in the input whatever the operator wrote.
    private static Regex CompilePattern(string pattern) =>
        new(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);

    /// <summary>True unless redaction was switched off.</summary>
    public bool Enabled => _enabled;

    private static ReadOnlySpan<byte> MaskBytes => "[REDACTED]"u8;

    private static ReadOnlySpan<byte> HashPrefixBytes => "[REDACTED:hmac-sha256:"u8;

    private static ReadOnlySpan<byte> MarkerBytes => "[REDACTED"u8;

    /// <summary>Builds a redactor from validated options.</summary>
    /// <exception cref="ArgumentException">Mode hash without a hash_key.</exception>
    public static Redactor Create(RedactionOptions options) => Create(options, GrpcDescriptorSet.Empty);

    /// <summary>
    /// Builds a redactor from validated options and the gRPC descriptor sets
    /// (<c>capture.grpc.descriptor_sets</c>), which let it redact message fields by name.
    /// </summary>
    /// <exception cref="ArgumentException">Mode hash without a hash_key.</exception>
    public static Redactor Create(RedactionOptions options, GrpcDescriptorSet descriptors)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(descriptors);
        if (options.Enabled && options.Mode == RedactionMode.Hash && string.IsNullOrEmpty(options.HashKey))
        {
            throw new ArgumentException("redaction.hash_key is required when redaction.mode is hash.", nameof(options));
        }

        if (options.Enabled && options.Pii == PiiMode.Hash && string.IsNullOrEmpty(options.HashKey))
        {
            throw new ArgumentException("redaction.hash_key is required when redaction.pii is hash.", nameof(options));
        }

        foreach (var pattern in options.Patterns)
        {
            if (PatternProblem(pattern) is { } problem)
            {
                throw new ArgumentException($"redaction.patterns: '{pattern}' {problem}", nameof(options));
            }
        }

        return new Redactor(options, descriptors);
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
        count += RedactGrpc(exchange);

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

    /// <summary>True when a field / header of this name holds personal data (phone/mobile/tel, <c>pii_fields</c>).</summary>
    public bool IsPiiField(ReadOnlySpan<char> name) => _names.IsPii(name);

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
            if (value.Length == 0 || IsMarked(value))
            {
                continue;
            }

            switch (KindOf(name))
            {
                case HeaderKind.Sensitive:
                    headers.SetValueAt(i, Replacement(value));
                    count++;
                    break;
                case HeaderKind.Pii:
                    headers.SetValueAt(i, PiiFieldReplacement(value));
                    count++;
                    break;
                case HeaderKind.Url when value.Contains('?', StringComparison.Ordinal):
                    var url = RedactUrl(value, ref count);
                    if (!ReferenceEquals(url, value))
                    {
                        headers.SetValueAt(i, url);
                    }

                    break;
                default:
                    // Here the verdict depends on the value alone (the value detectors), so a value
                    // found clean once is clean under any name that reaches this branch.
                    if (_cleanHeaderValues.TryGet(value, out _))
                    {
                        break;
                    }

                    var before = count;
                    if (RedactSpan(value, Scan.All, ref count) is { } redacted)
                    {
                        headers.SetValueAt(i, redacted);
                    }
                    else if (count == before)
                    {
                        _cleanHeaderValues.Set(value, true);
                    }

                    break;
            }
        }

        return count;
    }

    // What a header's name alone decides: replaced whole (by name, or as personal data), read as a
    // URL, or left to the value detectors.
    private HeaderKind KindOf(string name)
    {
        if (_headerKinds.TryGet(name, out var kind))
        {
            return kind;
        }

        kind = IsSensitiveHeader(name) ? HeaderKind.Sensitive
            : _pii != PiiMode.Keep && !_keepHeaders.Contains(name) && _names.IsPii(name.AsSpan()) ? HeaderKind.Pii
            : IsUrlHeader(name) ? HeaderKind.Url
            : HeaderKind.Values;
        _headerKinds.Set(name, kind);
        return kind;
    }

    private enum HeaderKind : byte
    {
        Values,
        Sensitive,
        Pii,
        Url,
    }

    // Headers that carry a URL whose query string can hold the same secrets as the request's own.
    private static bool IsUrlHeader(string name) =>
        name.Equals(":path", StringComparison.Ordinal) || name.Equals("referer", StringComparison.OrdinalIgnoreCase)
        || name.Equals("location", StringComparison.OrdinalIgnoreCase) || name.Equals("content-location", StringComparison.OrdinalIgnoreCase);

    private string RedactUrl(string url, ref int count)
    {
        var question = url.IndexOf('?', StringComparison.Ordinal);
        var path = RedactSpan(url.AsSpan(0, question), Scan.All, ref count);
        var original = url[(question + 1)..];
        var query = RedactPairs(original, plusIsSpace: false, ref count);
        return path is null && ReferenceEquals(query, original)
            ? url
            : string.Concat(path ?? url[..question], "?", query);
    }

    /// <summary>Runs the value detectors over a short string (a header or a decoded field value).</summary>
    private string? RedactSpan(ReadOnlySpan<char> value, Scan scan, ref int count)
    {
        byte[]? rented = null;
        var maxBytes = Encoding.UTF8.GetMaxByteCount(value.Length);
        var utf8 = maxBytes <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        try
        {
            var length = Encoding.UTF8.GetBytes(value, utf8);
            var bytes = utf8[..length];

            // The same pre-scan as bodies, less the field names: most header and field values have nothing to look at.
            scan &= PreScan(bytes, names: false) & ~Scan.Names;
            if (scan == Scan.None)
            {
                return null;
            }

            var splicer = new Splicer(bytes);
            try
            {
                ScanValues(ref splicer, bytes, 0, length, scan, ref count);
                var rewritten = splicer.Finish();
                return rewritten is null ? null : Encoding.UTF8.GetString(rewritten);
            }
            finally
            {
                splicer.Release();
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The replacement of a whole value under a personal-data name (digits alone are hashed when it has any).</summary>
    private string PiiFieldReplacement(string value)
    {
        if (_pii != PiiMode.Hash)
        {
            return MaskValue;
        }

        Span<byte> scratch = stackalloc byte[ReplacementMaxBytes];
        var bytes = Encoding.UTF8.GetBytes(value);
        return Encoding.ASCII.GetString(scratch[..PiiFieldReplacementOf(bytes, scratch)]);
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
                string? replacement = null;
                if (!rawValue.StartsWith(Marker, StringComparison.Ordinal))
                {
                    var name = UnescapeIfNeeded(rawName, plusIsSpace);
                    if (_names.IsSensitive(name))
                    {
                        replacement = _hash ? Replacement(UnescapeIfNeeded(rawValue, plusIsSpace).ToString()) : MaskValue;
                        count++;
                    }
                    else if (_pii != PiiMode.Keep && _names.IsPii(name))
                    {
                        replacement = PiiFieldReplacement(UnescapeIfNeeded(rawValue, plusIsSpace).ToString());
                        count++;
                    }
                    else
                    {
                        replacement = RedactPairValue(rawValue, plusIsSpace, ref count);
                    }
                }

                if (replacement is not null)
                {
                    output ??= new StringBuilder(input.Length + 32);
                    output.Append(input, copied, equals + 1 - copied);
                    output.Append(replacement);
                    copied = end;
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

    /// <summary>
    /// Runs the value detectors over one decoded query / form value; returns the re-encoded
    /// redacted value, or null when nothing was found. Markers stay readable (<c>[</c>, <c>]</c>
    /// and <c>:</c> are left unescaped, which every query parser accepts).
    /// </summary>
    private string? RedactPairValue(ReadOnlySpan<char> rawValue, bool plusIsSpace, ref int count)
    {
        var decoded = UnescapeIfNeeded(rawValue, plusIsSpace);
        var redacted = RedactSpan(decoded, Scan.All, ref count);
        if (redacted is null)
        {
            return null;
        }

        if (decoded.Length == rawValue.Length && decoded.SequenceEqual(rawValue))
        {
            return redacted;
        }

        return Uri.EscapeDataString(redacted).Replace("%5B", "[", StringComparison.Ordinal)
            .Replace("%5D", "]", StringComparison.Ordinal).Replace("%3A", ":", StringComparison.Ordinal);
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
        if (body.Content.IsEmpty || body.Kind == BodyKind.Empty || GrpcSpanAttributes.IsGrpc(body.ContentType))
        {
            // A gRPC body is framed protobuf: RedactGrpc rewrites it message by message.
            return body;
        }

        var mediaType = MediaType.Parse(body.ContentType, out _);
        byte[]? rewritten;
        if (mediaType.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase))
        {
            // Redacted even when sniffed as binary (a file part): the other parts are still text.
            rewritten = RedactMultipart(body.Content.Span, body.ContentType!, body.Truncated, ref count);
        }
        else if (body.Kind != BodyKind.Text)
        {
            return body;
        }
        else
        {
            rewritten = RedactContent(body.Content.Span, mediaType, body.Truncated, ref count);
        }

        return rewritten is null ? body : body with { Content = rewritten };
    }

    /// <summary>Redacts one text payload of the given media type; null when nothing changed.</summary>
    private byte[]? RedactContent(ReadOnlySpan<byte> content, ReadOnlySpan<char> mediaType, bool truncated, ref int count)
    {
        if (MediaType.IsForm(mediaType))
        {
            return RedactForm(content, ref count);
        }

        // Names in XML context count only where the body is read as XML (NameContext).
        var xml = IsXml(mediaType) || LooksLikeXml(content);
        var hits = new AnchorHits(collect: true);
        try
        {
            var scan = PreScan(content, ref hits, names: true, xml);
            if (scan == Scan.None)
            {
                return null;
            }

            if ((MediaType.IsJson(mediaType) || LooksLikeJson(content)) && TryRedactJson(content, truncated, scan, in hits, out var rewritten, ref count))
            {
                // Done: JSON names and values were handled token by token.
                return rewritten;
            }

            if (xml)
            {
                return RedactXml(content, scan, ref count);
            }

            return RedactText(content, scan, in hits, ref count);
        }
        finally
        {
            hits.Release();
        }
    }

    private byte[]? RedactForm(ReadOnlySpan<byte> content, ref int count)
    {
        var text = Encoding.UTF8.GetString(content);
        var redacted = RedactPairs(text, plusIsSpace: true, ref count);
        return ReferenceEquals(redacted, text) ? null : Encoding.UTF8.GetBytes(redacted);
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

        return HashTokenOf(value, scratch);
    }

    private int HashTokenOf(scoped ReadOnlySpan<byte> value, scoped Span<byte> scratch)
    {
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

    /// <summary>The replacement of a found value: secrets per mode, personal data per pii, each hashed normalised.</summary>
    private int ReplacementOf(scoped ReadOnlySpan<byte> value, FindingKind kind, scoped Span<byte> scratch)
    {
        switch (kind)
        {
            case FindingKind.Card:
                return ReplacementOf(DigitsOf(value, stackalloc byte[MaxCardDigits + 8]), scratch);
            case FindingKind.Email:
                if (_pii != PiiMode.Hash)
                {
                    MaskBytes.CopyTo(scratch);
                    return MaskBytes.Length;
                }

                // An address is case-insensitive in practice: the same mailbox joins however it is written.
                Span<byte> lower = value.Length <= StackLimit ? stackalloc byte[StackLimit] : new byte[value.Length];
                Ascii.ToLower(value, lower, out var written);
                return HashTokenOf(lower[..written], scratch);
            case FindingKind.Phone:
                return PiiFieldReplacementOf(value, scratch);
            default:
                return ReplacementOf(value, scratch);
        }
    }

    /// <summary>A personal-data value: mask, or the hash of its digits (of the value when it has none).</summary>
    private int PiiFieldReplacementOf(scoped ReadOnlySpan<byte> value, scoped Span<byte> scratch)
    {
        if (_pii != PiiMode.Hash)
        {
            MaskBytes.CopyTo(scratch);
            return MaskBytes.Length;
        }

        Span<byte> digits = value.Length <= StackLimit ? stackalloc byte[StackLimit] : new byte[value.Length];
        var only = DigitsOf(value, digits);
        return HashTokenOf(only.IsEmpty ? value : only, scratch);
    }

    private static ReadOnlySpan<byte> DigitsOf(ReadOnlySpan<byte> value, Span<byte> buffer)
    {
        var length = 0;
        foreach (var b in value)
        {
            if (IsDigit(b) && length < buffer.Length)
            {
                buffer[length++] = b;
            }
        }

        return buffer[..length];
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
