using System.Text;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using SpIstio.Core.Model;
using SpIstio.Core.Replay;

namespace SpIstio.Core.Tests.Replay;

public class ReplayKeyTests
{
    private static readonly ReplayKey _withIgnores = new(["_ts", "cb"], ["nonce", "timestamp"], ["accept-language"]);

    private static string Key(ReplayKey key, string method = "POST", string authority = "api.example", string path = "/quotes", string? query = null, string body = "", HeaderList? headers = null) =>
        key.Compute(method, authority, path, query, Encoding.UTF8.GetBytes(body), headers);

    [Fact]
    public void Key_IsALowerCaseSha256HexDigest()
    {
        var key = Key(ReplayKey.Default);

        Assert.Equal(ReplayKey.KeyLength, key.Length);
        Assert.Matches("^[0-9a-f]{64}$", key);
    }

    [Fact]
    public void JsonBody_KeyOrderAndWhitespace_DoNotChangeTheKey()
    {
        var a = Key(ReplayKey.Default, body: """{"b":2,"a":{"y":[1,2],"x":"é"}}""");
        var b = Key(ReplayKey.Default, body: " {\n  \"a\" : { \"x\" : \"\\u00e9\", \"y\" : [ 1, 2 ] },\n  \"b\" : 2\n}\n");

        Assert.Equal(a, b);
    }

    [Fact]
    public void JsonBody_IgnoredFieldsAtAnyDepth_DoNotChangeTheKey()
    {
        var a = Key(_withIgnores, body: """{"q":1,"nonce":"abc","inner":[{"timestamp":1,"v":2}]}""");
        var b = Key(_withIgnores, body: """{"q":1,"nonce":"xyz","inner":[{"timestamp":99,"v":2}]}""");
        var c = Key(_withIgnores, body: """{"q":1,"inner":[{"v":2}]}""");
        var different = Key(_withIgnores, body: """{"q":1,"inner":[{"v":3}]}""");

        Assert.Equal(a, b);
        Assert.Equal(a, c);
        Assert.NotEqual(a, different);
    }

    [Fact]
    public void NonJsonBody_IsComparedByteExact()
    {
        Assert.NotEqual(Key(ReplayKey.Default, body: "a=1&b=2"), Key(ReplayKey.Default, body: "b=2&a=1"));
        Assert.NotEqual(Key(ReplayKey.Default, body: "{not json"), Key(ReplayKey.Default, body: "{not  json"));
    }

    [Fact]
    public void Query_IsSortedAndIgnoredParametersAreRemoved()
    {
        var a = Key(_withIgnores, query: "b=2&a=1&_ts=123");
        var b = Key(_withIgnores, query: "a=1&b=2&cb=9&_ts=456");
        var c = Key(_withIgnores, query: "a=1&b=3");

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal("a=1&b=2", _withIgnores.NormaliseQuery("b=2&&a=1&_ts=1"));
    }

    [Fact]
    public void MethodAuthorityAndVaryHeaders_ArePartOfTheKey()
    {
        var fr = new HeaderList();
        fr.Add("accept-language", "fr");
        var de = new HeaderList();
        de.Add("Accept-Language", "de");
        var frOther = new HeaderList();
        frOther.Add("accept-language", "fr");
        frOther.Add("x-request-id", "123");

        Assert.NotEqual(Key(_withIgnores, method: "GET"), Key(_withIgnores, method: "POST"));
        Assert.Equal(Key(_withIgnores, method: "get"), Key(_withIgnores, method: "GET"));
        Assert.NotEqual(Key(_withIgnores, authority: "a.example"), Key(_withIgnores, authority: "b.example"));
        Assert.Equal(Key(_withIgnores, authority: "API.example"), Key(_withIgnores, authority: "api.example"));
        Assert.NotEqual(Key(_withIgnores, headers: fr), Key(_withIgnores, headers: de));
        Assert.Equal(Key(_withIgnores, headers: fr), Key(_withIgnores, headers: frOther));
        // Without vary headers configured, headers are not part of the key.
        Assert.Equal(Key(ReplayKey.Default, headers: fr), Key(ReplayKey.Default, headers: de));
    }

    [Fact]
    public void ComponentBoundaries_CannotBeShiftedToForgeAKey()
    {
        // Same concatenation, different split between path and query.
        Assert.NotEqual(Key(ReplayKey.Default, path: "/a", query: "b=1"), Key(ReplayKey.Default, path: "/ab=1", query: null));
    }

    [Fact]
    public void Compute_FromAnExchange_UsesItsRequestSide()
    {
        var exchange = new Exchange { Method = "POST", Authority = "api.example", Path = "/quotes", Query = "x=1" };
        var body = Encoding.UTF8.GetBytes("""{"a":1}""");
        exchange.RequestBody = new CapturedBody(body, body.Length, false, BodyKind.Text, "application/json");
        exchange.StatusCode = 500;

        Assert.Equal(Key(ReplayKey.Default, query: "x=1", body: """{ "a": 1 }"""), ReplayKey.Default.Compute(exchange));
    }

    [Property(MaxTest = 200)]
    public Property JsonKeyOrderAndWhitespace_NeverChangeTheKey(NonEmptyString[] names, int[] values, bool indent)
    {
        var pairs = names.Select(n => n.Get).Distinct(StringComparer.Ordinal).Zip(values).ToList();
        var forward = new JsonObject();
        foreach (var (name, value) in pairs)
        {
            forward[name] = new JsonObject { ["v"] = value, ["list"] = new JsonArray(value, name) };
        }

        var reversed = new JsonObject();
        for (var i = pairs.Count - 1; i >= 0; i--)
        {
            var (name, value) = pairs[i];
            reversed[name] = new JsonObject { ["list"] = new JsonArray(value, name), ["v"] = value };
        }

        var a = forward.ToJsonString();
        var b = reversed.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = indent });

        return (Key(ReplayKey.Default, body: a) == Key(ReplayKey.Default, body: b)).ToProperty();
    }

    [Property(MaxTest = 200)]
    public Property AnyPathChange_ChangesTheKey(NonEmptyString path, NonEmptyString other)
    {
        var p1 = "/" + path.Get;
        var p2 = "/" + other.Get;
        return (p1 != p2).Implies(Key(ReplayKey.Default, path: p1) != Key(ReplayKey.Default, path: p2));
    }
}
