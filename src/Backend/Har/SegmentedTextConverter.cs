using System.Text.Json;
using System.Text.Json.Serialization;

namespace SpIstio.Backend.Har;

/// <summary>
/// Writes a HAR body text in segments. <see cref="Utf8JsonWriter.WriteStringValue(string)"/>
/// escapes a string in one piece: for a text with one character to escape (a JSON body's
/// quotes) it rents room for every character escaped six times over and then for three UTF-8
/// bytes each — ~18 bytes per character, over 250 MB for a 14 MB body, held in the shared array
/// pool afterwards (bench/README.md, "Reader memory"). Segments need room for one segment only,
/// so the answer's own bytes are the only copy of the text the writer makes.
/// </summary>
internal sealed class SegmentedTextConverter : JsonConverter<string>
{
    // Characters per segment: the escaping room for one is 6 × 3 × 8 Ki = 144 KiB.
    private const int Segment = 8 * 1024;

    public override bool HandleNull => false;

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetString();

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length <= Segment)
        {
            writer.WriteStringValue(value);
            return;
        }

        // A segment may end inside a surrogate pair: the writer carries the half over to the next.
        for (int offset = 0; offset < value.Length; offset += Segment)
        {
            int length = Math.Min(Segment, value.Length - offset);
            writer.WriteStringValueSegment(value.AsSpan(offset, length), offset + length == value.Length);
        }
    }
}
