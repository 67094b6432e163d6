namespace SpIstio.Backend.Storage;

/// <summary>
/// One ingest request's spans with the work of their insert that needs no writer done ahead of it
/// (<see cref="ISpanQueryStore.PrepareSpansAsync"/>): compression with the tenant's dictionary and
/// the search text, on the request's own thread, so concurrent requests encode in parallel and the
/// single writer only inserts. A store with nothing to prepare keeps the spans as they are.
/// </summary>
public sealed class PreparedSpans
{
    internal PreparedSpans(long tenantId, IReadOnlyList<StoredSpan> spans, EncodedSpan[]? encoded)
    {
        ArgumentNullException.ThrowIfNull(spans);
        TenantId = tenantId;
        Spans = spans;
        Encoded = encoded;
    }

    /// <summary>The tenant the spans were prepared for (its dictionary compressed them).</summary>
    public long TenantId { get; }

    /// <summary>The spans as they came.</summary>
    public IReadOnlyList<StoredSpan> Spans { get; }

    /// <summary>The spans encoded, in order; null when the store prepared nothing.</summary>
    internal EncodedSpan[]? Encoded { get; }

    /// <summary>Spans no work was done for: <see cref="ISpanQueryStore.InsertPreparedAsync"/> inserts them as <see cref="ISpanQueryStore.InsertSpansAsync"/> would.</summary>
    public static PreparedSpans Unprepared(long tenantId, IReadOnlyList<StoredSpan> spans) => new(tenantId, spans, null);

    /// <summary>Every batch's spans, in order.</summary>
    public static IReadOnlyList<StoredSpan> Concat(IReadOnlyList<PreparedSpans> batches)
    {
        ArgumentNullException.ThrowIfNull(batches);
        if (batches.Count == 1)
        {
            return batches[0].Spans;
        }

        var spans = new List<StoredSpan>(batches.Sum(b => b.Spans.Count));
        foreach (var batch in batches)
        {
            spans.AddRange(batch.Spans);
        }

        return spans;
    }
}
