using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SpIstio.Backend.Storage;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Otlp.Proto.Resource;
using SpIstio.Core.Otlp.Proto.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Backend.Ingest;

/// <summary>What one export request turned into: the spans to store and the ones refused.</summary>
/// <param name="Spans">Valid spans, in request order.</param>
/// <param name="Rejected">How many spans were refused.</param>
/// <param name="ErrorMessage">Why, one clause per reason with its count; null when nothing was refused.</param>
public sealed record ConversionResult(IReadOnlyList<StoredSpan> Spans, int Rejected, string? ErrorMessage);

/// <summary>
/// Turns OTLP spans into <see cref="StoredSpan"/>s. Spans carrying the exchange attributes (ours
/// and the original agent's) are read through <see cref="ExchangeSpanMapper.FromSpan"/> into the
/// HTTP fields, headers and bodies; any other span keeps its attributes as JSON. A span with a
/// missing, all-zero or wrong-length id cannot be placed in a trace and is refused on its own.
/// </summary>
public static class SpanConverter
{
    /// <summary>The service name of a span that names none (OTel SDK default).</summary>
    public const string UnknownService = "unknown_service";

    /// <summary>The OTel semantic-convention attribute naming the matched route template.</summary>
    public const string HttpRoute = "http.route";

    private static readonly JsonWriterOptions _writerOptions = new() { Indented = false, SkipValidation = true };

    /// <summary>Converts every span of <paramref name="request"/>.</summary>
    public static ConversionResult Convert(ExportTraceServiceRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var spans = new List<StoredSpan>(CountSpans(request));
        int badTrace = 0, badSpan = 0, badParent = 0;
        var buffer = new ArrayBufferWriter<byte>(1024);
        foreach (var resourceSpans in request.ResourceSpans)
        {
            var resource = resourceSpans.Resource;
            foreach (var scopeSpans in resourceSpans.ScopeSpans)
            {
                var scope = scopeSpans.Scope;
                foreach (var span in scopeSpans.Spans)
                {
                    if (!IsValidId(span.TraceId, 16))
                    {
                        badTrace++;
                    }
                    else if (!IsValidId(span.SpanId, 8))
                    {
                        badSpan++;
                    }
                    else if (!span.ParentSpanId.IsEmpty && span.ParentSpanId.Length != 8)
                    {
                        badParent++;
                    }
                    else
                    {
                        spans.Add(ExchangeSpanMapper.IsExchangeSpan(span)
                            ? FromExchange(span, resource, scope, buffer)
                            : FromGeneric(span, resource, scope, buffer));
                    }
                }
            }
        }

        var rejected = badTrace + badSpan + badParent;
        return new ConversionResult(spans, rejected, rejected == 0 ? null : DescribeRejections(badTrace, badSpan, badParent));
    }

    private static int CountSpans(ExportTraceServiceRequest request)
    {
        var count = 0;
        foreach (var rs in request.ResourceSpans)
        {
            foreach (var ss in rs.ScopeSpans)
            {
                count += ss.Spans.Count;
            }
        }

        return count;
    }

    private static bool IsValidId(Google.Protobuf.ByteString id, int length) =>
        id.Length == length && id.Span.ContainsAnyExcept((byte)0);

    private static string DescribeRejections(int badTrace, int badSpan, int badParent)
    {
        var sb = new StringBuilder();
        Append(sb, badTrace, "trace_id missing, all zero or not 16 bytes");
        Append(sb, badSpan, "span_id missing, all zero or not 8 bytes");
        Append(sb, badParent, "parent_span_id not 8 bytes");
        return sb.ToString();

        static void Append(StringBuilder sb, int count, string reason)
        {
            if (count == 0)
            {
                return;
            }

            if (sb.Length > 0)
            {
                sb.Append("; ");
            }

            sb.Append(CultureInfo.InvariantCulture, $"{count} span(s) rejected: {reason}");
        }
    }

    private static StoredSpan FromExchange(OtlpSpan span, Resource? resource, InstrumentationScope? scope, ArrayBufferWriter<byte> buffer)
    {
        var exchange = ExchangeSpanMapper.FromSpan(span, resource);

        // The instrumented framework's own template wins (semconv http.route): it knows which segments are parameters.
        var route = exchange.Attributes.TryGetValue(HttpRoute, out var declared) && declared.StartsWith('/')
            ? declared
            : RouteTemplate.FromPath(exchange.Path);
        // One definition (ErrorDefinition): a response was cut short after its status (transport failure)
        // is an error whatever the status; otherwise the status decides, and OTLP ERROR only without one.
        var isError = exchange.Outcome != ExchangeOutcome.Completed
            || ErrorDefinition.IsError(exchange.StatusCode, span.Status?.Code == Status.Types.StatusCode.Error);
        return new StoredSpan
        {
            TraceId = exchange.TraceId.ToHexString(),
            SpanId = exchange.SpanId.ToHexString(),
            ParentSpanId = exchange.ParentSpanId == default ? null : exchange.ParentSpanId.ToHexString(),
            Name = span.Name,
            Kind = (int)span.Kind,
            ServiceName = exchange.ServiceName,
            StartTime = exchange.StartTime,
            EndTime = exchange.EndTime,
            IsError = isError,
            IsExchange = true,
            SessionId = exchange.SessionId,
            Direction = exchange.Direction == TrafficDirection.Outbound ? "outbound" : "inbound",
            Method = exchange.Method,
            Scheme = exchange.Scheme,
            Authority = exchange.Authority,
            Path = exchange.Path,
            Query = exchange.Query,
            Route = route,
            StatusCode = exchange.StatusCode,
            RequestHeadersJson = HeadersJson(exchange.RequestHeaders, buffer),
            ResponseHeadersJson = HeadersJson(exchange.ResponseHeaders, buffer),
            RequestBody = exchange.RequestBody.Content,
            ResponseBody = exchange.ResponseBody.Content,
            AttributesJson = ExchangeAttributesJson(exchange, span, buffer),
            ModelJson = ModelJson(span, resource, scope, buffer),
        };
    }

    private static StoredSpan FromGeneric(OtlpSpan span, Resource? resource, InstrumentationScope? scope, ArrayBufferWriter<byte> buffer)
    {
        string? service = null, session = null, route = null;
        foreach (var kv in span.Attributes)
        {
            if (string.Equals(kv.Key, HttpRoute, StringComparison.Ordinal) && kv.Value?.ValueCase == AnyValue.ValueOneofCase.StringValue)
            {
                route = kv.Value.StringValue;
            }

            if (string.Equals(kv.Key, OtlpAttributes.ServiceName, StringComparison.Ordinal))
            {
                service = ExchangeSpanMapper.AsString(kv.Value ?? new AnyValue());
            }
            else if (string.Equals(kv.Key, OtlpAttributes.SessionId, StringComparison.Ordinal))
            {
                session = ExchangeSpanMapper.AsString(kv.Value ?? new AnyValue());
            }
        }

        if (string.IsNullOrEmpty(service) && resource is not null)
        {
            foreach (var kv in resource.Attributes)
            {
                if (string.Equals(kv.Key, OtlpAttributes.ResourceServiceName, StringComparison.Ordinal))
                {
                    service = ExchangeSpanMapper.AsString(kv.Value ?? new AnyValue());
                    break;
                }
            }
        }

        var parent = span.ParentSpanId;
        return new StoredSpan
        {
            TraceId = System.Convert.ToHexStringLower(span.TraceId.Span),
            SpanId = System.Convert.ToHexStringLower(span.SpanId.Span),
            ParentSpanId = parent.Length == 8 && parent.Span.ContainsAnyExcept((byte)0) ? System.Convert.ToHexStringLower(parent.Span) : null,
            Name = span.Name,
            Kind = (int)span.Kind,
            ServiceName = string.IsNullOrEmpty(service) ? UnknownService : service,
            StartTime = ExchangeSpanMapper.FromUnixNanos(span.StartTimeUnixNano),
            EndTime = ExchangeSpanMapper.FromUnixNanos(span.EndTimeUnixNano),
            IsError = span.Status?.Code == Status.Types.StatusCode.Error,
            IsExchange = false,
            SessionId = string.IsNullOrEmpty(session) ? null : session,
            Route = string.IsNullOrEmpty(route) ? null : route,
            AttributesJson = GenericAttributesJson(span, buffer),
            ModelJson = ModelJson(span, resource, scope, buffer),
        };
    }

    private static string HeadersJson(HeaderList headers, ArrayBufferWriter<byte> buffer)
    {
        buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(buffer, _writerOptions))
        {
            writer.WriteStartArray();
            for (var i = 0; i < headers.Count; i++)
            {
                writer.WriteStartArray();
                writer.WriteStringValue(headers[i].Key);
                writer.WriteStringValue(headers[i].Value);
                writer.WriteEndArray();
            }

            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string ExchangeAttributesJson(Exchange exchange, OtlpSpan span, ArrayBufferWriter<byte> buffer)
    {
        buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(buffer, _writerOptions))
        {
            writer.WriteStartObject();
            WriteBodyMeta(writer, exchange.RequestBody, OtlpAttributes.RequestBodyMetaPrefix);
            WriteBodyMeta(writer, exchange.ResponseBody, OtlpAttributes.ResponseBodyMetaPrefix);
            if (exchange.Cache != CacheOutcome.None)
            {
                writer.WriteString(OtlpAttributes.Cache, exchange.Cache == CacheOutcome.Hit ? "hit" : "miss");
            }

            if (exchange.Outcome != ExchangeOutcome.Completed)
            {
                writer.WriteString(OtlpAttributes.Outcome, exchange.Outcome switch
                {
                    ExchangeOutcome.Cancelled => "cancelled",
                    ExchangeOutcome.TimedOut => "timed_out",
                    _ => "failed",
                });
            }

            if (exchange.Error is not null)
            {
                writer.WriteString(OtlpAttributes.Error, exchange.Error);
            }

            if (span.Status is { Code: Status.Types.StatusCode.Error, Message.Length: > 0 } status)
            {
                writer.WriteString("otel.status_description", status.Message);
            }

            // The attributes the exchange has no field for, with the types the exporter gave them
            // (the mapper keeps them as strings). Removing each written key also drops a repeated key.
            foreach (var kv in span.Attributes)
            {
                if (exchange.Attributes.Remove(kv.Key))
                {
                    SpanModelJson.WriteAttribute(writer, kv.Key, kv.Value);
                }
            }

            // What the mapper derived rather than copied (an exception type beside a status code).
            foreach (var (key, value) in exchange.Attributes)
            {
                writer.WriteString(key, value);
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteBodyMeta(Utf8JsonWriter writer, CapturedBody body, string prefix)
    {
        if (body.Kind == BodyKind.Empty && body.OriginalSize == 0 && !body.Truncated && body.ContentType is null)
        {
            return;
        }

        writer.WriteString(string.Concat(prefix, OtlpAttributes.BodyKindSuffix), body.Kind == BodyKind.Binary ? "binary" : "text");
        writer.WriteNumber(string.Concat(prefix, OtlpAttributes.BodySizeSuffix), body.OriginalSize);
        if (body.Truncated)
        {
            writer.WriteBoolean(string.Concat(prefix, OtlpAttributes.BodyTruncatedSuffix), true);
        }

        if (body.ContentType is not null)
        {
            writer.WriteString(string.Concat(prefix, OtlpAttributes.BodyContentTypeSuffix), body.ContentType);
        }

        if (body.ContentEncoding is not null)
        {
            writer.WriteString(string.Concat(prefix, OtlpAttributes.BodyContentEncodingSuffix), body.ContentEncoding);
        }

        if (body.Decoded)
        {
            writer.WriteBoolean(string.Concat(prefix, OtlpAttributes.BodyDecodedSuffix), true);
        }
    }

    private static string GenericAttributesJson(OtlpSpan span, ArrayBufferWriter<byte> buffer)
    {
        buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(buffer, _writerOptions))
        {
            writer.WriteStartObject();
            foreach (var kv in span.Attributes)
            {
                if (string.Equals(kv.Key, OtlpAttributes.PublicKey, StringComparison.Ordinal))
                {
                    // A credential, not data.
                    continue;
                }

                SpanModelJson.WriteAttribute(writer, kv.Key, kv.Value);
            }

            if (span.Status is { Code: Status.Types.StatusCode.Error, Message.Length: > 0 } status)
            {
                writer.WriteString("otel.status_description", status.Message);
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string? ModelJson(OtlpSpan span, Resource? resource, InstrumentationScope? scope, ArrayBufferWriter<byte> buffer)
    {
        buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(buffer, _writerOptions))
        {
            SpanModelJson.WriteModel(writer, span, resource, scope);
        }

        return buffer.WrittenCount <= 2 ? null : Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
