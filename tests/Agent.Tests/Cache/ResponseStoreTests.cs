using Microsoft.Extensions.Time.Testing;
using SpIstio.Agent.Cache;
using SpIstio.Agent.Metrics;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Tests.Cache;

public class ResponseStoreTests
{
    private static CachedResponse Response(int bodyBytes) => new(200, new HeaderList(), new byte[bodyBytes]);

    private static string K(int i) => i.ToString("D64", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Set_OverTheByteBound_EvictsLeastRecentlyUsedAndCountsIt()
    {
        var metrics = new AgentMetrics();
        var entrySize = Response(1000).Size + 64;
        var store = new ResponseStore(entrySize * 3, TimeSpan.FromMinutes(5), new FakeTimeProvider(), metrics);
        store.Set(K(1), Response(1000));
        store.Set(K(2), Response(1000));
        store.Set(K(3), Response(1000));
        Assert.True(store.TryGet(K(1), out _)); // 1 is now the most recently used; 2 is the oldest.

        store.Set(K(4), Response(1000));

        Assert.False(store.TryGet(K(2), out _));
        Assert.True(store.TryGet(K(1), out _));
        Assert.True(store.TryGet(K(3), out _));
        Assert.True(store.TryGet(K(4), out _));
        Assert.Equal(1, metrics.CacheEvictionsSize.Value);
        Assert.Equal(3, store.Count);
        Assert.True(store.Bytes <= entrySize * 3);
        Assert.Equal(store.Bytes, metrics.CacheBytes.Value);
        Assert.Equal(3, metrics.CacheEntries.Value);
    }

    [Fact]
    public void Set_OneLargeEntry_EvictsAsManySmallOnesAsItNeeds()
    {
        var metrics = new AgentMetrics();
        var store = new ResponseStore(10_000, TimeSpan.FromMinutes(5), new FakeTimeProvider(), metrics);
        for (var i = 0; i < 8; i++)
        {
            store.Set(K(i), Response(900));
        }

        store.Set(K(100), Response(5000));

        Assert.True(store.Bytes <= 10_000);
        Assert.True(store.TryGet(K(100), out _));
        Assert.Equal(8 - (store.Count - 1), metrics.CacheEvictionsSize.Value);
    }

    [Fact]
    public void Set_EntryLargerThanTheWholeBound_IsNotStored()
    {
        var store = new ResponseStore(1000, TimeSpan.FromMinutes(5), new FakeTimeProvider(), new AgentMetrics());

        Assert.False(store.Set(K(1), Response(2000)));
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public void TryGet_AfterTheTtl_MissesAndCountsAnExpiry()
    {
        var time = new FakeTimeProvider();
        var metrics = new AgentMetrics();
        var store = new ResponseStore(1_000_000, TimeSpan.FromSeconds(30), time, metrics);
        store.Set(K(1), Response(10));

        time.Advance(TimeSpan.FromSeconds(29));
        Assert.True(store.TryGet(K(1), out _));
        time.Advance(TimeSpan.FromSeconds(2));

        Assert.False(store.TryGet(K(1), out _));
        Assert.Equal(1, metrics.CacheEvictionsExpired.Value);
        Assert.Equal(0, metrics.CacheEntries.Value);
        Assert.Equal(0, metrics.CacheBytes.Value);
    }

    [Fact]
    public void Set_SameKeyTwice_ReplacesWithoutDoubleCounting()
    {
        var store = new ResponseStore(1_000_000, TimeSpan.FromSeconds(30), new FakeTimeProvider(), new AgentMetrics());
        store.Set(K(1), Response(10));
        var bytes = store.Bytes;

        store.Set(K(1), Response(10));

        Assert.Equal(1, store.Count);
        Assert.Equal(bytes, store.Bytes);
    }
}
