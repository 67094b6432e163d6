using System.Diagnostics;

namespace SpIstio.Core.Tracing;

/// <summary>
/// The <c>sampling.ratio</c> decision. It depends on the trace id alone, so every agent on every
/// hop of a trace decides the same way and a sampled trace is captured whole.
/// </summary>
public static class TraceSampler
{
    /// <summary>
    /// True when the trace is captured: the trace id's last 8 bytes, read as an unsigned
    /// big-endian number, fall below <paramref name="ratio"/> × <see cref="ulong.MaxValue"/>.
    /// The last bytes because W3C Trace Context level 2 guarantees randomness in the right-most
    /// 7 bytes (the left ones may hold a timestamp, as in AWS X-Ray ids); OTel's
    /// TraceIdRatioBased sampler compares the same kind of threshold. Ratio ≤ 0 (or NaN) never
    /// samples, ≥ 1 always does.
    /// </summary>
    public static bool ShouldSample(ActivityTraceId traceId, double ratio) =>
        ShouldSample(BinaryIds.FromTraceId(traceId), ratio);

    /// <summary>The same decision for a binary trace id (<see cref="BinaryIds"/>).</summary>
    public static bool ShouldSample(UInt128 traceId, double ratio)
    {
        if (!(ratio > 0))
        {
            return false;
        }

        if (ratio >= 1)
        {
            return true;
        }

        // The last 8 bytes read big-endian are the number's low 64 bits.
        var value = (ulong)traceId;
        var threshold = (ulong)(ratio * ulong.MaxValue);
        return value < threshold;
    }
}
