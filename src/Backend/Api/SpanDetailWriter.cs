using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Backend.Storage;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Api;

/// <summary>
/// Writes a <see cref="SpanDetailDto"/> of a stored span straight to the response, the bodies in
/// segments: the decoded body bytes are the only whole copy a request makes (no body string, no
/// DTO, no buffered answer), so a span at the attribute cap costs a reader about its own size.
/// </summary>
internal static class SpanDetailWriter
{
    // Bytes of body written per segment; the pipe is flushed between segments.
    private const int Segment = 64 * 1024;

    public static async Task WriteAsync(HttpContext context, StoredSpan span)
    {
        var attributes = JsonNode.Parse(span.AttributesJson) as JsonObject ?? [];
        var requestMeta = BodyMeta.Take(attributes, OtlpAttributes.RequestBodyMetaPrefix);
        var responseMeta = BodyMeta.Take(attributes, OtlpAttributes.ResponseBodyMetaPrefix);
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json; charset=utf-8";
        var pipe = response.BodyWriter;
        var cancellationToken = context.RequestAborted;
        await using var writer = new Utf8JsonWriter(pipe);
        writer.WriteStartObject();
        writer.WritePropertyName("span");
        JsonSerializer.Serialize(writer, SpanViews.ToDto(span), BackendJsonContext.Default.SpanDto);
        writer.WriteString("scheme", span.Scheme);
        writer.WriteString("query", span.Query);
        writer.WriteString("route", span.Route);
        WriteRaw(writer, "requestHeaders", span.RequestHeadersJson);
        WriteRaw(writer, "responseHeaders", span.ResponseHeadersJson);
        await WriteBodyAsync(writer, pipe, "requestBody", span.RequestBody, requestMeta, cancellationToken).ConfigureAwait(false);
        await WriteBodyAsync(writer, pipe, "responseBody", span.ResponseBody, responseMeta, cancellationToken).ConfigureAwait(false);
        writer.WritePropertyName("attributes");
        attributes.WriteTo(writer);
        writer.WritePropertyName("model");
        JsonSerializer.Serialize(writer, SpanModelReader.Read(span.ModelJson, span.IsError), BackendJsonContext.Default.SpanModelDto);
        writer.WritePropertyName("grpc");
        var grpc = context.RequestServices.GetRequiredService<GrpcCalls.GrpcCallDecoder>().Decode(attributes, span.Path);
        JsonSerializer.Serialize(writer, grpc, BackendJsonContext.Default.GrpcCallDto);
        writer.WriteEndObject();
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private static void WriteRaw(Utf8JsonWriter writer, string name, string? json)
    {
        writer.WritePropertyName(name);
        if (json is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            writer.WriteRawValue(json);
        }
    }

    private static async Task WriteBodyAsync(Utf8JsonWriter writer, PipeWriter pipe, string name, ReadOnlyMemory<byte> content, BodyMeta meta, CancellationToken cancellationToken)
    {
        writer.WritePropertyName(name);
        if (content.IsEmpty && meta.Kind is null)
        {
            writer.WriteNullValue();
            return;
        }

        var isText = !string.Equals(meta.Kind, "binary", StringComparison.Ordinal);
        var asText = isText && Utf8.IsValid(content.Span);
        writer.WriteStartObject();
        writer.WriteString("encoding", asText ? "text" : "base64");
        writer.WriteString("kind", isText ? "text" : "binary");
        writer.WritePropertyName("content");
        if (content.IsEmpty)
        {
            writer.WriteStringValue("");
        }

        for (var offset = 0; offset < content.Length; offset += Segment)
        {
            var segment = content.Span.Slice(offset, Math.Min(Segment, content.Length - offset));
            var last = offset + segment.Length == content.Length;
            if (asText)
            {
                // Segments may split a UTF-8 sequence: the writer carries the partial character over.
                writer.WriteStringValueSegment(segment, last);
            }
            else
            {
                writer.WriteBase64StringSegment(segment, last);
            }

            if (!last)
            {
                writer.Flush();
                await pipe.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        writer.WriteNumber("capturedBytes", content.Length);
        writer.WriteNumber("originalSize", meta.Size ?? content.Length);
        writer.WriteBoolean("truncated", meta.Truncated);
        writer.WriteString("contentType", meta.ContentType);
        writer.WriteString("contentEncoding", meta.ContentEncoding);
        writer.WriteBoolean("decoded", meta.Decoded);
        writer.WriteEndObject();
    }

    /// <summary>A body's metadata, moved out of the attributes.</summary>
    private readonly record struct BodyMeta(string? Kind, long? Size, bool Truncated, string? ContentType, string? ContentEncoding, bool Decoded)
    {
        public static BodyMeta Take(JsonObject attributes, string prefix) => new(
            Remove(attributes, prefix + OtlpAttributes.BodyKindSuffix)?.GetValue<string>(),
            Remove(attributes, prefix + OtlpAttributes.BodySizeSuffix)?.GetValue<long>(),
            Remove(attributes, prefix + OtlpAttributes.BodyTruncatedSuffix)?.GetValue<bool>() ?? false,
            Remove(attributes, prefix + OtlpAttributes.BodyContentTypeSuffix)?.GetValue<string>(),
            Remove(attributes, prefix + OtlpAttributes.BodyContentEncodingSuffix)?.GetValue<string>(),
            Remove(attributes, prefix + OtlpAttributes.BodyDecodedSuffix)?.GetValue<bool>() ?? false);

        private static JsonNode? Remove(JsonObject attributes, string key) =>
            attributes.Remove(key, out var node) ? node : null;
    }
}
