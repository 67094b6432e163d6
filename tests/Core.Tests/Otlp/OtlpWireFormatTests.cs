using Google.Protobuf;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Otlp.Proto.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Core.Tests.Otlp;

/// <summary>
/// The generated types must speak opentelemetry-proto's wire format: these bytes are written by
/// hand from upstream's field numbers and wire types, so a renumbered field fails here.
/// </summary>
public class OtlpWireFormatTests
{
    [Fact]
    public void Span_SerializesWithUpstreamFieldNumbers()
    {
        var span = new OtlpSpan
        {
            TraceId = ByteString.CopyFrom(Enumerable.Repeat((byte)0xAB, 16).ToArray()),
            Kind = OtlpSpan.Types.SpanKind.Server,
            StartTimeUnixNano = 1,
            Status = new Status { Code = Status.Types.StatusCode.Error },
            Flags = 1,
        };

        byte[] expected =
        [
            0x0A, 0x10, .. Enumerable.Repeat((byte)0xAB, 16), // 1 trace_id, length-delimited
            0x30, 0x02,                                        // 6 kind, varint SERVER
            0x39, 0x01, 0, 0, 0, 0, 0, 0, 0,                   // 7 start_time_unix_nano, fixed64
            0x7A, 0x02, 0x18, 0x02,                            // 15 status { 3 code = ERROR }
            0x85, 0x01, 0x01, 0, 0, 0,                         // 16 flags, fixed32
        ];
        Assert.Equal(expected, span.ToByteArray());
    }

    [Fact]
    public void AnyValue_BytesAndKvlistVariants_UseUpstreamFieldNumbers()
    {
        var kv = new KeyValue
        {
            Key = "k",
            Value = new AnyValue { KvlistValue = new KeyValueList { Values = { new KeyValue { Key = "b", Value = new AnyValue { BytesValue = ByteString.CopyFrom(7) } } } } },
        };

        byte[] expected =
        [
            0x0A, 0x01, (byte)'k',                   // 1 key
            0x12, 0x0C,                              // 2 value
            0x32, 0x0A,                              //   6 kvlist_value
            0x0A, 0x08,                              //     1 values[0]
            0x0A, 0x01, (byte)'b',                   //       1 key
            0x12, 0x03, 0x3A, 0x01, 0x07,            //       2 value { 7 bytes_value }
        ];
        Assert.Equal(expected, kv.ToByteArray());
    }

    [Fact]
    public void ExportResponse_PartialSuccess_UsesUpstreamFieldNumbers()
    {
        var response = new ExportTraceServiceResponse { PartialSuccess = new ExportTracePartialSuccess { RejectedSpans = 2, ErrorMessage = "x" } };

        Assert.Equal(new byte[] { 0x0A, 0x05, 0x08, 0x02, 0x12, 0x01, (byte)'x' }, response.ToByteArray());
    }

    [Fact]
    public void TraceService_ExportMethod_HasTheOtlpGrpcPath()
    {
        Assert.Equal("opentelemetry.proto.collector.trace.v1.TraceService", TraceService.Descriptor.FullName);
        Assert.Equal("Export", Assert.Single(TraceService.Descriptor.Methods).Name);
        Assert.True(typeof(TraceService.TraceServiceBase).IsAbstract);
        Assert.NotNull(typeof(TraceService.TraceServiceClient).GetConstructor([typeof(Grpc.Core.CallInvoker)]));
    }
}
