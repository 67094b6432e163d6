using System.Text.Json;
using System.Text.Json.Serialization;

namespace SpIstio.Backend.Har;

/// <summary>A HAR 1.2 document (http://www.softwareishard.com/blog/har-12-spec/): the root object holding <see cref="Log"/>.</summary>
public sealed record HarDocument(HarLog Log);

/// <summary>The HAR <c>log</c> object.</summary>
public sealed record HarLog
{
    /// <summary>Always <c>1.2</c>.</summary>
    public string Version { get; init; } = "1.2";

    /// <summary>The application that wrote the file.</summary>
    public required HarCreator Creator { get; init; }

    /// <summary>One entry per captured exchange, oldest first.</summary>
    public required IReadOnlyList<HarEntry> Entries { get; init; }

    /// <summary>Free text.</summary>
    public string? Comment { get; init; }
}

/// <summary>The HAR <c>creator</c> object.</summary>
public sealed record HarCreator(string Name, string Version);

/// <summary>One HAR entry: a request, its response and timings.</summary>
public sealed record HarEntry
{
    /// <summary>ISO 8601 start time with offset.</summary>
    public required string StartedDateTime { get; init; }

    /// <summary>Total time in milliseconds (the sum of the non-negative <see cref="Timings"/>).</summary>
    public double Time { get; init; }

    /// <summary>The request.</summary>
    public required HarRequest Request { get; init; }

    /// <summary>The response.</summary>
    public required HarResponse Response { get; init; }

    /// <summary>Cache state; always empty (the capture does not see the browser cache).</summary>
    public HarCache Cache { get; init; } = new();

    /// <summary>Timings.</summary>
    public required HarTimings Timings { get; init; }

    /// <summary>Free text (service, direction, redaction notes).</summary>
    public string? Comment { get; init; }

    /// <summary>Custom field: the W3C trace id of the exchange.</summary>
    [JsonPropertyName("_traceId")]
    public string? TraceId { get; init; }

    /// <summary>Custom field: the span id of the exchange.</summary>
    [JsonPropertyName("_spanId")]
    public string? SpanId { get; init; }

    /// <summary>Custom field: the service that captured it.</summary>
    [JsonPropertyName("_service")]
    public string? Service { get; init; }

    /// <summary>Custom field: <c>inbound</c> or <c>outbound</c>.</summary>
    [JsonPropertyName("_direction")]
    public string? Direction { get; init; }

    /// <summary>Custom field: the business session id.</summary>
    [JsonPropertyName("_sessionId")]
    public string? SessionId { get; init; }

    /// <summary>
    /// Custom field, as Chrome DevTools writes it: the text and binary messages of a WebSocket
    /// (<see cref="HarStreams"/>); null for any other exchange.
    /// </summary>
    [JsonPropertyName("_webSocketMessages")]
    public IReadOnlyList<HarWebSocketMessage>? WebSocketMessages { get; init; }

    /// <summary>
    /// Custom field, gRPC calls only: service, method, status (code, name, grpc-message, decoded
    /// details) and both message streams as the backend decoded them (<see cref="GrpcCalls.GrpcCallDto"/>).
    /// </summary>
    [JsonPropertyName("_grpc")]
    public GrpcCalls.GrpcCallDto? Grpc { get; init; }
}

/// <summary>One WebSocket message in Chrome's HAR form.</summary>
/// <param name="Type"><c>send</c> (client to server) or <c>receive</c>.</param>
/// <param name="Time">When it was sent, in seconds since the Unix epoch (with a fraction).</param>
/// <param name="Opcode">1 for text, 2 for binary.</param>
/// <param name="Data">The text, or the binary payload in base64.</param>
public sealed record HarWebSocketMessage(string Type, double Time, int Opcode, string Data);

/// <summary>The HAR <c>request</c> object.</summary>
public sealed record HarRequest
{
    /// <summary>HTTP method.</summary>
    public required string Method { get; init; }

    /// <summary>Absolute URL.</summary>
    public required string Url { get; init; }

    /// <summary>E.g. <c>HTTP/1.1</c>.</summary>
    public required string HttpVersion { get; init; }

    /// <summary>Cookies sent.</summary>
    public required IReadOnlyList<HarNameValue> Cookies { get; init; }

    /// <summary>Headers in order.</summary>
    public required IReadOnlyList<HarNameValue> Headers { get; init; }

    /// <summary>Query parameters, decoded.</summary>
    public required IReadOnlyList<HarNameValue> QueryString { get; init; }

    /// <summary>The body, when there was one.</summary>
    public HarPostData? PostData { get; init; }

    /// <summary>-1: header bytes on the wire are not known.</summary>
    public long HeadersSize { get; init; } = -1;

    /// <summary>Body bytes, -1 when unknown.</summary>
    public long BodySize { get; init; } = -1;

    /// <summary>Free text (truncation).</summary>
    public string? Comment { get; init; }
}

/// <summary>The HAR <c>response</c> object.</summary>
public sealed record HarResponse
{
    /// <summary>HTTP status; 0 when no response was received.</summary>
    public int Status { get; init; }

    /// <summary>Reason phrase.</summary>
    public required string StatusText { get; init; }

    /// <summary>E.g. <c>HTTP/1.1</c>.</summary>
    public required string HttpVersion { get; init; }

    /// <summary>Cookies set.</summary>
    public required IReadOnlyList<HarNameValue> Cookies { get; init; }

    /// <summary>Headers in order.</summary>
    public required IReadOnlyList<HarNameValue> Headers { get; init; }

    /// <summary>The body.</summary>
    public required HarContent Content { get; init; }

    /// <summary>The <c>location</c> header, or empty.</summary>
    [JsonPropertyName("redirectURL")]
    public string RedirectUrl { get; init; } = "";

    /// <summary>-1: header bytes on the wire are not known.</summary>
    public long HeadersSize { get; init; } = -1;

    /// <summary>Body bytes on the wire, -1 when unknown.</summary>
    public long BodySize { get; init; } = -1;

    /// <summary>Free text.</summary>
    public string? Comment { get; init; }
}

/// <summary>A name/value pair (header, cookie, query parameter, form field).</summary>
public sealed record HarNameValue(string Name, string Value);

/// <summary>The HAR <c>postData</c> object.</summary>
public sealed record HarPostData
{
    /// <summary>The content type.</summary>
    public required string MimeType { get; init; }

    /// <summary>The body as text (base64 when <see cref="Encoding"/> says so).</summary>
    public required string Text { get; init; }

    /// <summary>Custom field: <c>base64</c> for a binary body (HAR 1.2 has no encoding for postData).</summary>
    [JsonPropertyName("_encoding")]
    public string? Encoding { get; init; }

    /// <summary>Free text (truncation).</summary>
    public string? Comment { get; init; }
}

/// <summary>The HAR <c>content</c> object.</summary>
public sealed record HarContent
{
    /// <summary>Length of the returned content in bytes.</summary>
    public long Size { get; init; }

    /// <summary>The content type (empty when unknown).</summary>
    public required string MimeType { get; init; }

    /// <summary>The body as text, or base64 when <see cref="Encoding"/> is <c>base64</c>.</summary>
    public string? Text { get; init; }

    /// <summary><c>base64</c> for a binary body.</summary>
    public string? Encoding { get; init; }

    /// <summary>Free text (truncation).</summary>
    public string? Comment { get; init; }
}

/// <summary>The HAR <c>cache</c> object (empty).</summary>
public sealed record HarCache;

/// <summary>The HAR <c>timings</c> object; the capture sees one interval, reported as <c>wait</c>.</summary>
public sealed record HarTimings(double Send, double Wait, double Receive);

/// <summary>Source-generated JSON metadata of the HAR types (camelCase, nulls omitted, indented).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(HarDocument))]
public sealed partial class HarJsonContext : JsonSerializerContext;
