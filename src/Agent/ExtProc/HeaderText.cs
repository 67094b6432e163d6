using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using Google.Protobuf;
using SpIstio.Agent.ExtProc.Proto.Core;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// Header values between Envoy's bytes and the model's strings.
/// </summary>
/// <remarks>
/// Envoy sends values in <c>raw_value</c> as the bytes seen on the wire, which need not be
/// UTF-8 (RFC 9110 §5.5 allows obs-text). Valid UTF-8 (ASCII included) is decoded as UTF-8, which
/// is what applications mean today; anything else is decoded as Latin-1, which maps each byte to
/// one char, so no byte is lost or replaced by U+FFFD and the original bytes can be recovered.
/// </remarks>
internal static class HeaderText
{
    /// <summary>The value of <paramref name="header"/>: <c>raw_value</c>, else <c>value</c> (Envoys before the raw_value switch).</summary>
    public static string Decode(HeaderValue header)
    {
        var raw = header.RawValue;
        if (raw.IsEmpty)
        {
            return header.Value;
        }

        var bytes = raw.Span;
        return Utf8.IsValid(bytes) ? Encoding.UTF8.GetString(bytes) : Encoding.Latin1.GetString(bytes);
    }

    /// <summary>
    /// The value of a <c>:status</c> field as a number, parsed from its bytes (the value as a string
    /// is not needed: pseudo-headers are not recorded among the response headers).
    /// </summary>
    public static bool TryParseStatus(HeaderValue header, out int status)
    {
        var raw = header.RawValue;
        if (raw.IsEmpty)
        {
            return int.TryParse(header.Value, NumberStyles.None, CultureInfo.InvariantCulture, out status);
        }

        // Digits only, as NumberStyles.None asks: Utf8Parser alone would also take a sign.
        var bytes = raw.Span;
        status = 0;
        return (uint)(bytes[0] - '0') <= 9 && Utf8Parser.TryParse(bytes, out status, out var consumed) && consumed == bytes.Length;
    }

    /// <summary>
    /// A header for a mutation: <c>raw_value</c> only, because Envoy ignores <c>value</c> and
    /// answers 500 when both are set.
    /// </summary>
    public static HeaderValueOption Option(string name, string value, HeaderValueOption.Types.HeaderAppendAction action) =>
        new()
        {
            Header = new HeaderValue { Key = name, RawValue = ByteString.CopyFromUtf8(value) },
            AppendAction = action,
        };
}
