using System.Diagnostics;
using Google.Protobuf;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Otlp.Proto.Resource;
using SpIstio.Core.Otlp.Proto.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Backend.Tests.Infrastructure;

/// <summary>Hand-built OTLP export requests.</summary>
internal static class OtlpRequests
{
    public static readonly DateTimeOffset T0 = DateTimeOffset.UtcNow.AddMinutes(-5);

    public static ulong Nanos(DateTimeOffset time) => (ulong)(time.ToUnixTimeMilliseconds() * 1_000_000);

    public static OtlpSpan GenericSpan(ActivityTraceId trace, ActivitySpanId span, string name = "work", ActivitySpanId parent = default)
    {
        var s = new OtlpSpan
        {
            TraceId = ByteString.CopyFrom(HexBytes(trace.ToHexString())),
            SpanId = ByteString.CopyFrom(HexBytes(span.ToHexString())),
            Name = name,
            Kind = OtlpSpan.Types.SpanKind.Internal,
            StartTimeUnixNano = Nanos(T0),
            EndTimeUnixNano = Nanos(T0.AddMilliseconds(5)),
        };
        if (parent != default)
        {
            s.ParentSpanId = ByteString.CopyFrom(HexBytes(parent.ToHexString()));
        }

        s.Attributes.Add(Str("job.id", "42"));
        return s;
    }

    public static ExportTraceServiceRequest Wrap(string service, params OtlpSpan[] spans)
    {
        var scope = new ScopeSpans { Scope = new InstrumentationScope { Name = "test" } };
        scope.Spans.Add(spans);
        return new ExportTraceServiceRequest
        {
            ResourceSpans =
            {
                new ResourceSpans
                {
                    Resource = new Resource { Attributes = { Str("service.name", service) } },
                    ScopeSpans = { scope },
                },
            },
        };
    }

    public static KeyValue Str(string key, string value) => new() { Key = key, Value = new AnyValue { StringValue = value } };

    public static byte[] HexBytes(string hex) => Convert.FromHexString(hex);
}
