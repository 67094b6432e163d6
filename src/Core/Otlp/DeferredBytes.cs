namespace SpIstio.Core.Otlp;

/// <summary>
/// Body bytes an encoded request leaves out of its array: at each <see cref="Gap.Offset"/> the array
/// holds a gap as long as the body, whose bytes stay in the exchange's own array. A sender writes the
/// array's pieces and the bodies in turn (the request's bytes, without copying every large body into
/// the batch first: the 64 KiB body's copy was ~2.5 % of the capture proxy's CPU at 64 KiB, issue 13);
/// <see cref="FillInto"/> makes the array the whole request when it must be kept (the disk buffer).
/// The bodies must outlive the request: the exporter releases a batch's exchanges only after every attempt.
/// </summary>
public sealed class DeferredBytes
{
    /// <summary>
    /// Bodies shorter than this are copied into the array as before: each deferred body costs the
    /// sender a write of its own (and the kernel a send), which only a large body's saved copy pays for.
    /// </summary>
    public const int MinBytes = 16 * 1024;

    private readonly List<Gap> _gaps = [];

    /// <summary>The gaps, in the order of their offsets.</summary>
    public IReadOnlyList<Gap> Gaps => _gaps;

    /// <summary>Bytes left out of the array, all gaps together.</summary>
    public long Bytes => _gaps.Sum(gap => (long)gap.Content.Length);

    /// <summary>Copies every deferred body into its gap in <paramref name="array"/> (the one the request was encoded into): it then holds the whole request, and the gaps are forgotten.</summary>
    public void FillInto(byte[] array)
    {
        ArgumentNullException.ThrowIfNull(array);
        foreach (var gap in _gaps)
        {
            gap.Content.Span.CopyTo(array.AsSpan(gap.Offset));
        }

        _gaps.Clear();
    }

    internal void Add(int offset, ReadOnlyMemory<byte> content) => _gaps.Add(new Gap(offset, content));

    /// <summary>A body left out of the array: its bytes belong at index <paramref name="Offset"/> of the array the request was encoded into.</summary>
    public readonly record struct Gap(int Offset, ReadOnlyMemory<byte> Content);
}
