using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Agent.Tests.Export;

/// <summary>The exporter's disk buffer (<c>export.buffer_path</c>) against a real OTLP receiver and a real directory.</summary>
public sealed class DiskExportBufferTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-buffer-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private AgentOptions Options(Uri backend)
    {
        var options = TestExchanges.Options(backend);
        options.Export.MaxBatchSpans = 1;
        options.Export.MaxRetries = 0;
        options.Export.BufferPath = _directory;
        options.MaxConcurrentRequests = 1;
        return options;
    }

    private static OtlpExporter Create(AgentOptions options, AgentMetrics metrics) =>
        new(options, metrics, NullLogger<OtlpExporter>.Instance);

    private static string UrlPathOf(OtlpSpan span) =>
        ExchangeSpanMapper.AsString(span.Attributes.Single(a => a.Key == OtlpAttributes.UrlPath).Value);

    [Fact]
    public async Task BackendDown_BatchesGoToDisk_AndAreResentInOrderOnceItAnswers()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(503);
        var metrics = new AgentMetrics();
        await using var exporter = Create(Options(receiver.BaseAddress), metrics);
        exporter.Start();

        for (var i = 0; i < 3; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/buffered/" + i));
            await WaitForAsync(() => metrics.ExportSpansBuffered.Value == i + 1);
        }

        Assert.Equal(3, Directory.GetFiles(_directory, "*.otlp").Length);
        Assert.True(metrics.ExportBufferBytes.Value > 0);
        Assert.False(exporter.Health.Snapshot().BackendReachable);
        Assert.Equal(0, metrics.ExportSpansFailed.Value);

        var failedBefore = receiver.Requests.Count;
        receiver.Default = ReceiverResponse.Ok();
        await WaitForAsync(() => metrics.ExportSpansExported.Value == 3, TimeSpan.FromSeconds(30));

        var delivered = receiver.Requests.Skip(failedBefore).Where(r => r.Spans.Count > 0).SelectMany(r => r.Spans).Select(UrlPathOf).ToList();
        Assert.Equal(["/buffered/0", "/buffered/1", "/buffered/2"], delivered.Distinct());
        Assert.Empty(Directory.GetFiles(_directory));
        Assert.True(exporter.Health.Snapshot().BackendReachable);
        metrics.Registry.Render();
        Assert.Equal(0, metrics.ExportBufferBytes.Value);
        Assert.Equal(0, metrics.ExportBufferOldestAge.Value);
    }

    [Fact]
    public async Task CompressionNone_LargeBodiesSentFromTheirOwnArrays_AreBufferedWhole_AndResentAsTheyWereEncoded()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(503);
        var options = Options(receiver.BaseAddress);
        options.Export.Compression = ExportCompression.None;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);
        exporter.Start();

        // Two bodies large enough to go out from the exchange's arrays (DeferredBytes), headers between them copied.
        var exchange = TestExchanges.Get("/large", responseBody: Convert.ToBase64String(RandomNumberGenerator.GetBytes(48 * 1024)));
        var request = Encoding.UTF8.GetBytes(Convert.ToBase64String(RandomNumberGenerator.GetBytes(24 * 1024)));
        exchange.RequestBody = new CapturedBody(request, request.Length, false, BodyKind.Text, "application/json");
        var expected = OtlpExporter.Encode([exchange], options.PublicKey, ExportCompression.None).ToArray();
        exporter.TryEnqueue(exchange);
        await WaitForAsync(() => metrics.ExportSpansBuffered.Value == 1);

        receiver.Default = ReceiverResponse.Ok();
        await WaitForAsync(() => metrics.ExportSpansExported.Value == 1, TimeSpan.FromSeconds(30));

        // The refused attempt (gathered from the arrays) and the re-sent one (the whole request from disk).
        Assert.True(receiver.Requests.Count >= 2);
        Assert.Equal(expected, receiver.Requests[0].Body);
        Assert.Equal(expected, receiver.Requests[^1].Body);
        Assert.Empty(Directory.GetFiles(_directory));
    }

    [Fact]
    public async Task BatchesLeftOnDisk_AreResentByTheNextRun()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(503);
        var first = new AgentMetrics();
        var gzip = Options(receiver.BaseAddress);
        gzip.Export.Compression = ExportCompression.Gzip;
        await using (var exporter = Create(gzip, first))
        {
            exporter.Start();
            exporter.TryEnqueue(TestExchanges.Get("/earlier/0"));
            exporter.TryEnqueue(TestExchanges.Get("/earlier/1"));
            await WaitForAsync(() => first.ExportSpansBuffered.Value == 2);
        }

        Assert.Equal(2, Directory.GetFiles(_directory, "*.otlp.gz").Length);
        var before = receiver.Requests.Count;
        receiver.Default = ReceiverResponse.Ok();
        var second = new AgentMetrics();
        await using (var exporter = Create(Options(receiver.BaseAddress), second))
        {
            Assert.True(second.ExportBufferBytes.Value > 0);
            exporter.Start();
            await WaitForAsync(() => second.ExportSpansExported.Value == 2, TimeSpan.FromSeconds(30));
        }

        // Written gzip by the first run, re-sent as gzip by the second, whose own setting is none.
        Assert.All(receiver.Requests.Skip(before), r => Assert.Equal("gzip", r.Header("content-encoding")));

        Assert.Equal(["/earlier/0", "/earlier/1"], receiver.Requests.Skip(before).SelectMany(r => r.Spans).Select(UrlPathOf));
        Assert.Empty(Directory.GetFiles(_directory));
    }

    [Fact]
    public async Task PastTheBound_TheOldestBatchesAreDeletedAndCounted()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(503);
        var options = Options(receiver.BaseAddress);
        options.Export.BufferMaxBytes = AgentOptionsValidator.MinExportBufferBytes;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);
        exporter.Start();

        // Random bytes as base64 barely compress: about 300 KiB on disk per batch.
        for (var i = 0; i < 6; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/big/" + i, responseBody: Convert.ToBase64String(RandomNumberGenerator.GetBytes(300 * 1024))));
            await WaitForAsync(() => metrics.ExportSpansBuffered.Value == i + 1);
        }

        Assert.True(metrics.ExportBufferDroppedSpans.Value >= 2, "dropped " + metrics.ExportBufferDroppedSpans.Value);
        Assert.True(metrics.ExportBufferBytes.Value <= AgentOptionsValidator.MinExportBufferBytes);
        var onDisk = Directory.GetFiles(_directory).Select(f => new FileInfo(f).Length).Sum();
        Assert.Equal((long)metrics.ExportBufferBytes.Value, onDisk);
        Assert.Equal(6 - metrics.ExportBufferDroppedSpans.Value, Directory.GetFiles(_directory).Length);

        // The newest survive: they are what is re-sent.
        receiver.Default = ReceiverResponse.Ok();
        await WaitForAsync(() => metrics.ExportSpansExported.Value == 6 - metrics.ExportBufferDroppedSpans.Value, TimeSpan.FromSeconds(30));
        Assert.Contains(receiver.Spans.Select(UrlPathOf), p => p == "/big/5");
        Assert.Empty(Directory.GetFiles(_directory));
    }

    [Fact]
    public void BufferPathThatCannotBeCreated_StopsTheExporterWithTheKeyNamed()
    {
        File.WriteAllText(_directory, "a file, not a directory");
        try
        {
            var options = Options(TestExchanges.RefusingBackend());
            var error = Assert.Throws<SpIstio.Core.Startup.StartupException>(() => Create(options, new AgentMetrics()));
            Assert.StartsWith("export.buffer_path: '" + _directory + "'", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(_directory);
        }
    }

    private static Task WaitForAsync(Func<bool> condition, TimeSpan? timeout = null) =>
        OtlpReceiver.WaitUntilAsync(condition, timeout);
}
