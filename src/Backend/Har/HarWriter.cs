using System.IO.Pipelines;
using System.Text.Json;

namespace SpIstio.Backend.Har;

/// <summary>
/// Writes a <see cref="HarDocument"/> as the serializer of <see cref="HarJsonContext"/> would
/// (indented, camelCase, nulls left out; a test holds the two byte for byte), but flushes the pipe
/// inside a body text. <c>JsonSerializer</c> can flush only between values, so it kept a whole
/// escaped body in one buffer grown by doubling from the shared array pool — at a 16 MiB attribute
/// cap 8 and 16 MiB arrays that the pool then kept for the life of the process (bench/README.md,
/// "The HAR export's write buffer"). Here a body costs one segment of room at a time; the small
/// parts of an entry (headers, timings, messages, the gRPC call) still go through the generated
/// serializer.
/// </summary>
internal static class HarWriter
{
    // Characters of body text per segment: the escaping room for one is 6 × 3 bytes a character.
    private const int Segment = 8 * 1024;

    private static readonly JsonWriterOptions _options = new() { Indented = true };

    public static async Task WriteAsync(PipeWriter pipe, HarDocument document, CancellationToken cancellationToken)
    {
        var har = HarJsonContext.Default;
        var log = document.Log;
        await using var writer = new Utf8JsonWriter(pipe, _options);
        writer.WriteStartObject();
        writer.WriteStartObject("log");
        writer.WriteString("version", log.Version);
        writer.WritePropertyName("creator");
        JsonSerializer.Serialize(writer, log.Creator, har.HarCreator);
        writer.WriteStartArray("entries");
        foreach (var entry in log.Entries)
        {
            writer.WriteStartObject();
            writer.WriteString("startedDateTime", entry.StartedDateTime);
            writer.WriteNumber("time", entry.Time);
            await WriteRequestAsync(writer, pipe, entry.Request, cancellationToken).ConfigureAwait(false);
            await WriteResponseAsync(writer, pipe, entry.Response, cancellationToken).ConfigureAwait(false);
            writer.WritePropertyName("cache");
            JsonSerializer.Serialize(writer, entry.Cache, har.HarCache);
            writer.WritePropertyName("timings");
            JsonSerializer.Serialize(writer, entry.Timings, har.HarTimings);
            WriteOptional(writer, "comment", entry.Comment);
            WriteOptional(writer, "_traceId", entry.TraceId);
            WriteOptional(writer, "_spanId", entry.SpanId);
            WriteOptional(writer, "_service", entry.Service);
            WriteOptional(writer, "_direction", entry.Direction);
            WriteOptional(writer, "_sessionId", entry.SessionId);
            if (entry.WebSocketMessages is not null)
            {
                writer.WritePropertyName("_webSocketMessages");
                JsonSerializer.Serialize(writer, entry.WebSocketMessages, har.IReadOnlyListHarWebSocketMessage);
            }

            if (entry.Grpc is not null)
            {
                writer.WritePropertyName("_grpc");
                JsonSerializer.Serialize(writer, entry.Grpc, har.GrpcCallDto);
            }

            writer.WriteEndObject();
            await FlushAsync(writer, pipe, cancellationToken).ConfigureAwait(false);
        }

        writer.WriteEndArray();
        WriteOptional(writer, "comment", log.Comment);
        writer.WriteEndObject();
        writer.WriteEndObject();
        await FlushAsync(writer, pipe, cancellationToken).ConfigureAwait(false);
    }

    private static async Task WriteRequestAsync(Utf8JsonWriter writer, PipeWriter pipe, HarRequest request, CancellationToken cancellationToken)
    {
        writer.WriteStartObject("request");
        writer.WriteString("method", request.Method);
        writer.WriteString("url", request.Url);
        writer.WriteString("httpVersion", request.HttpVersion);
        WriteHeadersAndCookies(writer, request.Cookies, request.Headers);
        writer.WritePropertyName("queryString");
        JsonSerializer.Serialize(writer, request.QueryString, HarJsonContext.Default.IReadOnlyListHarNameValue);
        if (request.PostData is { } postData)
        {
            writer.WriteStartObject("postData");
            writer.WriteString("mimeType", postData.MimeType);
            await WriteTextAsync(writer, pipe, postData.Text, cancellationToken).ConfigureAwait(false);
            WriteOptional(writer, "_encoding", postData.Encoding);
            WriteOptional(writer, "comment", postData.Comment);
            writer.WriteEndObject();
        }

        writer.WriteNumber("headersSize", request.HeadersSize);
        writer.WriteNumber("bodySize", request.BodySize);
        WriteOptional(writer, "comment", request.Comment);
        writer.WriteEndObject();
    }

    private static async Task WriteResponseAsync(Utf8JsonWriter writer, PipeWriter pipe, HarResponse response, CancellationToken cancellationToken)
    {
        writer.WriteStartObject("response");
        writer.WriteNumber("status", response.Status);
        writer.WriteString("statusText", response.StatusText);
        writer.WriteString("httpVersion", response.HttpVersion);
        WriteHeadersAndCookies(writer, response.Cookies, response.Headers);
        var content = response.Content;
        writer.WriteStartObject("content");
        writer.WriteNumber("size", content.Size);
        writer.WriteString("mimeType", content.MimeType);
        if (content.Text is not null)
        {
            await WriteTextAsync(writer, pipe, content.Text, cancellationToken).ConfigureAwait(false);
        }

        WriteOptional(writer, "encoding", content.Encoding);
        WriteOptional(writer, "comment", content.Comment);
        writer.WriteEndObject();
        writer.WriteString("redirectURL", response.RedirectUrl);
        writer.WriteNumber("headersSize", response.HeadersSize);
        writer.WriteNumber("bodySize", response.BodySize);
        WriteOptional(writer, "comment", response.Comment);
        writer.WriteEndObject();
    }

    private static void WriteHeadersAndCookies(Utf8JsonWriter writer, IReadOnlyList<HarNameValue> cookies, IReadOnlyList<HarNameValue> headers)
    {
        writer.WritePropertyName("cookies");
        JsonSerializer.Serialize(writer, cookies, HarJsonContext.Default.IReadOnlyListHarNameValue);
        writer.WritePropertyName("headers");
        JsonSerializer.Serialize(writer, headers, HarJsonContext.Default.IReadOnlyListHarNameValue);
    }

    /// <summary>A body text, flushed to the pipe segment by segment.</summary>
    private static async Task WriteTextAsync(Utf8JsonWriter writer, PipeWriter pipe, string text, CancellationToken cancellationToken)
    {
        writer.WritePropertyName("text");
        if (text.Length <= Segment)
        {
            writer.WriteStringValue(text);
            return;
        }

        // A segment may end inside a surrogate pair: the writer carries the half over to the next.
        for (int offset = 0; offset < text.Length; offset += Segment)
        {
            int length = Math.Min(Segment, text.Length - offset);
            bool last = offset + length == text.Length;
            writer.WriteStringValueSegment(text.AsSpan(offset, length), last);
            if (!last)
            {
                await FlushAsync(writer, pipe, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static void WriteOptional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is not null)
        {
            writer.WriteString(name, value);
        }
    }

    private static async ValueTask FlushAsync(Utf8JsonWriter writer, PipeWriter pipe, CancellationToken cancellationToken)
    {
        writer.Flush();
        await pipe.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
