using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Ingest;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Telemetry;
using SpIstio.Core.Metrics;
using SpIstio.Backend.Tests.Storage;

namespace SpIstio.Backend.Tests.Ingest;

/// <summary>The ingest queue runs as many group commits at once as its store takes.</summary>
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
}
