using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Rules;

namespace SpIstio.Core.Tests.Rules;

public class CaptureRulesTests
{
    private static readonly HeaderList NoHeaders = new();

    // Production example 1: an API client allowed to capture the versioned public API with the
    // usual methods, and health probes excluded on every host.
    private static AgentOptions ApiClientConfig() => new()
    {
        CollectionRules = new()
        {
            Http = new()
            {
                Server = [new() { Path = "/api/.*" }, new() { Path = "/v1/.*" }],
                Client =
                [
                    new() { Host = @"api\.example\.com", Paths = ["/v1/.*", "/v2/.*"], Methods = ["GET", "POST", "PUT"] },
                    new() { Host = ".*", Paths = ["/health", "/ready"], Exclude = true },
                ],
            },
        },
    };

    // Production example 2: every outbound call except health checks and one noisy host.
    private static AgentOptions ExcludeOnlyConfig() => new()
    {
        CollectionRules = new()
        {
            Http = new()
            {
                Client =
                [
                    new() { Paths = ["/health"], Exclude = true },
                    new() { Host = @"metrics\.internal", Exclude = true },
                ],
            },
        },
    };

    private static CaptureDecision Outbound(CaptureRules rules, string method, string host, string path, HeaderList? headers = null) =>
        rules.Evaluate(TrafficDirection.Outbound, method, host, path, headers ?? NoHeaders);

    private static CaptureDecision Inbound(CaptureRules rules, string path, HeaderList? headers = null) =>
        rules.Evaluate(TrafficDirection.Inbound, "GET", "svc.default.svc.cluster.local", path, headers ?? NoHeaders);

    [Theory]
    [InlineData("GET", "api.example.com", "/v1/users", CaptureDecision.Capture)]
    [InlineData("post", "api.example.com", "/v2/orders/7", CaptureDecision.Capture)]
    [InlineData("POST", "api.example.com", "/v3/users", CaptureDecision.NotMatched)]
    [InlineData("DELETE", "api.example.com", "/v1/users/7", CaptureDecision.NotMatched)]
    [InlineData("GET", "other.example.com", "/v1/users", CaptureDecision.NotMatched)]
    [InlineData("GET", "api.example.com", "/health", CaptureDecision.Excluded)]
    [InlineData("GET", "payments.internal", "/health", CaptureDecision.Excluded)]
    [InlineData("GET", "payments.internal", "/ready", CaptureDecision.Excluded)]
    public void ApiClientConfig_OutboundRequests_AreDecidedByFirstMatchingRule(string method, string host, string path, CaptureDecision expected)
    {
        var rules = CaptureRules.Create(ApiClientConfig());

        var decision = Outbound(rules, method, host, path);

        Assert.Equal(expected, decision);
    }

    [Theory]
    [InlineData("/api/orders", CaptureDecision.Capture)]
    [InlineData("/v1/users?page=2", CaptureDecision.Capture)]
    [InlineData("/internal/debug", CaptureDecision.NotMatched)]
    [InlineData("/", CaptureDecision.NotMatched)]
    public void ApiClientConfig_InboundRequests_AreCapturedWhenAServerPathMatches(string path, CaptureDecision expected)
    {
        var rules = CaptureRules.Create(ApiClientConfig());

        Assert.Equal(expected, Inbound(rules, path));
    }

    [Theory]
    [InlineData("DELETE", "anything.example.com", "/v9/whatever", CaptureDecision.Capture)]
    [InlineData("GET", "api.example.com", "/health", CaptureDecision.Excluded)]
    [InlineData("POST", "metrics.internal:9090", "/push", CaptureDecision.Excluded)]
    public void ExcludeOnlyClientRules_CaptureEverythingExceptTheExcluded(string method, string host, string path, CaptureDecision expected)
    {
        var rules = CaptureRules.Create(ExcludeOnlyConfig());

        Assert.Equal(expected, Outbound(rules, method, host, path));
    }

    [Fact]
    public void EmptyRules_CaptureEverythingInBothDirections()
    {
        var rules = CaptureRules.Create(new AgentOptions());

        Assert.Equal(CaptureDecision.Capture, Inbound(rules, "/anything/at/all"));
        Assert.Equal(CaptureDecision.Capture, Outbound(rules, "PATCH", "x.example.org", "/"));
    }

    [Theory]
    [InlineData("/health", CaptureDecision.Excluded)]
    [InlineData("/healthz", CaptureDecision.Capture)]
    [InlineData("/api/health", CaptureDecision.Capture)]
    public void Patterns_AreAnchoredToTheWholePath(string path, CaptureDecision expected)
    {
        var rules = CaptureRules.Create(ExcludeOnlyConfig());

        Assert.Equal(expected, Outbound(rules, "GET", "svc", path));
    }

    [Fact]
    public void HostPattern_IsAnchoredToTheWholeHost()
    {
        var rules = CaptureRules.Create(ApiClientConfig());

        Assert.Equal(CaptureDecision.NotMatched, Outbound(rules, "GET", "evil-api.example.com", "/v1/users"));
        Assert.Equal(CaptureDecision.NotMatched, Outbound(rules, "GET", "api.example.com.evil.net", "/v1/users"));
    }

    [Theory]
    [InlineData("api.example.com:8443")]
    [InlineData("API.Example.COM")]
    public void HostPattern_IgnoresThePortAndCase(string host)
    {
        var rules = CaptureRules.Create(ApiClientConfig());

        Assert.Equal(CaptureDecision.Capture, Outbound(rules, "GET", host, "/v1/users"));
    }

    [Theory]
    [InlineData("[::1]:80")]
    [InlineData("[::1]")]
    [InlineData("::1")]
    public void HostPattern_MatchesIpv6LiteralsWithoutBracketsOrPort(string host)
    {
        var options = new AgentOptions();
        options.CollectionRules.Http.Client = [new() { Host = "::1", Exclude = true }];
        var rules = CaptureRules.Create(options);

        Assert.Equal(CaptureDecision.Excluded, Outbound(rules, "GET", host, "/"));
    }

    [Theory]
    [InlineData("/v1/traces")]
    [InlineData("/v1/metrics")]
    [InlineData("/v1/logs")]
    [InlineData("/api/v1/traces")]
    [InlineData("/api/v1/metrics")]
    [InlineData("/api/v1/logs")]
    [InlineData("/otlp/v1/traces")]
    [InlineData("/otlp/v1/metrics")]
    [InlineData("/otlp/v1/logs")]
    public void DefaultExemptions_SkipEveryOtlpPathEvenWhenACollectionRuleMatches(string path)
    {
        var options = new AgentOptions();
        options.CollectionRules.Http.Server = [new() { Path = ".*" }];
        var rules = CaptureRules.Create(options);

        Assert.Equal(CaptureDecision.Exempt, Inbound(rules, path));
        Assert.Equal(CaptureDecision.Exempt, Outbound(rules, "POST", "collector:4318", path));
    }

    [Fact]
    public void DefaultExemptions_DoNotSkipNeighbouringPaths()
    {
        var rules = CaptureRules.Create(new AgentOptions());

        Assert.Equal(CaptureDecision.Capture, Inbound(rules, "/v1/traces/123"));
        Assert.Equal(CaptureDecision.Capture, Inbound(rules, "/v2/traces"));
    }

    [Fact]
    public void UserExemptionRules_ReplaceTheDefaults()
    {
        var options = new AgentOptions
        {
            ExemptionRules = [new() { HostPatterns = [@"vault\..*"], PathPatterns = ["/v1/secret/.*"] }],
        };
        var rules = CaptureRules.Create(options);

        Assert.Equal(CaptureDecision.Exempt, Outbound(rules, "GET", "vault.internal:8200", "/v1/secret/db"));
        Assert.Equal(CaptureDecision.Capture, Outbound(rules, "GET", "other.internal", "/v1/secret/db"));
        Assert.Equal(CaptureDecision.Capture, Outbound(rules, "POST", "collector", "/v1/traces"));
    }

    [Theory]
    [InlineData("/ADMIN/users", CaptureDecision.Exempt)]
    [InlineData("/admin/users", CaptureDecision.Exempt)]
    [InlineData("/health", CaptureDecision.Exempt)]
    [InlineData("/HEALTH", CaptureDecision.Capture)]
    [InlineData("/healthz", CaptureDecision.Capture)]
    [InlineData("/x/admin/users", CaptureDecision.Capture)]
    public void ExemptionRule_SeveralPathPatterns_EachMatchesWholePathsWithItsOwnOptions(string path, CaptureDecision expected)
    {
        // The patterns of a rule are matched together: an inline option and the anchors still belong to each pattern alone.
        var options = new AgentOptions { ExemptionRules = [new() { PathPatterns = ["(?i)/admin/.*", "/health", "/metrics|/ready"] }] };
        var rules = CaptureRules.Create(options);

        Assert.Equal(expected, Inbound(rules, path));
        Assert.Equal(CaptureDecision.Exempt, Inbound(rules, "/ready"));
        Assert.Equal(CaptureDecision.Exempt, Inbound(rules, "/metrics"));
        Assert.Equal(CaptureDecision.Capture, Inbound(rules, "/metrics/ready"));
    }

    [Fact]
    public void ExemptionRule_PatternsTooLargeForOneAutomaton_AreStillEachMatched()
    {
        // Each is within the non-backtracking engine's automaton size limit (10,000 by default), both together are not.
        var options = new AgentOptions { ExemptionRules = [new() { PathPatterns = ["/a/[0-9]{1,1500}", "/b/[0-9]{1,1500}"] }] };
        Assert.True(AnchoredRegex.TryCompile("/a/[0-9]{1,1500}", out _, out _));
        Assert.False(AnchoredRegex.TryCompile("(?:/a/[0-9]{1,1500})|(?:/b/[0-9]{1,1500})", out _, out _));

        var rules = CaptureRules.Create(options);

        Assert.Equal(CaptureDecision.Exempt, Inbound(rules, "/a/42"));
        Assert.Equal(CaptureDecision.Exempt, Inbound(rules, "/b/42"));
        Assert.Equal(CaptureDecision.Capture, Inbound(rules, "/c/42"));
    }

    [Fact]
    public void ExemptionRule_WithOnlyHostPatterns_ExemptsEveryPathOfThatHost()
    {
        var options = new AgentOptions { ExemptionRules = [new() { HostPatterns = [@"sp-backend\..*"] }] };
        var rules = CaptureRules.Create(options);

        Assert.Equal(CaptureDecision.Exempt, Outbound(rules, "POST", "sp-backend.observability.svc:8090", "/anything"));
        Assert.Equal(CaptureDecision.Capture, Outbound(rules, "POST", "orders", "/anything"));
    }

    [Fact]
    public void Exemption_WinsOverPrefetchAndStaticChecks()
    {
        var rules = CaptureRules.Create(new AgentOptions { ExemptionRules = [new() { PathPatterns = ["/assets/.*"] }] });
        var headers = new HeaderList { { "Next-Router-Prefetch", "1" } };

        Assert.Equal(CaptureDecision.Exempt, Inbound(rules, "/assets/app.js", headers));
    }

    [Theory]
    [InlineData("/static/app.js")]
    [InlineData("/styles/site.CSS")]
    [InlineData("/img/logo.png?v=3")]
    [InlineData("/fonts/inter.woff2")]
    [InlineData("/favicon.ico")]
    [InlineData("/media/intro.mp4")]
    [InlineData("/app.js.map")]
    public void StaticResources_AreSkippedByExtension(string path)
    {
        var rules = CaptureRules.Create(new AgentOptions());

        Assert.Equal(CaptureDecision.StaticResource, Inbound(rules, path));
    }

    [Theory]
    [InlineData("/api/users.json")]
    [InlineData("/index.html")]
    [InlineData("/v1.2/users")]
    [InlineData("/js/users")]
    public void NonStaticPaths_AreNotMistakenForStaticResources(string path)
    {
        var rules = CaptureRules.Create(new AgentOptions());

        Assert.Equal(CaptureDecision.Capture, Inbound(rules, path));
    }

    [Fact]
    public void StaticResources_AreCapturedWhenSkippingIsOff()
    {
        var options = new AgentOptions();
        options.Capture.SkipStaticResources = false;
        var rules = CaptureRules.Create(options);

        Assert.Equal(CaptureDecision.Capture, Inbound(rules, "/static/app.js"));
    }

    public static TheoryData<string, string> PrefetchHeaders => new()
    {
        { "RSC", "1" },
        { "Next-Router-Prefetch", "1" },
        { "Purpose", "prefetch" },
        { "Sec-Purpose", "prefetch" },
        { "Sec-Purpose", "prefetch;prerender" },
        { "X-Moz", "prefetch" },
    };

    [Theory]
    [MemberData(nameof(PrefetchHeaders))]
    public void PrefetchRequests_AreSkipped(string name, string value)
    {
        var rules = CaptureRules.Create(new AgentOptions());
        var headers = new HeaderList { { name, value } };

        Assert.Equal(CaptureDecision.Prefetch, Inbound(rules, "/dashboard", headers));
    }

    [Theory]
    [InlineData("rsc", "0")]
    [InlineData("purpose", "navigate")]
    [InlineData("sec-purpose", "prerender-until-script")]
    public void OrdinaryRequests_AreNotMistakenForPrefetches(string name, string value)
    {
        var rules = CaptureRules.Create(new AgentOptions());
        var headers = new HeaderList { { name, value } };

        Assert.Equal(CaptureDecision.Capture, Inbound(rules, "/dashboard", headers));
    }

    [Fact]
    public void PrefetchRequests_AreCapturedWhenSkippingIsOff()
    {
        var options = new AgentOptions();
        options.Capture.SkipPrefetch = false;
        var rules = CaptureRules.Create(options);
        var headers = new HeaderList { { "next-router-prefetch", "1" } };

        Assert.Equal(CaptureDecision.Capture, Inbound(rules, "/dashboard", headers));
    }

    [Fact]
    public void PathologicalPattern_EvaluatesAgainstALongInputWithoutBacktracking()
    {
        // (a+)+$ against "aaaa…b" takes exponential time in a backtracking engine; the
        // non-backtracking engine answers in linear time.
        var options = new AgentOptions();
        options.CollectionRules.Http.Server = [new() { Path = "/(a+)+" }];
        var rules = CaptureRules.Create(options);
        var path = "/" + new string('a', 10_000) + "b";

        var decision = Inbound(rules, path);

        Assert.Equal(CaptureDecision.NotMatched, decision);
    }

    [Fact]
    public void InvalidPattern_IsRefusedAtConstruction()
    {
        var options = new AgentOptions();
        options.CollectionRules.Http.Server = [new() { Path = "/(unclosed" }];

        Assert.ThrowsAny<ArgumentException>(() => CaptureRules.Create(options));
    }

    [Theory]
    [InlineData("image/png", true)]
    [InlineData("image/svg+xml", true)]
    [InlineData("font/woff2", true)]
    [InlineData("text/css; charset=utf-8", true)]
    [InlineData("application/javascript", true)]
    [InlineData("Text/JavaScript", true)]
    [InlineData("video/mp4", true)]
    [InlineData("audio/mpeg", true)]
    [InlineData("application/wasm", true)]
    [InlineData("application/json", false)]
    [InlineData("text/html; charset=utf-8", false)]
    [InlineData("application/javascript-like", false)]
    [InlineData(null, false)]
    public void IsStaticContentType_RecognisesStaticMediaTypes(string? contentType, bool expected)
    {
        Assert.Equal(expected, CaptureRules.IsStaticContentType(contentType));
    }

    [Theory]
    [InlineData("api.example.com:8443", "api.example.com")]
    [InlineData("api.example.com", "api.example.com")]
    [InlineData("[2001:db8::1]:443", "2001:db8::1")]
    [InlineData("2001:db8::1", "2001:db8::1")]
    [InlineData("", "")]
    public void HostName_WithoutPort_StripsPortAndBrackets(string authority, string expected)
    {
        Assert.Equal(expected, HostName.WithoutPort(authority).ToString());
    }

    [Fact]
    public void DecisionLabels_AreDistinctAndStable()
    {
        Assert.Equal("capture", CaptureDecision.Capture.ToLabel());
        Assert.Equal("not_matched", CaptureDecision.NotMatched.ToLabel());
        Assert.Equal("static_resource", CaptureDecision.StaticResource.ToLabel());
        var labels = new HashSet<string>();
        foreach (var decision in Enum.GetValues<CaptureDecision>())
        {
            Assert.True(labels.Add(decision.ToLabel()));
        }
    }
}
