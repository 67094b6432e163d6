using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Memory;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Agent.Tests.Export;

public sealed class OtlpExporterTests
{
    private static OtlpExporter Create(AgentOptions options, AgentMetrics metrics, TimeProvider? time = null, LogCollector? logs = null) =>
        new(options, metrics, logs is null ? NullLogger<OtlpExporter>.Instance : logs.For<OtlpExporter>(), time);

    private static string Attr(SpIstio.Core.Otlp.Proto.Trace.Span span, string key) =>
        ExchangeSpanMapper.AsString(span.Attributes.Single(a => a.Key == key).Value);

    [Fact]
    public async Task Export_SendsOneSpanPerExchange_AsGzipProtobufWithKeyAndUserAgent()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var metrics = new AgentMetrics();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.Compression = ExportCompression.Gzip;
        await using var exporter = Create(options, metrics);
        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/api/orders/1")));
        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/api/orders/2", service: "payments")));
        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/api/orders/3")));

        exporter.Start();
        await receiver.WaitForSpansAsync(3);

        var request = Assert.Single(receiver.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal("/v1/traces", request.Path);
        Assert.Equal("application/x-protobuf", request.Header("content-type"));
        Assert.Equal("gzip", request.Header("content-encoding"));
        Assert.Equal("test-key", request.Header("x-public-key"));
        Assert.StartsWith("sp-agent/", request.Header("user-agent"), StringComparison.Ordinal);
        Assert.Equal([0x1f, 0x8b], request.Body[..2]);
        Assert.Null(request.DecodeError);
        Assert.Equal(["/api/orders/1", "/api/orders/2", "/api/orders/3"], request.Spans.Select(s => Attr(s, "url.path")).Order());
        Assert.All(request.Spans, s => Assert.Equal("test-key", Attr(s, "sp.public.key")));
        var services = request.Export!.ResourceSpans
            .Select(r => ExchangeSpanMapper.AsString(r.Resource.Attributes.Single(a => a.Key == "service.name").Value))
            .Order();
        Assert.Equal(["orders", "payments"], services);
        Assert.Equal(OtlpExporter.Version, request.Export.ResourceSpans[0].ScopeSpans[0].Scope.Version);
        await WaitForAsync(() => metrics.ExportSpansExported.Value == 3 && metrics.ExportBatchDuration.Count == 1);
        Assert.Equal(0, metrics.ExportQueueDepth.Value);
    }

    [Fact]
    public void Encode_Batch_GunzipsToTheReferenceExportRequest()
    {
        var batch = new List<SpIstio.Core.Model.Exchange>
        {
            TestExchanges.Get("/api/orders/1"),
            TestExchanges.Get("/api/orders/2", service: "payments", responseBody: "{\"city\":\"Zürich\"}"),
            TestExchanges.Get("/api/orders/3", responseBody: null),
        };

        var payload = OtlpExporter.Encode(batch, "test-key");

        using var gzip = new System.IO.Compression.GZipStream(new MemoryStream(payload.Array!, payload.Offset, payload.Count), System.IO.Compression.CompressionMode.Decompress);
        var parsed = SpIstio.Core.Otlp.Proto.Collector.Trace.ExportTraceServiceRequest.Parser.ParseFrom(gzip);
        Assert.Equal(ExchangeSpanMapper.ToExportRequest(batch, "test-key", OtlpExporter.Version), parsed);
    }

    [Fact]
    public void Encode_Zstd_DecompressesToTheReferenceExportRequest_AndPooledContextsStartFresh()
    {
        var first = new List<SpIstio.Core.Model.Exchange> { TestExchanges.Get("/api/orders/1", responseBody: new string('a', 100_000)) };
        var second = new List<SpIstio.Core.Model.Exchange>
        {
            TestExchanges.Get("/api/orders/2", service: "payments", responseBody: "{\"city\":\"Zürich\"}"),
            TestExchanges.Get("/api/orders/3", responseBody: null),
        };

        // The second batch reuses the first one's context: it must decode on its own.
        _ = OtlpExporter.Encode(first, "test-key", ExportCompression.Zstd);
        var payload = OtlpExporter.Encode(second, "test-key", ExportCompression.Zstd);

        Assert.Equal([0x28, 0xb5, 0x2f, 0xfd], payload.AsSpan()[..4].ToArray());
        using var zstd = new ZstdSharp.DecompressionStream(new MemoryStream(payload.Array!, payload.Offset, payload.Count));
        var parsed = SpIstio.Core.Otlp.Proto.Collector.Trace.ExportTraceServiceRequest.Parser.ParseFrom(zstd);
        Assert.Equal(ExchangeSpanMapper.ToExportRequest(second, "test-key", OtlpExporter.Version), parsed);
    }

    [Fact]
    public async Task Export_CompressionZstd_SendsZstdProtobuf()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.Compression = ExportCompression.Zstd;
        await using var exporter = Create(options, new AgentMetrics());
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get("/zstd"));
        await receiver.WaitForSpansAsync(1);

        var request = Assert.Single(receiver.Requests);
        Assert.Equal("zstd", request.Header("content-encoding"));
        Assert.Null(request.DecodeError);
        Assert.Equal("/zstd", Attr(request.Spans[0], "url.path"));
    }

    [Fact]
    public async Task Export_CompressionNone_SendsPlainProtobufWithoutContentEncoding()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.Compression = ExportCompression.None;
        await using var exporter = Create(options, new AgentMetrics());
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get("/plain"));
        await receiver.WaitForSpansAsync(1);

        var request = Assert.Single(receiver.Requests);
        Assert.Null(request.Header("content-encoding"));
        Assert.NotEqual([0x1f, 0x8b], request.Body[..2]);
        Assert.Equal("/plain", Attr(request.Spans[0], "url.path"));
    }

    [Fact]
    public async Task CompressionNone_LargeBatchArraysGoBackToThePool_AndAReusedArrayCarriesOnlyItsOwnBatch()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.Compression = ExportCompression.None;
        await using var exporter = Create(options, new AgentMetrics());
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get("/large", responseBody: new string('a', 200 * 1024)));
        await receiver.WaitForSpansAsync(1);
        await WaitForAsync(() => exporter.PayloadPoolRetainedBytes >= 200 * 1024);

        // The second batch is shorter and goes into the first one's array: nothing of the first may show.
        exporter.TryEnqueue(TestExchanges.Get("/smaller", responseBody: new string('b', 150 * 1024)));
        await receiver.WaitForSpansAsync(2);
        var second = receiver.Requests[1];
        var span = Assert.Single(second.Spans);
        Assert.Equal("/smaller", Attr(span, "url.path"));
        Assert.Equal(new string('b', 150 * 1024), Attr(span, OtlpAttributes.ResponseBody));
        Assert.InRange(second.Body.Length, 150 * 1024, 160 * 1024);
        await WaitForAsync(() => exporter.PayloadPoolRetainedBytes >= 200 * 1024);
    }

    [Fact]
    public async Task CompressionNone_AFailedBatchStillReturnsItsArray()
    {
        var options = TestExchanges.Options(TestExchanges.RefusingBackend());
        options.Export.Compression = ExportCompression.None;
        options.Export.MaxRetries = 0;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get("/large", responseBody: new string('a', 200 * 1024)));

        await WaitForAsync(() => metrics.ExportSpansFailed.Value == 1);
        await WaitForAsync(() => exporter.PayloadPoolRetainedBytes >= 200 * 1024 && exporter.InflightBytes == 0);
    }

    [Fact]
    public async Task AfterABurst_TheKeptBatchArraysGo_OnceNothingWasHeldForTheIdleDelay_NotBefore()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var time = new FakeTimeProvider();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.Compression = ExportCompression.None;
        options.Export.MaxBatchSpans = 1;
        await using var exporter = Create(options, new AgentMetrics(), time);
        exporter.Start();
        var body = new string('a', 512 * 1024);
        int burst = (int)(OtlpExporter.IdleCollectAfterBytes / body.Length) + 1;

        // A burst of large exchanges, one a batch: each batch's array comes back to the pool.
        for (var i = 0; i < burst; i++)
        {
            Assert.True(exporter.TryEnqueue(TestExchanges.Get("/large/" + i, responseBody: body)));
            await receiver.WaitForSpansAsync(i + 1);
        }

        await WaitForAsync(() => exporter.InflightBytes == 0 && exporter.PayloadPoolRetainedBytes >= body.Length);
        long kept = exporter.PayloadPoolRetainedBytes;

        // Idle, but not yet for the whole delay: what the burst left is kept for the next one.
        time.Advance(IdleHeapCollection.Delay - TimeSpan.FromMilliseconds(1));
        Assert.Equal(kept, exporter.PayloadPoolRetainedBytes);

        time.Advance(TimeSpan.FromMilliseconds(1));
        await WaitForAsync(() => exporter.PayloadPoolRetainedBytes == 0);
    }

    [Fact]
    public async Task MaxInflightBytes_ACaptureThatDoesNotFitIsDroppedAndCounted_AndTheBudgetIsGivenBackOnceSent()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxInflightBytes = 1024 * 1024;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);
        var body = new string('x', 400 * 1024);

        // Not started: nothing leaves, so the budget fills.
        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/big/1", responseBody: body)));
        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/big/2", responseBody: body)));
        Assert.False(exporter.TryEnqueue(TestExchanges.Get("/big/3", responseBody: body)));
        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/small")));

        Assert.Equal(1, metrics.ExportDropped.Value);
        Assert.True(exporter.InflightBytes > 800 * 1024 && exporter.InflightBytes <= options.Export.MaxInflightBytes);
        exporter.Start();
        await receiver.WaitForSpansAsync(3);
        await WaitForAsync(() => exporter.InflightBytes == 0);
        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/big/4", responseBody: body)));
    }

    [Theory]
    [InlineData(1, 1024, false)]
    [InlineData(1, 64 * 1024, true)]
    [InlineData(40, 3_000, false)]
    [InlineData(100, 0, false)]
    public void EstimateBytes_GrpcCall_CoversTheSpanItWrites_AndLittleMoreThanTheArraysItHolds(int messages, int size, bool cut)
    {
        // The byte budget reserves the estimate while the exchange waits for its batch: under what
        // the span writes, the budget would hold less than is sent; far over what the exchange
        // holds (its lists are written as bytes, its framed bodies not at all), captures that fit
        // would be dropped. Bodies cut at 64 KiB inside their listed messages: the 64 KiB call.
        var random = new Random(18);
        var payloads = Enumerable.Range(0, messages).Select(_ =>
        {
            var payload = new byte[size];
            random.NextBytes(payload);
            return payload;
        }).ToList();
        var list = new GrpcMessageList(messages, false, [.. payloads.Select((p, i) => new GrpcMessage(i, TimeSpan.FromTicks(12_345 * i), false, p.Length, p, false, false))]);
        var frames = GrpcSpanAttributes.Frames(list);
        var kept = cut ? Math.Min(frames.Length - 1, 64 * 1024) : frames.Length;
        var exchange = TestExchanges.Get(path: "/shop.Orders/Put", responseBody: null);
        exchange.RequestHeaders.Add("content-type", "application/grpc");
        exchange.RequestBody = new CapturedBody(frames[..kept], frames.Length, cut, BodyKind.Binary, "application/grpc");
        exchange.ResponseBody = new CapturedBody(frames[..kept], frames.Length, cut, BodyKind.Binary, "application/grpc");
        exchange.GrpcCall = new GrpcCallMessages(list, list);
        GrpcCallMessages.Seal(exchange);
        Assert.True(exchange.RequestBody.MessageFrames);

        var written = OtlpSpanWriter.MeasureSpan(exchange, "test-key").Length;
        var estimate = OtlpExporter.EstimateBytes(exchange);

        Assert.InRange(estimate, written, written + (2L * kept) + (2 * 64 * messages) + 1024);
    }

    [Fact]
    public async Task SmallExchanges_AreEncodedWhenQueued_IntoSlabsTheBudgetCountsWhole_AndAReusedSlabCarriesOnlyItsOwnSpans()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.Compression = ExportCompression.None;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);

        // Not started: nothing leaves. ~4 KiB spans, so 40 of them fill more than two slabs.
        for (var i = 0; i < 40; i++)
        {
            var exchange = TestExchanges.Get("/a/" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), responseBody: new string('a', 4000));
            Assert.True(exporter.TryEnqueue(exchange));

            // Encoded when queued: what changes in the exchange afterwards is not exported.
            exchange.Path = "/changed";
        }

        Assert.InRange(exporter.InflightBytes, 3 * QueuedSpans.SlabBytes, 4 * QueuedSpans.SlabBytes);
        Assert.Equal(0, exporter.InflightBytes % QueuedSpans.SlabBytes);
        exporter.Start();
        await receiver.WaitForSpansAsync(40);
        await WaitForAsync(() => exporter.InflightBytes == 0);

        // The second round reuses the first round's slabs: each span carries its own bytes only.
        for (var i = 0; i < 40; i++)
        {
            Assert.True(exporter.TryEnqueue(TestExchanges.Get("/b/" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), responseBody: new string('b', 3000))));
        }

        await receiver.WaitForSpansAsync(80);
        var spans = receiver.Spans;
        Assert.Equal(Enumerable.Range(0, 40).Select(i => "/a/" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(), spans.Take(40).Select(s => Attr(s, "url.path")).Order());
        Assert.All(spans.Take(40), s => Assert.Equal(new string('a', 4000), Attr(s, OtlpAttributes.ResponseBody)));
        Assert.Equal(Enumerable.Range(0, 40).Select(i => "/b/" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(), spans.Skip(40).Select(s => Attr(s, "url.path")).Order());
        Assert.All(spans.Skip(40), s => Assert.Equal(new string('b', 3000), Attr(s, OtlpAttributes.ResponseBody)));
        await WaitForAsync(() => exporter.InflightBytes == 0 && metrics.ExportSpansExported.Value == 80);
    }

    [Fact]
    public async Task Export_WithoutPublicKey_OmitsTheHeader()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var exporter = Create(TestExchanges.Options(receiver.BaseAddress, publicKey: ""), new AgentMetrics());
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get());
        await receiver.WaitForSpansAsync(1);

        Assert.Null(receiver.Requests[0].Header("x-public-key"));
        Assert.DoesNotContain(receiver.Spans[0].Attributes, a => a.Key == "sp.public.key");
    }

    [Fact]
    public async Task Export_BackendUrlWithPath_PostsBelowIt()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(new Uri(receiver.BaseAddress, "/otlp/"));
        await using var exporter = Create(options, new AgentMetrics());
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get());
        await receiver.WaitForRequestsAsync(1);

        Assert.Equal("/otlp/v1/traces", receiver.Requests[0].Path);
    }

    [Fact]
    public async Task Batching_FullBatchesGoAtOnce_TheRemainderWaitsForTheDelayOrShutdown()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 2;
        options.Export.BatchDelayMs = 60_000;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);
        exporter.Start();

        for (var i = 0; i < 5; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/p/" + i));
        }

        await receiver.WaitForSpansAsync(4);
        await WaitForAsync(() => metrics.ExportQueueDepth.Value == 0);

        // The fifth waits in a partial batch: the sixth completes that batch, so both go together.
        exporter.TryEnqueue(TestExchanges.Get("/p/5"));
        await receiver.WaitForSpansAsync(6);
        Assert.Equal([2, 2, 2], receiver.Requests.Select(r => r.Spans.Count));

        // A remainder that never fills goes at shutdown, long before the 60 s delay.
        exporter.TryEnqueue(TestExchanges.Get("/p/6"));
        await exporter.StopAsync(TimeSpan.FromSeconds(10));

        Assert.Equal([2, 2, 2, 1], receiver.Requests.Select(r => r.Spans.Count));
        Assert.Equal(7, metrics.ExportSpansExported.Value);
        Assert.Equal(0, metrics.ExportDropped.Value);
    }

    [Fact]
    public async Task Batching_BySize_SendsLargeExchangesInSeparateRequests()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchBytes = 1024;
        options.Export.BatchDelayMs = 60_000;
        await using var exporter = Create(options, new AgentMetrics());
        var large = new string('x', 1500);
        for (var i = 0; i < 3; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/big/" + i, responseBody: large));
        }

        exporter.Start();
        await receiver.WaitForSpansAsync(3);

        Assert.Equal([1, 1, 1], receiver.Requests.Select(r => r.Spans.Count));
    }

    [Fact]
    public async Task Batching_ByTime_APartialBatchIsSentOnlyOnceTheDelayHasPassed()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var time = new FakeTimeProvider();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 100;
        options.Export.BatchDelayMs = 1000;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics, time);
        exporter.Start();

        // The reader takes /a and holds it; had it sent /a at once, /b would travel in a request of its own.
        // (/b stays queued until the delay ends: the reader sleeps on a partial batch rather than
        // waking per exchange.)
        exporter.TryEnqueue(TestExchanges.Get("/a"));
        await WaitForAsync(() => metrics.ExportQueueDepth.Value == 0);
        exporter.TryEnqueue(TestExchanges.Get("/b"));

        // The batch timer starts when the reader takes the first exchange; step the clock until it fires.
        await AdvanceUntilAsync(time, TimeSpan.FromMilliseconds(250), () => receiver.Requests.Count > 0);

        Assert.Equal(2, Assert.Single(receiver.Requests).Spans.Count);
    }

    [Fact]
    public async Task TryEnqueue_QueueFull_ReturnsFalseAndCountsTheDrop()
    {
        var options = TestExchanges.Options(TestExchanges.RefusingBackend());
        options.Export.QueueCapacity = 3;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);

        var accepted = Enumerable.Range(0, 5).Select(i => exporter.TryEnqueue(TestExchanges.Get("/" + i))).ToList();

        Assert.Equal([true, true, true, false, false], accepted);
        Assert.Equal(2, metrics.ExportDropped.Value);
        Assert.Equal(3, metrics.ExportQueueDepth.Value);
    }

    [Fact]
    public async Task BackendDown_SpansAreCountedFailed_AndEnqueueNeverWaits()
    {
        var options = TestExchanges.Options(TestExchanges.RefusingBackend());
        options.Export.QueueCapacity = 50;
        options.Export.MaxBatchSpans = 10;
        options.Export.MaxRetries = 1;
        options.CircuitBreaker.MaxFailures = 1000;
        var metrics = new AgentMetrics();
        var logs = new LogCollector();
        await using var exporter = Create(options, metrics, logs: logs);
        exporter.Start();

        var accepted = 0;
        for (var i = 0; i < 2000; i++)
        {
            accepted += exporter.TryEnqueue(TestExchanges.Get("/" + i)) ? 1 : 0;
        }

        await WaitForAsync(() => metrics.ExportSpansFailed.Value + metrics.ExportDropped.Value == 2000, TimeSpan.FromSeconds(30));
        Assert.Equal(accepted, metrics.ExportSpansFailed.Value);
        Assert.Equal(2000 - accepted, metrics.ExportDropped.Value);
        Assert.True(metrics.ExportDropped.Value > 0, "a 50-slot queue cannot take 2000 exchanges at once");
        Assert.Equal(0, metrics.ExportSpansExported.Value);
        await WaitForAsync(() => logs.Entries.Any(e => e.EventId == 101));
        Assert.Single(logs.Entries, e => e.EventId == 101);
    }

    [Fact]
    public async Task RetryAfter_On429_TheRetryIsNotSentBeforeTheDelay()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Enqueue(ReceiverResponse.TooManyRequests("5"));
        var time = new FakeTimeProvider();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.AsyncTimeoutMs = 600_000;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics, time);
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get());
        await receiver.WaitForRequestsAsync(1);
        var firstSeenAt = time.GetUtcNow();
        await AdvanceUntilAsync(time, TimeSpan.FromMilliseconds(250), () => receiver.Requests.Count >= 2);
        var waited = time.GetUtcNow() - firstSeenAt;

        Assert.True(waited >= TimeSpan.FromSeconds(5), $"retried after {waited} of a 5 s Retry-After");
        Assert.Equal(2, receiver.Requests.Count);
        await WaitForAsync(() => metrics.ExportSpansExported.Value == 1);
    }

    [Fact]
    public async Task RetryAfter_AsHttpDateOn503_IsHonoured()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var time = new FakeTimeProvider(new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero));
        receiver.Enqueue(ReceiverResponse.Unavailable(time.GetUtcNow().AddSeconds(8).ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.AsyncTimeoutMs = 600_000;
        await using var exporter = Create(options, new AgentMetrics(), time);
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get());
        await receiver.WaitForRequestsAsync(1);
        var firstSeenAt = time.GetUtcNow();
        await AdvanceUntilAsync(time, TimeSpan.FromMilliseconds(500), () => receiver.Requests.Count >= 2);

        Assert.True(time.GetUtcNow() - firstSeenAt >= TimeSpan.FromSeconds(7.5));
    }

    [Fact]
    public async Task ServerErrors_AreRetried_UpToMaxRetries_ThenCountedFailed()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(500);
        var time = new FakeTimeProvider();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.Export.MaxRetries = 2;
        options.AsyncTimeoutMs = 600_000;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics, time);
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get());
        await AdvanceUntilAsync(time, TimeSpan.FromSeconds(1), () => metrics.ExportSpansFailed.Value == 1);

        Assert.Equal(3, receiver.Requests.Count);
        Assert.Equal(0, metrics.ExportSpansExported.Value);
    }

    [Theory]
    [InlineData(400)]
    [InlineData(401)]
    [InlineData(403)]
    public async Task ClientErrors_AreNotRetried_CountedRejected_AndLoggedOnce(int status)
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(status, "no such key");
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.Export.MaxRetries = 3;
        var metrics = new AgentMetrics();
        var logs = new LogCollector();
        await using var exporter = Create(options, metrics, logs: logs);
        exporter.Start();

        for (var i = 0; i < 3; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/" + i));
        }

        // A batch is counted rejected only once its resilience pipeline has finished, retries
        // included: three rejections with three requests means no request was retried.
        await WaitForAsync(() => metrics.ExportSpansRejected.Value == 3 && logs.Entries.Any(e => e.EventId == 103));

        Assert.Equal(3, receiver.Requests.Count);
        Assert.Equal(0, metrics.ExportSpansFailed.Value);
        var logged = Assert.Single(logs.Entries, e => e.EventId == 103);
        Assert.Contains(status.ToString(System.Globalization.CultureInfo.InvariantCulture), logged.Message, StringComparison.Ordinal);
        Assert.Contains("no such key", logged.Message, StringComparison.Ordinal);
        Assert.Equal(BackendCircuitState.Closed, exporter.CircuitState);
    }

    [Fact]
    public async Task PartialSuccess_RejectedSpansAreCountedRejected_TheRestExported()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Enqueue(ReceiverResponse.PartialSuccess(2, "2 spans too old"));
        var metrics = new AgentMetrics();
        var logs = new LogCollector();
        await using var exporter = Create(TestExchanges.Options(receiver.BaseAddress), metrics, logs: logs);
        for (var i = 0; i < 5; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/" + i));
        }

        exporter.Start();
        await WaitForAsync(() => metrics.ExportSpansExported.Value + metrics.ExportSpansRejected.Value == 5);

        Assert.Equal(3, metrics.ExportSpansExported.Value);
        Assert.Equal(2, metrics.ExportSpansRejected.Value);
        await WaitForAsync(() => logs.Entries.Any(e => e.EventId == 104 && e.Message.Contains("2 spans too old", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task SlowBackend_AttemptTimesOut_AndTheBatchFails()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Slow(TimeSpan.FromSeconds(30));
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.AsyncTimeoutMs = 100;
        options.Export.MaxRetries = 0;
        var metrics = new AgentMetrics();
        var logs = new LogCollector();
        await using var exporter = Create(options, metrics, logs: logs);
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get());
        await WaitForAsync(() => metrics.ExportSpansFailed.Value == 1);

        await WaitForAsync(() => logs.Entries.Any(e => e.EventId == 101 && e.Message.Contains("timed out after 100 ms", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Concurrency_SeveralBatchesAreInFlightUpToTheLimit()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Slow(TimeSpan.FromSeconds(30));
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.MaxConcurrentRequests = 3;
        options.AsyncTimeoutMs = 60_000;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);
        exporter.Start();

        for (var i = 0; i < 6; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/" + i));
        }

        // Three in flight, and the reader holding the fourth while it waits for a slot: two stay queued.
        await receiver.WaitForRequestsAsync(3);
        await WaitForAsync(() => metrics.ExportQueueDepth.Value == 2);

        Assert.Equal(3, receiver.Requests.Count);
        await exporter.StopAsync(TimeSpan.Zero);

        // The three in flight are cancelled (failed); the batch the reader already holds while it
        // waits for a slot may be counted either way; nothing is lost uncounted.
        Assert.InRange(metrics.ExportSpansFailed.Value, 3, 4);
        Assert.Equal(6, metrics.ExportSpansFailed.Value + metrics.ExportDropped.Value);
    }

    [Fact]
    public async Task CircuitBreaker_OpensAfterMaxConsecutiveFailures_FailsFast_ThenHalfOpensAndCloses()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(503);
        var time = new FakeTimeProvider();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.Export.MaxRetries = 0;
        options.CircuitBreaker.MaxFailures = 3;
        options.CircuitBreaker.TimeoutSeconds = 30;
        options.AsyncTimeoutMs = 600_000;
        var metrics = new AgentMetrics();
        var logs = new LogCollector();
        await using var exporter = Create(options, metrics, time, logs);
        exporter.Start();

        for (var i = 1; i <= 3; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/fail/" + i));
            await WaitForAsync(() => metrics.ExportSpansFailed.Value == i);
        }

        Assert.Equal(BackendCircuitState.Open, exporter.CircuitState);
        Assert.Equal(1, metrics.BackendCircuitOpen.Value);

        exporter.TryEnqueue(TestExchanges.Get("/fast/1"));
        exporter.TryEnqueue(TestExchanges.Get("/fast/2"));
        await WaitForAsync(() => metrics.ExportSpansFailed.Value == 5);
        Assert.Equal(3, receiver.Requests.Count);

        // The first break is one second (probing), not the configured 30 s.
        time.Advance(TimeSpan.FromMilliseconds(999));
        exporter.TryEnqueue(TestExchanges.Get("/fast/3"));
        await WaitForAsync(() => metrics.ExportSpansFailed.Value == 6);
        Assert.Equal(3, receiver.Requests.Count);

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(BackendCircuitState.HalfOpen, exporter.CircuitState);
        receiver.Default = ReceiverResponse.Ok();
        exporter.TryEnqueue(TestExchanges.Get("/trial"));
        await WaitForAsync(() => metrics.ExportSpansExported.Value == 1);

        Assert.Equal(4, receiver.Requests.Count);
        Assert.Equal(BackendCircuitState.Closed, exporter.CircuitState);
        Assert.Equal(0, metrics.BackendCircuitOpen.Value);
        await WaitForAsync(() => logs.Entries.Any(e => e.EventId == 102));
        Assert.Single(logs.Entries, e => e.EventId == 105);
        Assert.Single(logs.Entries, e => e.EventId == 107);
        Assert.Single(logs.Entries, e => e.EventId == 102);
    }

    [Fact]
    public async Task CircuitBreaker_AFailedTrial_OpensItAgainForADoubledBreak_UpToTheConfiguredOne()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(502);
        var time = new FakeTimeProvider();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.Export.MaxRetries = 0;
        options.CircuitBreaker.MaxFailures = 2;
        options.CircuitBreaker.TimeoutSeconds = 10;
        options.AsyncTimeoutMs = 600_000;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics, time);
        exporter.Start();
        for (var i = 1; i <= 2; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/fail/" + i));
            await WaitForAsync(() => metrics.ExportSpansFailed.Value == i);
        }

        // Trials after breaks of 1, 2, 4, 8, then 10 (the cap), 10 s, each failing.
        var failed = 2;
        foreach (var seconds in new[] { 1, 2, 4, 8, 10, 10 })
        {
            time.Advance(TimeSpan.FromSeconds(seconds) - TimeSpan.FromMilliseconds(1));
            Assert.Equal(BackendCircuitState.Open, exporter.CircuitState);
            time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.Equal(BackendCircuitState.HalfOpen, exporter.CircuitState);
            exporter.TryEnqueue(TestExchanges.Get("/trial"));
            var expected = ++failed;
            await WaitForAsync(() => metrics.ExportSpansFailed.Value == expected);
        }

        exporter.TryEnqueue(TestExchanges.Get("/fast"));
        await WaitForAsync(() => metrics.ExportSpansFailed.Value == failed + 1);

        Assert.Equal(2 + 6, receiver.Requests.Count);
        Assert.Equal(BackendCircuitState.Open, exporter.CircuitState);
        Assert.Equal(1, metrics.BackendCircuitOpen.Value);
    }

    [Fact]
    public async Task CircuitBreaker_ASuccessBetweenFailures_ResetsTheCount()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Enqueue(
            ReceiverResponse.Status(503),
            ReceiverResponse.Status(503),
            ReceiverResponse.Ok(),
            ReceiverResponse.Status(503),
            ReceiverResponse.Status(503));
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.Export.MaxRetries = 0;
        options.CircuitBreaker.MaxFailures = 3;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics);
        exporter.Start();

        for (var i = 1; i <= 5; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/" + i));
            await receiver.WaitForRequestsAsync(i);
            await WaitForAsync(() => metrics.ExportSpansFailed.Value + metrics.ExportSpansExported.Value == i);
        }

        Assert.Equal(BackendCircuitState.Closed, exporter.CircuitState);
        Assert.Equal(0, metrics.BackendCircuitOpen.Value);
    }

    [Fact]
    public async Task CircuitBreaker_RetriesCountAsCalls_SoOneBatchCanOpenIt()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Status(503);
        var time = new FakeTimeProvider();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.Export.MaxRetries = 2;
        options.CircuitBreaker.MaxFailures = 3;
        options.AsyncTimeoutMs = 600_000;
        var metrics = new AgentMetrics();
        await using var exporter = Create(options, metrics, time);
        exporter.Start();

        exporter.TryEnqueue(TestExchanges.Get());
        await AdvanceUntilAsync(time, TimeSpan.FromMilliseconds(100), () => metrics.ExportSpansFailed.Value == 1);

        // The three attempts of one batch opened the circuit: the next batch fails fast instead of reaching the backend.
        Assert.Equal(BackendCircuitState.Open, exporter.CircuitState);
        exporter.TryEnqueue(TestExchanges.Get());
        await WaitForAsync(() => metrics.ExportSpansFailed.Value == 2);
        Assert.Equal(3, receiver.Requests.Count);
    }

    [Fact]
    public async Task Stop_FlushesWhatWasQueued()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.BatchDelayMs = 60_000;
        options.Export.MaxBatchSpans = 4;
        var metrics = new AgentMetrics();
        var exporter = Create(options, metrics);
        exporter.Start();
        for (var i = 0; i < 10; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/" + i));
        }

        await exporter.DisposeAsync();

        Assert.Equal(10, receiver.Spans.Count);
        Assert.Equal(10, metrics.ExportSpansExported.Value);
        Assert.False(exporter.TryEnqueue(TestExchanges.Get("/late")));
        Assert.Equal(1, metrics.ExportDropped.Value);
    }

    [Fact]
    public async Task Stop_AtTheDeadline_CancelsInFlightAndDropsTheRest()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        receiver.Default = ReceiverResponse.Slow(TimeSpan.FromSeconds(60));
        var options = TestExchanges.Options(receiver.BaseAddress);
        options.Export.MaxBatchSpans = 1;
        options.MaxConcurrentRequests = 1;
        options.AsyncTimeoutMs = 120_000;
        var metrics = new AgentMetrics();
        var logs = new LogCollector();
        var exporter = Create(options, metrics, logs: logs);
        exporter.Start();
        for (var i = 0; i < 4; i++)
        {
            exporter.TryEnqueue(TestExchanges.Get("/" + i));
        }

        await receiver.WaitForRequestsAsync(1);
        await exporter.StopAsync(TimeSpan.FromMilliseconds(200)).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, metrics.ExportSpansFailed.Value);
        Assert.Equal(3, metrics.ExportDropped.Value);
        Assert.Equal(0, metrics.ExportQueueDepth.Value);
        Assert.Contains(logs.Entries, e => e.EventId == 108 && e.Message.Contains("; 3 queued", StringComparison.Ordinal));
        await exporter.DisposeAsync();
    }

    [Fact]
    public async Task Stop_BeforeStart_DropsTheQueue()
    {
        var metrics = new AgentMetrics();
        var exporter = Create(TestExchanges.Options(TestExchanges.RefusingBackend()), metrics);
        exporter.TryEnqueue(TestExchanges.Get());
        exporter.TryEnqueue(TestExchanges.Get());

        await exporter.DisposeAsync();

        Assert.Equal(2, metrics.ExportDropped.Value);
        Assert.Equal(0, metrics.ExportQueueDepth.Value);
    }

    [Fact]
    public void RetryAfter_IsCappedAndOnlyReadOn429And503()
    {
        var time = new FakeTimeProvider();
        using var tooMany = new HttpResponseMessage(System.Net.HttpStatusCode.TooManyRequests);
        tooMany.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromHours(1));
        using var gateway = new HttpResponseMessage(System.Net.HttpStatusCode.BadGateway);
        gateway.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(3));
        using var past = new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable);
        past.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(time.GetUtcNow().AddMinutes(-1));

        Assert.Equal(TimeSpan.FromSeconds(60), OtlpExporter.RetryAfter(tooMany, time));
        Assert.Null(OtlpExporter.RetryAfter(gateway, time));
        Assert.Equal(TimeSpan.Zero, OtlpExporter.RetryAfter(past, time));
    }

    [Fact]
    public async Task BatchingLoop_FaultingOnce_IsRestarted_CountedAndLogged_AndLaterExchangesAreExported()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var metrics = new AgentMetrics();
        var logs = new LogCollector();
        var time = new FaultingTimeProvider();
        await using var exporter = Create(TestExchanges.Options(receiver.BaseAddress), metrics, time, logs);
        exporter.Start();

        // One exchange makes the reader wait for the rest of its batch on a timer; creating that
        // timer throws, as any allocation can when the agent's heap is at its hard limit (issue 13:
        // the loop died there, and every later exchange stayed queued with its bytes reserved).
        time.FailNextTimer();
        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/lost")));
        await WaitForAsync(() => metrics.ExportLoopFaults.Value == 1);

        Assert.True(exporter.TryEnqueue(TestExchanges.Get("/after")));
        await receiver.WaitForSpansAsync(1);

        Assert.Equal(["/after"], receiver.Spans.Select(s => Attr(s, "url.path")));
        Assert.Equal(1, metrics.ExportDropped.Value);
        var fault = Assert.Single(logs.Entries, e => e.Level == Microsoft.Extensions.Logging.LogLevel.Error);
        Assert.Equal(115, fault.EventId);
        Assert.Contains("batching", fault.Message, StringComparison.Ordinal);
        await WaitForAsync(() => metrics.ExportSpansExported.Value == 1 && exporter.InflightBytes == 0);
    }

    // The system clock, whose next timer can be made to fail once with OutOfMemoryException.
    private sealed class FaultingTimeProvider : TimeProvider
    {
        private int _failNext;

        public void FailNextTimer() => Volatile.Write(ref _failNext, 1);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            Interlocked.Exchange(ref _failNext, 0) == 1
                ? throw new OutOfMemoryException("test: the heap is at its hard limit")
                : System.CreateTimer(callback, state, dueTime, period);
    }

    private static Task WaitForAsync(Func<bool> condition, TimeSpan? timeout = null) =>
        OtlpReceiver.WaitUntilAsync(condition, timeout);

    // Steps the fake clock (with real pauses so timers' continuations run) until the condition holds.
    private static async Task AdvanceUntilAsync(FakeTimeProvider time, TimeSpan step, Func<bool> condition)
    {
        for (var i = 0; i < 400 && !condition(); i++)
        {
            await Task.Delay(25);
            if (!condition())
            {
                time.Advance(step);
            }
        }

        await OtlpReceiver.WaitUntilAsync(condition);
    }
}
