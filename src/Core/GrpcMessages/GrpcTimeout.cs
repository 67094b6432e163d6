using System.Globalization;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// The <c>grpc-timeout</c> request header (gRPC over HTTP/2: "Timeout → TimeoutValue TimeoutUnit",
/// at most 8 digits, units <c>H M S m u n</c>).
/// </summary>
public static class GrpcTimeout
{
    /// <summary>The timeout the header states; null when it is absent or malformed.</summary>
    public static TimeSpan? Parse(string? header)
    {
        if (string.IsNullOrEmpty(header) || header.Length < 2 || header.Length > 9)
        {
            return null;
        }

        if (!long.TryParse(header.AsSpan(0, header.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            return null;
        }

        return header[^1] switch
        {
            'H' => TimeSpan.FromHours(value),
            'M' => TimeSpan.FromMinutes(value),
            'S' => TimeSpan.FromSeconds(value),
            'm' => TimeSpan.FromMilliseconds(value),
            'u' => TimeSpan.FromMicroseconds(value),
            'n' => TimeSpan.FromTicks(value / 100),
            _ => null,
        };
    }
}
