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
    private const int StackLimit = 256;

    private static readonly byte[][] _contains =
    [
        "password"u8.ToArray(), "passwd"u8.ToArray(), "passphrase"u8.ToArray(), "secret"u8.ToArray(),
        "apikey"u8.ToArray(), "authorization"u8.ToArray(), "privatekey"u8.ToArray(),
        "cardnumber"u8.ToArray(), "ccnumber"u8.ToArray(), "creditcard"u8.ToArray(),
        "cvv"u8.ToArray(), "cvc"u8.ToArray(), "socialsecuritynumber"u8.ToArray(),
    ];

    private static readonly byte[][] _endsWith = ["token"u8.ToArray(), "ssn"u8.ToArray()];

    private static readonly byte[][] _exact = ["pwd"u8.ToArray(), "auth"u8.ToArray(), "pan"u8.ToArray()];

    private readonly byte[][] _extra;
    private readonly byte[][] _keep;

    public SensitiveNames(IEnumerable<string> extra, IEnumerable<string> keep)
    {
        _extra = extra.Select(Normalise).Where(n => n.Length > 0).Distinct(ByteArrayComparer.Instance).ToArray();
        _keep = keep.Select(Normalise).Where(n => n.Length > 0).Distinct(ByteArrayComparer.Instance).ToArray();
    }

    /// <summary>True when the (UTF-16) name is sensitive.</summary>
    public bool IsSensitive(ReadOnlySpan<char> name)
    {
        byte[]? rented = null;
        var buffer = name.Length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(name.Length));
        try
        {
            var length = 0;
            foreach (var c in name)
            {
                // Non-ASCII characters cannot be part of an ASCII rule; a placeholder keeps them
                // from joining the letters around them into a false match.
                length = Put(buffer, length, c < 0x80 ? (byte)c : (byte)0xFF);
            }

            return Matches(buffer[..length]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>True when the (UTF-8) name is sensitive.</summary>
    public bool IsSensitive(ReadOnlySpan<byte> name)
    {
        byte[]? rented = null;
        var buffer = name.Length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(name.Length));
        try
        {
            var length = 0;
            foreach (var b in name)
            {
                length = Put(buffer, length, b);
            }

            return Matches(buffer[..length]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static int Put(Span<byte> buffer, int length, byte b)
    {
        if (b is (byte)'-' or (byte)'_' or (byte)'.' or (byte)' ')
        {
            return length;
        }

        buffer[length] = b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b | 0x20) : b;
        return length + 1;
    }

    private bool Matches(ReadOnlySpan<byte> normalised)
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

        foreach (var exact in _exact)
        {
            if (normalised.SequenceEqual(exact))
            {
                return true;
            }
        }

        foreach (var suffix in _endsWith)
        {
            if (normalised.EndsWith(suffix))
            {
                return true;
            }
        }

        foreach (var part in _contains)
        {
            if (normalised.IndexOf(part) >= 0)
            {
                return true;
            }
        }

        return false;
    }

    private static byte[] Normalise(string name)
    {
        var buffer = new byte[name.Length];
        var length = 0;
        foreach (var c in name)
        {
            length = Put(buffer, length, c < 0x80 ? (byte)c : (byte)0xFF);
        }

        return buffer[..length];
    }

    private sealed class ByteArrayComparer : IEqualityComparer<byte[]>
    {
        public static readonly ByteArrayComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj)
        {
            var hash = new HashCode();
            hash.AddBytes(obj);
            return hash.ToHashCode();
        }
    }
}
