using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Core.Tests.Redaction;

/// <summary>
/// The redactor remembers header names' kinds and header values proven clean (<see cref="StringVerdictCache{T}"/>):
/// what it remembers must never change what a later exchange exports, and what a caller can make it hold is bounded.
/// </summary>
public sealed class HeaderVerdictCacheTests
{
    private const string Jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

    [Fact]
    public void Redact_ValueFoundCleanUnderOneName_IsStillMaskedUnderASensitiveName()
    {
        var redactor = Redactor.Create(new RedactionOptions());
        var first = Exchange(("x-note", "plain-value-17"));
        var second = Exchange(("authorization", "plain-value-17"), ("x-note", "plain-value-17"));

        redactor.Redact(first);
        var count = redactor.Redact(second);

        Assert.Equal("plain-value-17", first.RequestHeaders.Get("x-note"));
        Assert.Equal(1, count);
        Assert.Equal(Redactor.MaskValue, second.RequestHeaders.Get("authorization"));
        Assert.Equal("plain-value-17", second.RequestHeaders.Get("x-note"));
    }

    [Theory]
    [InlineData("x-trace-note", Jwt)]
    [InlineData("x-auth-token", "abc")]
    [InlineData("x-phone", "+14155552671")]
    [InlineData("x-contact", "someone@example.com")]
    public void Redact_SameHeaderOnEveryExchange_IsRedactedEveryTime(string name, string value)
    {
        var redactor = Redactor.Create(new RedactionOptions());
        for (var i = 0; i < 3; i++)
        {
            var exchange = Exchange((name, value), ("accept", "application/json"));

            var count = redactor.Redact(exchange);

            Assert.Equal(1, count);
            Assert.NotEqual(value, exchange.RequestHeaders.Get(name));
            Assert.StartsWith(Redactor.Marker, exchange.RequestHeaders.Get(name), StringComparison.Ordinal);
            Assert.Equal("application/json", exchange.RequestHeaders.Get("accept"));
        }
    }

    [Fact]
    public void Redact_UrlHeaderWithAQueryAfterTheSameValueWithout_RedactsTheQuery()
    {
        var redactor = Redactor.Create(new RedactionOptions());
        var plain = Exchange(("referer", "https://shop.example/cart"));
        var withQuery = Exchange(("referer", "https://shop.example/cart?password=hunter2"));

        redactor.Redact(plain);
        redactor.Redact(withQuery);

        Assert.Equal("https://shop.example/cart", plain.RequestHeaders.Get("referer"));
        Assert.Equal("https://shop.example/cart?password=" + Redactor.MaskValue, withQuery.RequestHeaders.Get("referer"));
    }

    [Fact]
    public void Cache_ManyDistinctKeys_HoldsAtMostItsSlotsAndNoLongKey()
    {
        var cache = new StringVerdictCache<int>(slots: 64, maxKeyChars: 32);
        var longKey = new string('a', 33);

        for (var i = 0; i < 10_000; i++)
        {
            cache.Set("value-" + i, i);
        }

        cache.Set(longKey, -1);

        // Its slots by content hash and as many by instance.
        Assert.True(cache.Count <= 2 * 64, $"{cache.Count} entries");
        Assert.True(cache.KeyChars <= 2 * 64 * 32, $"{cache.KeyChars} characters");
        Assert.False(cache.TryGet(longKey, out _));
    }

    [Fact]
    public void Cache_Lookup_GivesTheVerdictOfThatKeyOrNothing()
    {
        var cache = new StringVerdictCache<int>(slots: 16, maxKeyChars: 32);
        for (var i = 0; i < 1_000; i++)
        {
            cache.Set("key-" + i, i);
        }

        var found = 0;
        for (var i = 0; i < 1_000; i++)
        {
            if (cache.TryGet("key-" + i, out var verdict))
            {
                Assert.Equal(i, verdict);
                found++;
            }
        }

        // The last key set is always held: it went into its own slot.
        Assert.True(cache.TryGet("key-999", out var last));
        Assert.Equal(999, last);
        Assert.InRange(found, 1, 16);
        Assert.False(cache.TryGet("key-1000", out _));
    }

    [Fact]
    public void Cache_LookupOfTheSameInstances_GivesTheVerdictOfThatKeyOrNothing()
    {
        // Found by instance first: many keys share those slots, and an instance must never get another key's verdict.
        var cache = new StringVerdictCache<int>(slots: 16, maxKeyChars: 32);
        var keys = Enumerable.Range(0, 1_000).Select(i => "key-" + i).ToArray();
        for (var i = 0; i < keys.Length; i++)
        {
            cache.Set(keys[i], i);
        }

        var found = 0;
        for (var i = 0; i < keys.Length; i++)
        {
            if (cache.TryGet(keys[i], out var verdict))
            {
                Assert.Equal(i, verdict);
                found++;
            }
        }

        Assert.True(cache.TryGet(keys[^1], out var last));
        Assert.Equal(keys.Length - 1, last);
        Assert.True(cache.TryGet(new string(keys[^1].AsSpan()), out var byCopy));
        Assert.Equal(keys.Length - 1, byCopy);
        Assert.InRange(found, 1, 2 * 16);
    }

    private static Exchange Exchange(params (string Name, string Value)[] headers)
    {
        var exchange = new Exchange();
        foreach (var (name, value) in headers)
        {
            exchange.RequestHeaders.Add(name, value);
        }

        return exchange;
    }
}
