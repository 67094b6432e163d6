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
    /// Like <see cref="TryEnqueue(Exchange)"/> for an exchange whose caller already holds
    /// <paramref name="reserved"/> bytes of <paramref name="budget"/> for it (a capture worker's queue):
    /// the exporter takes those bytes over whatever the result, as its own reservation when it
    /// accounts in the same budget, so the exchange is not counted twice while it changes hands.
    /// This default gives them back first.
    /// </summary>
    bool TryEnqueue(Exchange exchange, CaptureByteBudget budget, long reserved)
    {
        ArgumentNullException.ThrowIfNull(budget);
        budget.Release(reserved);
        return TryEnqueue(exchange);
    }
}
