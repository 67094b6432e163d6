using System.Text;
using System.Text.Json;

namespace SpIstio.Core.Otlp;

/// <summary>
/// Writes one JSON span attribute value (the gRPC message lists, SSE events, WebSocket messages):
/// the attribute travels as a string, so the JSON is built in UTF-8 and decoded once.
/// </summary>
internal static class JsonAttributeText
{
    public static string Write<TState>(TState state, Action<Utf8JsonWriter, TState> write)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            write(json, state);
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    public static string Write(Action<Utf8JsonWriter> write) => Write(write, static (json, write) => write(json));
}
