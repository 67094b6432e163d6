using System.Text.Json;
using SpIstio.Core.Configuration;

namespace SpIstio.Core.Tests.Configuration;

public class AgentConfigLoaderTests
{
    private static readonly Dictionary<string, string?> NoEnvironment = [];

    private static ConfigLoadResult LoadFile(string path, Dictionary<string, string?>? environment = null, params string[] overrides) =>
        AgentConfigLoader.Load(path, environment ?? NoEnvironment, overrides);

    private static ConfigLoadResult LoadYaml(string yaml, Dictionary<string, string?>? environment = null, params string[] overrides)
    {
        using var file = new TempFile(yaml);
        return LoadFile(file.Path, environment, overrides);
    }

    [Fact]
    public void ProductionGuideMinimalExample_LoadsUnchanged_WithoutProblems()
    {
        var result = LoadFile(TestFiles.Data("agent.minimal.yaml"));

        Assert.Empty(result.Report.Errors);
        Assert.Empty(result.Report.Warnings);
        Assert.Equal(new Uri("https://o.softprobe.ai"), result.Options.SpBackendUrl);
        Assert.Equal("your-api-key-here", result.Options.PublicKey);
        Assert.Equal(DirectionSetting.Outbound, result.Options.TrafficDirection);
    }

    [Fact]
    public void ProductionGuideFullExample_LoadsUnchanged_AndBindsClientRules()
    {
        var result = LoadFile(TestFiles.Data("agent.production.yaml"));

        Assert.Empty(result.Report.Errors);
        Assert.Empty(result.Report.Warnings);
        var o = result.Options;
        Assert.Equal("your-production-api-key", o.PublicKey);
        Assert.Equal(3600, o.CacheTtlSeconds);
        Assert.Equal(100, o.MaxCacheSizeMb);
        Assert.Equal(5000, o.AsyncTimeoutMs);
        Assert.Equal(100, o.MaxConcurrentRequests);
        Assert.Equal("production-cluster", o.ServiceName);
        Assert.False(o.EnableDetailedLogging);
        Assert.Equal(2, o.CollectionRules.Http.Client.Count);
        var api = o.CollectionRules.Http.Client[0];
        Assert.Equal(@"api\..+", api.Host);
        Assert.Equal(["/v1/.*", "/v2/.*"], api.Paths);
        Assert.Equal(["GET", "POST"], api.Methods);
        Assert.False(api.Exclude);
        var health = o.CollectionRules.Http.Client[1];
        Assert.Equal(".*", health.Host);
        Assert.Equal(["/health", "/metrics"], health.Paths);
        Assert.Empty(health.Methods);
        Assert.True(health.Exclude);
        // Not given, so the OTLP exemptions stay.
        Assert.Equal(ExemptionRule.Defaults()[0].PathPatterns, Assert.Single(o.ExemptionRules).PathPatterns);
    }

    [Fact]
    public void BadFile_ReportsBadRegexUnknownDirectionAndNegativeSize_AllInOneReport()
    {
        var result = LoadFile(TestFiles.Data("agent.bad.yaml"));

        Assert.False(result.Report.IsValid);
        Assert.Equal(3, result.Report.Errors.Count);
        var direction = Assert.Single(result.Report.Errors, e => e.Key == "traffic_direction");
        Assert.Equal("sideways", direction.Value);
        Assert.Equal("is not one of inbound, outbound, server, client, auto", direction.Message);
        var regex = Assert.Single(result.Report.Errors, e => e.Key == "collectionRules.http.client[0].host");
        Assert.Equal(@"api\.(unclosed", regex.Value);
        Assert.Contains("not a valid regex", regex.Message, StringComparison.Ordinal);
        Assert.Contains("Not enough )'s", regex.Message, StringComparison.Ordinal);
        var size = Assert.Single(result.Report.Errors, e => e.Key == "max_cache_size_mb");
        Assert.Equal("-1", size.Value);
        Assert.Contains("between 0 and 65536", size.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BadFile_ProblemsPointAtTheirLineAndColumn()
    {
        var result = LoadFile(TestFiles.Data("agent.bad.yaml"));

        var direction = Assert.Single(result.Report.Errors, e => e.Key == "traffic_direction");
        Assert.Equal("agent.bad.yaml:3:20", direction.Source);
        Assert.Equal(
            "traffic_direction: 'sideways' is not one of inbound, outbound, server, client, auto (agent.bad.yaml:3:20)",
            direction.ToString());
        Assert.Equal("agent.bad.yaml:4:20", Assert.Single(result.Report.Errors, e => e.Key == "max_cache_size_mb").Source);
    }

    [Fact]
    public void FullSample_BindsEveryOption()
    {
        var result = LoadFile(TestFiles.Data("agent.full.yaml"));

        Assert.Empty(result.Report.Errors);
        Assert.Empty(result.Report.Warnings);
        var o = result.Options;
        Assert.Equal(new Uri("https://backend.example:9443/"), o.SpBackendUrl);
        Assert.Equal("full-sample-key", o.PublicKey);
        Assert.Equal("checkout", o.ServiceName);
        Assert.Equal(DirectionSetting.Inbound, o.TrafficDirection);
        Assert.Equal(["/api/.*", "/graphql"], o.CollectionRules.Http.Server.Select(r => r.Path));
        var payments = o.CollectionRules.Http.Client[0];
        Assert.Equal(@"payments\.example\.com", payments.Host);
        Assert.Equal(["/v1/charges", "/v1/refunds/.*"], payments.Paths);
        Assert.Equal(["POST", "PUT"], payments.Methods);
        Assert.True(payments.Exclude);
        Assert.Equal(@"api\..+", o.CollectionRules.Http.Client[1].Host);
        var exemption = Assert.Single(o.ExemptionRules);
        Assert.Equal([@"metrics\..+"], exemption.HostPatterns);
        Assert.Equal(["/internal/.*"], exemption.PathPatterns);
        Assert.Equal(60, o.CacheTtlSeconds);
        Assert.Equal(256, o.MaxCacheSizeMb);
        Assert.Equal(2500, o.AsyncTimeoutMs);
        Assert.Equal(32, o.MaxConcurrentRequests);
        Assert.True(o.EnableDetailedLogging);
        Assert.False(o.FallbackEnabled);
        Assert.Equal(750, o.FallbackTimeoutMs);
        Assert.Equal(3, o.CircuitBreaker.MaxFailures);
        Assert.Equal(10, o.CircuitBreaker.TimeoutSeconds);
        Assert.Equal(8192, o.Capture.MaxRequestBodyBytes);
        Assert.Equal(16384, o.Capture.MaxResponseBodyBytes);
        Assert.Equal(262144, o.Capture.MaxDecodedBodyBytes);
        Assert.Equal(3, o.Capture.WorkerThreads);
        Assert.Equal(CaptureWorkerPriority.Low, o.Capture.WorkerPriority);
        Assert.False(o.Capture.SkipStaticResources);
        Assert.False(o.Capture.SkipPrefetch);
        Assert.Equal(4096, o.Capture.Grpc.MaxMessageBytes);
        Assert.Equal(10, o.Capture.Grpc.MaxMessages);
        Assert.Equal(32768, o.Capture.Grpc.MaxStreamBytes);
        Assert.Equal(["../../../TestData/orders.pb"], o.Capture.Grpc.DescriptorSets);
        Assert.Equal(20, o.Capture.Streams.MaxEvents);
        Assert.Equal(2048, o.Capture.Streams.MaxEventBytes);
        Assert.Equal(16384, o.Capture.Streams.MaxStreamBytes);
        Assert.Equal(5000, o.Capture.Streams.MaxDurationMs);
        Assert.False(o.Redaction.Enabled);
        Assert.Equal(RedactionMode.Hash, o.Redaction.Mode);
        Assert.Equal("0123456789abcdef", o.Redaction.HashKey);
        Assert.Equal(["x-session-token"], o.Redaction.Headers);
        Assert.Equal(["cookie"], o.Redaction.KeepHeaders);
        Assert.Equal(["national_id"], o.Redaction.Fields);
        Assert.Equal(["token_type"], o.Redaction.KeepFields);
        Assert.False(o.Redaction.CardNumbers);
        Assert.Equal(PiiMode.Hash, o.Redaction.Pii);
        Assert.Equal(["passport_number"], o.Redaction.PiiFields);
        Assert.Equal(["INT-[0-9]{6}"], o.Redaction.Patterns);
        Assert.Equal(0.25, o.Sampling.Ratio);
        Assert.Equal(SamplingBy.Trace, o.Sampling.By);
        Assert.Equal(CacheMode.ReplayOnly, o.Cache.Mode);
        Assert.Equal(CacheMode.Replay, o.Cache.Rules[0].Mode);
        Assert.Null(o.Cache.Rules[1].Mode);
        Assert.Equal(2000, o.Export.QueueCapacity);
        Assert.Equal(64, o.Export.MaxBatchSpans);
        Assert.Equal(2097152, o.Export.MaxBatchBytes);
        Assert.Equal(50, o.Export.BatchDelayMs);
        Assert.Equal(1500, o.Export.ShutdownFlushMs);
        Assert.Equal(5, o.Export.MaxRetries);
        Assert.Equal("/var/spool/sp-agent", o.Export.BufferPath);
        Assert.Equal(ExportCompression.Gzip, o.Export.Compression);
        Assert.Equal(8388608, o.Export.MaxInflightBytes);
        Assert.Equal(67108864, o.Export.BufferMaxBytes);
        Assert.Equal(512, o.Proxy.MaxConnections);
        Assert.Equal(200, o.Proxy.MaxGrpcStreams);
        Assert.Equal(32, o.ExtProc.MaxConnections);
        Assert.Equal(1024, o.ExtProc.MaxStreams);
    }

    [Fact]
    public void FullSample_SetsEveryConfigKeyToANonDefaultValue()
    {
        // Guards the sample (and so FullSample_BindsEveryOption): a new [ConfigKey] property
        // that agent.full.yaml does not set to a non-default value fails here.
        var loaded = LoadFile(TestFiles.Data("agent.full.yaml")).Options;
        var notCovered = new List<string>();

        CompareWithDefaults(loaded, new AgentOptions(), "", notCovered);

        Assert.Empty(notCovered);
    }

    private static void CompareWithDefaults(object loaded, object defaults, string path, List<string> notCovered)
    {
        foreach (var property in ConfigMetadata.For(loaded.GetType()))
        {
            var key = path.Length == 0 ? property.Key : path + "." + property.Key;
            var value = property.Property.GetValue(loaded);
            var defaultValue = property.Property.GetValue(defaults);
            switch (property.Kind)
            {
                case OptionKind.Scalar:
                    if (Equals(value, defaultValue))
                    {
                        notCovered.Add(key);
                    }

                    break;
                case OptionKind.Object:
                    CompareWithDefaults(value!, defaultValue!, key, notCovered);
                    break;
                case OptionKind.ScalarList:
                    var items = ((System.Collections.IList)value!).Cast<object>().ToList();
                    if (items.Count == 0 || items.SequenceEqual(((System.Collections.IList)defaultValue!).Cast<object>()))
                    {
                        notCovered.Add(key);
                    }

                    break;
                case OptionKind.ObjectList:
                    var elements = (System.Collections.IList)value!;
                    if (elements.Count == 0)
                    {
                        notCovered.Add(key);
                        break;
                    }

                    // Every field of an element must be non-default in at least one element.
                    var perElement = new List<List<string>>();
                    for (var i = 0; i < elements.Count; i++)
                    {
                        var missing = new List<string>();
                        CompareWithDefaults(elements[i]!, Activator.CreateInstance(property.ValueType)!, key + "[]", missing);
                        perElement.Add(missing);
                    }

                    notCovered.AddRange(perElement.Aggregate((a, b) => a.Intersect(b).ToList()));
                    break;
            }
        }
    }

    [Fact]
    public void JsonFile_LoadsTheSameAsTheYamlFile()
    {
        var yaml = LoadFile(TestFiles.Data("agent.full.yaml"));
        var json = LoadFile(TestFiles.Data("agent.full.json"));

        Assert.Empty(json.Report.Errors);
        Assert.Empty(json.Report.Warnings);
        Assert.Equal(JsonSerializer.Serialize(yaml.Options), JsonSerializer.Serialize(json.Options));
    }

    [Fact]
    public void WasmPluginResource_IsReadFromItsPluginConfig()
    {
        var result = LoadFile(TestFiles.Data("wasmplugin.yaml"));

        Assert.Empty(result.Report.Errors);
        Assert.Empty(result.Report.Warnings);
        Assert.Equal("checkout", result.Options.ServiceName);
        Assert.Equal(DirectionSetting.Outbound, result.Options.TrafficDirection);
    }

    [Fact]
    public void EnvironmentVariables_OverrideTheFile()
    {
        var environment = new Dictionary<string, string?>
        {
            ["SP_PUBLIC_KEY"] = "from-env",
            ["SP_CIRCUIT_BREAKER__MAX_FAILURES"] = "7",
            ["SP_COLLECTIONRULES__HTTP__CLIENT__0__HOST"] = @"env\..+",
            ["HOME"] = "/root",
        };

        var result = LoadFile(TestFiles.Data("agent.production.yaml"), environment);

        Assert.Empty(result.Report.Errors);
        Assert.Equal("from-env", result.Options.PublicKey);
        Assert.Equal(7, result.Options.CircuitBreaker.MaxFailures);
        Assert.Equal(@"env\..+", result.Options.CollectionRules.Http.Client[0].Host);
        // The rest of the file's first rule is kept: the variable edits one key, not the rule.
        Assert.Equal(["GET", "POST"], result.Options.CollectionRules.Http.Client[0].Methods);
        Assert.Equal(3600, result.Options.CacheTtlSeconds);
    }

    [Fact]
    public void SetOverrides_BeatEnvironmentVariables()
    {
        var environment = new Dictionary<string, string?> { ["SP_CIRCUIT_BREAKER__MAX_FAILURES"] = "7", ["SP_PUBLIC_KEY"] = "from-env" };

        var result = LoadFile(
            TestFiles.Data("agent.production.yaml"),
            environment,
            "circuit_breaker.max_failures=3",
            @"collectionRules.http.client[1].host=internal\..+",
            "collectionRules.http.client.0.methods.1=PUT");

        Assert.Empty(result.Report.Errors);
        Assert.Equal(3, result.Options.CircuitBreaker.MaxFailures);
        Assert.Equal("from-env", result.Options.PublicKey);
        Assert.Equal(@"internal\..+", result.Options.CollectionRules.Http.Client[1].Host);
        Assert.Equal(["GET", "PUT"], result.Options.CollectionRules.Http.Client[0].Methods);
    }

    [Fact]
    public void BackendUrlAlias_SetsSpBackendUrl()
    {
        var result = LoadFile(
            TestFiles.Data("agent.minimal.yaml"),
            new Dictionary<string, string?> { ["SP_BACKEND_URL"] = "http://sp-backend.sp-system:8090" });

        Assert.Empty(result.Report.Errors);
        Assert.Empty(result.Report.Warnings);
        Assert.Equal(new Uri("http://sp-backend.sp-system:8090"), result.Options.SpBackendUrl);
    }

    [Fact]
    public void EnvironmentAlone_ConfiguresTheAgentWithoutAFile()
    {
        var result = AgentConfigLoader.Load(
            null,
            new Dictionary<string, string?> { ["SP_PUBLIC_KEY"] = "k", ["SP_TRAFFIC_DIRECTION"] = "client" },
            []);

        Assert.True(result.Report.IsValid);
        Assert.Equal(DirectionSetting.Outbound, result.Options.TrafficDirection);
    }

    [Fact]
    public void KubernetesServiceLinkAndProcessVariables_AreNotTakenForSettings()
    {
        var environment = new Dictionary<string, string?>
        {
            ["SP_BACKEND_SERVICE_HOST"] = "10.96.0.12",
            ["SP_BACKEND_SERVICE_PORT"] = "8090",
            ["SP_BACKEND_SERVICE_PORT_HTTP"] = "8090",
            ["SP_BACKEND_PORT"] = "tcp://10.96.0.12:8090",
            ["SP_BACKEND_PORT_8090_TCP"] = "tcp://10.96.0.12:8090",
            ["SP_BACKEND_PORT_8090_TCP_ADDR"] = "10.96.0.12",
            ["SP_SERVCE_NAME"] = "typo",

            // Read by the executables themselves (stack traces, the sp-agent build), not settings.
            ["SP_DEBUG"] = "1",
            ["SP_AGENT_CPU"] = "baseline",
        };

        var result = LoadFile(TestFiles.Data("agent.minimal.yaml"), environment);

        // Only the real typo is reported, with where it came from.
        var warning = Assert.Single(result.Report.Warnings);
        Assert.Equal("SERVCE_NAME", warning.Key);
        Assert.Equal("environment variable SP_SERVCE_NAME", warning.Source);
        Assert.Contains("did you mean 'service_name'?", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SettingVariables_AreWhatTheLoaderReads_SoTheStatusDigestIgnoresServiceLinksAndProcessVariables()
    {
        // The agent's /status config digest hashes these: pods of one Deployment started before and
        // after a Service was added (new service links), or with SP_DEBUG set, must show one digest.
        var environment = new Dictionary<string, string?>
        {
            ["SP_SERVICE_NAME"] = "checkout",
            ["SP_BACKEND_URL"] = "http://sp-backend:4318",
            ["sp_export__compression"] = "zstd",
            ["SP_EMPTY"] = null,
            ["SP_"] = "nothing after the prefix",
            ["HOME"] = "/root",
            ["SP_BACKEND_SERVICE_HOST"] = "10.96.0.12",
            ["SP_BACKEND_PORT_4318_TCP_ADDR"] = "10.96.0.12",
            ["SP_DEBUG"] = "1",
            ["SP_AGENT_CPU"] = "baseline",
            ["SP_EXPORT____COMPRESSION"] = "gzip",
            ["SP_EXPORT__"] = "gzip",
            ["SP___EXPORT"] = "gzip",
        };

        var names = AgentConfigLoader.SettingVariables(environment).Select(e => e.Key).Order(StringComparer.Ordinal);

        Assert.Equal(["SP_BACKEND_URL", "SP_SERVICE_NAME", "sp_export__compression"], names);
    }

    [Fact]
    public void EmptyEnvironmentVariableForAList_ClearsTheFilesList()
    {
        var result = LoadFile(
            TestFiles.Data("agent.production.yaml"),
            new Dictionary<string, string?> { ["SP_COLLECTIONRULES__HTTP__CLIENT"] = "" });

        Assert.Empty(result.Report.Errors);
        Assert.Empty(result.Options.CollectionRules.Http.Client);
    }

    [Theory]
    [InlineData("inbound", DirectionSetting.Inbound)]
    [InlineData("server", DirectionSetting.Inbound)]
    [InlineData("outbound", DirectionSetting.Outbound)]
    [InlineData("client", DirectionSetting.Outbound)]
    [InlineData("auto", DirectionSetting.Auto)]
    [InlineData("Outbound", DirectionSetting.Outbound)]
    public void TrafficDirection_AcceptsEverySpelling(string written, DirectionSetting expected)
    {
        var result = LoadYaml("public_key: k\ntraffic_direction: " + written + "\n");

        Assert.Empty(result.Report.Errors);
        Assert.Equal(expected, result.Options.TrafficDirection);
    }

    [Fact]
    public void UnknownKey_IsAWarningWithASuggestion_NotAnError()
    {
        var result = LoadYaml("public_key: k\ncolectionRules:\n  http: {}\ncircuit_breaker:\n  maxFailures: 3\n");

        Assert.True(result.Report.IsValid);
        Assert.Equal(2, result.Report.Warnings.Count);
        var top = Assert.Single(result.Report.Warnings, w => w.Key == "colectionRules");
        Assert.Equal("unknown key 'colectionRules' (ignored); did you mean 'collectionRules'?", top.Message);
        var nested = Assert.Single(result.Report.Warnings, w => w.Key == "circuit_breaker.maxFailures");
        Assert.Contains("did you mean 'max_failures'?", nested.Message, StringComparison.Ordinal);
        Assert.Equal(5, result.Options.CircuitBreaker.MaxFailures);
    }

    [Fact]
    public void UnknownKeyFarFromAnyOption_HasNoSuggestion()
    {
        var result = LoadYaml("public_key: k\nzzz_totally_else: 1\n");

        Assert.Equal("unknown key 'zzz_totally_else' (ignored)", Assert.Single(result.Report.Warnings).Message);
    }

    [Fact]
    public void TypeError_IsAnErrorNamingKeyAndValue()
    {
        var result = LoadYaml("public_key: k\ncache_ttl_seconds: lots\nfallback_enabled: maybe\nsampling:\n  ratio: half\n");

        Assert.Equal(
            [
                "cache_ttl_seconds: 'lots' is not an integer",
                "fallback_enabled: 'maybe' is not true or false",
                "sampling.ratio: 'half' is not a number",
            ],
            result.Report.Errors.Select(e => e.Key + ": '" + e.Value + "' " + e.Message));
        Assert.Equal(300, result.Options.CacheTtlSeconds);
    }

    [Fact]
    public void ShapeErrors_AreReportedAtTheKey()
    {
        var result = LoadYaml("public_key: k\ncircuit_breaker: 3\ncache_ttl_seconds: [1, 2]\ncollectionRules:\n  http:\n    client: \"api\"\n");

        Assert.Equal(
            ["circuit_breaker", "cache_ttl_seconds", "collectionRules.http.client"],
            result.Report.Errors.Select(e => e.Key));
    }

    [Fact]
    public void ScalarWhereAListOfStringsIsExpected_IsAOneElementList()
    {
        var result = LoadYaml("public_key: k\ncollectionRules:\n  http:\n    client:\n      - host: api\n        methods: GET\n        paths: /v1/.*\n");

        Assert.Empty(result.Report.Errors);
        var rule = Assert.Single(result.Options.CollectionRules.Http.Client);
        Assert.Equal(["GET"], rule.Methods);
        Assert.Equal(["/v1/.*"], rule.Paths);
    }

    [Fact]
    public void ExemptionRulesGiven_ReplaceTheDefaults()
    {
        var replaced = LoadYaml("public_key: k\nexemptionRules:\n  - pathPatterns: [\"/ping\"]\n");
        var emptied = LoadYaml("public_key: k\nexemptionRules: []\n");

        Assert.Equal(["/ping"], Assert.Single(replaced.Options.ExemptionRules).PathPatterns);
        Assert.Empty(emptied.Options.ExemptionRules);
    }

    [Fact]
    public void NullValues_LeaveDefaultsOrUnset()
    {
        var result = LoadYaml("public_key: k\nfallback_timeout_ms: ~\ncircuit_breaker:\n");

        Assert.Empty(result.Report.Errors);
        Assert.Null(result.Options.FallbackTimeoutMs);
        Assert.Equal(5, result.Options.CircuitBreaker.MaxFailures);
    }

    [Fact]
    public void Booleans_AreCaseInsensitive()
    {
        var result = LoadYaml("public_key: k\nenable_detailed_logging: TRUE\nfallback_enabled: False\n");

        Assert.True(result.Options.EnableDetailedLogging);
        Assert.False(result.Options.FallbackEnabled);
    }

    [Fact]
    public void MissingFile_IsAnError_NotAnException()
    {
        var path = Path.Combine(Path.GetTempPath(), "does-not-exist-" + Guid.NewGuid().ToString("N") + ".yaml");

        var result = LoadFile(path);

        var error = Assert.Single(result.Report.Errors);
        Assert.Equal(path, error.Key);
        Assert.Equal("configuration file not found", error.Message);
    }

    [Fact]
    public void YamlSyntaxError_IsAnErrorWithLineAndColumn()
    {
        var result = LoadYaml("public_key: k\ncollectionRules:\n  http: [unclosed\n");

        var error = Assert.Single(result.Report.Errors);
        Assert.StartsWith("YAML syntax error at line ", error.Message, StringComparison.Ordinal);
        Assert.Matches(@"line \d+, column \d+", error.Message);
    }

    [Fact]
    public void JsonSyntaxError_IsAnErrorWithLineAndColumn()
    {
        using var file = new TempFile("{\n  \"public_key\": \"k\",\n  \"cache_ttl_seconds\": 60 60\n}\n", ".json");

        var result = LoadFile(file.Path);

        var error = Assert.Single(result.Report.Errors);
        Assert.StartsWith("JSON syntax error at line 3, column ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MalformedOverride_IsAnError()
    {
        var result = AgentConfigLoader.Load(null, NoEnvironment, ["public_key"]);

        var error = Assert.Single(result.Report.Errors);
        Assert.Equal("--set", error.Key);
        Assert.Equal("public_key", error.Value);
    }

    [Fact]
    public void LoadOrThrow_ThrowsWithEveryErrorListed()
    {
        var ex = Assert.Throws<ConfigurationException>(
            () => AgentConfigLoader.LoadOrThrow(TestFiles.Data("agent.bad.yaml"), NoEnvironment, []));

        Assert.Equal(3, ex.Report.Errors.Count);
        Assert.Contains("traffic_direction: 'sideways'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("max_cache_size_mb: '-1'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("collectionRules.http.client[0].host:", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadOrThrow_ReturnsTheOptionsWhenValid()
    {
        var options = AgentConfigLoader.LoadOrThrow(TestFiles.Data("agent.production.yaml"), NoEnvironment, []);

        Assert.Equal("production-cluster", options.ServiceName);
    }

    [Fact]
    public void CacheModeAndSamplingBy_ParseInSnakeCase()
    {
        var result = LoadYaml("public_key: k\nsampling:\n  by: trace\ncache:\n  mode: replay_only\n  rules:\n    - paths: [\"/api/.*\"]\n      mode: record\n");
        var bad = LoadYaml("public_key: k\nsampling:\n  by: user\ncache:\n  mode: strict\n");

        Assert.Equal(SamplingBy.Trace, result.Options.Sampling.By);
        Assert.Equal(CacheMode.ReplayOnly, result.Options.Cache.Mode);
        Assert.Equal(CacheMode.Record, result.Options.Cache.Rules[0].Mode);
        Assert.Equal(["cache.mode", "sampling.by"], bad.Report.Errors.Select(e => e.Key).Order());
        Assert.Contains("record, replay, replay_only", string.Join("\n", bad.Report.Errors.Select(e => e.ToString())), StringComparison.Ordinal);
    }
}
