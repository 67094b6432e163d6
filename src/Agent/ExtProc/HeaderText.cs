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
    /// <summary>
    /// A <c>raw_value</c>: UTF-8 when it is valid UTF-8 (ASCII included), else Latin-1, one char per byte.
    /// </summary>
    /// <remarks>
    /// Nearly every value is ASCII, where UTF-8 and Latin-1 give the same chars: one vectorised
    /// check and Latin-1's plain widening copy make the string, where UTF-8 decoding would validate
    /// the bytes again and count the chars before copying (ext_proc decodes every header field of
    /// every message, issue 13).
    /// </remarks>
    public static string DecodeRaw(ReadOnlySpan<byte> bytes) =>
        Ascii.IsValid(bytes) || !Utf8.IsValid(bytes) ? Encoding.Latin1.GetString(bytes) : Encoding.UTF8.GetString(bytes);

    /// <summary>
    /// The value of a <c>:status</c> field as a number: digits only, as Envoy sends it.
    /// </summary>
    public static bool TryParseStatus(string value, out int status) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out status);

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
