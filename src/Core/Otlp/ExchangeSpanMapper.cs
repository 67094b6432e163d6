using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Unicode;
using Google.Protobuf;
using Google.Protobuf.Collections;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Otlp.Proto.Resource;
using SpIstio.Core.Otlp.Proto.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Core.Otlp;

/// <summary>
/// Maps an <see cref="Exchange"/> to an OTLP span in the original SP-Istio agent's attribute
/// vocabulary (plus OTel semantic conventions), and any OTLP span back to an exchange.
/// </summary>
/// <remarks>
/// <para>
/// <c>FromSpan(ToSpan(x))</c> reproduces every field of <c>x</c>, with two normalisations:
/// repeated header names are carried as one array attribute, so headers come back grouped by name
/// in order of first appearance (values of one name keep their order); times before the Unix epoch
/// become the epoch.
/// </para>
/// <para>
/// Reading is lenient so that any exporter can feed the backend. The original agent sends no
/// method attribute: its method, path, authority and status are read from the Envoy pseudo-header
/// attributes (<c>http.request.header.:method</c>, <c>:path</c>, <c>:authority</c>,
/// <c>http.response.header.:status</c>); when no source names a method it is <c>GET</c>, the
/// model's default. Its <c>url.path</c> may still carry the query, which is split off. Its
/// bodies are text when the content-type is textual and base64 otherwise, without a marker; a span
/// without our <c>sp.http.*.body.size</c> attribute is decoded by that rule.
/// </para>
/// </remarks>
public static class ExchangeSpanMapper
{
    /// <summary>The instrumentation scope name of spans this agent exports.</summary>
    public const string ScopeName = "sp-istio-agent-dotnet";

    // W3C "sampled": every exchange the agent exports was recorded.
    private const uint SampledFlag = 0x01;

    private static readonly BodyKeys _requestKeys = new(OtlpAttributes.RequestBody, OtlpAttributes.RequestBodyMetaPrefix);
    private static readonly BodyKeys _responseKeys = new(OtlpAttributes.ResponseBody, OtlpAttributes.ResponseBodyMetaPrefix);
    private static readonly SearchValues<char> _urlTargetStart = SearchValues.Create("/?#");

    /// <summary>
    /// Maps one exchange to a span (<paramref name="publicKey"/> becomes <c>sp.public.key</c> when given).
    /// The reference mapping, kept as the test oracle of <see cref="OtlpSpanWriter"/> (the agent's only
    /// span encoder and its attribute table): built from the generated types, independently, so the
    /// byte-identical tests catch a writer that drifts.
    /// </summary>
    public static OtlpSpan ToSpan(Exchange exchange, string? publicKey = null)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        var client = exchange.Direction == TrafficDirection.Outbound;
        var span = new OtlpSpan
        {
            TraceId = TraceIdToBytes(exchange.TraceId),
            SpanId = SpanIdToBytes(exchange.SpanId),
            ParentSpanId = exchange.ParentSpanId == default ? ByteString.Empty : SpanIdToBytes(exchange.ParentSpanId),
            Flags = SampledFlag,
            Name = string.Concat(exchange.Method, " ", exchange.Path),
            Kind = client ? OtlpSpan.Types.SpanKind.Client : OtlpSpan.Types.SpanKind.Server,
            StartTimeUnixNano = ToUnixNanos(exchange.StartTime),
            EndTimeUnixNano = ToUnixNanos(exchange.EndTime),
        };

        var a = span.Attributes;
        a.Add(StringAttr(OtlpAttributes.ServiceName, exchange.ServiceName));
        a.Add(StringAttr(OtlpAttributes.TrafficDirection, client ? "outbound" : "inbound"));
        a.Add(StringAttr(
            OtlpAttributes.SpanType,
            exchange.Attributes.TryGetValue(OtlpAttributes.SpanType, out var spanType) ? spanType : OtlpAttributes.SpanTypeExtract));
        if (exchange.SessionId is not null)
        {
            a.Add(StringAttr(OtlpAttributes.SessionId, exchange.SessionId));
        }

        if (!string.IsNullOrEmpty(publicKey))
        {
            a.Add(StringAttr(OtlpAttributes.PublicKey, publicKey));
        }

        a.Add(StringAttr(OtlpAttributes.UrlHost, exchange.Authority));
        a.Add(StringAttr(OtlpAttributes.UrlPath, exchange.Path));
        if (exchange.Query is not null)
        {
            a.Add(StringAttr(OtlpAttributes.UrlQuery, exchange.Query));
        }

        a.Add(StringAttr(OtlpAttributes.UrlScheme, exchange.Scheme));
        a.Add(StringAttr(OtlpAttributes.UrlFull, exchange.Url));
        a.Add(StringAttr(OtlpAttributes.HttpRequestMethod, exchange.Method));
        if (TrySplitAuthority(exchange.Authority, out var host, out var port))
        {
            a.Add(StringAttr(OtlpAttributes.ServerAddress, host));
            if (port >= 0)
            {
                a.Add(IntAttr(OtlpAttributes.ServerPort, port));
            }
        }

        AddHeaders(a, exchange.RequestHeaders, OtlpAttributes.RequestHeaderPrefix);
        AddBody(a, exchange.RequestBody, _requestKeys);

        if (exchange.StatusCode is { } status)
        {
            a.Add(IntAttr(OtlpAttributes.ResponseStatusCode, status));
        }

        AddHeaders(a, exchange.ResponseHeaders, OtlpAttributes.ResponseHeaderPrefix);
        AddBody(a, exchange.ResponseBody, _responseKeys);

        if (exchange.Cache != CacheOutcome.None)
        {
            a.Add(StringAttr(OtlpAttributes.Cache, exchange.Cache == CacheOutcome.Hit ? "hit" : "miss"));
        }

        var outcome = OutcomeName(exchange.Outcome);
        if (outcome is not null)
        {
            a.Add(StringAttr(OtlpAttributes.Outcome, outcome));
        }

        if (exchange.Error is not null)
        {
            a.Add(StringAttr(OtlpAttributes.Error, exchange.Error));
        }

        var errorType = DerivedErrorType(exchange);
        if (errorType is not null)
        {
            a.Add(StringAttr(OtlpAttributes.ErrorType, errorType));
            span.Status = new Status
            {
                Code = Status.Types.StatusCode.Error,
                // HTTP semconv: no description for a status-code error; the reason for a failure.
                Message = outcome is null ? "" : exchange.Error ?? outcome,
            };
        }

        foreach (var (key, value) in exchange.Attributes)
        {
            if (OtlpAttributes.IsReserved(key)
                || string.Equals(key, OtlpAttributes.SpanType, StringComparison.Ordinal)
                || (errorType is not null && string.Equals(key, OtlpAttributes.ErrorType, StringComparison.Ordinal)))
            {
                continue;
            }

            a.Add(OtlpAttributes.IntegerValue(key, value) is { } number ? IntAttr(key, number) : StringAttr(key, value));
        }

        if (exchange.GrpcCall is { Sealed: true } call)
        {
            a.Add(new KeyValue { Key = GrpcSpanAttributes.RequestMessages, Value = GrpcSpanAttributes.ToAnyValue(call.Request) });
            if (call.Response is { } response)
            {
                a.Add(new KeyValue { Key = GrpcSpanAttributes.ResponseMessages, Value = GrpcSpanAttributes.ToAnyValue(response) });
            }
        }

        return span;
    }

    /// <summary>
    /// Builds an export request: one resource (<c>service.name</c>) per service name in
    /// <paramref name="exchanges"/>, each with one scope <see cref="ScopeName"/> at
    /// <paramref name="scopeVersion"/>, spans in the order given.
    /// </summary>
    public static ExportTraceServiceRequest ToExportRequest(IReadOnlyList<Exchange> exchanges, string? publicKey, string scopeVersion)
    {
        ArgumentNullException.ThrowIfNull(exchanges);
        ArgumentNullException.ThrowIfNull(scopeVersion);
        var request = new ExportTraceServiceRequest();
        for (var i = 0; i < exchanges.Count; i++)
        {
            var exchange = exchanges[i];
            var scope = FindScope(request, exchange.ServiceName);
            if (scope is null)
            {
                scope = new ScopeSpans { Scope = new InstrumentationScope { Name = ScopeName, Version = scopeVersion } };
                var resource = new Resource();
                resource.Attributes.Add(StringAttr(OtlpAttributes.ResourceServiceName, exchange.ServiceName));
                request.ResourceSpans.Add(new ResourceSpans { Resource = resource, ScopeSpans = { scope } });
            }

            scope.Spans.Add(ToSpan(exchange, publicKey));
        }

        return request;
    }

    /// <summary>
    /// True when the span describes an HTTP exchange (it carries a method, a URL path or request
    /// header attributes), as opposed to a generic span some other exporter sent.
    /// </summary>
    public static bool IsExchangeSpan(OtlpSpan span)
    {
        ArgumentNullException.ThrowIfNull(span);
        foreach (var kv in span.Attributes)
        {
            var key = kv.Key;
            if (string.Equals(key, OtlpAttributes.HttpRequestMethod, StringComparison.Ordinal)
                || string.Equals(key, OtlpAttributes.LegacyHttpMethod, StringComparison.Ordinal)
                || string.Equals(key, OtlpAttributes.UrlPath, StringComparison.Ordinal)
                || key.StartsWith(OtlpAttributes.RequestHeaderPrefix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The <c>sp.public.key</c> on the span or, failing that, on its resource (the original puts it on both).</summary>
    public static string? GetPublicKey(OtlpSpan span, Resource? resource)
    {
        ArgumentNullException.ThrowIfNull(span);
        var value = Find(span.Attributes, OtlpAttributes.PublicKey) ?? (resource is null ? null : Find(resource.Attributes, OtlpAttributes.PublicKey));
        return value is null ? null : AsString(value);
    }

    /// <summary>
    /// Maps a span from any exporter to an exchange, filling every field it finds (see the type's
    /// remarks for the sources and fallbacks). Attributes the exchange has no field for are kept in
    /// <see cref="Exchange.Attributes"/>, their values as strings (numbers in invariant culture,
    /// arrays and maps as JSON, bytes as base64).
    /// </summary>
    public static Exchange FromSpan(OtlpSpan span, Resource? resource)
    {
        ArgumentNullException.ThrowIfNull(span);
        var exchange = new Exchange
        {
            TraceId = TraceIdFromBytes(span.TraceId),
            SpanId = SpanIdFromBytes(span.SpanId),
            ParentSpanId = SpanIdFromBytes(span.ParentSpanId),
            StartTime = FromUnixNanos(span.StartTimeUnixNano),
            EndTime = FromUnixNanos(span.EndTimeUnixNano),
        };

        var f = new Found();
        var requestBody = new BodyParts();
        var responseBody = new BodyParts();
        foreach (var kv in span.Attributes)
        {
            var key = kv.Key;
            var value = kv.Value ?? new AnyValue();
            if (key.StartsWith(OtlpAttributes.RequestHeaderPrefix, StringComparison.Ordinal))
            {
                AddHeader(exchange.RequestHeaders, key.AsSpan(OtlpAttributes.RequestHeaderPrefix.Length), value, ref f, response: false);
            }
            else if (key.StartsWith(OtlpAttributes.ResponseHeaderPrefix, StringComparison.Ordinal))
            {
                AddHeader(exchange.ResponseHeaders, key.AsSpan(OtlpAttributes.ResponseHeaderPrefix.Length), value, ref f, response: true);
            }
            else if (key.StartsWith(OtlpAttributes.RequestBodyMetaPrefix, StringComparison.Ordinal))
            {
                requestBody.Consume(key.AsSpan(OtlpAttributes.RequestBodyMetaPrefix.Length), value);
            }
            else if (key.StartsWith(OtlpAttributes.ResponseBodyMetaPrefix, StringComparison.Ordinal))
            {
                responseBody.Consume(key.AsSpan(OtlpAttributes.ResponseBodyMetaPrefix.Length), value);
            }
            else
            {
                switch (key)
                {
                    case OtlpAttributes.ServiceName: f.ServiceName = AsString(value); break;
                    case OtlpAttributes.TrafficDirection: f.Direction = AsString(value); break;
                    case OtlpAttributes.SessionId: exchange.SessionId = AsString(value); break;
                    case OtlpAttributes.UrlHost: f.UrlHost = AsString(value); break;
                    case OtlpAttributes.UrlPath: f.UrlPath = AsString(value); break;
                    case OtlpAttributes.UrlQuery: f.UrlQuery = AsString(value); break;
                    case OtlpAttributes.UrlScheme: f.UrlScheme = AsString(value); break;
                    case OtlpAttributes.UrlFull: f.UrlFull = AsString(value); break;
                    case OtlpAttributes.HttpRequestMethod: f.Method = AsString(value); break;
                    case OtlpAttributes.ServerAddress: f.ServerAddress = AsString(value); break;
                    case OtlpAttributes.ServerPort: f.ServerPort = AsString(value); break;
                    case OtlpAttributes.RequestBody: requestBody.Value = value; break;
                    case OtlpAttributes.ResponseBody: responseBody.Value = value; break;
                    case OtlpAttributes.ResponseStatusCode: f.Status = value; break;
                    case OtlpAttributes.Cache: f.Cache = AsString(value); break;
                    case OtlpAttributes.Outcome: f.Outcome = AsString(value); break;
                    case OtlpAttributes.Error: exchange.Error = AsString(value); break;
                    case OtlpAttributes.ErrorType: f.ErrorType = AsString(value); break;
                    case OtlpAttributes.LegacyHttpMethod: f.LegacyMethod = AsString(value); break;
                    case OtlpAttributes.LegacyHttpTarget: f.LegacyTarget = AsString(value); break;
                    case OtlpAttributes.LegacyHttpUrl: f.LegacyUrl = AsString(value); break;
                    case OtlpAttributes.LegacyHttpScheme: f.LegacyScheme = AsString(value); break;
                    case OtlpAttributes.LegacyHttpHost: f.LegacyHost = AsString(value); break;
                    case OtlpAttributes.LegacyHttpStatusCode: f.LegacyStatus = value; break;
                    case OtlpAttributes.PublicKey:
                        // A credential: authentication reads it (GetPublicKey); it is not stored with the data.
                        break;
                    case OtlpAttributes.SpanType:
                        var type = AsString(value);
                        if (!string.Equals(type, OtlpAttributes.SpanTypeExtract, StringComparison.Ordinal))
                        {
                            exchange.Attributes[key] = type;
                        }

                        break;
                    default:
                        exchange.Attributes[key] = AsString(value);
                        break;
                }
            }
        }

        exchange.ServiceName = f.ServiceName
            ?? (resource is null ? null : Find(resource.Attributes, OtlpAttributes.ResourceServiceName) is { } rs ? AsString(rs) : null)
            ?? ServiceNames.Default;
        exchange.Direction = ParseDirection(f.Direction) ?? DirectionFromKind(span.Kind);
        exchange.Method = FirstNonEmpty(f.Method, f.LegacyMethod, f.PseudoMethod) ?? "GET";

        string? urlScheme = null, urlAuthority = null, urlTarget = null;
        var url = f.UrlFull ?? f.LegacyUrl;
        if (url is not null)
        {
            TrySplitUrl(url, out urlScheme, out urlAuthority, out urlTarget);
        }

        exchange.Scheme = FirstNonEmpty(f.UrlScheme, f.LegacyScheme, f.PseudoScheme, urlScheme) ?? "http";
        exchange.Authority = f.UrlHost
            ?? JoinHostPort(f.ServerAddress, f.ServerPort)
            ?? FirstNonEmpty(f.PseudoAuthority, f.LegacyHost, exchange.RequestHeaders.Get("host"), urlAuthority)
            ?? "";

        if (f.UrlPath is not null)
        {
            if (f.UrlQuery is null)
            {
                // The original sends Envoy's :path, query included, as url.path.
                exchange.SetTarget(f.UrlPath);
            }
            else
            {
                exchange.Path = f.UrlPath;
                exchange.Query = f.UrlQuery;
            }
        }
        else
        {
            exchange.SetTarget(FirstNonEmpty(f.LegacyTarget, f.PseudoPath, urlTarget) ?? "/");
            if (f.UrlQuery is not null)
            {
                exchange.Query = f.UrlQuery;
            }
        }

        exchange.StatusCode = ReadStatus(f.Status) ?? ReadStatus(f.LegacyStatus) ?? ParseStatus(f.PseudoStatus);
        exchange.RequestBody = requestBody.Build(exchange.RequestHeaders.Get("content-type"), exchange.Attributes, GrpcSpanAttributes.RequestMessages);
        exchange.ResponseBody = responseBody.Build(exchange.ResponseHeaders.Get("content-type"), exchange.Attributes, GrpcSpanAttributes.ResponseMessages);
        exchange.Cache = f.Cache switch
        {
            "hit" => CacheOutcome.Hit,
            "miss" => CacheOutcome.Miss,
            _ => CacheOutcome.None,
        };
        exchange.Outcome = f.Outcome switch
        {
            null or "completed" => ExchangeOutcome.Completed,
            "cancelled" => ExchangeOutcome.Cancelled,
            "timed_out" => ExchangeOutcome.TimedOut,
            _ => ExchangeOutcome.Failed,
        };
        if (f.Outcome is null && exchange.StatusCode is null && span.Status?.Code == Status.Types.StatusCode.Error)
        {
            // A generic span that failed before any response: the closest outcome we have.
            exchange.Outcome = ExchangeOutcome.Failed;
            if (exchange.Error is null && !string.IsNullOrEmpty(span.Status.Message))
            {
                exchange.Error = span.Status.Message;
            }
        }

        // error.type is derived on export; a different value (an SDK's exception type) is information.
        if (f.ErrorType is not null && !string.Equals(f.ErrorType, DerivedErrorType(exchange), StringComparison.Ordinal))
        {
            exchange.Attributes[OtlpAttributes.ErrorType] = f.ErrorType;
        }

        return exchange;
    }

    /// <summary>Unix nanoseconds of <paramref name="time"/> (100 ns precision); 0 before the epoch.</summary>
    public static ulong ToUnixNanos(DateTimeOffset time)
    {
        var ticks = time.UtcTicks - DateTime.UnixEpoch.Ticks;
        return ticks <= 0 ? 0 : (ulong)ticks * 100;
    }

    /// <summary>The UTC time of <paramref name="unixNanos"/>, truncated to 100 ns ticks.</summary>
    public static DateTimeOffset FromUnixNanos(ulong unixNanos) =>
        new(DateTime.UnixEpoch.Ticks + (long)(unixNanos / 100), TimeSpan.Zero);

    /// <summary>The 16 bytes of a trace id (zeros for the default id).</summary>
    public static ByteString TraceIdToBytes(ActivityTraceId id)
    {
        var bytes = new byte[16];
        if (id != default)
        {
            id.CopyTo(bytes);
        }

        // The array is ours and never written again, so wrapping it without a copy is safe.
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>The 8 bytes of a span id (zeros for the default id).</summary>
    public static ByteString SpanIdToBytes(ActivitySpanId id)
    {
        var bytes = new byte[8];
        if (id != default)
        {
            id.CopyTo(bytes);
        }

        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>The trace id in <paramref name="bytes"/>, or default when it is not 16 bytes or all zero (invalid in OTLP).</summary>
    public static ActivityTraceId TraceIdFromBytes(ByteString bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var span = bytes.Span;
        return span.Length == 16 && span.ContainsAnyExcept((byte)0) ? ActivityTraceId.CreateFromBytes(span) : default;
    }

    /// <summary>The span id in <paramref name="bytes"/>, or default when it is not 8 bytes or all zero.</summary>
    public static ActivitySpanId SpanIdFromBytes(ByteString bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var span = bytes.Span;
        return span.Length == 8 && span.ContainsAnyExcept((byte)0) ? ActivitySpanId.CreateFromBytes(span) : default;
    }

    /// <summary>
    /// An attribute value as a string: text as is, integers and doubles in invariant culture,
    /// booleans <c>true</c>/<c>false</c>, bytes as base64, arrays and maps as JSON, empty as "".
    /// </summary>
    public static string AsString(AnyValue value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.ValueCase switch
        {
            AnyValue.ValueOneofCase.StringValue => value.StringValue,
            AnyValue.ValueOneofCase.BoolValue => value.BoolValue ? "true" : "false",
            AnyValue.ValueOneofCase.IntValue => value.IntValue.ToString(CultureInfo.InvariantCulture),
            AnyValue.ValueOneofCase.DoubleValue => value.DoubleValue.ToString("R", CultureInfo.InvariantCulture),
            AnyValue.ValueOneofCase.BytesValue => value.BytesValue.ToBase64(),
            AnyValue.ValueOneofCase.ArrayValue or AnyValue.ValueOneofCase.KvlistValue => ToJson(value),
            _ => "",
        };
    }

    /// <summary>The request body's attribute keys (shared with <see cref="OtlpSpanWriter"/>).</summary>
    internal static BodyKeys RequestBodyKeys => _requestKeys;

    /// <summary>The response body's attribute keys (shared with <see cref="OtlpSpanWriter"/>).</summary>
    internal static BodyKeys ResponseBodyKeys => _responseKeys;

    internal static string? DerivedErrorType(Exchange exchange)
    {
        var outcome = OutcomeName(exchange.Outcome);
        if (outcome is not null)
        {
            return outcome;
        }

        // OTel HTTP semconv: 5xx is an error on both sides, 4xx only for the client.
        if (exchange.StatusCode is { } status
            && (status >= 500 || (status >= 400 && exchange.Direction == TrafficDirection.Outbound)))
        {
            return status.ToString(CultureInfo.InvariantCulture);
        }

        return null;
    }

    internal static string? OutcomeName(ExchangeOutcome outcome) => outcome switch
    {
        ExchangeOutcome.Failed => "failed",
        ExchangeOutcome.Cancelled => "cancelled",
        ExchangeOutcome.TimedOut => "timed_out",
        _ => null,
    };

    private static ScopeSpans? FindScope(ExportTraceServiceRequest request, string serviceName)
    {
        foreach (var rs in request.ResourceSpans)
        {
            // Resources built here carry exactly one attribute, service.name.
            if (string.Equals(rs.Resource.Attributes[0].Value.StringValue, serviceName, StringComparison.Ordinal))
            {
                return rs.ScopeSpans[0];
            }
        }

        return null;
    }

    private static void AddHeaders(RepeatedField<KeyValue> attributes, HeaderList headers, string prefix)
    {
        for (var i = 0; i < headers.Count; i++)
        {
            var name = headers[i].Key;
            if ((name.Length > 0 && name[0] == ':') || IndexOfName(headers, name, 0, i) >= 0)
            {
                // Pseudo-headers are carried by dedicated attributes; a repeated name went out with its first occurrence.
                continue;
            }

            AnyValue value;
            var next = IndexOfName(headers, name, i + 1, headers.Count);
            if (next < 0)
            {
                value = new AnyValue { StringValue = headers[i].Value };
            }
            else
            {
                // Attribute keys must be unique, so a repeated header becomes one array of its values.
                var array = new ArrayValue();
                array.Values.Add(new AnyValue { StringValue = headers[i].Value });
                for (var j = next; j < headers.Count; j++)
                {
                    if (string.Equals(headers[j].Key, name, StringComparison.Ordinal))
                    {
                        array.Values.Add(new AnyValue { StringValue = headers[j].Value });
                    }
                }

                value = new AnyValue { ArrayValue = array };
            }

            attributes.Add(new KeyValue { Key = string.Concat(prefix, name), Value = value });
        }
    }

    internal static int IndexOfName(HeaderList headers, string name, int from, int to)
    {
        for (var j = from; j < to; j++)
        {
            if (string.Equals(headers[j].Key, name, StringComparison.Ordinal))
            {
                return j;
            }
        }

        return -1;
    }

    private static void AddBody(RepeatedField<KeyValue> attributes, CapturedBody body, BodyKeys keys)
    {
        if (body.Kind == BodyKind.Empty && body.OriginalSize == 0 && !body.Truncated
            && body.ContentType is null && body.ContentEncoding is null && !body.Decoded)
        {
            return;
        }

        var content = body.Content.Span;
        if (body.MessageFrames && body.Truncated)
        {
            // The bytes are the start of the message list's frames (OtlpAttributes.GrpcMessageFramesPrefix): FromSpan rebuilds them.
            attributes.Add(StringAttr(keys.Encoding, OtlpAttributes.GrpcMessageFramesPrefix));
            attributes.Add(IntAttr(keys.FramesLength, body.Content.Length));
        }
        else if (body.MessageFrames)
        {
            // The bytes are the message list's frames (OtlpAttributes.GrpcMessageFrames): FromSpan rebuilds them.
            attributes.Add(StringAttr(keys.Encoding, OtlpAttributes.GrpcMessageFrames));
        }
        else if (body.Kind == BodyKind.Text && Utf8.IsValid(content))
        {
            attributes.Add(StringAttr(keys.Body, Encoding.UTF8.GetString(content)));
        }
        else if (body.Kind != BodyKind.Empty)
        {
            attributes.Add(StringAttr(keys.Body, Convert.ToBase64String(content)));
            attributes.Add(StringAttr(keys.Encoding, OtlpAttributes.Base64));
            if (body.Kind == BodyKind.Text)
            {
                // Text in another charset: base64 keeps the bytes, the kind keeps it shown as text.
                attributes.Add(StringAttr(keys.Kind, "text"));
            }
        }

        // Always present on our spans: it also tells a reader the body follows our conventions.
        attributes.Add(IntAttr(keys.Size, body.OriginalSize));
        if (body.Truncated)
        {
            attributes.Add(BoolAttr(keys.Truncated, true));
        }

        if (body.ContentType is not null)
        {
            attributes.Add(StringAttr(keys.ContentType, body.ContentType));
        }

        if (body.ContentEncoding is not null)
        {
            attributes.Add(StringAttr(keys.ContentEncoding, body.ContentEncoding));
        }

        if (body.Decoded)
        {
            attributes.Add(BoolAttr(keys.Decoded, true));
        }
    }

    private static void AddHeader(HeaderList headers, ReadOnlySpan<char> name, AnyValue value, ref Found found, bool response)
    {
        if (name.Length > 0 && name[0] == ':')
        {
            // Envoy pseudo-headers, as the original agent sends them: sources for fields, not headers.
            var text = AsString(value.ValueCase == AnyValue.ValueOneofCase.ArrayValue && value.ArrayValue.Values.Count > 0 ? value.ArrayValue.Values[0] : value);
            if (response)
            {
                if (name.SequenceEqual(":status"))
                {
                    found.PseudoStatus = text;
                }
            }
            else if (name.SequenceEqual(":method"))
            {
                found.PseudoMethod = text;
            }
            else if (name.SequenceEqual(":path"))
            {
                found.PseudoPath = text;
            }
            else if (name.SequenceEqual(":authority"))
            {
                found.PseudoAuthority = text;
            }
            else if (name.SequenceEqual(":scheme"))
            {
                found.PseudoScheme = text;
            }

            return;
        }

        var headerName = name.ToString();
        if (value.ValueCase == AnyValue.ValueOneofCase.ArrayValue)
        {
            foreach (var item in value.ArrayValue.Values)
            {
                headers.Add(headerName, AsString(item));
            }
        }
        else
        {
            headers.Add(headerName, AsString(value));
        }
    }

    private static KeyValue? Find(RepeatedField<KeyValue> attributes, string key)
    {
        foreach (var kv in attributes)
        {
            if (string.Equals(kv.Key, key, StringComparison.Ordinal))
            {
                return kv;
            }
        }

        return null;
    }

    private static string AsString(KeyValue kv) => kv.Value is null ? "" : AsString(kv.Value);

    private static string? FirstNonEmpty(string? a, string? b, string? c, string? d = null) =>
        !string.IsNullOrEmpty(a) ? a : !string.IsNullOrEmpty(b) ? b : !string.IsNullOrEmpty(c) ? c : !string.IsNullOrEmpty(d) ? d : null;

    private static TrafficDirection? ParseDirection(string? value)
    {
        if (value is null)
        {
            return null;
        }

        // The original's traffic_direction option also accepts server/client.
        if (value.Equals("inbound", StringComparison.OrdinalIgnoreCase) || value.Equals("server", StringComparison.OrdinalIgnoreCase))
        {
            return TrafficDirection.Inbound;
        }

        if (value.Equals("outbound", StringComparison.OrdinalIgnoreCase) || value.Equals("client", StringComparison.OrdinalIgnoreCase))
        {
            return TrafficDirection.Outbound;
        }

        return null;
    }

    private static TrafficDirection DirectionFromKind(OtlpSpan.Types.SpanKind kind) =>
        kind is OtlpSpan.Types.SpanKind.Client or OtlpSpan.Types.SpanKind.Producer
            ? TrafficDirection.Outbound
            : TrafficDirection.Inbound;

    private static int? ReadStatus(AnyValue? value)
    {
        if (value is null)
        {
            return null;
        }

        if (value.ValueCase == AnyValue.ValueOneofCase.IntValue)
        {
            return value.IntValue is >= int.MinValue and <= int.MaxValue ? (int)value.IntValue : null;
        }

        return ParseStatus(AsString(value));
    }

    private static int? ParseStatus(string? text) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var status) ? status : null;

    /// <summary>
    /// Host (brackets of an IPv6 literal removed) and port (-1 when absent) for <c>server.address</c>
    /// and <c>server.port</c>. A missing or non-numeric port after a plain host keeps the authority
    /// whole, so nothing that was sent is lost from <c>server.address</c>.
    /// </summary>
    internal static bool TrySplitAuthority(string authority, out string host, out int port)
    {
        var found = TrySplitAuthoritySpan(authority, out var hostPart, out port);
        host = hostPart.Length == authority.Length ? authority : hostPart.ToString();
        return found;
    }

    /// <summary><see cref="TrySplitAuthority(string, out string, out int)"/> without allocating the host.</summary>
    internal static bool TrySplitAuthoritySpan(string authority, out ReadOnlySpan<char> host, out int port)
    {
        HostName.Split(authority, out var hostPart, out var portPart);
        if (TryParsePort(portPart, out port))
        {
            host = hostPart;
        }
        else
        {
            port = -1;
            host = authority.Length > 0 && authority[0] == '[' ? hostPart : authority;
        }

        return host.Length > 0;
    }

    private static bool TryParsePort(ReadOnlySpan<char> text, out int port) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port <= 65535;

    private static string? JoinHostPort(string? address, string? port)
    {
        if (string.IsNullOrEmpty(address))
        {
            return null;
        }

        var host = address.Contains(':', StringComparison.Ordinal) && address[0] != '[' ? string.Concat("[", address, "]") : address;
        return string.IsNullOrEmpty(port) ? host : string.Concat(host, ":", port);
    }

    private static void TrySplitUrl(string url, out string? scheme, out string? authority, out string? target)
    {
        scheme = authority = target = null;
        var sep = url.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0)
        {
            // Not absolute: treat it as a target.
            target = url.Length > 0 && url[0] == '/' ? url : null;
            return;
        }

        scheme = url[..sep];
        var start = sep + 3;
        var end = url.AsSpan(start).IndexOfAny(_urlTargetStart);
        if (end < 0)
        {
            authority = url[start..];
            target = "/";
            return;
        }

        authority = url.Substring(start, end);
        var rest = url.AsSpan(start + end);
        var hash = rest.IndexOf('#');
        if (hash >= 0)
        {
            rest = rest[..hash];
        }

        target = rest.Length == 0 ? "/" : rest[0] == '?' ? string.Concat("/", rest) : rest.ToString();
    }

    private static string ToJson(AnyValue value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            WriteJson(writer, value);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteJson(Utf8JsonWriter writer, AnyValue? value)
    {
        switch (value?.ValueCase ?? AnyValue.ValueOneofCase.None)
        {
            case AnyValue.ValueOneofCase.StringValue: writer.WriteStringValue(value!.StringValue); break;
            case AnyValue.ValueOneofCase.BoolValue: writer.WriteBooleanValue(value!.BoolValue); break;
            case AnyValue.ValueOneofCase.IntValue: writer.WriteNumberValue(value!.IntValue); break;
            case AnyValue.ValueOneofCase.DoubleValue:
                var d = value!.DoubleValue;
                if (double.IsFinite(d))
                {
                    writer.WriteNumberValue(d);
                }
                else
                {
                    // JSON has no NaN or infinity.
                    writer.WriteStringValue(d.ToString(CultureInfo.InvariantCulture));
                }

                break;
            case AnyValue.ValueOneofCase.BytesValue: writer.WriteStringValue(value!.BytesValue.ToBase64()); break;
            case AnyValue.ValueOneofCase.ArrayValue:
                writer.WriteStartArray();
                foreach (var item in value!.ArrayValue.Values)
                {
                    WriteJson(writer, item);
                }

                writer.WriteEndArray();
                break;
            case AnyValue.ValueOneofCase.KvlistValue:
                writer.WriteStartObject();
                foreach (var kv in value!.KvlistValue.Values)
                {
                    writer.WritePropertyName(kv.Key);
                    WriteJson(writer, kv.Value);
                }

                writer.WriteEndObject();
                break;
            default: writer.WriteNullValue(); break;
        }
    }

    private static KeyValue StringAttr(string key, string value) => new() { Key = key, Value = new AnyValue { StringValue = value } };

    private static KeyValue IntAttr(string key, long value) => new() { Key = key, Value = new AnyValue { IntValue = value } };

    private static KeyValue BoolAttr(string key, bool value) => new() { Key = key, Value = new AnyValue { BoolValue = value } };

    /// <summary>The attribute names of one body, built once.</summary>
    internal sealed class BodyKeys(string body, string metaPrefix)
    {
        public string Body { get; } = body;

        public string Encoding { get; } = metaPrefix + OtlpAttributes.BodyEncodingSuffix;

        public string Kind { get; } = metaPrefix + OtlpAttributes.BodyKindSuffix;

        public string Size { get; } = metaPrefix + OtlpAttributes.BodySizeSuffix;

        public string Truncated { get; } = metaPrefix + OtlpAttributes.BodyTruncatedSuffix;

        public string ContentType { get; } = metaPrefix + OtlpAttributes.BodyContentTypeSuffix;

        public string ContentEncoding { get; } = metaPrefix + OtlpAttributes.BodyContentEncodingSuffix;

        public string Decoded { get; } = metaPrefix + OtlpAttributes.BodyDecodedSuffix;

        public string FramesLength { get; } = metaPrefix + OtlpAttributes.BodyFramesLengthSuffix;
    }

    /// <summary>What a span said about one body, gathered while its attributes are read.</summary>
    private sealed class BodyParts
    {
        public AnyValue? Value { get; set; }

        private string? _encoding;
        private string? _kind;
        private long? _size;
        private bool _truncated;
        private string? _contentType;
        private string? _contentEncoding;
        private bool _decoded;
        private long? _framesLength;

        public void Consume(ReadOnlySpan<char> suffix, AnyValue value)
        {
            switch (suffix)
            {
                case OtlpAttributes.BodyEncodingSuffix: _encoding = AsString(value); break;
                case OtlpAttributes.BodyKindSuffix: _kind = AsString(value); break;
                case OtlpAttributes.BodySizeSuffix:
                    _size = value.ValueCase == AnyValue.ValueOneofCase.IntValue
                        ? value.IntValue
                        : long.TryParse(AsString(value), NumberStyles.Integer, CultureInfo.InvariantCulture, out var size) ? size : null;
                    break;
                case OtlpAttributes.BodyTruncatedSuffix: _truncated = IsTrue(value); break;
                case OtlpAttributes.BodyContentTypeSuffix: _contentType = AsString(value); break;
                case OtlpAttributes.BodyContentEncodingSuffix: _contentEncoding = AsString(value); break;
                case OtlpAttributes.BodyDecodedSuffix: _decoded = IsTrue(value); break;
                case OtlpAttributes.BodyFramesLengthSuffix: _framesLength = value.ValueCase == AnyValue.ValueOneofCase.IntValue ? value.IntValue : null; break;
                default: break;
            }
        }

        public CapturedBody Build(string? headerContentType, Dictionary<string, string> attributes, string messagesKey)
        {
            // Our spans always carry the size; its absence means another exporter (the original agent) wrote the span.
            var ours = _size.HasValue;
            if (Value is null && ours && FramesOf(attributes, messagesKey) is { } frames)
            {
                return new CapturedBody(frames, _size!.Value, _truncated, BodyKind.Binary, _contentType, _contentEncoding, _decoded);
            }

            if (Value is null)
            {
                return ours
                    ? new CapturedBody(ReadOnlyMemory<byte>.Empty, _size!.Value, _truncated, BodyKind.Empty, _contentType, _contentEncoding, _decoded)
                    : CapturedBody.Empty;
            }

            byte[] bytes;
            BodyKind kind;
            if (Value.ValueCase == AnyValue.ValueOneofCase.BytesValue)
            {
                bytes = Value.BytesValue.ToByteArray();
                kind = BodyKind.Binary;
            }
            else
            {
                var text = AsString(Value);
                if (string.Equals(_encoding, OtlpAttributes.Base64, StringComparison.OrdinalIgnoreCase) && TryDecodeBase64(text, out var decoded))
                {
                    bytes = decoded;
                    kind = string.Equals(_kind, "text", StringComparison.Ordinal) ? BodyKind.Text : BodyKind.Binary;
                }
                else if (!ours && text.Length > 0 && !IsOriginalTextContentType(headerContentType) && TryDecodeBase64(text, out decoded))
                {
                    bytes = decoded;
                    kind = BodyKind.Binary;
                }
                else
                {
                    bytes = Encoding.UTF8.GetBytes(text);
                    kind = BodyKind.Text;
                }
            }

            if (!ours && bytes.Length == 0)
            {
                return CapturedBody.Empty;
            }

            return new CapturedBody(
                bytes,
                _size ?? bytes.Length,
                _truncated,
                kind,
                ours ? _contentType : headerContentType,
                _contentEncoding,
                _decoded);
        }

        // A gRPC body sent as a reference to its message list: the list's frames are the body
        // (grpc-frames), or their first frames_length bytes (grpc-frames-prefix, a body cut by its
        // limit); null when the span says neither or its list cannot give the body back.
        private byte[]? FramesOf(Dictionary<string, string> attributes, string messagesKey)
        {
            var whole = string.Equals(_encoding, OtlpAttributes.GrpcMessageFrames, StringComparison.Ordinal);
            if ((!whole && !string.Equals(_encoding, OtlpAttributes.GrpcMessageFramesPrefix, StringComparison.Ordinal))
                || !attributes.TryGetValue(messagesKey, out var json) || GrpcSpanAttributes.DecodeMessages(json) is not { } list)
            {
                return null;
            }

            return whole ? GrpcSpanAttributes.Frames(list)
                : _framesLength is { } length ? GrpcSpanAttributes.FramesPrefix(list, length)
                : null;
        }

        private static bool IsTrue(AnyValue value) =>
            value.ValueCase == AnyValue.ValueOneofCase.BoolValue
                ? value.BoolValue
                : string.Equals(AsString(value), "true", StringComparison.OrdinalIgnoreCase);

        // The original agent's is_text_content: these content-types went out as text, all others as base64.
        private static bool IsOriginalTextContentType(string? contentType) =>
            contentType is not null
            && (contentType.StartsWith("text/", StringComparison.OrdinalIgnoreCase)
                || contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase)
                || contentType.StartsWith("application/xml", StringComparison.OrdinalIgnoreCase)
                || contentType.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase));

        private static bool TryDecodeBase64(string text, out byte[] bytes)
        {
            bytes = [];
            if (text.Length % 4 != 0)
            {
                return false;
            }

            var buffer = new byte[text.Length / 4 * 3];
            if (!Convert.TryFromBase64String(text, buffer, out var written))
            {
                return false;
            }

            bytes = written == buffer.Length ? buffer : buffer.AsSpan(0, written).ToArray();
            return true;
        }
    }

    /// <summary>The span attributes that feed exchange fields through fallbacks, gathered in one pass.</summary>
    private struct Found
    {
        public string? ServiceName;
        public string? Direction;
        public string? UrlHost;
        public string? UrlPath;
        public string? UrlQuery;
        public string? UrlScheme;
        public string? UrlFull;
        public string? Method;
        public string? ServerAddress;
        public string? ServerPort;
        public AnyValue? Status;
        public string? Cache;
        public string? Outcome;
        public string? ErrorType;
        public string? LegacyMethod;
        public string? LegacyTarget;
        public string? LegacyUrl;
        public string? LegacyScheme;
        public string? LegacyHost;
        public AnyValue? LegacyStatus;
        public string? PseudoMethod;
        public string? PseudoPath;
        public string? PseudoAuthority;
        public string? PseudoScheme;
        public string? PseudoStatus;
    }
}
