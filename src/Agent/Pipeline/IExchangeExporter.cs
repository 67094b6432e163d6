using SpIstio.Core.Capture;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// Where finished, redacted exchanges go. The data path calls <see cref="TryEnqueue(Exchange)"/> and never
/// waits: an implementation hands the exchange to a bounded queue and returns.
/// </summary>
public interface IExchangeExporter
{
    /// <summary>
    /// Queues <paramref name="exchange"/> for export. Returns false when it was dropped
    /// (queue full, exporter stopped); the implementation counts the drop.
    /// </summary>
    bool TryEnqueue(Exchange exchange);

    /// <summary>
    /// The budget this exporter reserves a queued exchange's bytes in, or null when it holds none.
    /// A caller holding bytes of this same budget for an exchange hands them over with
    /// <see cref="TryEnqueue(Exchange, long)"/> instead of releasing and reserving them again.
    /// </summary>
    CaptureByteBudget? ReservesIn => null;

    /// <summary>
    /// Like <see cref="TryEnqueue(Exchange)"/> for an exchange whose caller already holds
    /// <paramref name="reserved"/> bytes of <see cref="ReservesIn"/> for it (a capture worker's queue):
    /// the exporter takes them over as its own reservation whatever the result, so the exchange is
    /// not counted twice while it changes hands. An exporter that reserves nothing takes 0 only.
    /// </summary>
    bool TryEnqueue(Exchange exchange, long reserved)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(reserved, 0L);
        return TryEnqueue(exchange);
    }
}
