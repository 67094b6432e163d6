using System.Globalization;
using System.Text;
using SpIstio.Core.Redaction;

namespace SpIstio.Backend.Ui;

/// <summary>How the UI writes numbers, times, durations and service colours (invariant culture, UTC).</summary>
internal static class Format
{
    private static readonly CultureInfo _ic = CultureInfo.InvariantCulture;

    public static string Duration(double ms) => ms switch
    {
        < 1 => ms.ToString("0.###", _ic) + " ms",
        < 1000 => ms.ToString("0.#", _ic) + " ms",
        < 60_000 => (ms / 1000).ToString("0.00", _ic) + " s",
        _ => (ms / 60_000).ToString("0.0", _ic) + " min",
    };

    public static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff", _ic) + " UTC";

    public static string Iso(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", _ic);

    public static string Number(long n) => n.ToString("#,0", _ic);

    public static string Percent(double rate) => (rate * 100).ToString(rate is > 0 and < 0.01 ? "0.##" : "0.#", _ic) + " %";

    public static string Bytes(long bytes) => bytes switch
    {
        < 0 => "unknown size",
        < 1024 => bytes.ToString(_ic) + " B",
        < 1024 * 1024 => (bytes / 1024.0).ToString("0.#", _ic) + " KiB",
        _ => (bytes / (1024.0 * 1024)).ToString("0.#", _ic) + " MiB",
    };

    public static string Css(double value) => value.ToString("0.###", _ic);

    /// <summary>Hues a service colour is chosen from: 24, 15° apart, one CSS class each (<c>svc-0</c>…<c>svc-23</c> in app.css).</summary>
    public const int ServiceHues = 24;

    /// <summary>
    /// The CSS class giving a service its colour (<c>--svc</c>), the same for a name everywhere.
    /// A class rather than an inline style: the pages' Content-Security-Policy allows no inline styles.
    /// </summary>
    public static string ServiceClass(string service)
    {
        uint hash = 2166136261;
        foreach (var c in service)
        {
            hash = (hash ^ c) * 16777619;
        }

        return "svc-" + (hash % ServiceHues).ToString(_ic);
    }

    /// <summary><c>ok</c>, <c>client-error</c> or <c>server-error</c>: the CSS class of a status.</summary>
    public static string StatusClass(int? status, bool isError) =>
        isError || status >= 500 || status is null ? "server-error" : status >= 400 ? "client-error" : "ok";

    /// <summary>
    /// The CSS class of a span's row: a gRPC call that did not end OK (<paramref name="grpcStatus"/>
    /// not null and not 0) is classed by its gRPC status as <see cref="GrpcCallFormat.StatusClass"/>
    /// does (the call answers HTTP 200 whatever happened); any other span by its HTTP status.
    /// </summary>
    public static string StatusClass(int? status, bool isError, int? grpcStatus) =>
        grpcStatus is { } code && code != 0 ? GrpcCallFormat.StatusClass(GrpcCallFormat.Code(code)) : StatusClass(status, isError);

    public static string Status(int? status) => status?.ToString(_ic) ?? "—";

    /// <summary>Splits text around redaction markers (<c>[REDACTED…]</c>) so each can be marked.</summary>
    public static List<(string Text, bool Redacted)> Redactions(string text)
    {
        var parts = new List<(string, bool)>();
        var at = 0;
        while (at < text.Length)
        {
            var start = text.IndexOf(Redactor.Marker, at, StringComparison.Ordinal);
            if (start < 0)
            {
                break;
            }

            var end = text.IndexOf(']', start + Redactor.Marker.Length);
            end = end < 0 ? text.Length : end + 1;
            if (start > at)
            {
                parts.Add((text[at..start], false));
            }

            parts.Add((text[start..end], true));
            at = end;
        }

        if (at < text.Length)
        {
            parts.Add((text[at..], false));
        }

        return parts;
    }

    /// <summary>A hex dump (offset, 16 bytes, ASCII) of the first <paramref name="max"/> bytes.</summary>
    public static string HexPreview(ReadOnlySpan<byte> bytes, int max = 256)
    {
        var shown = bytes.Length > max ? bytes[..max] : bytes;
        var sb = new StringBuilder(shown.Length * 4 + 32);
        for (var row = 0; row < shown.Length; row += 16)
        {
            sb.Append(row.ToString("x8", _ic)).Append("  ");
            for (var i = 0; i < 16; i++)
            {
                if (row + i < shown.Length)
                {
                    sb.Append(shown[row + i].ToString("x2", _ic)).Append(' ');
                }
                else
                {
                    sb.Append("   ");
                }
            }

            sb.Append(' ');
            for (var i = 0; i < 16 && row + i < shown.Length; i++)
            {
                var b = shown[row + i];
                sb.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }
}
