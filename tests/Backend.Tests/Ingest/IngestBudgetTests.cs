using System.Diagnostics;
using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Backend.Ingest;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Memory;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using static SpIstio.Backend.Tests.Infrastructure.OtlpRequests;

namespace SpIstio.Backend.Tests.Ingest;

/// <summary>
/// Export requests in flight share one byte budget: what does not fit is refused at once with 503 +
/// Retry-After (gRPC: UNAVAILABLE), before its body is read whole, and nothing already accepted is lost.
/// </summary>
public sealed class IngestBudgetTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void AReservation_GrowsWhileTheBudgetHasRoom_AndReturnsAllOfItOnce()
    {
        var budget = new IngestBudget(MiB);
        using var first = budget.Open();
        var second = budget.Open();

        Assert.True(first.TryCover(100_000, "http"));
        Assert.True(first.TryCover(50_000, "http")); // already covered: nothing more reserved
        Assert.True(second.TryCover(150_000, "http"));
        Assert.Equal(250_000 * IngestBudget.Amplification, budget.InFlightBytes);
        Assert.False(second.TryCover(100_000 + 150_000, "http")); // 1,400,000 > 1 MiB
        Assert.Equal(150_000, second.BodyBytes); // a refusal keeps what was held, no more

        second.Dispose();
        second.Dispose();

        Assert.Equal(100_000 * IngestBudget.Amplification, budget.InFlightBytes);
        Assert.Throws<ObjectDisposedException>(() => second.TryCover(1, "http"));
    }

    [Fact]
    public void ARequestAloneInFlight_MayTakeMoreThanTheBudget_SoTheBodyLimitIsAlwaysServed()
    {
        var budget = new IngestBudget(MiB);
        using (var alone = budget.Open())
        {
            Assert.True(alone.TryCover(MiB, "grpc"));
            Assert.True(alone.TryCover(2 * MiB, "grpc"));
            using var other = budget.Open();
            Assert.False(other.TryCover(1, "grpc"));
        }

        Assert.Equal(0, budget.InFlightBytes);
    }

    [Fact]
    public async Task ARequestsReservation_IsReturnedAsItsResponseStarts_BeforeTheRequestEnds()
    {
        // A client that has its answer (a refusal, or its export committed) retries or sends its
        // next export at once, while the server may still be finishing the request: the share must
        // be back before the first byte of the answer leaves, not when the request's scope ends.
        var budget = new IngestBudget(MiB);
        var response = new StartableResponse();
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseFeature>(response);
        var reservation = budget.OpenFor(context);
        Assert.True(reservation.TryCover(100_000, "http"));
        Assert.Same(reservation, context.Features.Get<IngestBudget.Reservation>());

        await response.StartAsync();

        Assert.Equal(0, budget.InFlightBytes);
        reservation.Dispose(); // the request's own scope ends later: nothing is returned twice
        Assert.Equal(0, budget.InFlightBytes);
    }

    [Fact]
    public void ASettledReservation_KeepsTwiceItsBody_AndCannotGrow()
    {
        var budget = new IngestBudget(MiB);
        var reservation = budget.Open();
        Assert.True(reservation.TryCover(100_000, "http"));

        reservation.Settle();
        reservation.Settle();

        Assert.Equal(100_000 * IngestBudget.QueuedAmplification, budget.InFlightBytes);
        Assert.Throws<InvalidOperationException>(() => reservation.TryCover(200_000, "http"));
        reservation.Dispose();
        Assert.Equal(0, budget.InFlightBytes);
    }

    [Fact]
    public void TheIdleCollection_FollowsABurstOfLargeExports_NotATrickleOfOrdinaryOnes()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        int collections = 0;
        var budget = new IngestBudget(IngestBudget.DefaultTotalBytes, null, time, () => collections++);
        void Export(long bodyBytes)
        {
            using var reservation = budget.Open();
            Assert.True(reservation.TryCover(bodyBytes, "http"));
            reservation.Settle();
        }

        // 400 ordinary 2.4 MB exports, each alone: far more than the threshold released, all of it small.
        for (int i = 0; i < 400; i++)
        {
            Export(2_400_000);
        }

        time.Advance(IdleHeapCollection.Delay * 2);
        Assert.Equal(0, collections);

        // Two 13 MB exports: 104 MB released by large requests, then the budget stays idle.
        Export(13_000_000);
        Export(13_000_000);
        time.Advance(IdleHeapCollection.Delay - TimeSpan.FromMilliseconds(1));
        Assert.Equal(0, collections);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, collections);

        // Nothing released since: no second collection.
        time.Advance(IdleHeapCollection.Delay * 10);
        Assert.Equal(1, collections);
    }

    [Fact]
    public async Task OverHttp_ARequestWaitingForItsCommit_HoldsOnlyWhatItsQueuedSpansNeed_SoTheNextOneFits()
    {
        var gate = new GatedStore.Gate();
        await using var backend = await BackendFixture.StartAsync(o => o with { IngestBudgetBytes = MiB }, real => new GatedStore(real, gate));
        using var openedAtExit = gate;
        var (firstTrace, firstBody) = ExportOf(200_000);
        var (secondTrace, secondBody) = ExportOf(100_000);
        long Settled(byte[] body) => (body.Length + 1L) * IngestBudget.QueuedAmplification;

        var first = backend.PostAsync("/v1/traces", backend.AcmeKey, firstBody, "application/x-protobuf");
        await Conditions.WaitUntilAsync(() => backend.Server.Metrics.IngestBudgetInFlightBytes.Value == Settled(firstBody));
        // Unsettled, the first would still hold 4 x 200 KB, and the second's 4 x 100 KB would not fit in 1 MiB.
        var second = backend.PostAsync("/v1/traces", backend.AcmeKey, secondBody, "application/x-protobuf");
        await Conditions.WaitUntilAsync(() => backend.Server.Metrics.IngestBudgetInFlightBytes.Value == Settled(firstBody) + Settled(secondBody));
        gate.Open();

        using (var firstAnswer = await first)
        using (var secondAnswer = await second)
        {
            Assert.Equal(HttpStatusCode.OK, firstAnswer.StatusCode);
            Assert.Equal(HttpStatusCode.OK, secondAnswer.StatusCode);
        }

        Assert.Equal(0, backend.Server.Metrics.IngestBudgetRefused("http").Value);
        Assert.Single(await backend.Store.GetTraceAsync(backend.AcmeId, firstTrace.ToHexString(), CancellationToken.None));
        Assert.Single(await backend.Store.GetTraceAsync(backend.AcmeId, secondTrace.ToHexString(), CancellationToken.None));
    }

    [Fact]
    public async Task OverHttp_ARequestThatDoesNotFit_Is503WithRetryAfter_AndSucceedsWhenRetriedAfterTheHolderIsAnswered()
    {
        // The first request waits for its commit, holding 2 × ~200 KB; the next needs 4 × ~200 KB.
        await using var held = await HeldExport.StartAsync(MiB);
        var backend = held.Backend;
        var (refusedTrace, refusedBody) = ExportOf(200_000);

        using var refused = await backend.PostAsync("/v1/traces", backend.AcmeKey, refusedBody, "application/x-protobuf");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(IngestService.RetryAfterSeconds), refused.Headers.RetryAfter!.Delta);
        var status = RpcStatus.ParseProtobuf(await refused.Content.ReadAsByteArrayAsync());
        Assert.Equal(14, status.Code);
        Assert.Contains("--ingest-budget-bytes", status.Message, StringComparison.Ordinal);
        Assert.Equal(1, backend.Server.Metrics.IngestBudgetRefused("http").Value);
        Assert.Equal(1, backend.Server.Metrics.IngestRequests("http", 503).Value);

        await held.AnswerAsync();

        Assert.Equal(0, backend.Server.Metrics.IngestBudgetInFlightBytes.Value);
        using var retried = await backend.PostAsync("/v1/traces", backend.AcmeKey, refusedBody, "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Single(await backend.Store.GetTraceAsync(backend.AcmeId, held.Trace.ToHexString(), CancellationToken.None));
        Assert.Single(await backend.Store.GetTraceAsync(backend.AcmeId, refusedTrace.ToHexString(), CancellationToken.None));
    }

    [Fact]
    public async Task OverHttp_AGzipBodyIsReservedAsItInflates_SoASmallCompressedBodyCannotSlipPastTheBudget()
    {
        await using var held = await HeldExport.StartAsync(4 * MiB);
        var backend = held.Backend;
        // ~900 KB of one repeated letter: a few KB gzipped, four 256 KiB segments once inflated.
        var trace = ActivityTraceId.CreateRandom();
        var span = GenericSpan(trace, ActivitySpanId.CreateRandom());
        span.Attributes.Add(Str("payload", new string('a', 900_000)));
        var compressed = OtlpHttpIngestTests.Gzip(Wrap("svc", span).ToByteArray());
        Assert.True(compressed.Length < 16 * 1024);

        using var refused = await backend.PostAsync("/v1/traces", backend.AcmeKey, compressed, "application/x-protobuf", "gzip");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(1, backend.Server.Metrics.IngestBudgetRefused("http").Value);
        await held.AnswerAsync();
        using var retried = await backend.PostAsync("/v1/traces", backend.AcmeKey, compressed, "application/x-protobuf", "gzip");
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Single(await backend.Store.GetTraceAsync(backend.AcmeId, trace.ToHexString(), CancellationToken.None));
    }

    [Fact]
    public async Task OverGrpc_ACallThatDoesNotFit_IsUnavailable_AfterTheKeyCheck_AndSucceedsWhenRetried()
    {
        await using var held = await HeldExport.StartAsync(MiB);
        var backend = held.Backend;
        using var channel = GrpcChannel.ForAddress(backend.Server.GrpcAddress!);
        var client = new TraceService.TraceServiceClient(channel);
        var (trace, body) = ExportOf(200_000);
        var request = ExportTraceServiceRequest.Parser.ParseFrom(body);

        var withoutKey = await Assert.ThrowsAsync<RpcException>(() => client.ExportAsync(request).ResponseAsync);
        // A bound for a broken gate only: admitted, the call would wait at the held commit.
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.ExportAsync(request, new Metadata { { "x-public-key", backend.AcmeKey } }, DateTime.UtcNow.AddSeconds(30)).ResponseAsync);

        Assert.Equal(StatusCode.Unauthenticated, withoutKey.StatusCode);
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("--ingest-budget-bytes", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, backend.Server.Metrics.IngestBudgetRefused("grpc").Value);
        await held.AnswerAsync();
        await client.ExportAsync(request, new Metadata { { "x-public-key", backend.AcmeKey } }).ResponseAsync;
        Assert.Single(await backend.Store.GetTraceAsync(backend.AcmeId, trace.ToHexString(), CancellationToken.None));
        Assert.Equal(0, backend.Server.Metrics.IngestBudgetInFlightBytes.Value);
    }

    [Fact]
    public async Task OverGrpc_AGzipMessageIsReservedAtWhatItInflatesTo_BeforeItIsParsed()
    {
        await using var held = await HeldExport.StartAsync(MiB);
        var backend = held.Backend;
        using var channel = GrpcChannel.ForAddress(backend.Server.GrpcAddress!);
        var client = new TraceService.TraceServiceClient(channel);
        // ~300 KB of one letter: a few hundred bytes gzipped, so the length prefix alone would fit.
        var trace = ActivityTraceId.CreateRandom();
        var span = GenericSpan(trace, ActivitySpanId.CreateRandom());
        span.Attributes.Add(Str("payload", new string('a', 300_000)));
        var headers = new Metadata { { "x-public-key", backend.AcmeKey }, { "grpc-internal-encoding-request", "gzip" } };

        // A bound for a broken check only: admitted, the call would wait at the held commit.
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.ExportAsync(Wrap("svc", span), headers, DateTime.UtcNow.AddSeconds(30)).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Equal(1, backend.Server.Metrics.IngestBudgetRefused("grpc").Value);
        await held.AnswerAsync();
        await client.ExportAsync(Wrap("svc", span), headers).ResponseAsync;
        Assert.Single(await backend.Store.GetTraceAsync(backend.AcmeId, trace.ToHexString(), CancellationToken.None));
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    public async Task OverGrpc_ACompressedMessageIsRefusedWhileItInflates_NotOnceItHasInflatedWhole(string encoding)
    {
        await using var held = await HeldExport.StartAsync(2 * MiB);
        var backend = held.Backend;
        // 24 MiB of zeros in about 24 KB: its length prefix's guess (8×) fits the budget's room (2 MiB,
        // ~400 KB held), and it is past the 16 MiB receive limit once inflated: Grpc.AspNetCore's own
        // inflation would answer RESOURCE_EXHAUSTED at the limit. The budget stops it within ~400 KB.
        byte[] compressed = CompressedZeros(24 * MiB, encoding);
        Assert.True(compressed.Length * OtlpGrpcBudgetGate.AssumedCompressionRatio * IngestBudget.Amplification < MiB);

        var (status, message) = await SendRawExportFrameAsync(backend.Server.GrpcAddress!, compressed, encoding, backend.AcmeKey);

        Assert.Equal(StatusCode.Unavailable, status);
        Assert.Equal(IngestBudget.RefusalMessage, message);
        Assert.Equal(1, backend.Server.Metrics.IngestBudgetRefused("grpc").Value);
        Assert.Equal(1, backend.Server.Metrics.IngestRequests("grpc", (int)StatusCode.Unavailable).Value);
        await held.AnswerAsync();
        Assert.Equal(0, backend.Server.Metrics.IngestBudgetInFlightBytes.Value);
    }

    [Fact]
    public async Task OverGrpc_ACallWaitingForItsCommit_HoldsTwiceItsMessage_AndNothingOnceAnswered()
    {
        var gate = new GatedStore.Gate();
        await using var backend = await BackendFixture.StartAsync(o => o with { IngestBudgetBytes = MiB }, real => new GatedStore(real, gate));
        using var openedAtExit = gate;
        using var channel = GrpcChannel.ForAddress(backend.Server.GrpcAddress!);
        var client = new TraceService.TraceServiceClient(channel);
        var request = ExportTraceServiceRequest.Parser.ParseFrom(ExportOf(200_000).Body);

        var call = client.ExportAsync(request, new Metadata { { "x-public-key", backend.AcmeKey } }).ResponseAsync;
        await Conditions.WaitUntilAsync(() => backend.Server.Metrics.IngestBudgetInFlightBytes.Value == (long)request.CalculateSize() * IngestBudget.QueuedAmplification);
        gate.Open();
        await call;

        Assert.Equal(0, backend.Server.Metrics.IngestBudgetInFlightBytes.Value);
    }

    /// <summary>
    /// A backend with the given ingest budget whose commits are held at a gate, and one export of
    /// ~200 KB parsed, queued and waiting at it (holding 2× its body). Disposing opens the gate
    /// before the backend stops, so a failed assertion does not leave the backend's drain waiting.
    /// </summary>
    private sealed class HeldExport : IAsyncDisposable
    {
        private readonly GatedStore.Gate _gate;
        private readonly Task<HttpResponseMessage> _answer;

        private HeldExport(BackendFixture backend, GatedStore.Gate gate, ActivityTraceId trace, Task<HttpResponseMessage> answer)
        {
            Backend = backend;
            _gate = gate;
            Trace = trace;
            _answer = answer;
        }

        public BackendFixture Backend { get; }

        /// <summary>The held export's trace.</summary>
        public ActivityTraceId Trace { get; }

        public static async Task<HeldExport> StartAsync(long budgetBytes)
        {
            var gate = new GatedStore.Gate();
            var backend = await BackendFixture.StartAsync(o => o with { IngestBudgetBytes = budgetBytes }, real => new GatedStore(real, gate));
            var (trace, body) = ExportOf(200_000);
            var answer = backend.PostAsync("/v1/traces", backend.AcmeKey, body, "application/x-protobuf");
            await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
            return new HeldExport(backend, gate, trace, answer);
        }

        /// <summary>Lets the held export commit and checks its answer.</summary>
        public async Task AnswerAsync()
        {
            _gate.Open();
            using var response = await _answer;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        public async ValueTask DisposeAsync()
        {
            _gate.Open();
            await Backend.DisposeAsync();
        }
    }

    /// <summary>A response feature that runs its OnStarting callbacks when told, as a server does before the first byte leaves.</summary>
    private sealed class StartableResponse : HttpResponseFeature
    {
        private readonly List<(Func<object, Task> Callback, object State)> _starting = [];

        public override void OnStarting(Func<object, Task> callback, object state) => _starting.Add((callback, state));

        public async Task StartAsync()
        {
            // In reverse order of registration, as Kestrel runs them.
            for (int i = _starting.Count - 1; i >= 0; i--)
            {
                await _starting[i].Callback(_starting[i].State);
            }
        }
    }

    /// <summary>An export of one span carrying <paramref name="attributeBytes"/> of random text.</summary>
    private static (ActivityTraceId Trace, byte[] Body) ExportOf(int attributeBytes)
    {
        var trace = ActivityTraceId.CreateRandom();
        var span = GenericSpan(trace, ActivitySpanId.CreateRandom());
        span.Attributes.Add(Str("payload", Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(attributeBytes * 3 / 4))));
        return (trace, Wrap("svc", span).ToByteArray());
    }
}
