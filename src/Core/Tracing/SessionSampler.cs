using System.Buffers;
using System.Text;

namespace SpIstio.Core.Tracing;

/// <summary>
/// The <c>sampling.by: session</c> decision. It depends on the session id alone, so every agent on
/// every hop keeps or drops all the exchanges of a session together (replay needs whole sessions),
/// with the same ratio semantics as <see cref="TraceSampler"/>: a 64-bit number derived from the id
/// falls below <c>ratio × ulong.MaxValue</c>.
/// </summary>
public static class SessionSampler
{
    /// <summary>
    /// True when the session is captured. The number is FNV-1a (64-bit) over the id's UTF-8 bytes
    /// followed by MurmurHash3's 64-bit finaliser, which spreads ids that differ in one character
    /// (session-1, session-2) over the whole range; both are fixed, public algorithms, so agents of
    /// any version and platform agree. Ratio ≤ 0 (or NaN) never samples, ≥ 1 always does.
    /// </summary>
    public static bool ShouldSample(string sessionId, double ratio)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        if (!(ratio > 0))
        {
            return false;
        }

        if (ratio >= 1)
        {
            return true;
        }

        return Hash(sessionId) < (ulong)(ratio * ulong.MaxValue);
    }

    /// <summary>The 64-bit number the decision compares (exposed for tests and tools that must agree with the agent).</summary>
    public static ulong Hash(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        const int StackLimit = 256;
        var max = Encoding.UTF8.GetMaxByteCount(sessionId.Length);
        byte[]? rented = null;
        var bytes = max <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var length = Encoding.UTF8.GetBytes(sessionId, bytes);
            var hash = 14695981039346656037UL;
            foreach (var b in bytes[..length])
            {
                hash = (hash ^ b) * 1099511628211UL;
            }

            hash ^= hash >> 33;
            hash *= 0xff51afd7ed558ccdUL;
            hash ^= hash >> 33;
            hash *= 0xc4ceb9fe1a85ec53UL;
            hash ^= hash >> 33;
            return hash;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
}
