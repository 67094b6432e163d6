using System.Globalization;
using System.Text;

namespace SpIstio.Backend.Storage;

/// <summary>
/// The opaque sessions-list cursor: the (last activity, session id) of the last row of a page,
/// the keyset the next page continues after. Keyset rather than offset so pages stay stable and
/// complete while new sessions arrive at the top.
/// </summary>
internal static class SessionCursor
{
    public static string Format(long lastNanos, string sessionId) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(lastNanos.ToString(CultureInfo.InvariantCulture) + "|" + sessionId))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>Parses a cursor; throws <see cref="ArgumentException"/> naming the cursor when it is not one of ours.</summary>
    public static (long LastNanos, string SessionId) Parse(string cursor)
    {
        try
        {
            string base64 = cursor.Replace('-', '+').Replace('_', '/');
            base64 = base64.PadRight(base64.Length + ((4 - (base64.Length % 4)) % 4), '=');
            string text = Encoding.UTF8.GetString(Convert.FromBase64String(base64));
            int bar = text.IndexOf('|', StringComparison.Ordinal);
            if (bar > 0 && long.TryParse(text.AsSpan(0, bar), NumberStyles.Integer, CultureInfo.InvariantCulture, out long nanos))
            {
                return (nanos, text[(bar + 1)..]);
            }
        }
        catch (FormatException)
        {
            // Reported below with the cursor named.
        }

        throw new ArgumentException($"Invalid sessions cursor '{cursor}': pass the nextCursor of a previous page unchanged.", nameof(cursor));
    }
}
