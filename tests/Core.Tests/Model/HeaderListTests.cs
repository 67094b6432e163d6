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
}
