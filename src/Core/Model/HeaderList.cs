using System.Collections;
using System.Collections.Frozen;
using System.Runtime.CompilerServices;
using System.Text;
using SpIstio.Core.Tracing;

namespace SpIstio.Core.Model;

/// <summary>
/// HTTP header fields in arrival order. Names are stored lower-case (as HTTP/2 and Envoy carry
/// them); a name may repeat. Lookups are case-insensitive.
/// </summary>
public sealed class HeaderList : IReadOnlyList<KeyValuePair<string, string>>
{
    /// <summary>
    /// The lower-case names of the fields HTTP clients, servers and proxies send most. Front ends
    /// that turn header bytes or canonical spellings ("Content-Type") into names hand these shared
    /// instances out instead of allocating a copy of most names on every exchange (issue 13).
    /// </summary>
    public static IReadOnlyList<string> CommonNames { get; } =
    [
        "accept", "accept-charset", "accept-encoding", "accept-language", "accept-ranges", "access-control-allow-credentials",
        "access-control-allow-headers", "access-control-allow-methods", "access-control-allow-origin", "access-control-expose-headers",
        "access-control-max-age", "access-control-request-headers", "access-control-request-method", "age", "allow", "alt-svc",
        "authorization", "cache-control", "connection", "content-disposition", "content-encoding", "content-language",
        "content-length", "content-location", "content-range", "content-security-policy", "content-type", "cookie", "date",
        "etag", "expect", "expires", "forwarded", "from", "grpc-encoding", "grpc-message", "grpc-status", "grpc-timeout", "host",
        "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "keep-alive", "last-modified",
        "link", "location", "max-forwards", "origin", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
        "request-id", "retry-after", "server", "set-cookie", "strict-transport-security", "te", "trailer", "transfer-encoding",
        "upgrade", "upgrade-insecure-requests", "user-agent", "vary", "via", "warning", "www-authenticate", "x-content-type-options",
        "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-frame-options", "x-powered-by", "x-request-id", "x-xss-protection",
        "x-real-ip", "grpc-accept-encoding", TraceParent.HeaderName, TraceState.HeaderName, "baggage",
    ];

    // CommonNames looked up ignoring case, which gives back the lower-case instance.
    private static readonly FrozenSet<string> _knownNames = CommonNames.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    // Known names lower-cased before, found again by instance: the capture proxy's front ends hand
    // the same name objects over on every exchange (Kestrel's and HttpClient's known header names
    // are shared strings in canonical case, "Content-Type"), and a reference compared in a slot
    // picked by the object's identity costs a fraction of the ignore-case lookup above, which ran
    // for nearly every field of a proxied exchange (issue 13). Fixed size: a slot holds the last
    // name that hashed to it, and a name not held is looked up again.
    private const int LoweredSlots = 256;
    private static readonly LoweredName?[] _lowered = new LoweredName?[LoweredSlots];

    // The fields in [0, _count): the list's own array rather than a List<T> around one, so an
    // exchange's two heads are two objects (and their arrays) instead of four, and a lookup walks
    // the array without the List's indirection and version checks (issue 13: the capture proxy
    // makes and searches two heads per exchange).
    private KeyValuePair<string, string>[] _items = [];
    private int _count;

    /// <inheritdoc />
    public int Count => _count;

    /// <inheritdoc />
    public KeyValuePair<string, string> this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_count, nameof(index));
            return _items[index];
        }
    }

    /// <summary>The fields as a span, for encoders that walk them several times (not to be held across a change of the list).</summary>
    internal ReadOnlySpan<KeyValuePair<string, string>> AsSpan() => _items.AsSpan(0, _count);

    /// <summary>Makes room for <paramref name="count"/> fields in all, so a head copied field by field grows its storage once.</summary>
    public void EnsureCapacity(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > _items.Length)
        {
            Array.Resize(ref _items, count);
        }
    }

    /// <summary>Appends a field, lower-casing its name.</summary>
    public void Add(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        if (_count == _items.Length)
        {
            // Doubling from 4, as List<T> grew.
            Array.Resize(ref _items, Math.Max(4, _items.Length * 2));
        }

        _items[_count++] = new(ToLowerAscii(name), value);
    }

    /// <summary>The first value of <paramref name="name"/>, or null.</summary>
    public string? Get(string name)
    {
        foreach (var item in AsSpan())
        {
            if (string.Equals(item.Key, name, StringComparison.OrdinalIgnoreCase))
            {
                return item.Value;
            }
        }

        return null;
    }

    /// <summary>True when at least one field is named <paramref name="name"/>.</summary>
    public bool Contains(string name) => Get(name) is not null;

    /// <summary>Replaces every field named <paramref name="name"/> with one field.</summary>
    public void Set(string name, string value)
    {
        Remove(name);
        Add(name, value);
    }

    /// <summary>Removes every field named <paramref name="name"/>; returns how many were removed.</summary>
    public int Remove(string name)
    {
        var kept = 0;
        for (var i = 0; i < _count; i++)
        {
            if (!string.Equals(_items[i].Key, name, StringComparison.OrdinalIgnoreCase))
            {
                _items[kept++] = _items[i];
            }
        }

        var removed = _count - kept;
        // The freed slots let go of their strings, as List<T>.RemoveAll did.
        _items.AsSpan(kept, removed).Clear();
        _count = kept;
        return removed;
    }

    /// <summary>Replaces the value of the field at <paramref name="index"/>.</summary>
    public void SetValueAt(int index, string value)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_count, nameof(index));
        _items[index] = new(_items[index].Key, value);
    }

    /// <summary>Removes every field.</summary>
    public void Clear()
    {
        _items.AsSpan(0, _count).Clear();
        _count = 0;
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, string>> GetEnumerator()
    {
        for (var i = 0; i < _count; i++)
        {
            yield return _items[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private static string ToLowerAscii(string name)
    {
        foreach (var c in name)
        {
            if (c is >= 'A' and <= 'Z')
            {
                return Lowered(name);
            }
        }

        return name;
    }

    private static string Lowered(string name)
    {
        var slot = RuntimeHelpers.GetHashCode(name) & (LoweredSlots - 1);
        if (Volatile.Read(ref _lowered[slot]) is { } seen && ReferenceEquals(seen.Name, name))
        {
            return seen.Lower;
        }

        // ASCII only: ignoring case, some non-ASCII letters match ASCII ones ('K' and the Kelvin sign).
        if (Ascii.IsValid(name) && _knownNames.TryGetValue(name, out var lower))
        {
            // Only known names are held: a name the client made up is often a new string each time.
            Volatile.Write(ref _lowered[slot], new LoweredName(name, lower));
            return lower;
        }

        return name.ToLowerInvariant();
    }

    private sealed record LoweredName(string Name, string Lower);
}
