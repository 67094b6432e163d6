using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Ingest;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Telemetry;
using SpIstio.Core.Metrics;
using SpIstio.Backend.Tests.Storage;

namespace SpIstio.Backend.Tests.Ingest;

/// <summary>The ingest queue's writers: as many group commits at once as its store takes, a request still encoding holding up no other, and nothing of a committed request held while they wait.</summary>
public sealed class IngestWritersTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-writers-" + Guid.NewGuid().ToString("N"));
    private ISpanStore _real = null!;
    private long _tenant;

    public async Task InitializeAsync()
    {
        _real = await SpanStoreFactory.OpenAsync("sqlite:" + Path.Combine(_directory, "sp.db"), NullLoggerFactory.Instance, TimeProvider.System, CancellationToken.None);
        _tenant = (await _real.EnsureTenantAsync("acme", CancellationToken.None)).Id;
    }

    public async Task DisposeAsync()
    {
        await _real.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task A_store_with_two_writers_commits_a_second_request_while_the_first_commit_is_still_held()
    {
        var gate = new GatedStore.Gate();
        var store = new GatedStore(_real, gate) { IngestWriters = 2 };
        await using var queue = new IngestQueue(store, 1_000, 100, new BackendMetrics(new MetricRegistry()), NullLogger.Instance, TimeProvider.System);

        Assert.True(queue.TryEnqueue(_tenant, [TestSpans.Exchange(1, 1, session: "s")], out var first));
        await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(queue.TryEnqueue(_tenant, [TestSpans.Exchange(2, 2, session: "s")], out var second));

        // The second writer takes the second request while the first writer's commit is held.
        await gate.TwoInside.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);

        gate.Open();
        await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Single(await _real.GetTraceAsync(_tenant, TestSpans.Trace(1), CancellationToken.None));
        Assert.Single(await _real.GetTraceAsync(_tenant, TestSpans.Trace(2), CancellationToken.None));
        Assert.Equal(0, queue.Depth);
    }

    [Fact]
    public async Task A_request_still_encoding_does_not_hold_up_the_commit_of_the_requests_queued_after_it()
    {
        var encoding = new GatedStore.Gate();
        var store = new GatedStore(_real, null) { FirstPrepareGate = encoding };
        var other = (await _real.EnsureTenantAsync("globex", CancellationToken.None)).Id;
        await using var queue = new IngestQueue(store, 1_000, 100, new BackendMetrics(new MetricRegistry()), NullLogger.Instance, TimeProvider.System);
        using var opened = encoding; // opened before the queue drains, should an assertion fail

        Assert.True(queue.TryEnqueue(_tenant, [TestSpans.Exchange(1, 1, session: "s")], out var slow));
        await encoding.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(queue.TryEnqueue(_tenant, [TestSpans.Exchange(2, 1, session: "s")], out var sameTenant));
        Assert.True(queue.TryEnqueue(other, [TestSpans.Exchange(3, 1, session: "s")], out var otherTenant));

        // The one writer commits both while the first request is still encoding (it used to wait for it).
        await Task.WhenAll(sameTenant, otherTenant).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(slow.IsCompleted);
        Assert.Single(await _real.GetTraceAsync(_tenant, TestSpans.Trace(2), CancellationToken.None));
        Assert.Single(await _real.GetTraceAsync(other, TestSpans.Trace(3), CancellationToken.None));
        Assert.Empty(await _real.GetTraceAsync(_tenant, TestSpans.Trace(1), CancellationToken.None));
        Assert.Equal(1, queue.Depth);

        encoding.Open();
        await slow.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Single(await _real.GetTraceAsync(_tenant, TestSpans.Trace(1), CancellationToken.None));
        Assert.Equal(0, queue.Depth);
    }

    [Fact]
    public async Task Committed_spans_are_garbage_while_the_queue_waits_for_the_next_request()
    {
        await using var queue = new IngestQueue(_real, 1_000, 100, new BackendMetrics(new MetricRegistry()), NullLogger.Instance, TimeProvider.System);
        var (committed, spans) = Enqueue(queue, _tenant);
        await committed.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, (await _real.GetTraceAsync(_tenant, TestSpans.Trace(7), CancellationToken.None)).Count);

        // The queue lets go of a request's spans before it tells the request they are committed, so
        // by now nothing of them is referenced (the writer used to keep its last batch, bodies and
        // encoded values included, until more spans came).
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        Assert.All(spans, s => Assert.False(s.IsAlive, "a committed span is still referenced by the idle queue"));
    }

    // Its own frame, so that no local of the test holds the spans.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (Task Committed, WeakReference[] Spans) Enqueue(IngestQueue queue, long tenant)
    {
        StoredSpan[] spans = [TestSpans.Exchange(7, 1, session: "s"), TestSpans.Exchange(7, 2, session: "s")];
        Assert.True(queue.TryEnqueue(tenant, spans, out var committed));
        return (committed, [.. spans.Select(s => new WeakReference(s))]);
    }
}
