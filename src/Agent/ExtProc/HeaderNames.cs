using System.Text;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Model;
using SpIstio.Core.Tracing;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// Header names as strings, the common ones shared: Envoy sends the same few dozen names on every
/// message, and a shared string saves one allocation per field (issue 13).
/// </summary>
internal static class HeaderNames
{
    // The common names of any HTTP exchange, plus what Envoy and Istio add and the agent's own.
    private static readonly string[] _common =
    [
        .. HeaderList.CommonNames,
        ":method", ":path", ":scheme", ":authority", ":status", ":protocol",
        "x-forwarded-client-cert", "x-envoy-attempt-count", "x-envoy-upstream-service-time", "x-envoy-decorator-operation",
        "x-envoy-internal", "x-envoy-expected-rq-timeout-ms", "x-envoy-peer-metadata", "x-envoy-peer-metadata-id", "x-envoy-original-path",
        "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "b3",
        SessionIds.HeaderName, SessionIds.GenericHeaderName, HopCounter.HeaderName, ShortCircuitPolicy.CacheHeader,
    ];

    // _byLength[n]: the common names of n bytes.
    private static readonly string[][] _byLength = Index();

    /// <summary>The name spelt by <paramref name="bytes"/> (UTF-8): a shared string when it is a common one.</summary>
    public static string Get(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return "";
        }

        if (bytes.Length < _byLength.Length)
        {
            foreach (var name in _byLength[bytes.Length])
            {
                if (Ascii.Equals(bytes, name))
                {
                    return name;
                }
            }
        }

        return Encoding.UTF8.GetString(bytes);
    }

    private static string[][] Index()
    {
        var longest = 0;
        foreach (var name in _common)
        {
            longest = Math.Max(longest, name.Length);
        }

        var index = new string[longest + 1][];
        for (var length = 0; length <= longest; length++)
        {
            index[length] = Array.FindAll(_common, name => name.Length == length);
        }

        return index;
    }
}
