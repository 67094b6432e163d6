using SpIstio.Core.Model;

namespace SpIstio.Core.Tests.Model;

public sealed class HeaderListTests
{
    [Theory]
    [InlineData("Content-Type", "content-type")]
    [InlineData("USER-AGENT", "user-agent")]
    [InlineData("X-Custom-Thing", "x-custom-thing")]
    [InlineData("x-already-lower", "x-already-lower")]
    [InlineData("\u212Aeep-Alive", "keep-alive")]
    public void Add_AnyCase_StoresTheNameLowerCased(string name, string stored)
    {
        var headers = new HeaderList();

        headers.Add(name, "v");

        Assert.Equal(stored, headers[0].Key);
        Assert.Equal("v", headers.Get(stored));
    }

    [Fact]
    public void Add_AWellKnownNameTwice_StoresOneLowerCaseInstance()
    {
        var headers = new HeaderList();

        // Two distinct instances, as two requests' heads would give them.
        headers.Add(new string("Content-Length".AsSpan()), "1");
        headers.Add(new string("Content-Length".AsSpan()), "2");

        Assert.Equal("content-length", headers[0].Key);
        Assert.Same(headers[0].Key, headers[1].Key);
    }

    [Fact]
    public void Add_TheSameNameInstancesOnEveryExchange_StoresEachOnesOwnLowerCaseName()
    {
        // Front ends hand the same canonical-case instances over on every exchange ("Content-Type"
        // from Kestrel and HttpClient); they are recognised by instance, which must never give one
        // name another's lower case, whatever order they come in or however many there are.
        var canonical = HeaderList.CommonNames.Select(Canonical).ToArray();
        var madeUp = Enumerable.Range(0, 300).Select(i => "X-Made-Up-" + i).ToArray();

        for (var round = 0; round < 3; round++)
        {
            var headers = new HeaderList();
            var order = round == 1 ? canonical.Reverse().ToArray() : canonical;
            foreach (var name in order.Concat(madeUp))
            {
                headers.Add(name, "v");
            }

            var expected = order.Concat(madeUp).Select(n => n.ToLowerInvariant()).ToArray();
            Assert.Equal(expected, headers.Select(h => h.Key).ToArray());
        }
    }

    [Fact]
    public void Set_ARepeatedName_LeavesOneFieldAndTheOthersInArrivalOrder()
    {
        var headers = new HeaderList
        {
            { "Accept", "a" },
            { "Tracestate", "one" },
            { "Host", "h" },
            { "tracestate", "two" },
            { "X-Trailing", "t" },
        };

        headers.Set("TraceState", "mine");

        Assert.Equal(
            [new("accept", "a"), new("host", "h"), new("x-trailing", "t"), new("tracestate", "mine")],
            headers.ToArray());
        Assert.Equal(0, headers.Remove("tracestate-missing"));
    }

    [Fact]
    public void Indexer_PastTheFields_ThrowsEvenWhenStorageIsLarger()
    {
        var headers = new HeaderList();
        headers.EnsureCapacity(8);
        headers.Add("a", "1");
        headers.Add("b", "2");
        headers.Remove("b");

        Assert.Single(headers);
        Assert.Throws<ArgumentOutOfRangeException>(() => headers[1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => headers.SetValueAt(1, "x"));
        Assert.Null(headers.Get("b"));
    }

    // "content-type" -> "Content-Type", a new instance each call.
    private static string Canonical(string lower) =>
        string.Join('-', lower.Split('-').Select(part => part.Length == 0 ? part : char.ToUpperInvariant(part[0]) + part[1..]));
}
