using System.Buffers;

namespace SpIstio.Core.Redaction;

/// <summary>
/// Decides whether a JSON / form / query field name (or a header name) names a secret.
/// </summary>
/// <remarks>
/// <para>
/// A name is normalised first: ASCII lower-cased, with <c>-</c>, <c>_</c>, <c>.</c> and spaces
/// removed, so <c>accessToken</c>, <c>access_token</c> and <c>X-Access-Token</c> are all
/// <c>accesstoken</c>. The built-in rules then match the normalised name:
/// </para>
/// <list type="bullet">
/// <item>contains <c>password</c>, <c>passwd</c>, <c>passphrase</c>, <c>secret</c>, <c>apikey</c>,
/// <c>authorization</c>, <c>privatekey</c>, <c>cardnumber</c>, <c>ccnumber</c>, <c>creditcard</c>,
/// <c>cvv</c>, <c>cvc</c>, <c>socialsecuritynumber</c>;</item>
/// <item>ends with <c>token</c> (<c>accessToken</c>, <c>refresh_token</c>, <c>x-csrf-token</c>) —
/// not "contains", so <c>tokenizer</c>, <c>token_type</c> and LLM usage counts such as
/// <c>max_tokens</c> / <c>total_tokens</c> stay readable;</item>
/// <item>ends with <c>ssn</c> (contains would hit <c>className</c>);</item>
/// <item>exactly <c>pwd</c>, <c>auth</c>, <c>pan</c> (so <c>author</c> and <c>company</c> stay readable).</item>
/// </list>
/// <para>
/// Configured extra names match the normalised name exactly (predictable: adding <c>pin</c> does
/// not hide <c>shipping</c>). Configured keep names match exactly too and win over everything.
/// </para>
/// </remarks>
internal sealed class SensitiveNames
{
    // Field names are short: normalising into a stack buffer of this many chars covers nearly all.
    private const int StackLimit = 64;

    // The shortest built-in rule ("cvv", "ssn", "pwd", "pan"): a shorter name matches only an extra.
    private const int MinBuiltInLength = 3;

    // One vectorised multi-string search instead of a scan per word: JSON bodies ask this for
    // every property name, so it is the redactor's hottest call.
    private static readonly SearchValues<string> _contains = SearchValues.Create(
        ["password", "passwd", "passphrase", "secret", "apikey", "authorization", "privatekey",
         "cardnumber", "ccnumber", "creditcard", "cvv", "cvc", "socialsecuritynumber"],
        StringComparison.Ordinal);

    private static readonly string[] _endsWith = ["token", "ssn"];

    private static readonly string[] _exact = ["pwd", "auth", "pan"];

    // Personal-data names: any value under them is a phone number whatever its shape.
    private static readonly SearchValues<string> _piiContains = SearchValues.Create(
        ["phone", "mobile", "msisdn"], StringComparison.Ordinal);

    private static readonly string[] _piiExact = ["tel", "cell", "fax"];

    private readonly string[] _extra;
    private readonly string[] _keep;
    private readonly string[] _piiExtra;

    public SensitiveNames(IEnumerable<string> extra, IEnumerable<string> keep, IEnumerable<string> piiExtra)
    {
        _extra = extra.Select(Normalise).Where(n => n.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        _keep = keep.Select(Normalise).Where(n => n.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        _piiExtra = piiExtra.Select(Normalise).Where(n => n.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
    }

    /// <summary>
    /// Raw (not normalised) pieces that every name matched by a rule contains, lower-case, for
    /// the redactor's pre-scan: a body that holds none of them has no sensitive field name
    /// (unless a separator splits one of these pieces, as in <c>pa-ss</c>).
    /// </summary>
    public IEnumerable<string> Anchors()
    {
        string[] builtIn =
        [
            "pass", "secret", "key", "auth", "card", "ccn", "cc_", "cc-", "cc.", "cc ", "cvv", "cvc", "social",
            "token", "ssn", "pwd", "pan", "phone", "mobile", "msisdn", "tel", "cell", "fax",
        ];

        // A configured name is matched normalised; its pieces between separators are what the body holds.
        var configured = _extra.Concat(_piiExtra).Select(n => n.Length > 3 ? n[..3] : n);
        return builtIn.Concat(configured).Distinct(StringComparer.Ordinal);
    }

    /// <summary>True when the (UTF-16) name names personal data (phone/mobile/tel or a configured pii field).</summary>
    public bool IsPii(ReadOnlySpan<char> name)
    {
        Span<char> buffer = stackalloc char[StackLimit];
        if (name.Length > StackLimit)
        {
            return false;
        }

        var length = 0;
        foreach (var c in name)
        {
            length = Put(buffer, length, c < 0x80 ? c : (char)0xFF);
        }

        return MatchesPii(buffer[..length]);
    }

    /// <summary>True when the (UTF-8) name names personal data.</summary>
    public bool IsPii(ReadOnlySpan<byte> name)
    {
        Span<char> buffer = stackalloc char[StackLimit];
        if (name.Length > StackLimit)
        {
            return false;
        }

        var length = 0;
        foreach (var b in name)
        {
            length = Put(buffer, length, (char)b);
        }

        return MatchesPii(buffer[..length]);
    }

    private bool MatchesPii(ReadOnlySpan<char> normalised)
    {
        if (normalised.IsEmpty)
        {
            return false;
        }

        foreach (var keep in _keep)
        {
            if (normalised.SequenceEqual(keep))
            {
                return false;
            }
        }

        foreach (var extra in _piiExtra)
        {
            if (normalised.SequenceEqual(extra))
            {
                return true;
            }
        }

        foreach (var exact in _piiExact)
        {
            if (normalised.SequenceEqual(exact))
            {
                return true;
            }
        }

        return normalised.ContainsAny(_piiContains);
    }

    /// <summary>True when the (UTF-16) name is sensitive.</summary>
    public bool IsSensitive(ReadOnlySpan<char> name)
    {
        char[]? rented = null;
        var buffer = name.Length <= StackLimit ? stackalloc char[StackLimit] : (rented = ArrayPool<char>.Shared.Rent(name.Length));
        try
        {
            var length = 0;
            foreach (var c in name)
            {
                // Non-ASCII characters cannot be part of an ASCII rule; a placeholder keeps them
                // from joining the letters around them into a false match.
                length = Put(buffer, length, c < 0x80 ? c : (char)0xFF);
            }

            return Matches(buffer[..length]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    /// <summary>True when the (UTF-8) name is sensitive.</summary>
    public bool IsSensitive(ReadOnlySpan<byte> name)
    {
        char[]? rented = null;
        var buffer = name.Length <= StackLimit ? stackalloc char[StackLimit] : (rented = ArrayPool<char>.Shared.Rent(name.Length));
        try
        {
            var length = 0;
            foreach (var b in name)
            {
                // Each byte stands for itself (a non-ASCII byte can match no rule), as the UTF-8
                // name was compared byte by byte before.
                length = Put(buffer, length, (char)b);
            }

            return Matches(buffer[..length]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    private static int Put(Span<char> buffer, int length, char c)
    {
        if (c is '-' or '_' or '.' or ' ')
        {
            return length;
        }

        buffer[length] = c is >= 'A' and <= 'Z' ? (char)(c | 0x20) : c;
        return length + 1;
    }

    private bool Matches(ReadOnlySpan<char> normalised)
    {
        if (normalised.IsEmpty)
        {
            return false;
        }

        foreach (var keep in _keep)
        {
            if (normalised.SequenceEqual(keep))
            {
                return false;
            }
        }

        foreach (var extra in _extra)
        {
            if (normalised.SequenceEqual(extra))
            {
                return true;
            }
        }

        if (normalised.Length < MinBuiltInLength)
        {
            return false;
        }

        foreach (var exact in _exact)
        {
            if (normalised.SequenceEqual(exact))
            {
                return true;
            }
        }

        foreach (var suffix in _endsWith)
        {
            if (normalised.EndsWith(suffix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return normalised.ContainsAny(_contains);
    }

    private static string Normalise(string name)
    {
        var buffer = new char[name.Length];
        var length = 0;
        foreach (var c in name)
        {
            length = Put(buffer, length, c < 0x80 ? c : (char)0xFF);
        }

        return new string(buffer, 0, length);
    }
}
