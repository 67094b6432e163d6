using System.Globalization;
using System.Text.Json;
using Google.Protobuf.Collections;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Otlp.Proto.Resource;
using SpIstio.Core.Otlp.Proto.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Backend.Storage;

/// <summary>
/// The stored JSON form of the OpenTelemetry span model beyond the indexed columns, and of typed
/// attribute values. One encoding, written at ingest and read by the API, so what an SDK sent comes
/// back with its types:
/// <list type="bullet">
/// <item>string → JSON string; bool → JSON bool; int → JSON integer (never a fraction);</item>
/// <item>double → JSON number that always has a fraction or exponent (<c>2.0</c>, not <c>2</c>), so a reader
/// can tell it from an int; NaN and ±Infinity, which JSON cannot hold, → the strings <c>"NaN"</c>, <c>"Infinity"</c>, <c>"-Infinity"</c>;</item>
/// <item>array → JSON array; key/value list → JSON object; bytes → base64 string; empty value → null.</item>
/// </list>
/// The model object holds <c>resource</c> (attribute object), <c>scope</c> (<c>name</c>, <c>version</c>,
/// <c>attributes</c>), <c>status</c> (<c>code</c> UNSET/OK/ERROR, <c>message</c>), <c>events</c>
/// (<c>timeUnixNano</c> as a decimal string, <c>name</c>, <c>attributes</c>, <c>droppedAttributesCount</c>),
/// <c>links</c> (<c>traceId</c>, <c>spanId</c>, <c>traceState</c>, <c>attributes</c>, <c>flags</c>),
/// <c>traceState</c>, <c>flags</c> and the span's dropped counts; members that are empty are left out.
/// </summary>
public static class SpanModelJson
{
    /// <summary>Nesting depth up to which arrays and maps are written as JSON; deeper values become their text (bounds the writer's stack).</summary>
    private const int MaxDepth = 16;

    /// <summary>Writes the model of <paramref name="span"/> as one JSON object.</summary>
    public static void WriteModel(Utf8JsonWriter writer, OtlpSpan span, Resource? resource, InstrumentationScope? scope)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(span);
        writer.WriteStartObject();
        if (resource is { Attributes.Count: > 0 })
        {
            writer.WritePropertyName("resource");
            WriteAttributes(writer, resource.Attributes);
        }

        if (scope is not null && (scope.Name.Length > 0 || scope.Version.Length > 0 || scope.Attributes.Count > 0))
        {
            writer.WriteStartObject("scope");
            writer.WriteString("name", scope.Name);
            if (scope.Version.Length > 0)
            {
                writer.WriteString("version", scope.Version);
            }

            if (scope.Attributes.Count > 0)
            {
                writer.WritePropertyName("attributes");
                WriteAttributes(writer, scope.Attributes);
            }

            writer.WriteEndObject();
        }

        if (span.Status is { } status && (status.Code != Status.Types.StatusCode.Unset || status.Message.Length > 0))
        {
            writer.WriteStartObject("status");
            writer.WriteString("code", StatusName(status.Code));
            if (status.Message.Length > 0)
            {
                writer.WriteString("message", status.Message);
            }

            writer.WriteEndObject();
        }

        if (span.TraceState.Length > 0)
        {
            writer.WriteString("traceState", span.TraceState);
        }

        if (span.Flags != 0)
        {
            writer.WriteNumber("flags", span.Flags);
        }

        if (span.Events.Count > 0)
        {
            writer.WriteStartArray("events");
            foreach (var e in span.Events)
            {
                writer.WriteStartObject();
                writer.WriteString("timeUnixNano", e.TimeUnixNano.ToString(CultureInfo.InvariantCulture));
                writer.WriteString("name", e.Name);
                writer.WritePropertyName("attributes");
                WriteAttributes(writer, e.Attributes);
                if (e.DroppedAttributesCount > 0)
                {
                    writer.WriteNumber("droppedAttributesCount", e.DroppedAttributesCount);
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        if (span.Links.Count > 0)
        {
            writer.WriteStartArray("links");
            foreach (var l in span.Links)
            {
                writer.WriteStartObject();
                writer.WriteString("traceId", Convert.ToHexStringLower(l.TraceId.Span));
                writer.WriteString("spanId", Convert.ToHexStringLower(l.SpanId.Span));
                if (l.TraceState.Length > 0)
                {
                    writer.WriteString("traceState", l.TraceState);
                }

                writer.WritePropertyName("attributes");
                WriteAttributes(writer, l.Attributes);
                if (l.Flags != 0)
                {
                    writer.WriteNumber("flags", l.Flags);
                }

                if (l.DroppedAttributesCount > 0)
                {
                    writer.WriteNumber("droppedAttributesCount", l.DroppedAttributesCount);
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        WriteCount(writer, "droppedAttributesCount", span.DroppedAttributesCount);
        WriteCount(writer, "droppedEventsCount", span.DroppedEventsCount);
        WriteCount(writer, "droppedLinksCount", span.DroppedLinksCount);
        writer.WriteEndObject();
    }

    /// <summary>Writes key/value pairs as one JSON object with typed values; the public key (a credential) is left out.</summary>
    public static void WriteAttributes(Utf8JsonWriter writer, RepeatedField<KeyValue> attributes)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(attributes);
        writer.WriteStartObject();
        foreach (var kv in attributes)
        {
            if (string.Equals(kv.Key, OtlpAttributes.PublicKey, StringComparison.Ordinal))
            {
                continue;
            }

            writer.WritePropertyName(kv.Key);
            WriteValue(writer, kv.Value, 0);
        }

        writer.WriteEndObject();
    }

    /// <summary>Writes one attribute (name and typed value).</summary>
    public static void WriteAttribute(Utf8JsonWriter writer, string key, AnyValue? value)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WritePropertyName(key);
        WriteValue(writer, value, 0);
    }

    private static void WriteValue(Utf8JsonWriter writer, AnyValue? value, int depth)
    {
        switch (value?.ValueCase ?? AnyValue.ValueOneofCase.None)
        {
            case AnyValue.ValueOneofCase.StringValue:
                writer.WriteStringValue(value!.StringValue);
                break;
            case AnyValue.ValueOneofCase.BoolValue:
                writer.WriteBooleanValue(value!.BoolValue);
                break;
            case AnyValue.ValueOneofCase.IntValue:
                writer.WriteNumberValue(value!.IntValue);
                break;
            case AnyValue.ValueOneofCase.DoubleValue:
                WriteDouble(writer, value!.DoubleValue);
                break;
            case AnyValue.ValueOneofCase.BytesValue:
                writer.WriteBase64StringValue(value!.BytesValue.Span);
                break;
            case AnyValue.ValueOneofCase.ArrayValue when depth < MaxDepth:
                writer.WriteStartArray();
                foreach (var item in value!.ArrayValue.Values)
                {
                    WriteValue(writer, item, depth + 1);
                }

                writer.WriteEndArray();
                break;
            case AnyValue.ValueOneofCase.KvlistValue when depth < MaxDepth:
                writer.WriteStartObject();
                foreach (var kv in value!.KvlistValue.Values)
                {
                    writer.WritePropertyName(kv.Key);
                    WriteValue(writer, kv.Value, depth + 1);
                }

                writer.WriteEndObject();
                break;
            case AnyValue.ValueOneofCase.None:
                writer.WriteNullValue();
                break;
            default:
                writer.WriteStringValue(ExchangeSpanMapper.AsString(value!));
                break;
        }
    }

    private static void WriteDouble(Utf8JsonWriter writer, double value)
    {
        if (double.IsNaN(value))
        {
            writer.WriteStringValue("NaN");
        }
        else if (double.IsInfinity(value))
        {
            writer.WriteStringValue(value > 0 ? "Infinity" : "-Infinity");
        }
        else
        {
            var text = value.ToString("R", CultureInfo.InvariantCulture);
            if (text.AsSpan().IndexOfAny('.', 'E') < 0)
            {
                text += ".0";
            }

            writer.WriteRawValue(text, skipInputValidation: true);
        }
    }

    private static void WriteCount(Utf8JsonWriter writer, string name, uint count)
    {
        if (count > 0)
        {
            writer.WriteNumber(name, count);
        }
    }

    /// <summary>The OTLP/JSON name of a status code without its prefix: UNSET, OK or ERROR.</summary>
    public static string StatusName(Status.Types.StatusCode code) => code switch
    {
        Status.Types.StatusCode.Ok => "OK",
        Status.Types.StatusCode.Error => "ERROR",
        _ => "UNSET",
    };
}
