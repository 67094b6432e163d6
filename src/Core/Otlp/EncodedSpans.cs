namespace SpIstio.Core.Otlp;

/// <summary>The size of the span an exchange becomes, from <see cref="OtlpSpanWriter.MeasureSpan"/>.</summary>
/// <param name="Length">The Span message's bytes (without the tag and length its batch writes before it).</param>
/// <param name="TextFlags">Which bodies go out as UTF-8 text (decided once, used again by <see cref="OtlpSpanWriter.WriteSpan"/>).</param>
public readonly record struct MeasuredSpan(int Length, byte TextFlags);

/// <summary>
/// A span waiting to go out in a batch (<see cref="OtlpSpanWriter.ToArray{TSpan}"/>): already
/// encoded, or an exchange measured by <see cref="OtlpSpanWriter.MeasureSpan"/> and written when its batch is.
/// </summary>
public interface IEncodedSpan
{
    /// <summary>The exchange's service name: a batch groups its spans into one resource per name.</summary>
    string ServiceName { get; }

    /// <summary>The Span message's length in bytes.</summary>
    int Length { get; }

    /// <summary>
    /// Writes the Span message's <see cref="Length"/> bytes into <paramref name="destination"/> at
    /// <paramref name="offset"/>; given <paramref name="deferred"/>, it may leave a large body's bytes
    /// out, as a gap recorded there (<see cref="OtlpSpanWriter.WriteSpan"/>).
    /// </summary>
    void WriteTo(byte[] destination, int offset, DeferredBytes? deferred);
}
