using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Api;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Backend.Tests.Ingest;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Tests.Api;

/// <summary>Large span reads share one byte budget: the rest wait in order, and past a bound are refused with 503 + Retry-After.</summary>
public sealed class ReadBudgetTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public async Task ReadsThatDoNotFit_WaitInOrder_AndRunWhenTheBudgetIsReturned()
    {
        var budget = new ReadBudget(16 * MiB);

        var first = await budget.AcquireAsync(2 * MiB, CancellationToken.None);
        var second = budget.AcquireAsync(MiB, CancellationToken.None);
        var small = await budget.AcquireAsync(ReadBudget.SmallReadBytes - 1, CancellationToken.None);

        Assert.NotNull(first);
        Assert.Equal(2 * MiB * ReadBudget.Amplification, budget.InFlightBytes);
        Assert.False(second.IsCompleted);
        Assert.Equal(1, budget.Waiting);
        Assert.Same(ReadBudget.Lease.None, small);

        first!.Dispose();
        first.Dispose(); // returned once
        using var granted = await second;

        Assert.NotNull(granted);
        Assert.Equal(MiB * ReadBudget.Amplification, budget.InFlightBytes);
        Assert.Equal(0, budget.Waiting);
        granted!.Dispose();
        Assert.Equal(0, budget.InFlightBytes);
    }

    [Fact]
    public async Task AReadLargerThanTheBudget_RunsAlone_AndTooManyWaiters_AreRefused()
    {
        var budget = new ReadBudget(16 * MiB);
        var huge = await budget.AcquireAsync(100 * MiB, CancellationToken.None);
        Assert.Equal(16 * MiB, budget.InFlightBytes);

        // Each waiter returns its share as soon as it has it, so the queue drains through the budget.
        var waiting = Enumerable.Range(0, ReadBudget.MaxWaiting).Select(async _ =>
        {
            using var lease = await budget.AcquireAsync(MiB, CancellationToken.None);
            Assert.NotNull(lease);
        }).ToList();
        var refused = await budget.AcquireAsync(MiB, CancellationToken.None);

        Assert.Null(refused);
        Assert.Equal(ReadBudget.MaxWaiting, budget.Waiting);
        huge!.Dispose();
        await Task.WhenAll(waiting);

        Assert.Equal(0, budget.InFlightBytes);
    }

    [Fact]
    public async Task ACancelledWaiter_LeavesTheQueue()
    {
        var budget = new ReadBudget(16 * MiB);
        using var held = await budget.AcquireAsync(4 * MiB, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var waiter = budget.AcquireAsync(MiB, cancel.Token).AsTask();

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter);
        Assert.Equal(0, budget.Waiting);
    }

    [Fact]
    public async Task ConcurrentReadsOfASpanAtTheCap_ThroughApiHarAndPage_WaitForTheBudget_AndThePastTheBoundAre503()
    {
        var gate = new GatedStore.Gate();
        // A budget that one span at the cap fills: every other read of it waits.
        await using var backend = await BackendFixture.StartAsync(
            o => o with { ReadBudgetBytes = 4 * MiB },
            real => new GatedStore(real, null) { ReadGate = gate });
        var (traceId, spanId) = await StoreSpanAtTheCapAsync(backend);
        var detail = $"/api/spans/{traceId}/{spanId}";

        var holder = backend.GetAsync(detail, backend.AcmeKey);
        await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(4 * MiB, backend.Server.Metrics.ReadBudgetInFlightBytes.Value);
        string[] paths = [detail, $"/api/traces/{traceId}/har"];
        var waiters = Enumerable.Range(0, ReadBudget.MaxWaiting).Select(i => backend.GetAsync(paths[i % paths.Length], backend.AcmeKey)).ToList();
        await Conditions.WaitUntilAsync(() => backend.Server.Metrics.ReadBudgetWaiting.Value == ReadBudget.MaxWaiting);

        using var refused = await backend.GetAsync(detail, backend.AcmeKey);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(ReadBudget.RetryAfterSeconds), refused.Headers.RetryAfter!.Delta);
        Assert.Equal(1, backend.Server.Metrics.ReadsRefused.Value);
        gate.Open();
        foreach (var response in await Task.WhenAll(waiters.Prepend(holder)))
        {
            using (response)
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }

        Assert.Equal(0, backend.Server.Metrics.ReadBudgetInFlightBytes.Value);
        Assert.Equal(0, backend.Server.Metrics.ReadBudgetWaiting.Value);
    }

    [Fact]
    public async Task ASpanAtTheCap_ReadsWholeThroughApiAndHar()
    {
        await using var backend = await BackendFixture.StartAsync();
        var (traceId, spanId) = await StoreSpanAtTheCapAsync(backend);

        using var api = await backend.GetAsync($"/api/spans/{traceId}/{spanId}", backend.AcmeKey);
        using var har = await backend.GetAsync($"/api/traces/{traceId}/har", backend.AcmeKey);

        Assert.Equal(HttpStatusCode.OK, api.StatusCode);
        using var detail = await JsonDocument.ParseAsync(await api.Content.ReadAsStreamAsync());
        var body = detail.RootElement.GetProperty("responseBody");
        Assert.Equal("text", body.GetProperty("encoding").GetString());
        Assert.Equal((int)(1 * MiB), body.GetProperty("content").GetString()!.Length);
        Assert.True(body.GetProperty("truncated").GetBoolean());
        Assert.Equal("application/json", body.GetProperty("contentType").GetString());
        Assert.Equal(JsonValueKind.Object, detail.RootElement.GetProperty("attributes").ValueKind);
        Assert.Equal(HttpStatusCode.OK, har.StatusCode);
        using var document = await JsonDocument.ParseAsync(await har.Content.ReadAsStreamAsync());
        var entry = Assert.Single(document.RootElement.GetProperty("log").GetProperty("entries").EnumerateArray());
        Assert.Equal((int)(1 * MiB), entry.GetProperty("response").GetProperty("content").GetProperty("text").GetString()!.Length);
        Assert.Equal(0, backend.Server.Metrics.ReadBudgetInFlightBytes.Value);
    }

    /// <summary>An exchange whose two bodies are 7 MB each: ingest cuts them to the 1 MiB cap.</summary>
    internal static async Task<(string TraceId, string SpanId)> StoreSpanAtTheCapAsync(BackendFixture backend)
    {
        var big = new byte[7_000_000];
        Array.Fill(big, (byte)'a');
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Inbound,
            ServiceName = "flights",
            Method = "POST",
            Authority = "flights:80",
            Path = "/api/flights",
            StatusCode = 200,
            TraceId = ActivityTraceId.CreateRandom(),
            SpanId = ActivitySpanId.CreateRandom(),
            StartTime = DateTimeOffset.UtcNow.AddSeconds(-3),
            EndTime = DateTimeOffset.UtcNow.AddSeconds(-2),
            RequestBody = new CapturedBody(big, big.Length, false, BodyKind.Text, "application/json", null, false),
            ResponseBody = new CapturedBody(big, big.Length, false, BodyKind.Text, "application/json", null, false),
        };
        var request = ExchangeSpanMapper.ToExportRequest([exchange], null, "1.0");
        using var response = await backend.PostAsync("/v1/traces", backend.AcmeKey, request.ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (exchange.TraceId.ToHexString(), exchange.SpanId.ToHexString());
    }
}
