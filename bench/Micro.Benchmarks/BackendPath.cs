using System.Globalization;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Ingest;
using SpIstio.Backend.Storage;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;

namespace SpIstio.Micro.Benchmarks;

/// <summary>What the backend does per span it ingests: convert, compress, insert into SQLite. Reported per span.</summary>
[MemoryDiagnoser]
public class BackendPath
{
    private const int Batch = 512;

    private ExportTraceServiceRequest _request = null!;
    private IReadOnlyList<StoredSpan> _spans = null!;
    private byte[] _body = null!;
    private string _directory = null!;
    private ISpanStore _store = null!;
    private long _tenant;
    private long _next;

    [GlobalSetup]
    public async Task Setup()
    {
        var exchanges = new List<Exchange>(Batch);
        for (var i = 0; i < Batch; i++)
        {
            exchanges.Add(Fixtures.Exchange(2048, i));
        }

        _request = ExchangeSpanMapper.ToExportRequest(exchanges, "bench", "1.0");
        _spans = SpanConverter.Convert(_request).Spans;
        _body = Fixtures.JsonBody(2048, 5, secret: false);
        _directory = Directory.CreateTempSubdirectory("sp-micro-").FullName;
        _store = await SpanStoreFactory.OpenAsync("sqlite:" + Path.Combine(_directory, "sp.db"), NullLoggerFactory.Instance, null, CancellationToken.None);
        _tenant = (await _store.EnsureTenantAsync("bench", CancellationToken.None)).Id;
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>SpanConverter.Convert of a 512-span request (2 KiB bodies), per span.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int Convert() => SpanConverter.Convert(_request).Spans.Count;

    /// <summary>BodyCodec.Encode (zstd level 1, no dictionary) of one 2 KiB JSON body.</summary>
    [Benchmark]
    public int BodyCodecEncode() => BodyCodec.Encode(_body)!.Length;

    /// <summary>SQLite InsertSpansAsync of 512 new spans (compression, FTS, session roll-up, commit), per span.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public async Task<int> SqliteInsert()
    {
        var batch = new StoredSpan[Batch];
        for (var i = 0; i < Batch; i++)
        {
            batch[i] = _spans[i] with { SpanId = (++_next).ToString("x16", CultureInfo.InvariantCulture) };
        }

        return await _store.InsertSpansAsync(_tenant, batch, CancellationToken.None);
    }
}
