using System.Runtime.CompilerServices;

namespace SpIstio.Core.Redaction;

/// <summary>
/// What the redactor concluded about a string it has seen (a header name's kind, a header value
/// proven clean), so the next exchange carrying the same string skips the work: most headers repeat
/// from one exchange to the next (issue 13: header redaction was ~4 % of the capture proxy's CPU at
/// 1 KiB, mostly classifying the same names and scanning the same values).
/// </summary>
/// <remarks>
/// <para>Bounded whatever the traffic: a fixed table of <c>slots</c> entries, each holding one key
/// of at most <c>maxKeyChars</c> characters (longer keys are never kept), so a caller sending a new
/// string on every request can make it hold no more than slots × maxKeyChars characters, and only
/// displaces entries (a miss costs what the cache saves, nothing more). Slots are chosen by the
/// process's randomised string hash, so a caller cannot aim strings at the entries of others. A hit
/// needs the whole key equal (ordinal), never the hash alone.</para>
/// <para>Two-way: a key may sit in its slot or the slot's pair, so two hot strings that hash alike
/// do not evict each other; a new key goes first, the one it displaces moves to the pair.</para>
/// <para>Found by instance first: an entry set for a string is also held in a second table of as
/// many slots, picked by the string object's identity, where a lookup of that same instance finds it
/// by reference, without hashing its characters. The capture proxy's header names are shared
/// instances (Kestrel's and HttpClient's known names, lower-cased through <see cref="Model.HeaderList"/>), and
/// so are many values (HttpClient's known values, a value Kestrel reuses while a connection repeats
/// it); a copy with the same characters still hits through the hash. The bound doubles: at most
/// 2 × slots keys of at most <c>maxKeyChars</c> characters. A verdict must follow from the key's
/// characters alone (the redactor's do, under the rules it was built with): an instance may go on
/// finding the verdict first set for it.</para>
/// <para>Thread-safe without locks: entries are immutable and replaced whole; a race loses an
/// entry at worst (the next lookup recomputes it).</para>
/// </remarks>
internal sealed class StringVerdictCache<T>
{
    private readonly Entry?[] _slots;
    private readonly Entry?[] _byInstance;
    private readonly int _mask;
    private readonly int _maxKeyChars;

    /// <param name="slots">Entries held at most; a power of two, at least 2.</param>
    /// <param name="maxKeyChars">Longest key kept.</param>
    public StringVerdictCache(int slots, int maxKeyChars)
    {
        if (slots < 2 || (slots & (slots - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(slots), slots, "A power of two, at least 2.");
        }

        _slots = new Entry?[slots];
        _byInstance = new Entry?[slots];
        _mask = slots - 1;
        _maxKeyChars = maxKeyChars;
    }

    /// <summary>Entries held now (tests).</summary>
    internal int Count => _slots.Concat(_byInstance).Count(e => e is not null);

    /// <summary>Characters of the keys held now (tests).</summary>
    internal long KeyChars => _slots.Concat(_byInstance).Sum(e => (long)(e?.Key.Length ?? 0));

    /// <summary>The verdict recorded for <paramref name="key"/>, if it is held.</summary>
    public bool TryGet(string key, out T verdict)
    {
        if (key.Length <= _maxKeyChars)
        {
            if (Volatile.Read(ref _byInstance[RuntimeHelpers.GetHashCode(key) & _mask]) is { } seen && ReferenceEquals(seen.Key, key))
            {
                verdict = seen.Verdict;
                return true;
            }

            var hash = key.GetHashCode(StringComparison.Ordinal);
            var index = hash & _mask;
            if (Matches(Volatile.Read(ref _slots[index]), key, hash, out verdict)
                || Matches(Volatile.Read(ref _slots[index ^ 1]), key, hash, out verdict))
            {
                return true;
            }
        }

        verdict = default!;
        return false;
    }

    /// <summary>Records <paramref name="verdict"/> for <paramref name="key"/> (not kept when the key is too long).</summary>
    public void Set(string key, T verdict)
    {
        if (key.Length > _maxKeyChars)
        {
            return;
        }

        var hash = key.GetHashCode(StringComparison.Ordinal);
        var index = hash & _mask;
        var displaced = Volatile.Read(ref _slots[index]);
        if (displaced is not null && !Matches(displaced, key, hash, out _))
        {
            Volatile.Write(ref _slots[index ^ 1], displaced);
        }

        var entry = new Entry(key, hash, verdict);
        Volatile.Write(ref _slots[index], entry);
        Volatile.Write(ref _byInstance[RuntimeHelpers.GetHashCode(key) & _mask], entry);
    }

    private static bool Matches(Entry? entry, string key, int hash, out T verdict)
    {
        if (entry is not null && entry.Hash == hash && string.Equals(entry.Key, key, StringComparison.Ordinal))
        {
            verdict = entry.Verdict;
            return true;
        }

        verdict = default!;
        return false;
    }

    private sealed class Entry(string key, int hash, T verdict)
    {
        public string Key { get; } = key;

        public int Hash { get; } = hash;

        public T Verdict { get; } = verdict;
    }
}
