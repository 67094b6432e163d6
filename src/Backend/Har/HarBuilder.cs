using System.Globalization;
using System.IO.Pipelines;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using System.Text.Json.Nodes;
using SpIstio.Backend.Api;
using SpIstio.Backend.GrpcCalls;
using SpIstio.Core.GrpcMessages;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Har;

/// <summary>
/// Stored exchange spans to and from HAR 1.2: the Trace View's "download as HAR" and the cache's
/// import/export use this one mapping. Bodies go through the query API's <see cref="SpanDetailDto"/>
/// mapping so the HAR holds exactly what the exchange page shows (redacted values stay redacted).
/// </summary>
public static class HarBuilder
{
    /// <summary><c>log.creator.name</c>.</summary>
    public const string CreatorName = "sp-istio-agent-dotnet";

    private static readonly string _creatorVersion =
        typeof(HarBuilder).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    /// <summary>A HAR document of the exchange spans among <paramref name="spans"/>, in start order (other spans are skipped).</summary>
    /// <param name="spans">The spans.</param>
    /// <param name="comment"><c>log.comment</c>.</param>
    /// <param name="grpc">Decodes gRPC calls (with the backend's descriptor sets); schema-less when null. One decode budget covers the whole document.</param>
    public static HarDocument Build(IEnumerable<StoredSpan> spans, string? comment = null, GrpcCallDecoder? grpc = null)
    {
        ArgumentNullException.ThrowIfNull(spans);
        grpc ??= GrpcCallDecoder.Schemaless;
        var budget = grpc.NewBudget();
        var entries = new List<HarEntry>();
        foreach (var span in spans.Where(s => s.IsExchange).OrderBy(s => s.StartTime))
        {
            entries.Add(ToEntry(span, grpc, budget));
        }

        return new HarDocument(new HarLog { Creator = new HarCreator(CreatorName, _creatorVersion), Entries = entries, Comment = comment });
    }

    /// <summary>
    /// One stored exchange span as a HAR entry. A gRPC call keeps the HTTP/2 request and response with
    /// their headers and trailers; its bodies become the decoded messages as a JSON array (mime type
    /// <c>application/grpc</c>, as on the wire) and the whole call goes in <c>_grpc</c>; a comment says
    /// that the length-prefixed frames are left out.
    /// </summary>
    public static HarEntry ToEntry(StoredSpan span, GrpcCallDecoder? grpc = null, ProtobufDecodeBudget? grpcBudget = null)
    {
        ArgumentNullException.ThrowIfNull(span);
        var detail = SpanViews.ToDetail(span, grpc ?? GrpcCallDecoder.Schemaless, grpcBudget);
        if (detail.Grpc is { } call)
        {
            detail = detail with
            {
                RequestBody = GrpcBody(detail.RequestBody, call.Request),
                ResponseBody = GrpcBody(detail.ResponseBody, call.Response),
            };
        }

        var requestHeaders = Headers(detail.RequestHeaders);
        var responseHeaders = Headers(detail.ResponseHeaders);
        var httpVersion = HttpVersion(detail.Attributes);
        var ms = Math.Max(0, span.Duration.TotalMilliseconds);
        var status = span.StatusCode ?? 0;
        var requestBody = detail.RequestBody;
        var responseBody = detail.ResponseBody;

        var request = new HarRequest
        {
            Method = span.Method ?? "GET",
            Url = Url(span.Scheme, span.Authority, span.Path, span.Query, span.ServiceName),
            HttpVersion = httpVersion,
            Cookies = RequestCookies(requestHeaders),
            Headers = requestHeaders,
            QueryString = QueryString(span.Query),
            PostData = requestBody is null ? null : new HarPostData
            {
                MimeType = requestBody.ContentType ?? Header(requestHeaders, "content-type") ?? "application/octet-stream",
                Text = requestBody.Content,
                Encoding = requestBody.Encoding == "base64" ? "base64" : null,
                Comment = TruncationNote(requestBody),
            },
            BodySize = requestBody is null ? 0 : Size(requestBody),
            Comment = requestBody is null ? null : TruncationNote(requestBody),
        };

        var response = new HarResponse
        {
            Status = status,
            StatusText = status == 0 ? "" : ReasonPhrases.GetReasonPhrase(status),
            HttpVersion = httpVersion,
            Cookies = ResponseCookies(responseHeaders),
            Headers = responseHeaders,
            Content = responseBody is null
                ? new HarContent { Size = 0, MimeType = Header(responseHeaders, "content-type") ?? "" }
                : new HarContent
                {
                    Size = Size(responseBody),
                    MimeType = responseBody.ContentType ?? Header(responseHeaders, "content-type") ?? "",
                    Text = responseBody.Content,
                    Encoding = responseBody.Encoding == "base64" ? "base64" : null,
                    Comment = TruncationNote(responseBody),
                },
            RedirectUrl = Header(responseHeaders, "location") ?? "",
            BodySize = responseBody is null ? 0 : responseBody.OriginalSize,
        };

        var webSocket = HarStreams.WebSocketMessages(detail.Attributes, span.StartTime);
        return new HarEntry
        {
            StartedDateTime = span.StartTime.ToString("yyyy-MM-ddTHH:mm:ss.fffK", CultureInfo.InvariantCulture),
            Time = ms,
            Request = request,
            Response = response,
            Timings = new HarTimings(0, ms, 0),
            Comment = span.ServiceName + " " + (span.Direction ?? "exchange") + HarStreams.Note(detail.Attributes, webSocket)
                + (detail.Grpc is { } g ? " · gRPC " + g.Service + "/" + g.Method + " " + (g.StatusName ?? "without a status") + ". " + GrpcComment : null),
            Grpc = detail.Grpc,
            TraceId = span.TraceId,
            SpanId = span.SpanId,
            Service = span.ServiceName,
            Direction = span.Direction,
            SessionId = span.SessionId,
            WebSocketMessages = webSocket,
        };
    }

    /// <summary>What a gRPC entry leaves out, in its comment and its bodies' comments.</summary>
    public const string GrpcComment =
        "Bodies hold the call's messages decoded by the backend as a JSON array (proto3 JSON with field names when a descriptor set describes the method, else the schema-less field list, else base64), not the length-prefixed frames; _grpc holds the status, offsets, sizes and flags of every message.";

    // A gRPC body as HAR carries it: the decoded messages (JSON, one element per message) in place of the frames.
    private static BodyDto? GrpcBody(BodyDto? body, GrpcMessagesDto? messages)
    {
        if (messages is null)
        {
            return body;
        }

        var array = new JsonArray();
        foreach (var m in messages.Messages)
        {
            array.Add((m.Json ?? m.Fields)?.DeepClone() ?? JsonValue.Create(m.Base64));
        }

        var text = array.ToJsonString();
        return new BodyDto("text", "text", text, System.Text.Encoding.UTF8.GetByteCount(text), body?.OriginalSize ?? -1, messages.Truncated,
            body?.ContentType ?? "application/grpc", body?.ContentEncoding, Decoded: true);
    }

    /// <summary>
    /// How many times the read budget's per-byte cost a HAR export takes: the spans' decoded bytes
    /// and the document's UTF-16 body strings are held together while it is written.
    /// </summary>
    public const int ReadFactor = 2;

    /// <summary>Writes <paramref name="document"/> to <paramref name="response"/> as it is written (no whole-document or whole-body buffer; <see cref="HarWriter"/>).</summary>
    public static async Task WriteAsync(Microsoft.AspNetCore.Http.HttpResponse response, HarDocument document, string fileName)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(document);
        response.ContentType = "application/json";
        response.Headers.ContentDisposition = "attachment; filename=\"" + fileName + "\"";
        await HarWriter.WriteAsync(response.BodyWriter, document, response.HttpContext.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The document as indented UTF-8 JSON, written as <see cref="WriteAsync"/> writes it.</summary>
    public static byte[] Serialize(HarDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        using var buffer = new MemoryStream();
        var pipe = PipeWriter.Create(buffer);

        // A stream-backed pipe over memory completes every flush at once: nothing here waits.
        HarWriter.WriteAsync(pipe, document, CancellationToken.None).GetAwaiter().GetResult();
        pipe.Complete();
        return buffer.ToArray();
    }

    /// <summary>Reads a HAR document.</summary>
    /// <exception cref="JsonException">The text is not a HAR document.</exception>
    public static HarDocument Parse(ReadOnlySpan<byte> utf8Json)
    {
        var document = JsonSerializer.Deserialize(utf8Json, HarJsonContext.Default.HarDocument);
        return document?.Log?.Entries is null ? throw new JsonException("not a HAR document: no log.entries") : document;
    }

    /// <summary>Reads a HAR document from a stream (a HAR file upload).</summary>
    /// <exception cref="JsonException">The text is not a HAR document.</exception>
    public static async Task<HarDocument> ParseAsync(Stream utf8Json, CancellationToken cancellationToken)
    {
        var document = await JsonSerializer.DeserializeAsync(utf8Json, HarJsonContext.Default.HarDocument, cancellationToken).ConfigureAwait(false);
        return document?.Log?.Entries is null ? throw new JsonException("not a HAR document: no log.entries") : document;
    }

    /// <summary>The bytes of a HAR body text, which is base64 when <paramref name="encoding"/> says so.</summary>
    /// <exception cref="FormatException">A base64 text is not base64.</exception>
    public static byte[] BodyBytes(string? text, string? encoding)
    {
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        return string.Equals(encoding, "base64", StringComparison.OrdinalIgnoreCase) ? Convert.FromBase64String(text) : System.Text.Encoding.UTF8.GetBytes(text);
    }

    /// <summary>
    /// The absolute URL of an exchange, a valid URI (RFC 3986): characters a URI cannot hold — the
    /// <c>[REDACTED]</c> markers' brackets, spaces, quotes — are percent-encoded (existing escapes kept),
    /// and an exchange without a host (a SERVER span that recorded none) gets <paramref name="fallbackHost"/>,
    /// the service's name, so every entry can be replayed and re-imported.
    /// </summary>
    internal static string Url(string? scheme, string? authority, string? path, string? query, string? fallbackHost = null)
    {
        var host = string.IsNullOrEmpty(authority) ? HostName(fallbackHost) : EncodePart(authority, "-._~!$&'()*+,;=:[]");
        var target = path is null or "" ? "/" : path[0] == '/' ? path : "/" + path;
        return string.Concat(
            scheme is { Length: > 0 } && char.IsAsciiLetter(scheme[0]) && !scheme.AsSpan().ContainsAnyExcept(SchemeChars) ? scheme : "http",
            "://",
            host,
            EncodePart(target, "-._~!$&'()*+,;=:@/"),
            query is null ? "" : "?" + EncodePart(query, "-._~!$&'()*+,;=:@/?"));
    }

    private static readonly System.Buffers.SearchValues<char> SchemeChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");

    /// <summary>A host name made of a service name: letters, digits and hyphens, lower case.</summary>
    private static string HostName(string? service)
    {
        if (string.IsNullOrEmpty(service))
        {
            return "localhost";
        }

        var chars = service.ToLowerInvariant().ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (!(char.IsAsciiLetterOrDigit(chars[i]) || chars[i] is '-' or '.'))
            {
                chars[i] = '-';
            }
        }

        var name = new string(chars).Trim('-', '.');
        return name.Length == 0 ? "localhost" : name;
    }

    /// <summary>Percent-encodes what a URI component may not hold; letters, digits, <paramref name="allowed"/> and existing %XX escapes stay.</summary>
    private static string EncodePart(string text, string allowed)
    {
        var builder = new System.Text.StringBuilder(text.Length + 16);
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsAsciiLetterOrDigit(c) || allowed.Contains(c, StringComparison.Ordinal)
                || (c == '%' && i + 2 < text.Length && char.IsAsciiHexDigit(text[i + 1]) && char.IsAsciiHexDigit(text[i + 2])))
            {
                builder.Append(c);
                continue;
            }

            int length = char.IsHighSurrogate(c) && i + 1 < text.Length
                ? System.Text.Encoding.UTF8.GetBytes(text.AsSpan(i++, 2), utf8)
                : System.Text.Encoding.UTF8.GetBytes(text.AsSpan(i, 1), utf8);
            foreach (var b in utf8[..length])
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    private static long Size(BodyDto body) => body.Decoded || body.OriginalSize < 0 ? body.CapturedBytes : body.OriginalSize;

    private static string? TruncationNote(BodyDto body) => body.Truncated
        ? string.Create(CultureInfo.InvariantCulture, $"truncated: {body.CapturedBytes} of {(body.OriginalSize < 0 ? "unknown" : body.OriginalSize.ToString(CultureInfo.InvariantCulture))} bytes captured")
        : null;

    private static List<HarNameValue> Headers(JsonElement? pairs)
    {
        var list = new List<HarNameValue>();
        if (pairs is not { ValueKind: JsonValueKind.Array } array)
        {
            return list;
        }

        foreach (var pair in array.EnumerateArray())
        {
            if (pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2)
            {
                list.Add(new HarNameValue(pair[0].GetString() ?? "", pair[1].GetString() ?? ""));
            }
        }

        return list;
    }

    private static string? Header(List<HarNameValue> headers, string name)
    {
        foreach (var h in headers)
        {
            if (string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return h.Value;
            }
        }

        return null;
    }

    private static string HttpVersion(JsonElement attributes)
    {
        if (attributes.ValueKind == JsonValueKind.Object
            && attributes.TryGetProperty("network.protocol.version", out var v)
            && v.ValueKind == JsonValueKind.String)
        {
            return "HTTP/" + v.GetString();
        }

        return "HTTP/1.1";
    }

    private static List<HarNameValue> RequestCookies(List<HarNameValue> headers)
    {
        var cookies = new List<HarNameValue>();
        foreach (var h in headers)
        {
            if (!string.Equals(h.Name, "cookie", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var part in h.Value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var eq = part.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    cookies.Add(new HarNameValue(part[..eq], part[(eq + 1)..]));
                }
            }
        }

        return cookies;
    }

    private static List<HarNameValue> ResponseCookies(List<HarNameValue> headers)
    {
        var cookies = new List<HarNameValue>();
        foreach (var h in headers)
        {
            if (!string.Equals(h.Name, "set-cookie", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var first = h.Value.Split(';', 2)[0];
            var eq = first.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                cookies.Add(new HarNameValue(first[..eq].Trim(), first[(eq + 1)..].Trim()));
            }
        }

        return cookies;
    }

    private static List<HarNameValue> QueryString(string? query)
    {
        var list = new List<HarNameValue>();
        if (string.IsNullOrEmpty(query))
        {
            return list;
        }

        foreach (var part in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            var name = eq < 0 ? part : part[..eq];
            var value = eq < 0 ? "" : part[(eq + 1)..];
            list.Add(new HarNameValue(Unescape(name), Unescape(value)));
        }

        return list;
    }

    private static string Unescape(string text)
    {
        try
        {
            return Uri.UnescapeDataString(text.Replace('+', ' '));
        }
        catch (UriFormatException)
        {
            return text;
        }
    }
}
