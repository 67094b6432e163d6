using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>Route templates learned from served paths, and the one error definition.</summary>
public sealed class RouteLearnerTests
{
    [Fact]
    public void ManyValuesUnderOnePrefix_BecomeAParameter_WhateverTheirShape()
    {
        var learner = new RouteLearner();
        var paths = Enumerable.Range(0, 30).Select(i => "/flights/SP" + (100 + i) + "-XK" + (char)('A' + (i % 26)) + "/holds").ToList();
        paths.AddRange(Enumerable.Range(0, 15).Select(i => "/orders/ord-" + (char)('a' + i) + "bc"));
        foreach (var p in paths)
        {
            learner.Observe("web POST", p);
        }

        Assert.Equal(["/flights/{id}/holds", "/orders/{id}"], paths.Select(p => learner.Template("web POST", p)).Distinct());
    }

    [Fact]
    public void FewValues_AFrequentWordBesideIds_AndOtherScopes_StayLiteral()
    {
        var learner = new RouteLearner();
        foreach (var resource in new[] { "users", "orders", "carts" })
        {
            learner.Observe("api GET", "/api/" + resource);
        }

        for (int i = 0; i < 20; i++)
        {
            learner.Observe("api GET", "/items/" + Guid.NewGuid().ToString("N")[..6]);
            learner.Observe("api GET", "/items/search");
        }

        learner.Observe("other GET", "/items/zzz");

        Assert.Equal("/api/users", learner.Template("api GET", "/api/users"));
        Assert.Equal("/items/search", learner.Template("api GET", "/items/search"));
        Assert.Equal("/items/{id}", learner.Template("api GET", "/items/q1w2e3"));
        Assert.Equal("/items/zzz", learner.Template("other GET", "/items/zzz"));
    }

    [Fact]
    public void AnInstrumentationsPlaceholder_NamesTheLearnedParameter()
    {
        var learner = new RouteLearner();
        learner.Observe("orders GET", "/orders/{orderId}");
        for (int i = 0; i < 12; i++)
        {
            learner.Observe("orders GET", "/orders/o" + i);
        }

        Assert.Equal("/orders/{orderId}", learner.Template("orders GET", "/orders/o3"));
        Assert.Equal("/orders/{orderId}", learner.Template("orders GET", "/orders/{orderId}"));
    }

    [Theory]
    [InlineData(500, false, true)]
    [InlineData(503, false, true)]
    [InlineData(404, true, false)]
    [InlineData(200, true, false)]
    [InlineData(null, true, true)]
    [InlineData(null, false, false)]
    public void Error_IsAServerSideFailure(int? status, bool failed, bool expected)
    {
        Assert.Equal(expected, ErrorDefinition.IsError(status, failed));
        Assert.Equal(status is >= 400 and < 500, ErrorDefinition.IsClientError(status));
    }

    [Theory]
    [InlineData("/orders/{orderId}", "/orders/ord-1", true)]
    [InlineData("/orders/{id}", "/orders/{orderId}", true)]
    [InlineData("/orders/{id}", "/orders", false)]
    [InlineData("/orders/{id}", "/orders/a/b", false)]
    [InlineData("/orders/1", "/orders/1", true)]
    [InlineData("/orders/1", "/orders/2", false)]
    public void RouteFilter_MatchesOneSegmentPerPlaceholder(string template, string candidate, bool expected)
    {
        Assert.Equal(expected, RouteTemplate.Matches(template, candidate));
    }
}
