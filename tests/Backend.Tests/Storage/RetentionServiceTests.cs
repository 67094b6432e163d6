using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Storage.Retention;
using static SpIstio.Backend.Tests.Storage.TestSpans;

namespace SpIstio.Backend.Tests.Storage;

public sealed class RetentionServiceTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-retention-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(T0);
    private ISpanStore _store = null!;

    public async Task InitializeAsync() =>
        _store = await SpanStoreFactory.OpenAsync("sqlite:" + Path.Combine(_directory, "sp.db"), NullLoggerFactory.Instance, _time, CancellationToken.None);

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private RetentionService Service(RetentionOptions options) => new(_store, options, _time, NullLogger<RetentionService>.Instance);

    [Fact]
    public async Task RunOnce_DeletesEachTenantsSpansOlderThanItsRetention()
    {
        var acme = await _store.EnsureTenantAsync("acme", default);
        var brief = await _store.EnsureTenantAsync("brief", default);
        await _store.SetRetentionAsync(brief.Id, TimeSpan.FromDays(1), default);
        foreach (var tenant in new[] { acme.Id, brief.Id })
        {
            await _store.InsertSpansAsync(tenant,
            [
                Exchange(1, 1, start: T0.AddDays(-8)),
                Exchange(2, 1, start: T0.AddDays(-3)),
                Exchange(3, 1, start: T0.AddHours(-1)),
            ], default);
        }

        var result = await Service(new RetentionOptions()).RunOnceAsync(default);

        Assert.Equal(new RetentionResult(DeletedByAge: 3, DeletedBySize: 0), result);
        Assert.Empty(await _store.GetTraceAsync(acme.Id, Trace(1), default));
        Assert.Single(await _store.GetTraceAsync(acme.Id, Trace(2), default));
        Assert.Empty(await _store.GetTraceAsync(brief.Id, Trace(2), default));
        Assert.Single(await _store.GetTraceAsync(brief.Id, Trace(3), default));
    }

    [Fact]
    public async Task RunOnce_OverTheSizeLimit_DeletesOldestDownToTheLowWatermark()
    {
        var tenant = await _store.EnsureTenantAsync("acme", default);
        // An empty store already takes a page per table and index (32 KiB pages in SQLite): the
        // limit is set halfway through the spans' own bytes, above that fixed part.
        long empty = await _store.GetStoredBytesAsync(default);
        var random = new Random(5);
        for (int i = 1; i <= 30; i++)
        {
            var body = new byte[16384];
            random.NextBytes(body);
            await _store.InsertSpansAsync(tenant.Id, [Exchange(i, 1, start: T0.AddMinutes(-60 + i)) with { RequestBody = body }], default);
        }

        long before = await _store.GetStoredBytesAsync(default);
        var options = new RetentionOptions { MaxStoreBytes = empty + ((before - empty) / 2) };

        var result = await Service(options).RunOnceAsync(default);

        Assert.InRange(result.DeletedBySize, 10, 25);
        Assert.Empty(await _store.GetTraceAsync(tenant.Id, Trace(1), default));
        Assert.Single(await _store.GetTraceAsync(tenant.Id, Trace(30), default));
        Assert.True(await _store.GetStoredBytesAsync(default) <= options.MaxStoreBytes, "the store is back under its limit");
        Assert.Equal(0, (await Service(options).RunOnceAsync(default)).DeletedBySize);
    }

    [Fact]
    public async Task The_background_job_runs_again_when_the_interval_elapses()
    {
        var tenant = await _store.EnsureTenantAsync("acme", default);
        using var service = Service(new RetentionOptions { DefaultRetention = TimeSpan.FromHours(1), Interval = TimeSpan.FromMinutes(5) });
        await service.StartAsync(default);
        await _store.InsertSpansAsync(tenant.Id, [Exchange(1, 1, start: T0)], default);

        _time.Advance(TimeSpan.FromMinutes(30));
        Assert.Single(await _store.GetTraceAsync(tenant.Id, Trace(1), default));
        _time.Advance(TimeSpan.FromMinutes(35));

        // A pass the first advance started may still be running when the second one lands; its next
        // delay then starts from the advanced clock, so keep moving time one interval at a time.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await _store.GetTraceAsync(tenant.Id, Trace(1), default)).Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
            _time.Advance(TimeSpan.FromMinutes(5));
        }

        await service.StopAsync(default);
        Assert.Empty(await _store.GetTraceAsync(tenant.Id, Trace(1), default));
    }

    [Fact]
    public void Options_with_invalid_values_are_rejected_naming_each()
    {
        var e = Assert.Throws<ArgumentException>(() => new RetentionOptions { MaxStoreBytes = 0, Interval = TimeSpan.Zero }.Validate());

        Assert.Contains("max_store_bytes", e.Message, StringComparison.Ordinal);
        Assert.Contains("interval", e.Message, StringComparison.Ordinal);
    }
}
