using System.Numerics;

namespace SpIstio.Backend.Storage.Postgres;

/// <summary>
/// One Bloom filter per ingest transaction (<c>span_filters</c>) of the id words
/// (<see cref="PostgresSearchTerms.IsIdWord"/>) of the spans it stored, whose row ids are in
/// <c>(lo, hi]</c>; those words' buckets stay out of the GIN index. A query with an id word reads
/// the tenant's filters, keeps the transactions whose filter has every probe of its id words set
/// and checks those spans' exact hashes (<c>terms</c>), so answers stay exact: a filter only
/// narrows which rows are read.
/// </summary>
/// <remarks>
/// Id words are ~24 of a bench span's ~29 index postings, nearly all unique to their span: the
/// GIN index paid a posting (and a pending-list entry and its merge) for each, about half of the
/// server's CPU per span (bench/README.md, "Backend", 2026-11-28). The filter costs the backend a
/// few bit sets per word and the server one row per transaction. The filter has at least
/// <see cref="BitsPerWord"/> bits a word (rounded up to a power of two, so that SQL finds a probe's
/// bit with a mask) and <see cref="ProbeCount"/> probes: a false "maybe" for ~0.05 % of the
/// transactions a word is not in. A word in most transactions (a port, a year) makes a query read
/// most of the tenant's spans, as a common bucket does (<see cref="PostgresCommonBuckets"/>).
/// </remarks>
internal static class PostgresIdFilter
{
    /// <summary>Bits a word at least: ln 2 × 16 ≈ 11 probes give (1/2)^11 at half fill.</summary>
    public const int BitsPerWord = 16;

    /// <summary>Probes a word.</summary>
    public const int ProbeCount = 11;

    // Probes are kept within 62 bits so that SQL's signed bigint mask sees them as they are.
    private const ulong ProbeMask = (1UL << 62) - 1;

    /// <summary>Adds a word hash's <see cref="ProbeCount"/> probes (non-negative; a filter of 2^n bits tests probe &amp; (2^n − 1)) to <paramref name="probes"/>.</summary>
    public static void Probes(long hash, List<long> probes)
    {
        ArgumentNullException.ThrowIfNull(probes);
        for (int i = 0; i < ProbeCount; i++)
        {
            probes.Add((long)Probe(hash, i));
        }
    }

    // Double hashing: the hash plus i times its odd upper half.
    private static ulong Probe(long hash, int i)
    {
        ulong h = unchecked((ulong)hash);
        return unchecked(h + ((ulong)i * ((h >> 32) | 1))) & ProbeMask;
    }

    /// <summary>The filter of a transaction's spans' id words (the first <see cref="PostgresSearchTerms.SpanTerms.IdWords"/> hashes of each); null when they have none.</summary>
    public static byte[]? Of(PostgresSearchTerms.SpanTerms[] terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        long words = 0;
        foreach (var t in terms)
        {
            words += t.IdWords;
        }

        if (words == 0)
        {
            return null;
        }

        // At most 2^31 bits (256 MiB): far past any transaction the ingest queue builds.
        ulong bits = BitOperations.RoundUpToPowerOf2((ulong)Math.Clamp(words * BitsPerWord, 64, 1L << 31));
        var filter = new byte[bits / 8];
        ulong mask = bits - 1;
        foreach (var t in terms)
        {
            for (int w = 0; w < t.IdWords; w++)
            {
                for (int i = 0; i < ProbeCount; i++)
                {
                    // get_bit(bytea, n) reads bit n % 8 (least significant first) of byte n / 8.
                    ulong bit = Probe(t.Hashes[w], i) & mask;
                    filter[bit >> 3] |= (byte)(1 << (int)(bit & 7));
                }
            }
        }

        return filter;
    }
}
