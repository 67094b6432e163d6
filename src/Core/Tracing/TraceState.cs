using System.Buffers;
using SpIstio.Core.Model;

namespace SpIstio.Core.Tracing;

/// <summary>
/// W3C <c>tracestate</c> handling (https://www.w3.org/TR/trace-context/#tracestate-header): read one
/// entry, parse all, and write a vendor's entries at the front while keeping every other vendor's
/// valid entries in order within the spec's limits.
/// </summary>
public static class TraceState
{
    /// <summary>The header name.</summary>
    public const string HeaderName = "tracestate";

    /// <summary>Most list members a tracestate may carry (§3.3.1.1).</summary>
    public const int MaxEntries = 32;

    /// <summary>Length up to which a vendor must propagate a tracestate (§3.3.1.5).</summary>
    public const int MaxLength = 512;

    /// <summary>Entries longer than this are dropped first when the value is too long (§3.3.1.5).</summary>
    public const int LongEntryThreshold = 128;

    private const int MaxKeyLength = 256;
    private const int MaxValueLength = 256;

    // 0x20-0x7e but ',' and '=': checked 16 characters at a time (every exchange validates its own
    // traceparent and session entries, and every entry that came in).
    private static readonly SearchValues<char> _valueChars =
        SearchValues.Create(" !\"#$%&'()*+-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    /// <summary>
    /// True when <paramref name="key"/> follows the key grammar: a simple key
    /// (<c>lcalpha 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" )</c>) or a multi-tenant key
    /// <c>tenant@system</c> (tenant: lcalpha or digit then up to 240 of those chars; system: lcalpha
    /// then up to 13).
    /// </summary>
    public static bool IsValidKey(ReadOnlySpan<char> key)
    {
        if (key.IsEmpty || key.Length > MaxKeyLength)
        {
            return false;
        }

        var at = key.IndexOf('@');
        if (at < 0)
        {
            return IsLcAlpha(key[0]) && AllKeyChars(key[1..]);
        }

        var tenant = key[..at];
        var system = key[(at + 1)..];
        return tenant.Length is >= 1 and <= 241
            && (IsLcAlpha(tenant[0]) || char.IsAsciiDigit(tenant[0]))
            && AllKeyChars(tenant[1..])
            && system.Length is >= 1 and <= 14
            && IsLcAlpha(system[0])
            && AllKeyChars(system[1..]);
    }

    /// <summary>
    /// True when <paramref name="value"/> follows the value grammar: 1 to 256 characters in
    /// 0x20–0x7e except ',' and '=', the last one not a space.
    /// </summary>
    public static bool IsValidValue(ReadOnlySpan<char> value)
    {
        if (value.IsEmpty || value.Length > MaxValueLength || value[^1] == ' ')
        {
            return false;
        }

        return !value.ContainsAnyExcept(_valueChars);
    }

    /// <summary>
    /// The value of the first valid entry named <paramref name="key"/>, or null. Only the matching
    /// value is allocated.
    /// </summary>
    public static string? GetValue(string? traceState, string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (string.IsNullOrEmpty(traceState))
        {
            return null;
        }

        var position = 0;
        while (TryReadMember(traceState, ref position, out _, out var memberKey, out var memberValue))
        {
            if (memberKey.SequenceEqual(key) && IsValidKey(memberKey) && IsValidValue(memberValue))
            {
                return memberValue.ToString();
            }
        }

        return null;
    }

    /// <summary>
    /// Every valid entry in order; invalid members and later duplicates of a key are dropped.
    /// For diagnostics and tests: the hot path uses <see cref="GetValue"/> and <see cref="SetEntries"/>.
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Parse(string? traceState)
    {
        var entries = new List<KeyValuePair<string, string>>();
        if (string.IsNullOrEmpty(traceState))
        {
            return entries;
        }

        var position = 0;
        while (TryReadMember(traceState, ref position, out _, out var key, out var value))
        {
            if (!IsValidKey(key) || !IsValidValue(value) || ContainsKey(entries, key))
            {
                continue;
            }

            entries.Add(new(key.ToString(), value.ToString()));
        }

        return entries;
    }

    /// <summary>
    /// The combined value of every <c>tracestate</c> field in <paramref name="headers"/>: the spec
    /// lets a list be split over several fields (§3.3.1.1, per RFC 9110 §5.3), so they are joined
    /// with commas. Null when there is none.
    /// </summary>
    public static string? Combined(HeaderList headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        string? combined = null;
        for (var i = 0; i < headers.Count; i++)
        {
            var (name, value) = headers[i];
            if (string.Equals(name, HeaderName, StringComparison.OrdinalIgnoreCase))
            {
                combined = combined is null ? value : string.Concat(combined, ",", value);
            }
        }

        return combined;
    }

    /// <summary>
    /// A new tracestate with <paramref name="entries"/> at the front, in their order (the spec
    /// moves updated keys to the left, §3.5), followed by the other valid entries of
    /// <paramref name="traceState"/> in their order. Entries with the same keys are replaced,
    /// invalid members and duplicate keys dropped, and the result cut to 32 entries and 512
    /// characters by dropping old entries from the right, those over 128 characters first
    /// (§3.3.1.5). The new entries themselves are always kept.
    /// </summary>
    /// <param name="traceState">The incoming value, or null.</param>
    /// <param name="entries">The entries to set, leftmost first; their keys must be distinct.</param>
    /// <exception cref="ArgumentException">A new entry is not a valid key or value, or there are more than 32.</exception>
    public static string SetEntries(string? traceState, ReadOnlySpan<KeyValuePair<string, string>> entries)
    {
        if (entries.Length > MaxEntries)
        {
            throw new ArgumentException($"At most {MaxEntries} tracestate entries can be set.", nameof(entries));
        }

        var ownLength = 0;
        foreach (var entry in entries)
        {
            ValidateEntry(entry.Key, entry.Value, nameof(entries));
            ownLength += (ownLength == 0 ? 0 : 1) + entry.Key.Length + 1 + entry.Value.Length;
        }

        // Keep candidates as ranges into the input: no per-entry strings are allocated.
        Span<Member> kept = stackalloc Member[MaxEntries];
        var keptCount = 0;
        var source = traceState.AsSpan();
        var position = 0;
        while (keptCount < MaxEntries - entries.Length && TryReadMember(source, ref position, out var start, out var key, out var value))
        {
            if (IsOwnKey(entries, key) || !IsValidKey(key) || !IsValidValue(value)
                || ContainsKey(source, kept[..keptCount], key))
            {
                continue;
            }

            kept[keptCount++] = new Member(
                Start: start,
                KeyLength: key.Length,
                Length: key.Length + 1 + value.Length);
        }

        var total = ownLength;
        for (var i = 0; i < keptCount; i++)
        {
            total += (total == 0 ? 0 : 1) + kept[i].Length;
        }

        while (total > MaxLength && keptCount > 0)
        {
            var drop = RightmostLongMember(kept[..keptCount]);
            total -= kept[drop].Length + (total == kept[drop].Length ? 0 : 1);
            kept[(drop + 1)..keptCount].CopyTo(kept[drop..]);
            keptCount--;
        }

        if (total == 0)
        {
            return "";
        }

        var buffer = ArrayPool<char>.Shared.Rent(total);
        try
        {
            var written = 0;
            foreach (var entry in entries)
            {
                AppendSeparator(buffer, ref written);
                Append(buffer, ref written, entry.Key);
                buffer[written++] = '=';
                Append(buffer, ref written, entry.Value);
            }

            for (var i = 0; i < keptCount; i++)
            {
                AppendSeparator(buffer, ref written);
                Append(buffer, ref written, source.Slice(kept[i].Start, kept[i].Length));
            }

            return new string(buffer, 0, written);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Reads the next list member of <paramref name="source"/> from <paramref name="position"/>,
    /// skipping empty members and the optional whitespace around members (both allowed by the list
    /// grammar). A member without '=' comes back with an empty key, which no validation accepts.
    /// </summary>
    private static bool TryReadMember(
        ReadOnlySpan<char> source,
        ref int position,
        out int start,
        out ReadOnlySpan<char> key,
        out ReadOnlySpan<char> value)
    {
        while (position < source.Length)
        {
            var comma = source[position..].IndexOf(',');
            var end = comma < 0 ? source.Length : position + comma;
            start = position;
            position = end + 1;
            while (start < end && source[start] is ' ' or '\t')
            {
                start++;
            }

            while (end > start && source[end - 1] is ' ' or '\t')
            {
                end--;
            }

            if (start == end)
            {
                continue;
            }

            var member = source[start..end];
            var eq = member.IndexOf('=');
            key = eq < 0 ? [] : member[..eq];
            value = eq < 0 ? member : member[(eq + 1)..];
            return true;
        }

        start = 0;
        key = [];
        value = [];
        return false;
    }

    private static int RightmostLongMember(ReadOnlySpan<Member> members)
    {
        for (var i = members.Length - 1; i >= 0; i--)
        {
            if (members[i].Length > LongEntryThreshold)
            {
                return i;
            }
        }

        return members.Length - 1;
    }

    private static bool ContainsKey(ReadOnlySpan<char> source, ReadOnlySpan<Member> members, ReadOnlySpan<char> key)
    {
        foreach (var member in members)
        {
            if (source.Slice(member.Start, member.KeyLength).SequenceEqual(key))
            {
                return true;
            }
        }

        return false;
    }

    private static bool ContainsKey(List<KeyValuePair<string, string>> entries, ReadOnlySpan<char> key)
    {
        foreach (var entry in entries)
        {
            if (key.SequenceEqual(entry.Key))
            {
                return true;
            }
        }

        return false;
    }

    private static void ValidateEntry(string? key, string? value, string paramName)
    {
        if (key is null || !IsValidKey(key))
        {
            throw new ArgumentException($"'{key}' is not a valid tracestate key.", paramName);
        }

        if (value is null || !IsValidValue(value))
        {
            throw new ArgumentException($"The value of '{key}' is not a valid tracestate value.", paramName);
        }
    }

    private static void AppendSeparator(char[] buffer, ref int written)
    {
        if (written > 0)
        {
            buffer[written++] = ',';
        }
    }

    private static bool IsOwnKey(ReadOnlySpan<KeyValuePair<string, string>> entries, ReadOnlySpan<char> key)
    {
        foreach (var entry in entries)
        {
            if (key.SequenceEqual(entry.Key))
            {
                return true;
            }
        }

        return false;
    }

    private static void Append(char[] buffer, ref int written, ReadOnlySpan<char> text)
    {
        text.CopyTo(buffer.AsSpan(written));
        written += text.Length;
    }

    private static bool IsLcAlpha(char c) => c is >= 'a' and <= 'z';

    private static bool AllKeyChars(ReadOnlySpan<char> chars)
    {
        foreach (var c in chars)
        {
            if (!(IsLcAlpha(c) || char.IsAsciiDigit(c) || c is '_' or '-' or '*' or '/'))
            {
                return false;
            }
        }

        return true;
    }

    private readonly record struct Member(int Start, int KeyLength, int Length);
}
