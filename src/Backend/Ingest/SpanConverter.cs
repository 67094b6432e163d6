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

/// <summary>What ingest lets one span hold, and the clock its times are checked against.</summary>
/// <param name="MaxAttributeBytes">The most one attribute value may hold (UTF-8 bytes); longer values are truncated and flagged.</param>
/// <param name="Now">The server's clock at conversion.</param>
public readonly record struct ConversionLimits(int MaxAttributeBytes, DateTimeOffset Now)
{
    /// <summary>The default of <see cref="MaxAttributeBytes"/>: 1 MiB.</summary>
    public const int DefaultMaxAttributeBytes = 1024 * 1024;

    /// <summary>How many attribute values at the cap one span may hold; past it, further values are truncated to what is left.</summary>
    public const int AttributesAtCapPerSpan = 4;

    /// <summary>The most all attribute values of one span may hold together.</summary>
    public long MaxSpanBytes => (long)MaxAttributeBytes * AttributesAtCapPerSpan;

    /// <summary>How far before the server's clock a span may start: older spans are refused (a zero or garbled clock).</summary>
    public static readonly TimeSpan MaxPast = TimeSpan.FromDays(366);

    /// <summary>How far after the server's clock a span may end (clock skew between hosts).</summary>
    public static readonly TimeSpan MaxFuture = TimeSpan.FromDays(1);
}

/// <summary>
/// Turns OTLP spans into <see cref="StoredSpan"/>s. Spans carrying the exchange attributes (ours
/// and the original agent's) are read through <see cref="ExchangeSpanMapper.FromSpan"/> into the
/// HTTP fields, headers and bodies; any other span keeps its attributes as JSON. A span with a
/// missing, all-zero or wrong-length id cannot be placed in a trace, and one whose times are zero,
/// reversed or further from the server's clock than <see cref="ConversionLimits.MaxPast"/> /
/// <see cref="ConversionLimits.MaxFuture"/> cannot be placed in time: each is refused on its own.
/// An attribute value over <see cref="ConversionLimits.MaxAttributeBytes"/> is truncated and flagged
/// as the agent flags what it cuts: a body by <c>sp.http.*.body.truncated</c>, any other attribute
/// by its key in <see cref="TruncatedAttributes"/>.
/// </summary>
public static class SpanConverter
{
    /// <summary>The service name of a span that names none (OTel SDK default).</summary>
    public const string UnknownService = "unknown_service";

    /// <summary>The attribute naming (comma-separated) the attributes ingest truncated to <see cref="ConversionLimits.MaxAttributeBytes"/>.</summary>
    public const string TruncatedAttributes = "sp.attributes.truncated";

    /// <summary>The OTel semantic-convention attribute naming the matched route template.</summary>
    public const string HttpRoute = "http.route";

    private static readonly JsonWriterOptions _writerOptions = new() { Indented = false, SkipValidation = true };

    /// <summary>Converts every span of <paramref name="request"/> with the default limits and the system clock.</summary>
    public static ConversionResult Convert(ExportTraceServiceRequest request) =>
        Convert(request, new ConversionLimits(ConversionLimits.DefaultMaxAttributeBytes, DateTimeOffset.UtcNow));

    /// <summary>Converts every span of <paramref name="request"/>.</summary>
    public static ConversionResult Convert(ExportTraceServiceRequest request, ConversionLimits limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        var spans = new List<StoredSpan>(CountSpans(request));
        int badTrace = 0, badSpan = 0, badParent = 0, badTime = 0;
        var earliest = ExchangeSpanMapper.ToUnixNanos(limits.Now - ConversionLimits.MaxPast);
        var latest = ExchangeSpanMapper.ToUnixNanos(limits.Now + ConversionLimits.MaxFuture);
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
                    else if (span.StartTimeUnixNano == 0 || span.EndTimeUnixNano < span.StartTimeUnixNano
                        || span.StartTimeUnixNano < earliest || span.EndTimeUnixNano > latest)
                    {
                        badTime++;
                    }
                    else
                    {
                        CapAttributes(span, limits);
                        spans.Add(ExchangeSpanMapper.IsExchangeSpan(span)
                            ? FromExchange(span, resource, scope, buffer)
                            : FromGeneric(span, resource, scope, buffer));
                    }
                }
            }
        }

        var rejected = badTrace + badSpan + badParent + badTime;
        return new ConversionResult(spans, rejected, rejected == 0 ? null : DescribeRejections(badTrace, badSpan, badParent, badTime));
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

    private static string DescribeRejections(int badTrace, int badSpan, int badParent, int badTime)
    {
        var sb = new StringBuilder();
        Append(sb, badTrace, "trace_id missing, all zero or not 16 bytes");
        Append(sb, badSpan, "span_id missing, all zero or not 8 bytes");
        Append(sb, badParent, "parent_span_id not 8 bytes");
        Append(sb, badTime, "start_time_unix_nano zero, end before start, or a time more than 366 days before or 1 day after the server's clock");
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

    /// <summary>
    /// Truncates every attribute value over the per-attribute cap, or over what is left of the
    /// span's budget, and flags what was cut. The request was parsed for this call alone, so the
    /// span is changed in place: the cut values are dropped before anything else copies them.
    /// </summary>
    private static void CapAttributes(OtlpSpan span, ConversionLimits limits)
    {
        var left = limits.MaxSpanBytes;
        List<string>? cut = null;
        bool requestBodyCut = false, responseBodyCut = false;
        foreach (var kv in span.Attributes)
        {
            var value = kv.Value;
            if (value is null)
            {
                continue;
            }

            var limit = (int)Math.Clamp(left, 0, limits.MaxAttributeBytes);
            var isBody = string.Equals(kv.Key, OtlpAttributes.RequestBody, StringComparison.Ordinal)
                || string.Equals(kv.Key, OtlpAttributes.ResponseBody, StringComparison.Ordinal);
            long size;
            bool truncated = false;
            switch (value.ValueCase)
            {
                case AnyValue.ValueOneofCase.StringValue:
                    var text = value.StringValue;
                    // UTF-8 needs at most 3 bytes per UTF-16 unit: short values skip the count.
                    size = (long)text.Length * 3 <= limit ? text.Length : Encoding.UTF8.GetByteCount(text);
                    if (size > limit)
                    {
                        value.StringValue = TruncateUtf8(text, limit, base64Safe: isBody);
                        size = limit;
                        truncated = true;
                    }

                    break;
                case AnyValue.ValueOneofCase.BytesValue:
                    size = value.BytesValue.Length;
                    if (size > limit)
                    {
                        value.BytesValue = Google.Protobuf.ByteString.CopyFrom(value.BytesValue.Span[..limit]);
                        size = limit;
                        truncated = true;
                    }

                    break;
                case AnyValue.ValueOneofCase.ArrayValue:
                case AnyValue.ValueOneofCase.KvlistValue:
                    size = value.CalculateSize();
                    if (size > limit)
                    {
                        // Stored as text anyway (AsString); cut the text.
                        value.StringValue = TruncateUtf8(ExchangeSpanMapper.AsString(value), limit, base64Safe: false);
                        size = limit;
                        truncated = true;
                    }

                    break;
                default:
                    size = 8;
                    break;
            }

            left -= size;
            if (!truncated)
            {
                continue;
            }

            if (isBody)
            {
                if (kv.Key.Length == OtlpAttributes.RequestBody.Length && string.Equals(kv.Key, OtlpAttributes.RequestBody, StringComparison.Ordinal))
                {
                    requestBodyCut = true;
                }
                else
                {
                    responseBodyCut = true;
                }
            }
            else
            {
                (cut ??= []).Add(kv.Key);
            }
        }

        if (requestBodyCut)
        {
            SetTrue(span, OtlpAttributes.RequestBodyMetaPrefix + OtlpAttributes.BodyTruncatedSuffix);
        }

        if (responseBodyCut)
        {
            SetTrue(span, OtlpAttributes.ResponseBodyMetaPrefix + OtlpAttributes.BodyTruncatedSuffix);
        }

        if (cut is not null)
        {
            span.Attributes.Add(new KeyValue { Key = TruncatedAttributes, Value = new AnyValue { StringValue = string.Join(',', cut) } });
        }

        static void SetTrue(OtlpSpan span, string key)
        {
            foreach (var kv in span.Attributes)
            {
                if (string.Equals(kv.Key, key, StringComparison.Ordinal))
                {
                    kv.Value = new AnyValue { BoolValue = true };
                    return;
                }
            }

            span.Attributes.Add(new KeyValue { Key = key, Value = new AnyValue { BoolValue = true } });
        }
    }

    /// <summary>The longest prefix of <paramref name="text"/> whose UTF-8 form fits in <paramref name="maxBytes"/>, never splitting a character.</summary>
    private static string TruncateUtf8(string text, int maxBytes, bool base64Safe)
    {
        if (maxBytes < 4)
        {
            // The span's budget is spent (or nearly): nothing of the value is kept.
            return "";
        }

        var encoder = Encoding.UTF8.GetEncoder();
        var scratch = ScratchArray<byte>.Rent(Math.Max(maxBytes, 4));
        try
        {
            encoder.Convert(text.AsSpan(), scratch.AsSpan(0, maxBytes), flush: false, out var chars, out _, out _);
            if (chars > 0 && char.IsHighSurrogate(text[chars - 1]))
            {
                chars--;
            }

            if (base64Safe)
            {
                // A base64 body stays decodable when cut at a 4-character boundary (text bodies lose at most 3 characters).
                chars -= chars % 4;
            }

            return text[..chars];
        }
        finally
        {
            ScratchArray<byte>.Return(scratch);
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
            GrpcStatus = GrpcStatusOf(exchange.Attributes),
            RequestHeadersJson = HeadersJson(exchange.RequestHeaders, buffer),
            ResponseHeadersJson = HeadersJson(exchange.ResponseHeaders, buffer),
            RequestBody = exchange.RequestBody.Content,
            ResponseBody = exchange.ResponseBody.Content,
            AttributesJson = ExchangeAttributesJson(exchange, span, buffer),
            ModelJson = ModelJson(span, resource, scope, buffer),
        };
    }

    /// <summary>The <see cref="StoredSpan.GrpcStatus"/> of a span's attributes: the code of a gRPC call (an int attribute or its text), -1 without one, null for other spans.</summary>
    internal static int? GrpcStatusOf(IReadOnlyDictionary<string, string> attributes)
    {
        if (!attributes.TryGetValue(Core.GrpcMessages.GrpcSpanAttributes.RpcSystem, out var system) || !string.Equals(system, "grpc", StringComparison.Ordinal))
        {
            return null;
        }

        return attributes.TryGetValue(Core.GrpcMessages.GrpcSpanAttributes.RpcStatusCode, out var code)
            && int.TryParse(code, NumberStyles.None, CultureInfo.InvariantCulture, out var status) ? status : -1;
    }

    private static StoredSpan FromGeneric(OtlpSpan span, Resource? resource, InstrumentationScope? scope, ArrayBufferWriter<byte> buffer)
    {
        string? service = null, session = null, route = null;
        // An SDK's gRPC span (OpenTelemetry RPC conventions) gets the same status column as a captured call.
        bool grpc = false;
        int? grpcStatus = null;
        foreach (var kv in span.Attributes)
        {
            if (string.Equals(kv.Key, Core.GrpcMessages.GrpcSpanAttributes.RpcSystem, StringComparison.Ordinal))
            {
                grpc = kv.Value is { ValueCase: AnyValue.ValueOneofCase.StringValue, StringValue: "grpc" };
            }
            else if (string.Equals(kv.Key, Core.GrpcMessages.GrpcSpanAttributes.RpcStatusCode, StringComparison.Ordinal)
                && int.TryParse(ExchangeSpanMapper.AsString(kv.Value ?? new AnyValue()), NumberStyles.None, CultureInfo.InvariantCulture, out var code))
            {
                grpcStatus = code;
            }

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
            GrpcStatus = grpc ? grpcStatus ?? -1 : null,
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
                if (exchange.Attributes.Remove(kv.Key, out var text))
                {
                    if (Core.GrpcMessages.GrpcSpanAttributes.IsMessageList(kv.Key) && kv.Value?.ValueCase == AnyValue.ValueOneofCase.KvlistValue)
                    {
                        // A gRPC message list arrives structured, its payloads as bytes; it is kept as
                        // the JSON text every reader of a stored span knows (the mapper's AsString).
                        writer.WriteString(kv.Key, text);
                    }
                    else
                    {
                        SpanModelJson.WriteAttribute(writer, kv.Key, kv.Value);
                    }
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
