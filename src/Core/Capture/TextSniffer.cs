using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Unicode;

namespace SpIstio.Core.Capture;

/// <summary>Decides whether bytes are UTF-8 text.</summary>
internal static class TextSniffer
{
    // C0 controls that do not occur in text (everything below space except tab, LF, FF, CR) and DEL.
    private static readonly SearchValues<byte> _controls = SearchValues.Create(
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127]);

    /// <summary>utf-8 and us-ascii (a subset of UTF-8) need no transcoding.</summary>
    public static bool IsUtf8Compatible(ReadOnlySpan<char> charset) =>
        charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
        || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase)
        || charset.Equals("us-ascii", StringComparison.OrdinalIgnoreCase)
        || charset.Equals("ascii", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The length of the valid UTF-8 prefix of <paramref name="data"/>, or -1 when it is not valid.
    /// With <paramref name="allowCutTail"/> a multi-byte character cut at the very end (by the
    /// capture limit) is dropped instead of making the whole body invalid.
    /// </summary>
    public static int ValidUtf8Length(ReadOnlySpan<byte> data, bool allowCutTail)
    {
        var length = data.Length;
        if (allowCutTail)
        {
            length -= IncompleteTailLength(data);
        }

        return Utf8.IsValid(data[..length]) ? length : -1;
    }

    /// <summary>No NUL and at most one stray control character per 32 bytes.</summary>
    public static bool LooksLikeText(ReadOnlySpan<byte> data)
    {
        if (data.Contains((byte)0))
        {
            return false;
        }

        var allowed = data.Length / 32;
        var controls = 0;
        var rest = data;
        int index;
        while ((index = rest.IndexOfAny(_controls)) >= 0)
        {
            if (++controls > allowed)
            {
                return false;
            }

            rest = rest[(index + 1)..];
        }

        return true;
    }

    // Bytes at the end that start a UTF-8 sequence without completing it (0 to 3).
    private static int IncompleteTailLength(ReadOnlySpan<byte> data)
    {
        for (var back = 1; back <= 3 && back <= data.Length; back++)
        {
            var b = data[^back];
            if ((b & 0xC0) == 0x80)
            {
                continue; // continuation byte: keep looking for the lead
            }

            var needed = b switch
            {
                >= 0xF0 and <= 0xF4 => 4,
                >= 0xE0 => 3,
                >= 0xC2 => 2,
                _ => 1,
            };
            return needed > back && b >= 0xC2 && b <= 0xF4 ? back : 0;
        }

        return 0;
    }
}

/// <summary>Maps a charset name to an <see cref="Encoding"/>, caching the answer.</summary>
internal static class CharsetResolver
{
    // Bounded so a stream of made-up charset names cannot grow it without limit.
    private const int MaxCached = 64;
    private static readonly ConcurrentDictionary<string, Encoding?> _cache = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The encoding for <paramref name="charset"/>, or null when .NET knows no such charset.</summary>
    public static Encoding? Resolve(ReadOnlySpan<char> charset)
    {
        var lookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        if (lookup.TryGetValue(charset, out var cached))
        {
            return cached;
        }

        var name = charset.ToString();
        var encoding = Find(name);
        if (_cache.Count < MaxCached)
        {
            _cache.TryAdd(name, encoding);
        }

        return encoding;
    }

    private static Encoding? Find(string name)
    {
        try
        {
            return Encoding.GetEncoding(name);
        }
        catch (ArgumentException)
        {
            // windows-1252, shift_jis and friends live in the code-pages provider; asking it
            // directly avoids registering it process-wide behind the host's back.
            return CodePagesEncodingProvider.Instance.GetEncoding(name);
        }
    }
}
