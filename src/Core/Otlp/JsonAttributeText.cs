using System.Buffers;
using System.Text;
using System.Text.Json;

namespace SpIstio.Core.Otlp;

/// <summary>
/// Writes one JSON span attribute value (the gRPC message lists, SSE events, WebSocket messages):
/// the attribute travels as a string, so the JSON is built in UTF-8 and decoded once.
/// </summary>
internal static class JsonAttributeText
{
    // Every captured call writes one or two of these: the UTF-8 buffer and its writer are kept per
    // thread (the JSON is decoded into the string before the buffer is reused; nothing awaits between).
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? _buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? _writer;

    // A buffer grown past this by one large list is not kept for the next.
    private const int KeptBufferBytes = 256 * 1024;

    public static string Write<TState>(TState state, Action<Utf8JsonWriter, TState> write)
    {
        var buffer = _buffer ??= new ArrayBufferWriter<byte>(4096);
        var json = _writer;
        if (json is null)
        {
            json = _writer = new Utf8JsonWriter(buffer);
        }
        else
        {
            json.Reset(buffer);
        }

        try
        {
            write(json, state);
            json.Flush();
            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        }
        finally
        {
            if (buffer.Capacity > KeptBufferBytes)
            {
                _buffer = null;
                _writer = null;
            }
            else
            {
                buffer.ResetWrittenCount();
            }
        }
    }

    public static string Write(Action<Utf8JsonWriter> write) => Write(write, static (json, write) => write(json));
}
