using System.Text.Json;
using System.Text.Json.Serialization;

namespace SpIstio.Backend.Har;

/// <summary>
/// HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/): the model, and reading and writing it
/// with System.Text.Json (source-generated). Every field the specification requires is a
/// non-nullable member with a spec-conforming default, so a written document is always valid.
/// </summary>
public sealed record HarDocument
{
    /// <summary>The root object.</summary>
    public required HarLog Log { get; init; }

    /// <summary>Reads a HAR document; throws <see cref="JsonException"/> when it is not one.</summary>
    public static HarDocument Parse(ReadOnlySpan<byte> utf8Json) =>
        JsonSerializer.Deserialize(utf8Json, HarJsonContext.Default.HarDocument)
            ?? throw new JsonException("The document is empty.");

    /// <summary>Reads a HAR document from a stream.</summary>
    public static async Task<HarDocument> ParseAsync(Stream utf8Json, CancellationToken cancellationToken) =>
        await JsonSerializer.DeserializeAsync(utf8Json, HarJsonContext.Default.HarDocument, cancellationToken).ConfigureAwait(false)
            ?? throw new JsonException("The document is empty.");

    /// <summary>The document as indented UTF-8 JSON.</summary>
    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, HarJsonContext.Default.HarDocument);

    /// <summary>Writes the document as indented UTF-8 JSON.</summary>
    public Task WriteAsync(Stream stream, CancellationToken cancellationToken) =>
        JsonSerializer.SerializeAsync(stream, this, HarJsonContext.Default.HarDocument, cancellationToken);
}

/// <summary><c>log</c>.</summary>
public sealed record HarLog
{
    /// <summary>Format version: 1.2.</summary>
    public string Version { get; init; } = "1.2";

    /// <summary>The application that wrote the log.</summary>
    public HarCreator Creator { get; init; } = new();

    /// <summary>Pages (optional; one per session or trace here).</summary>
    public IReadOnlyList<HarPage>? Pages { get; init; }

    /// <summary>The exchanges, in start order.</summary>
    public IReadOnlyList<HarEntry> Entries { get; init; } = [];

    /// <summary>Free text.</summary>
    public string? Comment { get; init; }
}

/// <summary><c>log.creator</c>.</summary>
public sealed record HarCreator
{
    /// <summary>Name.</summary>
    public string Name { get; init; } = "sp-istio-agent-dotnet";

    /// <summary>Version.</summary>
    public string Version { get; init; } = "1.0";
}

/// <summary><c>log.pages[]</c>.</summary>
public sealed record HarPage
{
    /// <summary>Page start.</summary>
    public DateTimeOffset StartedDateTime { get; init; }

    /// <summary>Unique id referenced by entries' <c>pageref</c>.</summary>
    public required string Id { get; init; }

    /// <summary>Title.</summary>
    public string Title { get; init; } = "";

    /// <summary>Page timings (both unknown: -1).</summary>
    public HarPageTimings PageTimings { get; init; } = new();
}

/// <summary><c>pages[].pageTimings</c>.</summary>
public sealed record HarPageTimings
{
    /// <summary>Milliseconds to DOMContentLoaded; -1 unknown.</summary>
    public double OnContentLoad { get; init; } = -1;

    /// <summary>Milliseconds to load; -1 unknown.</summary>
    public double OnLoad { get; init; } = -1;
}

/// <summary><c>log.entries[]</c>: one exchange.</summary>
public sealed record HarEntry
{
    /// <summary>Page this entry belongs to.</summary>
    public string? Pageref { get; init; }

    /// <summary>Request start.</summary>
    public DateTimeOffset StartedDateTime { get; init; }

    /// <summary>Total milliseconds (the sum of the non-negative timings).</summary>
    public double Time { get; init; }

    /// <summary>The request.</summary>
    public HarRequest Request { get; init; } = new();

    /// <summary>The response.</summary>
    public HarResponse Response { get; init; } = new();

    /// <summary>Cache state (unknown: empty).</summary>
    public HarCache Cache { get; init; } = new();

    /// <summary>Timings.</summary>
    public HarTimings Timings { get; init; } = new();

    /// <summary>Free text.</summary>
    public string? Comment { get; init; }

    /// <summary>Trace id of the captured exchange (custom field; custom fields start with '_').</summary>
    [JsonPropertyName("_traceId")]
    public string? TraceId { get; init; }

    /// <summary>Span id of the captured exchange (custom field).</summary>
    [JsonPropertyName("_spanId")]
    public string? SpanId { get; init; }

    /// <summary>Service that captured it (custom field).</summary>
    [JsonPropertyName("_service")]
    public string? Service { get; init; }
}

/// <summary><c>entries[].request</c>.</summary>
public sealed record HarRequest
{
    /// <summary>Method.</summary>
    public string Method { get; init; } = "GET";

    /// <summary>Absolute URL, query included.</summary>
    public string Url { get; init; } = "";

    /// <summary>HTTP version.</summary>
    public string HttpVersion { get; init; } = "HTTP/1.1";

    /// <summary>Cookies (not parsed here: they are in the headers).</summary>
    public IReadOnlyList<HarCookie> Cookies { get; init; } = [];

    /// <summary>Headers in order.</summary>
    public IReadOnlyList<HarNameValue> Headers { get; init; } = [];

    /// <summary>Query parameters.</summary>
    public IReadOnlyList<HarNameValue> QueryString { get; init; } = [];

    /// <summary>Posted data, when the request had a body.</summary>
    public HarPostData? PostData { get; init; }

    /// <summary>-1: unknown.</summary>
    public long HeadersSize { get; init; } = -1;

    /// <summary>Body bytes, -1 unknown.</summary>
    public long BodySize { get; init; } = -1;
}

/// <summary><c>request.postData</c>.</summary>
public sealed record HarPostData
{
    /// <summary>MIME type.</summary>
    public string MimeType { get; init; } = "";

    /// <summary>The body as text (base64 when <see cref="Encoding"/> says so; a common extension).</summary>
    public string Text { get; init; } = "";

    /// <summary><c>base64</c> when <see cref="Text"/> is base64.</summary>
    [JsonPropertyName("_encoding")]
    public string? Encoding { get; init; }
}

/// <summary><c>entries[].response</c>.</summary>
public sealed record HarResponse
{
    /// <summary>Status (0 when there was no response).</summary>
    public int Status { get; init; }

    /// <summary>Reason phrase.</summary>
    public string StatusText { get; init; } = "";

    /// <summary>HTTP version.</summary>
    public string HttpVersion { get; init; } = "HTTP/1.1";

    /// <summary>Cookies (not parsed here).</summary>
    public IReadOnlyList<HarCookie> Cookies { get; init; } = [];

    /// <summary>Headers in order.</summary>
    public IReadOnlyList<HarNameValue> Headers { get; init; } = [];

    /// <summary>The body.</summary>
    public HarContent Content { get; init; } = new();

    /// <summary>Location header value, or empty.</summary>
    public string RedirectURL { get; init; } = "";

    /// <summary>-1: unknown.</summary>
    public long HeadersSize { get; init; } = -1;

    /// <summary>Body bytes on the wire, -1 unknown.</summary>
    public long BodySize { get; init; } = -1;
}

/// <summary><c>response.content</c>.</summary>
public sealed record HarContent
{
    /// <summary>Decoded length in bytes.</summary>
    public long Size { get; init; }

    /// <summary>MIME type.</summary>
    public string MimeType { get; init; } = "";

    /// <summary>The body, as text or base64 (see <see cref="Encoding"/>).</summary>
    public string? Text { get; init; }

    /// <summary><c>base64</c> when <see cref="Text"/> is base64.</summary>
    public string? Encoding { get; init; }
}

/// <summary>A name/value pair (headers, query parameters).</summary>
/// <param name="Name">Name.</param>
/// <param name="Value">Value.</param>
public sealed record HarNameValue(string Name, string Value);

/// <summary>A cookie.</summary>
/// <param name="Name">Name.</param>
/// <param name="Value">Value.</param>
public sealed record HarCookie(string Name, string Value);

/// <summary><c>entries[].cache</c> (nothing known).</summary>
public sealed record HarCache;

/// <summary><c>entries[].timings</c>: send, wait and receive are required; -1 means not applicable.</summary>
public sealed record HarTimings
{
    /// <summary>Blocked, -1 n/a.</summary>
    public double Blocked { get; init; } = -1;

    /// <summary>DNS, -1 n/a.</summary>
    public double Dns { get; init; } = -1;

    /// <summary>Connect, -1 n/a.</summary>
    public double Connect { get; init; } = -1;

    /// <summary>Send.</summary>
    public double Send { get; init; }

    /// <summary>Wait (the whole exchange, as the capture sees it).</summary>
    public double Wait { get; init; }

    /// <summary>Receive.</summary>
    public double Receive { get; init; }

    /// <summary>TLS, -1 n/a.</summary>
    public double Ssl { get; init; } = -1;
}

/// <summary>Source-generated JSON metadata of HAR (camelCase; absent optional fields omitted).</summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(HarDocument))]
public sealed partial class HarJsonContext : JsonSerializerContext;
