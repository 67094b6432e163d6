namespace SpIstio.Core.Redaction;

/// <summary>
/// Decides whether a field-name anchor the pre-scan found lies where a field name can be, so a
/// chance occurrence (<c>key</c>, <c>tel</c>, <c>pan</c> in base64, a word in a JSON string value)
/// does not make the redactor read the body for names.
/// </summary>
/// <remarks>
/// <para>
/// Only the readers that act on <see cref="Scan.Names"/> matter, and each needs the name in a
/// context whose delimiters lie in the body itself: a JSON property name (the JSON reader, and the
/// <c>"name"\s*:</c> pairs of broken JSON in text) ends with the first unescaped quote after the
/// anchor, followed by optional whitespace and a <c>:</c>; an XML element or attribute name (read
/// only when the body is XML) is a run of name characters after a <c>&lt;</c> or whitespace,
/// ended by <c>&gt;</c>, <c>=</c>, <c>/</c> or whitespace. Form bodies and multipart field names
/// are judged without the pre-scan. Any non-ASCII byte where a delimiter is looked for (Unicode
/// whitespace, a Unicode letter of an XML name) counts as the delimiter, and a comment (<c>/</c>)
/// before the <c>:</c> too, so the check only ever errs towards reading the body.
/// </para>
/// <para>
/// A gRPC message is pre-scanned whole before its string fields are redacted one by one: a name
/// accepted in a field is accepted in the message, because every delimiter the check looked at
/// lies inside the field.
/// </para>
/// <para>
/// The search for the closing quote remembers its last answer: the anchors of one body come in
/// order, and all that lie before the same quote share it, so a 64 KiB string is searched once.
/// </para>
/// </remarks>
internal struct NameContext
{
    private readonly bool _applies;
    private readonly bool _xml;

    // The last quote search: the first unescaped quote at or after _searchedFrom (-1: none).
    private int _searchedFrom;
    private int _quote;

    /// <param name="applies">False when a configured name holds a byte the check stops at: every anchor counts.</param>
    /// <param name="xml">Whether the body can be read as XML (an XML media type, or it starts with a tag).</param>
    public NameContext(bool applies, bool xml)
    {
        _applies = applies;
        _xml = xml;
        _searchedFrom = int.MaxValue;
        _quote = -1;
    }

    /// <summary>True when every byte of each anchor is one the checks walk over or stop at harmlessly.</summary>
    public static bool Applies(IEnumerable<string> anchors) =>
        anchors.All(a => a.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or ' ' or >= (char)0x80));

    /// <summary>True when the name anchor at <paramref name="position"/> may lie in a field name.</summary>
    public bool InContext(ReadOnlySpan<byte> content, int position) =>
        !_applies || InJsonName(content, position) || (_xml && InXmlName(content, position));

    private bool InJsonName(ReadOnlySpan<byte> content, int position)
    {
        if (position < _searchedFrom || (_quote >= 0 && position > _quote))
        {
            _searchedFrom = position;
            _quote = NextUnescapedQuote(content, position);
        }

        if (_quote < 0)
        {
            return false;
        }

        var i = _quote + 1;
        while (i < content.Length && IsSpace(content[i]))
        {
            i++;
        }

        // At the end there is no value to redact by the name.
        return i < content.Length && content[i] is (byte)':' or (byte)'/' or >= 0x80;
    }

    private static int NextUnescapedQuote(ReadOnlySpan<byte> content, int from)
    {
        while (true)
        {
            var offset = content[from..].IndexOf((byte)'"');
            if (offset < 0)
            {
                return -1;
            }

            var quote = from + offset;
            var backslashes = 0;
            while (quote - backslashes > 0 && content[quote - backslashes - 1] == (byte)'\\')
            {
                backslashes++;
            }

            if (backslashes % 2 == 0)
            {
                return quote;
            }

            from = quote + 1;
        }
    }

    private static bool InXmlName(ReadOnlySpan<byte> content, int position)
    {
        var before = position - 1;
        while (before >= 0 && IsXmlNameByte(content[before]))
        {
            before--;
        }

        if (before < 0 || content[before] is not ((byte)'<' or >= 0x80) && !IsSpace(content[before]))
        {
            return false;
        }

        var after = position;
        while (after < content.Length && IsXmlNameByte(content[after]))
        {
            after++;
        }

        return after < content.Length && (content[after] is (byte)'>' or (byte)'=' or (byte)'/' or >= 0x80 || IsSpace(content[after]));
    }

    // A name character of XML in ASCII, the prefix's ':' included.
    private static bool IsXmlNameByte(byte b) => char.IsAsciiLetterOrDigit((char)b) || b is (byte)'_' or (byte)'.' or (byte)'-' or (byte)':';

    // ASCII whitespace as a regular expression's \s has it (tab to carriage return, space), and the
    // separators 0x1C-0x1F that char.IsWhiteSpace also counts.
    private static bool IsSpace(byte b) => b is (>= 0x09 and <= 0x0D) or (>= 0x1C and <= 0x20);
}
