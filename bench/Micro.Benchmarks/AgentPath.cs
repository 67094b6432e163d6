using System.IO.Compression;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Proxy;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Redaction;

namespace SpIstio.Micro.Benchmarks;

/// <summary>
/// What the agent does per exchange after the transport: capture into bounded buffers, redact,
/// map to an OTLP span, encode and gzip in the exporter's batches. Batch benchmarks report per
/// exchange (<c>OperationsPerInvoke</c>).
/// </summary>
[MemoryDiagnoser]
public class AgentPath
{
    private const int Batch = 64;
    private const int Chunk = 16 * 1024;

    private Redactor _redactor = null!;
    private Exchange _exchange = null!;
    private CapturedBody _requestBody = null!;
    private CapturedBody _responseBody = null!;
    private string? _query;
    private int _authorization;
    private List<Exchange> _batch = null!;
    private byte[] _protobuf = null!;
    private byte[] _wire = null!;
    private CapturePipeline _pipeline = null!;

    /// <summary>Size of each of the two JSON bodies.</summary>
    [Params(2048, 65536)]
    public int BodyBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var options = new AgentOptions();
        _redactor = Redactor.Create(options.Redaction ?? new RedactionOptions());
        _exchange = Fixtures.Exchange(BodyBytes, 1);
        _requestBody = _exchange.RequestBody;
        _responseBody = _exchange.ResponseBody;
        _query = _exchange.Query;
        for (var i = 0; i < _exchange.RequestHeaders.Count; i++)
        {
            if (_exchange.RequestHeaders[i].Key == "authorization")
            {
                _authorization = i;
            }
        }

        _batch = [];
        for (var i = 0; i < Batch; i++)
        {
            var exchange = Fixtures.Exchange(BodyBytes, i * 7);
            _redactor.Redact(exchange);
            _batch.Add(exchange);
        }

        _protobuf = ExchangeSpanMapper.ToExportRequest(_batch, "bench", "1.0").ToByteArray();
        _wire = Fixtures.JsonBody(BodyBytes, 3, secret: false);
        _pipeline = new CapturePipeline(options, new DiscardingExporter(), new AgentMetrics(), NullLogger<CapturePipeline>.Instance);
    }

    /// <summary>Redactor.Redact on one exchange (headers, query, two JSON bodies, one secret field).</summary>
    [Benchmark]
    public int Redact()
    {
        // Undo the previous call's rewrite so every call redacts the same input.
        _exchange.RequestBody = _requestBody;
        _exchange.ResponseBody = _responseBody;
        _exchange.Query = _query;
        _exchange.RequestHeaders.SetValueAt(_authorization, "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc");
        _exchange.Attributes.Clear();
        return _redactor.Redact(_exchange);
    }

    /// <summary>ExchangeSpanMapper.ToSpan alone.</summary>
    [Benchmark]
    public object ToSpan() => ExchangeSpanMapper.ToSpan(_batch[0], "bench");

    /// <summary>ToExportRequest + protobuf WriteTo into a buffer (no compression), per exchange.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long EncodeProtobuf()
    {
        var request = ExchangeSpanMapper.ToExportRequest(_batch, "bench", "1.0");
        var buffer = new MemoryStream(request.CalculateSize());
        request.WriteTo(buffer);
        return buffer.Length;
    }

    /// <summary>
    /// OtlpSpanWriter.Write of the same batch (the same bytes as EncodeProtobuf) into Stream.Null,
    /// so the pooled encode buffer is all it costs, per exchange.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int EncodeSpanWriter()
    {
        OtlpSpanWriter.Write(_batch, "bench", "1.0", Stream.Null);
        return _batch.Count;
    }

    /// <summary>gzip (CompressionLevel.Fastest, as the exporter) of an already encoded batch, per exchange.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long GzipFastest()
    {
        var buffer = new MemoryStream(_protobuf.Length / 4);
        using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(_protobuf);
        }

        return buffer.Length;
    }

    /// <summary>The exporter's whole encode (OtlpSpanWriter + gzip), per exchange.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int ExporterEncode() => OtlpExporter.Encode(_batch, "bench").Count;

    /// <summary>BodyCaptureBuffer: append one body in 16 KiB chunks, Complete as application/json.</summary>
    [Benchmark]
    public long CaptureBuffer()
    {
        var buffer = new BodyCaptureBuffer(64 * 1024);
        for (var offset = 0; offset < _wire.Length; offset += Chunk)
        {
            buffer.Append(_wire.AsSpan(offset, Math.Min(Chunk, _wire.Length - offset)));
        }

        return buffer.Complete("application/json", null, 1024 * 1024).OriginalSize;
    }

    /// <summary>
    /// The capture proxy's per-exchange capture work: the exchange's lifecycle from its request head
    /// (rules, trace, sampling), the ProxyExchange adapter, the response tee writing a body in 16 KiB
    /// chunks to the client stream, Finish (complete both bodies, redact, enqueue).
    /// </summary>
    [Benchmark]
    public async Task<int> ProxyCapture()
    {
        var exchange = new Exchange { Method = "GET", Authority = "flights:8080", Path = "/api/flights", StartTime = DateTimeOffset.UnixEpoch };
        exchange.RequestHeaders.Add("accept", "application/json");
        using var lifecycle = _pipeline.Begin(exchange, TimeProvider.System)!;
        var capture = new ProxyExchange(lifecycle, TimeProvider.System);
        exchange.StatusCode = 200;
        exchange.ResponseHeaders.Add("content-type", "application/json");
        var tee = new ResponseTeeStream(Stream.Null, capture);
        for (var offset = 0; offset < _wire.Length; offset += Chunk)
        {
            await tee.WriteAsync(_wire.AsMemory(offset, Math.Min(Chunk, _wire.Length - offset)));
        }

        capture.Finish(ExchangeOutcome.Completed, null);
        return exchange.ResponseBody.Content.Length;
    }

    // Gives the exchange's rented body arrays back as the real exporter does once a span is
    // written: keeping them would make every operation rent a new array, an allocation the agent
    // does not have.
    private sealed class DiscardingExporter : IExchangeExporter
    {
        public bool TryEnqueue(Exchange exchange)
        {
            exchange.ReturnBodyArrays();
            return true;
        }
    }
}
