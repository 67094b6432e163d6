using System.Buffers;

namespace SpIstio.Core.Redaction;

/// <summary>What a found value is, which decides its replacement.</summary>
internal enum FindingKind : byte
{
    /// <summary>A credential (token, key, JWT): replaced per <c>redaction.mode</c>.</summary>
    Secret,

    /// <summary>A card number: replaced per <c>redaction.mode</c>, hashed over its digits alone.</summary>
    Card,

    /// <summary>An e-mail address: replaced per <c>redaction.pii</c>, hashed lower-cased.</summary>
    Email,

    /// <summary>A phone number: replaced per <c>redaction.pii</c>, hashed over its digits alone.</summary>
    Phone,
}

internal readonly record struct Finding(int Start, int End, FindingKind Kind);

/// <summary>
/// The values found in one region, collected from every detector and then put in order with
/// overlaps dropped (the earliest start wins, then the longest), because the splicer only
/// accepts replacements in increasing order. Pooled: a region with no finding allocates nothing.
/// </summary>
internal ref struct Findings
{
    private Finding[]? _items;
    private int _count;

    public readonly int Count => _count;

    public void Add(int start, int end, FindingKind kind)
    {
        if (end <= start)
        {
            return;
        }

        if (_items is null)
        {
            _items = ArrayPool<Finding>.Shared.Rent(16);
        }
        else if (_count == _items.Length)
        {
            var next = ArrayPool<Finding>.Shared.Rent(_items.Length * 2);
            _items.AsSpan(0, _count).CopyTo(next);
            ArrayPool<Finding>.Shared.Return(_items);
            _items = next;
        }

        _items[_count++] = new Finding(start, end, kind);
    }

    /// <summary>The findings sorted by start, without overlaps.</summary>
    public readonly ReadOnlySpan<Finding> Ordered()
    {
        if (_items is null)
        {
            return default;
        }

        var items = _items.AsSpan(0, _count);
        items.Sort(static (a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start) : b.End.CompareTo(a.End));
        var kept = 0;
        var reached = int.MinValue;
        for (var i = 0; i < items.Length; i++)
        {
            if (items[i].Start >= reached)
            {
                items[kept++] = items[i];
                reached = items[i].End;
            }
            else if (items[i].End > reached)
            {
                // A partial overlap (a bearer token that is also a JWT) widens the kept range.
                items[kept - 1] = items[kept - 1] with { End = items[i].End };
                reached = items[i].End;
            }
        }

        return items[..kept];
    }

    public void Release()
    {
        if (_items is not null)
        {
            ArrayPool<Finding>.Shared.Return(_items);
            _items = null;
            _count = 0;
        }
    }
}
