using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Capture;
using SpIstio.Core.Model;
using SpIstio.Core.Rules;

namespace SpIstio.Agent.Tests.Pipeline;

/// <summary>
/// <c>export.max_inflight_bytes</c> bounds everything captured and not yet exported: the body
/// buffers of exchanges still flowing and the finished exchanges queued for export share one budget.
/// </summary>
public sealed class CaptureByteBudgetTests
{
    private const int BodyLimit = 64 * 1024;
    private const int Budget = 1024 * 1024;

    [Fact]
    public async Task MoreInflightCaptureThanTheBudget_IsCutShortAndCounted_AndNothingOverTheBudgetIsHeld()
    {
        var metrics = new AgentMetrics();
        var (exporter, pipeline) = Create(metrics);
        await using var _ = exporter;
        var budget = exporter.Budget;
        Assert.Same(budget, pipeline.Budget);
        var chunk = Chunk(16 * 1024);

        // 40 exchanges in flight at once, each with 64 KiB each way: 5 MiB of bodies against 1 MiB.
        // The exporter is not started, so whatever is queued stays held until the end.
        var captures = new List<ExchangeCapture>();
        for (var i = 0; i < 40; i++)
        {
            var capture = pipeline.Begin(Post(i), TimeProvider.System);
            Assert.NotNull(capture);
            captures.Add(capture);
            for (var c = 0; c < BodyLimit / chunk.Length; c++)
            {
                capture.AppendRequestBody(chunk);
                Assert.InRange(budget.Held, 0, budget.Limit);
            }

            capture.CompleteRequestBody(ended: true);
            capture.RecordResponseHead(200, 0, static (_, headers) => headers.Add("content-type", "text/plain"));
            for (var c = 0; c < BodyLimit / chunk.Length; c++)
            {
                capture.AppendResponseBody(chunk);
                Assert.InRange(budget.Held, 0, budget.Limit);
            }
        }

        // The first captures fit whole; the later ones were cut when the budget was full.
        Assert.Equal(BodyLimit, captures[0].Exchange.RequestBody.Content.Length);
        Assert.False(captures[0].Exchange.RequestBody.Truncated);
        var last = captures[^1].Exchange.RequestBody;
        Assert.True(last.Truncated);
        Assert.True(last.Content.Length < BodyLimit);
        Assert.Equal(BodyLimit, last.OriginalSize);
        Assert.True(metrics.CaptureBudgetExceeded.Value > 0);

        foreach (var capture in captures)
        {
            capture.Finish(ExchangeOutcome.Completed, error: null);
            capture.Dispose();
            Assert.InRange(budget.Held, 0, budget.Limit);
        }

        // Every exchange is accounted for: queued for export, or dropped and counted; bodies cut
        // for the budget are flagged truncated like bodies cut at the per-exchange limit.
        var queued = metrics.Requests(TrafficDirection.Inbound, CaptureDecision.Capture).Value;
        var dropped = metrics.RequestsDropped(TrafficDirection.Inbound).Value;
        Assert.Equal(captures.Count, queued + dropped);
        Assert.True(metrics.BodyTruncated.Value >= metrics.CaptureBudgetExceeded.Value);
        Assert.InRange(budget.PeakHeld, BodyLimit, budget.Limit);

        // What remains held is the queued exchanges' reservation; stopping drops them and gives it back.
        Assert.True(budget.Held > 0);
        await exporter.StopAsync(TimeSpan.Zero);
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public async Task CapturesThatEndWithoutAFinish_GiveTheirBytesBack()
    {
        var metrics = new AgentMetrics();
        var (exporter, pipeline) = Create(metrics);
        await using var _ = exporter;
        var chunk = Chunk(BodyLimit);

        for (var round = 0; round < 3; round++)
        {
            // Each round fills the budget with abandoned captures (client gone mid-body)...
            var captures = new List<ExchangeCapture>();
            for (var i = 0; i < 20; i++)
            {
                var capture = pipeline.Begin(Post(i), TimeProvider.System)!;
                capture.AppendRequestBody(chunk);
                captures.Add(capture);
            }

            Assert.Equal(Budget, pipeline.Budget.Held);
            foreach (var capture in captures)
            {
                capture.Dispose();
            }

            // ...and gets all of it back, so the next round captures whole bodies again.
            Assert.Equal(0, pipeline.Budget.Held);
        }

        Assert.Equal(0, metrics.Requests(TrafficDirection.Inbound, CaptureDecision.Capture).Value);
    }

    [Fact]
    public async Task BodyArraysHandedToTheExchange_GoBackWhenItIsAbandonedDroppedOrExported()
    {
        var metrics = new AgentMetrics();
        var (exporter, pipeline) = Create(metrics);
        await using var _ = exporter;
        var chunk = Chunk(16 * 1024);

        ExchangeCapture Capture(int i)
        {
            var capture = pipeline.Begin(Post(i), TimeProvider.System)!;
            for (var c = 0; c < BodyLimit / chunk.Length; c++)
            {
                capture.AppendRequestBody(chunk);
            }

            capture.CompleteRequestBody(ended: true);
            capture.RecordResponseHead(200, 0, static (_, headers) => headers.Add("content-type", "text/plain"));
            for (var c = 0; c < BodyLimit / chunk.Length; c++)
            {
                capture.AppendResponseBody(chunk);
            }

            return capture;
        }

        // Abandoned after its request body completed (client gone): the array the body holds goes back.
        var abandoned = Capture(0);
        Assert.Equal(1, abandoned.Exchange.BodyArraysHeld);
        abandoned.Dispose();
        Assert.Equal(0, abandoned.Exchange.BodyArraysHeld);
        Assert.Equal(0, pipeline.Budget.Held);

        // Finished and queued: the exchange keeps both bodies' arrays (no copy) until the exporter is
        // done with it; the bodies are whole. Stopping without sending drops it and returns both.
        var queued = Capture(1);
        queued.Finish(ExchangeOutcome.Completed, error: null);
        queued.Dispose();
        Assert.Equal(2, queued.Exchange.BodyArraysHeld);
        Assert.Equal(BodyLimit, queued.Exchange.ResponseBody.Content.Length);
        Assert.True(queued.Exchange.ResponseBody.Content.Span.IndexOfAnyExcept((byte)'a') < 0);
        Assert.Equal(1, metrics.Requests(TrafficDirection.Inbound, CaptureDecision.Capture).Value);
        await exporter.StopAsync(TimeSpan.Zero);
        Assert.Equal(0, queued.Exchange.BodyArraysHeld);
        Assert.Equal(0, pipeline.Budget.Held);

        // Refused by the stopped exporter: the pipeline returns them at once.
        var dropped = Capture(2);
        dropped.Finish(ExchangeOutcome.Completed, error: null);
        dropped.Dispose();
        Assert.Equal(1, metrics.RequestsDropped(TrafficDirection.Inbound).Value);
        Assert.Equal(0, dropped.Exchange.BodyArraysHeld);
        Assert.Equal(0, pipeline.Budget.Held);
    }

    [Fact]
    public void BodyCaptureBuffer_WithoutRoom_KeepsWhatItHasAndCountsTheRest()
    {
        var budget = new CaptureByteBudget(8 * 1024);
        using var first = new BodyCaptureBuffer(BodyLimit, budget);
        using var second = new BodyCaptureBuffer(BodyLimit, budget);

        first.Append(Chunk(4096));
        second.Append(Chunk(4096));
        first.Append(Chunk(100));

        // first wanted a larger array and the budget had none: the 4 KiB it holds stay, the rest is counted.
        Assert.True(first.BudgetExceeded);
        Assert.Equal(4096, first.Length);
        Assert.Equal(4196, first.TotalBytes);
        Assert.True(first.Truncated);
        Assert.False(second.BudgetExceeded);
        Assert.Equal(budget.Limit, budget.Held);

        second.Dispose();
        first.Dispose();
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public async Task FollowedStreams_ReserveTheirStreamLimit_AndOnesPastTheBudgetAreNotFollowed()
    {
        var metrics = new AgentMetrics();
        var (exporter, pipeline) = Create(metrics, streamBytes: Budget / 4);
        await using var _ = exporter;
        var budget = exporter.Budget;
        var eventChunk = System.Text.Encoding.UTF8.GetBytes("data: " + new string('x', 1000) + "\n\n");

        // Six event streams open at once against room for two: each followed one holds twice its
        // stream limit (event data is kept as strings) for as long as it lives, so the other four
        // find no room and are not followed.
        var captures = new List<ExchangeCapture>();
        for (var i = 0; i < 6; i++)
        {
            var capture = pipeline.Begin(Post(i), TimeProvider.System)!;
            capture.CompleteRequestBody(ended: true);
            capture.RecordResponseHead(200, 0, static (_, headers) => headers.Add("content-type", "text/event-stream"));
            captures.Add(capture);
            Assert.InRange(budget.Held, 0, budget.Limit);
        }

        Assert.Equal([true, true, false, false, false, false], captures.Select(c => c.FollowsEventStream));
        Assert.Equal(4, metrics.CaptureBudgetExceeded.Value);
        foreach (var capture in captures)
        {
            capture.AppendResponseBody(eventChunk);
            Assert.InRange(budget.Held, 0, budget.Limit);
        }

        // Followed streams that end give their reservations back (their queued exchanges then hold
        // only their export size): the next stream is followed.
        foreach (var ended in captures.Take(2))
        {
            ended.Finish(ExchangeOutcome.Completed, error: null);
            ended.Dispose();
            Assert.NotNull(ended.Exchange.Attributes.GetValueOrDefault(SpIstio.Core.Streams.StreamSpanAttributes.SseEvents));
        }

        var next = pipeline.Begin(Post(6), TimeProvider.System)!;
        next.CompleteRequestBody(ended: true);
        next.RecordResponseHead(200, 0, static (_, headers) => headers.Add("content-type", "text/event-stream"));
        Assert.True(next.FollowsEventStream);

        foreach (var capture in captures.Skip(2).Append(next))
        {
            capture.Finish(ExchangeOutcome.Completed, error: null);
            capture.Dispose();
        }

        await exporter.StopAsync(TimeSpan.Zero);
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public async Task GrpcMessageLongerThanItsFirstChunk_ReservesItsWholeFrameAtOnce_AndIsCapturedWhole()
    {
        var metrics = new AgentMetrics();
        var (exporter, pipeline) = Create(metrics);
        await using var _ = exporter;
        var budget = exporter.Budget;
        var exchange = Post(0);
        exchange.RequestHeaders.Clear();
        exchange.RequestHeaders.Add("content-type", "application/grpc");

        // One 40,000-byte message, framed (no content-length: gRPC bodies have none), arriving in
        // 16 KiB DATA frames as HTTP/2 delivers it.
        var message = Chunk(40_000);
        var framed = new byte[5 + message.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)message.Length);
        message.CopyTo(framed, 5);
        using var capture = pipeline.Begin(exchange, TimeProvider.System)!;
        var held = budget.Held;
        capture.AppendRequestBody(framed.AsSpan(0, 16 * 1024));

        // The first array is sized from the frame's prefix: the budget holds room for the whole
        // message from the first chunk on (it held 16 KiB, then grew to 32 and 64 KiB, copying).
        Assert.InRange(budget.Held - held, framed.Length, 2L * framed.Length);
        var reserved = budget.Held;
        for (var offset = 16 * 1024; offset < framed.Length; offset += 16 * 1024)
        {
            capture.AppendRequestBody(framed.AsSpan(offset, Math.Min(16 * 1024, framed.Length - offset)));
            Assert.Equal(reserved, budget.Held);
        }

        capture.CompleteRequestBody(ended: true);
        Assert.Equal(framed, capture.Exchange.RequestBody.Content.ToArray());
        Assert.False(capture.Exchange.RequestBody.Truncated);
    }

    private static (OtlpExporter Exporter, CapturePipeline Pipeline) Create(AgentMetrics metrics, long? streamBytes = null)
    {
        var options = TestExchanges.Options(TestExchanges.RefusingBackend());
        if (streamBytes is { } bytes)
        {
            options.Capture.Streams = new SpIstio.Core.Configuration.StreamCaptureOptions { MaxStreamBytes = bytes };
        }

        options.Export.MaxInflightBytes = Budget;
        options.Capture.MaxRequestBodyBytes = BodyLimit;
        options.Capture.MaxResponseBodyBytes = BodyLimit;
        var exporter = new OtlpExporter(options, metrics, NullLogger<OtlpExporter>.Instance);
        var pipeline = new CapturePipeline(options, exporter, metrics, NullLogger<CapturePipeline>.Instance, budget: exporter.Budget);
        return (exporter, pipeline);
    }

    private static Exchange Post(int i)
    {
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Inbound,
            ServiceName = "orders",
            Method = "POST",
            Authority = "orders.shop.svc:8080",
            Path = "/upload/" + i,
            StartTime = DateTimeOffset.UnixEpoch,
        };
        exchange.RequestHeaders.Add("content-type", "text/plain");
        exchange.RequestHeaders.Add("content-length", BodyLimit.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return exchange;
    }

    private static byte[] Chunk(int size)
    {
        var chunk = new byte[size];
        chunk.AsSpan().Fill((byte)'a');
        return chunk;
    }
}
