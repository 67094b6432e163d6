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

    /// <summary>
    /// One export call whose message is sent as given, over h2c without a gRPC client (which would
    /// compress the message itself, and never sends a length prefix that lies): with the compressed
    /// flag set when <paramref name="encoding"/> is given (sent as grpc-encoding), and a length
    /// prefix of <paramref name="declaredLength"/> when given, else the message's. Returns the call's
    /// grpc-status and grpc-message, from the trailers or a trailers-only answer.
    /// </summary>
    public static async Task<(Grpc.Core.StatusCode Status, string Message)> SendRawExportFrameAsync(
        Uri grpcAddress, byte[] message, string? encoding, string key, uint? declaredLength = null)
    {
        var frame = new byte[5 + message.Length];
        frame[0] = encoding is null ? (byte)0 : (byte)1;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), declaredLength ?? (uint)message.Length);
        message.CopyTo(frame, 5);
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(grpcAddress, "/opentelemetry.proto.collector.trace.v1.TraceService/Export"))
        {
            Version = System.Net.HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(frame),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        if (encoding is not null)
        {
            request.Headers.Add("grpc-encoding", encoding);
        }

        request.Headers.Add("x-public-key", key);

        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        string Header(string name) =>
            response.TrailingHeaders.TryGetValues(name, out var values) || response.Headers.TryGetValues(name, out values) ? values.Single() : "";
        return ((Grpc.Core.StatusCode)int.Parse(Header("grpc-status"), System.Globalization.CultureInfo.InvariantCulture), Uri.UnescapeDataString(Header("grpc-message")));
    }

    /// <summary>
    /// <paramref name="length"/> zero bytes compressed as gRPC's <paramref name="encoding"/> (gzip, or
    /// deflate: the zlib format): a message that inflates about a thousandfold.
    /// </summary>
    public static byte[] CompressedZeros(long length, string encoding)
    {
        var zeros = new byte[64 * 1024];
        using var output = new MemoryStream();
        using (Stream compressing = encoding == "gzip"
            ? new System.IO.Compression.GZipStream(output, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true)
            : new System.IO.Compression.ZLibStream(output, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
        {
            for (long written = 0; written < length; written += zeros.Length)
            {
                compressing.Write(zeros);
            }
        }

        return output.ToArray();
    }
}
