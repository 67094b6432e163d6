using SpIstio.Core.Model;

namespace SpIstio.Agent.Pipeline;

/// <summary>
/// Where finished, redacted exchanges go. The data path calls <see cref="TryEnqueue"/> and never
/// waits: an implementation hands the exchange to a bounded queue and returns.
/// </summary>
public interface IExchangeExporter
{
    /// <summary>
    /// Queues <paramref name="exchange"/> for export. Returns false when it was dropped
    /// (queue full, exporter stopped); the implementation counts the drop.
    /// </summary>
    bool TryEnqueue(Exchange exchange);
}
