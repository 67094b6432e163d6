using SpIstio.Core.Configuration;

namespace SpIstio.Core.Tests.Configuration;

public class AgentOptionsValidatorTests
{
    private static AgentOptions Valid() => new() { PublicKey = "k" };

    private static ConfigProblem SingleError(AgentOptions options) =>
        Assert.Single(AgentOptionsValidator.Validate(options), p => p.Severity == ProblemSeverity.Error);

    [Fact]
    public void Defaults_WithAPublicKey_AreValid()
    {
        Assert.Empty(AgentOptionsValidator.Validate(Valid()));
    }

    [Fact]
    public void EmptyPublicKey_IsAWarning()
    {
        var problem = Assert.Single(AgentOptionsValidator.Validate(new AgentOptions()));

        Assert.Equal(ProblemSeverity.Warning, problem.Severity);
        Assert.Equal("public_key", problem.Key);
    }

    [Theory]
    [InlineData("ftp://backend.example")]
    [InlineData("file:///etc/passwd")]
    public void BackendUrl_MustBeHttpOrHttps(string url)
    {
        var options = Valid();
        options.SpBackendUrl = new Uri(url);

        var error = SingleError(options);

        Assert.Equal("sp_backend_url", error.Key);
        Assert.Equal(url, error.Value);
    }

    [Theory]
    [InlineData(nameof(AgentOptions.CacheTtlSeconds), -1, "cache_ttl_seconds")]
    [InlineData(nameof(AgentOptions.CacheTtlSeconds), 31_536_001, "cache_ttl_seconds")]
    [InlineData(nameof(AgentOptions.MaxCacheSizeMb), 65_537, "max_cache_size_mb")]
    [InlineData(nameof(AgentOptions.AsyncTimeoutMs), 0, "async_timeout_ms")]
    [InlineData(nameof(AgentOptions.MaxConcurrentRequests), 10_001, "max_concurrent_requests")]
    [InlineData(nameof(AgentOptions.FallbackTimeoutMs), 0, "fallback_timeout_ms")]
    public void NumbersOutOfRange_AreErrorsNamingKeyAndValue(string property, int value, string key)
    {
        var options = Valid();
        typeof(AgentOptions).GetProperty(property)!.SetValue(options, value);

        var error = SingleError(options);

        Assert.Equal(key, error.Key);
        Assert.Equal(value.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Value);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(86_401)]
    public void MockPullInterval_OutOfRange_IsAnErrorNamingTheKey(int seconds)
    {
        var options = Valid();
        options.Cache.PullMocks = true;
        options.Cache.PullIntervalSeconds = seconds;

        var error = SingleError(options);

        Assert.Equal("cache.pull_interval_seconds", error.Key);
        Assert.Equal(seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Value);
    }

    [Fact]
    public void CircuitBreakerAndCaptureLimits_AreChecked()
    {
        var options = Valid();
        options.CircuitBreaker.MaxFailures = 0;
        options.CircuitBreaker.TimeoutSeconds = 86_401;
        options.Capture.MaxRequestBodyBytes = -5;
        options.Capture.MaxResponseBodyBytes = AgentOptionsValidator.MaxBodyLimit + 1;

        var keys = AgentOptionsValidator.Validate(options).Select(p => p.Key).ToList();

        Assert.Equal(
            ["circuit_breaker.max_failures", "circuit_breaker.timeout_seconds", "capture.max_request_body_bytes", "capture.max_response_body_bytes"],
            keys);
    }

    [Fact]
    public void GrpcCaptureLimits_OutOfRange_AreAllReportedWithTheirKeys()
    {
        var options = Valid();
        options.Capture.Grpc.MaxMessageBytes = -1;
        options.Capture.Grpc.MaxMessages = 100_001;
        options.Capture.Grpc.MaxStreamBytes = AgentOptionsValidator.MaxBodyLimit + 1L;

        var problems = AgentOptionsValidator.Validate(options);

        Assert.Equal(
            ["capture.grpc.max_message_bytes", "capture.grpc.max_messages", "capture.grpc.max_stream_bytes"],
            problems.Select(p => p.Key));
        Assert.Equal("100001", problems[1].Value);
    }

    [Fact]
    public void StreamCaptureLimits_OutOfRange_AreAllReportedWithTheirKeys()
    {
        var options = Valid();
        options.Capture.Streams.MaxEvents = -1;
        options.Capture.Streams.MaxEventBytes = AgentOptionsValidator.MaxBodyLimit + 1;
        options.Capture.Streams.MaxStreamBytes = -5;
        options.Capture.Streams.MaxDurationMs = 0;

        var problems = AgentOptionsValidator.Validate(options);

        Assert.Equal(
            ["capture.streams.max_events", "capture.streams.max_event_bytes", "capture.streams.max_stream_bytes", "capture.streams.max_duration_ms"],
            problems.Select(p => p.Key));
        Assert.Equal("0", problems[3].Value);
    }

    [Fact]
    public void ExportSettings_OutOfRange_AreAllReportedWithKeyAndValue()
    {
        var options = Valid();
        options.Export.QueueCapacity = 0;
        options.Export.MaxBatchSpans = -1;
        options.Export.MaxBatchBytes = AgentOptionsValidator.MaxExportBatchBytes + 1;
        options.Export.BatchDelayMs = 0;
        options.Export.ShutdownFlushMs = -1;
        options.Export.MaxRetries = 101;
        options.Export.BufferMaxBytes = 1000;
        options.Export.MaxInflightBytes = -5;

        var problems = AgentOptionsValidator.Validate(options);

        Assert.Equal(
            [
                ("export.queue_capacity", "0"),
                ("export.max_batch_spans", "-1"),
                ("export.max_batch_bytes", "67108865"),
                ("export.batch_delay_ms", "0"),
                ("export.shutdown_flush_ms", "-1"),
                ("export.max_retries", "101"),
                ("export.buffer_max_bytes", "1000"),
                ("export.max_inflight_bytes", "-5"),
            ],
            problems.Select(p => (p.Key, p.Value)));
        Assert.All(problems, p => Assert.Equal(ProblemSeverity.Error, p.Severity));
    }

    [Fact]
    public void ExportDefaults_AreValid()
    {
        var options = Valid();

        Assert.DoesNotContain(AgentOptionsValidator.Validate(options), p => p.Key.StartsWith("export.", StringComparison.Ordinal));
        Assert.Equal(10_000, options.Export.QueueCapacity);
        Assert.Equal(512, options.Export.MaxBatchSpans);
        Assert.Equal(1024 * 1024, options.Export.MaxBatchBytes);
        Assert.Equal(200, options.Export.BatchDelayMs);
        Assert.Equal(5000, options.Export.ShutdownFlushMs);
        Assert.Equal(3, options.Export.MaxRetries);
        Assert.Equal(128L * 1024 * 1024, options.Export.BufferMaxBytes);
        Assert.Equal(16L * 1024 * 1024, options.Export.MaxInflightBytes);
        Assert.Equal("", options.Export.BufferPath);
        Assert.Equal(ExportCompression.None, options.Export.Compression);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(65)]
    public void WorkerThreads_OutOfRange_IsAnErrorNamingTheKey(int threads)
    {
        var options = Valid();
        options.Capture.WorkerThreads = threads;

        var error = SingleError(options);

        Assert.Equal("capture.worker_threads", error.Key);
    }

    [Fact]
    public void DecodedBodyLimit_BelowABodyLimit_IsAnError()
    {
        var options = Valid();
        options.Capture.MaxResponseBodyBytes = 2 * 1024 * 1024;

        var error = SingleError(options);

        Assert.Equal("capture.max_decoded_body_bytes", error.Key);
        Assert.Contains("2097152", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void SamplingRatio_OutsideZeroToOne_IsAnError(double ratio)
    {
        var options = Valid();
        options.Sampling.Ratio = ratio;

        Assert.Equal("sampling.ratio", SingleError(options).Key);
    }

    [Fact]
    public void HashRedaction_WithoutKey_IsAnError()
    {
        var options = Valid();
        options.Redaction.Mode = RedactionMode.Hash;

        var error = SingleError(options);

        Assert.Equal("redaction.hash_key", error.Key);
        Assert.Equal("redaction.hash_key: must be set when redaction.mode is hash", error.ToString());
    }

    [Fact]
    public void HashPii_WithoutKey_IsAnError()
    {
        var options = Valid();
        options.Redaction.Pii = PiiMode.Hash;

        var error = SingleError(options);

        Assert.Equal("redaction.hash_key: must be set when redaction.pii is hash", error.ToString());
    }

    [Fact]
    public void RedactionPatterns_ThatDoNotCompileOrCannotRunNonBacktracking_AreErrorsNamingTheEntry()
    {
        var options = Valid();
        options.Redaction.Patterns = ["INT-[0-9]{6}", "([a-z]", @"(\w)\1"];

        var errors = AgentOptionsValidator.Validate(options).Where(p => p.Severity == ProblemSeverity.Error).ToList();

        Assert.Equal(["redaction.patterns[1]", "redaction.patterns[2]"], errors.Select(e => e.Key));
    }

    [Fact]
    public void EveryRegex_InCollectionAndExemptionRules_IsCompiled()
    {
        var options = Valid();
        options.CollectionRules.Http.Server.Add(new ServerRule { Path = "/ok/.*" });
        options.CollectionRules.Http.Server.Add(new ServerRule { Path = "/bad/[" });
        options.CollectionRules.Http.Client.Add(new ClientRule { Host = "(", Paths = ["/fine", "*oops"] });
        options.ExemptionRules.Add(new ExemptionRule { HostPatterns = ["a)"], PathPatterns = [@"(a)\1"] });

        var keys = AgentOptionsValidator.Validate(options).Select(p => p.Key).ToList();

        Assert.Equal(
            [
                "collectionRules.http.server[1].path",
                "collectionRules.http.client[0].host",
                "collectionRules.http.client[0].paths[1]",
                "exemptionRules[1].hostPatterns[0]",
                // Backreferences compile in .NET but not on the non-backtracking engine the agent uses.
                "exemptionRules[1].pathPatterns[0]",
            ],
            keys);
    }

    [Fact]
    public void MethodsAndHeaderNames_MustBeHttpTokens()
    {
        var options = Valid();
        options.CollectionRules.Http.Client.Add(new ClientRule { Methods = ["GET", "PO ST", ""] });
        options.Redaction.Headers.Add("x-ok");
        options.Redaction.Headers.Add("bad:header");

        var problems = AgentOptionsValidator.Validate(options);

        Assert.Equal(
            ["collectionRules.http.client[0].methods[1]", "collectionRules.http.client[0].methods[2]", "redaction.headers[1]"],
            problems.Select(p => p.Key));
        Assert.Equal("PO ST", problems[0].Value);
    }

    [Fact]
    public void ConfigProblem_ToString_ShowsKeyValueMessageAndSource()
    {
        var problem = new ConfigProblem("traffic_direction", "sideways", "is not one of inbound, outbound, server, client, auto", ProblemSeverity.Error);

        Assert.Equal("traffic_direction: 'sideways' is not one of inbound, outbound, server, client, auto", problem.ToString());
        Assert.EndsWith(" (agent.yaml:3:20)", (problem with { Source = "agent.yaml:3:20" }).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void CacheRules_EveryProblemIsListedWithItsKey()
    {
        var options = Valid();
        options.Cache.Rules.Add(new CacheRule
        {
            Host = "(",
            Paths = ["/ok", "[a-"],
            Methods = ["GET", "BAD METHOD"],
            VaryHeaders = ["accept language"],
            IgnoreQueryParams = [""],
            IgnoreBodyFields = [" "],
            Statuses = [200, 99, 600],
        });

        var keys = AgentOptionsValidator.Validate(options).Where(p => p.Severity == ProblemSeverity.Error).Select(p => p.Key).ToList();

        Assert.Equal(
            [
                "cache.rules[0].host", "cache.rules[0].paths[1]", "cache.rules[0].methods[1]", "cache.rules[0].vary_headers[0]",
                "cache.rules[0].ignore_query_params[0]", "cache.rules[0].ignore_body_fields[0]",
                "cache.rules[0].statuses[1]", "cache.rules[0].statuses[2]",
            ],
            keys);
    }

    [Fact]
    public void CacheModes_AreCheckedTogether_WithEveryProblemListed()
    {
        var options = Valid();
        options.Cache.Mode = CacheMode.ReplayOnly;
        options.Cache.Rules.Add(new CacheRule { Paths = ["/internal/.*"], Exclude = true, Mode = CacheMode.Record });
        var record = Valid();
        record.Cache.Rules.Add(new CacheRule { Paths = ["/api/.*"], RemoteLookup = true, Mode = CacheMode.Record });

        var problems = AgentOptionsValidator.Validate(options).Where(p => p.Severity == ProblemSeverity.Error).ToList();
        var recordProblem = SingleError(record);

        Assert.Equal(["cache.mode", "cache.rules[0].mode"], problems.Select(p => p.Key));
        Assert.Contains("every request would be refused", problems[0].ToString(), StringComparison.Ordinal);
        Assert.Contains("exclude rule", problems[1].ToString(), StringComparison.Ordinal);
        Assert.Equal("cache.rules[0].remote_lookup", recordProblem.Key);
    }
}
