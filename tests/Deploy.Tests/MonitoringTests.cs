using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace SpIstio.Deploy.Tests;

/// <summary>The alert rules are valid Prometheus rules, and every metric they and the dashboard use is accounted for.</summary>
public sealed partial class MonitoringTests
{
    private const string PromtoolHint = "Install the Debian package `prometheus` (apt-get install -y prometheus), which ships promtool; .ci/run does this.";

    [Fact]
    public void PrometheusRule_PassesPromtoolCheckRules()
    {
        var rule = DeployTree.Render("observability").Single(o => o.Kind == "PrometheusRule");

        var result = CheckRules(ToYaml(Manifest.Get(rule.Root, "spec")!));

        Assert.True(result.ExitCode == 0, $"promtool check rules failed:\n{result.StdOut}\n{result.StdErr}");
        Assert.Contains("SUCCESS", result.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void DashboardQueries_ArePromQlThatPromtoolParses()
    {
        // A panel whose query does not parse shows "bad_data" in Grafana, and nothing else checks
        // it: each query becomes a recording rule, with Grafana's variables given values first.
        using var dashboard = Dashboard();
        var queries = DashboardQueries(dashboard.RootElement);
        var yaml = new System.Text.StringBuilder("groups:\n- name: dashboard\n  rules:\n");
        for (int i = 0; i < queries.Count; i++)
        {
            var expr = queries[i].Replace("$__rate_interval", "5m", StringComparison.Ordinal).Replace("$namespace", ".*", StringComparison.Ordinal);
            yaml.Append("  - record: dashboard:query").Append(i).Append("\n    expr: ").Append(JsonSerializer.Serialize(expr)).Append('\n');
        }

        var result = CheckRules(yaml.ToString());

        Assert.True(result.ExitCode == 0, $"promtool could not parse a dashboard query:\n{result.StdOut}\n{result.StdErr}");
        Assert.Contains($"SUCCESS: {queries.Count} rules found", result.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void BackendIngestThrottled_FiresOnTheRetryAnswersTheBackendGives_HttpAndGrpc()
    {
        // The backend tells exporters to retry with HTTP 503 and gRPC UNAVAILABLE (code label 14),
        // never 429: an alert on 429 would stay silent through any back-pressure.
        var rule = DeployTree.Render("observability").Single(o => o.Kind == "PrometheusRule");
        var directory = Path.Combine(Path.GetTempPath(), $"sp-rules-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "rules.yaml"), ToYaml(Manifest.Get(rule.Root, "spec")!));
        // 30 minutes of 100 requests a minute each way: 10 % answered 503 over HTTP, 10 % UNAVAILABLE over gRPC.
        File.WriteAllText(Path.Combine(directory, "test.yaml"), """
            rule_files: [rules.yaml]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'sp_ingest_requests_total{protocol="http",code="200"}'
                    values: '0+90x30'
                  - series: 'sp_ingest_requests_total{protocol="http",code="503"}'
                    values: '0+10x30'
                  - series: 'sp_ingest_requests_total{protocol="grpc",code="0"}'
                    values: '0+90x30'
                  - series: 'sp_ingest_requests_total{protocol="grpc",code="14"}'
                    values: '0+10x30'
                alert_rule_test:
                  - eval_time: 10m
                    alertname: SpBackendIngestThrottled
                  - eval_time: 25m
                    alertname: SpBackendIngestThrottled
                    exp_alerts:
                      - exp_labels: { severity: warning }
                        exp_annotations:
                          summary: "Backend throttles 10% of ingest requests"
                          description: "Exporters are told to retry (HTTP 503 + Retry-After, gRPC UNAVAILABLE = 14): the write queue is full, the ingest budget (--ingest-budget-bytes) is spent, or commits fail. Nothing acknowledged is lost; exporters without a disk buffer drop what they cannot re-send."
            """);
        try
        {
            var result = ExternalTool.Run("promtool", PromtoolHint, "test", "rules", Path.Combine(directory, "test.yaml"));

            Assert.True(result.ExitCode == 0, $"promtool test rules failed:\n{result.StdOut}\n{result.StdErr}");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void PrometheusRule_AlertsOnEveryFailureTheProductionGuideNames()
    {
        var rule = DeployTree.Render("observability").Single(o => o.Kind == "PrometheusRule");
        var exprs = Manifest.Maps(rule.Root, "spec", "groups").SelectMany(g => Manifest.Maps(g, "rules"))
            .ToDictionary(r => Manifest.Scalar(r, "alert")!, r => Manifest.Scalar(r, "expr")!);

        // export failures, dropped captures, faulted export loops, circuit open, backend 5xx and latency, cache collapse, disk/retention
        Assert.Contains(exprs.Values, e => e.Contains("sp_export_spans_total", StringComparison.Ordinal));
        Assert.Contains(exprs.Values, e => e.Contains("sp_export_dropped_total", StringComparison.Ordinal));
        Assert.Contains(exprs.Values, e => e.Contains("sp_export_loop_faults_total", StringComparison.Ordinal));
        Assert.Contains(exprs.Values, e => e.Contains("sp_backend_circuit_open", StringComparison.Ordinal));
        Assert.Contains(exprs.Values, e => e.Contains("sp_ingest_requests_total{code=~\"5..\"}", StringComparison.Ordinal));
        Assert.Contains(exprs.Values, e => e.Contains("histogram_quantile", StringComparison.Ordinal) && e.Contains("sp_http_request_duration_seconds", StringComparison.Ordinal));
        Assert.Contains(exprs.Values, e => e.Contains("sp_cache_hits_total", StringComparison.Ordinal) && e.Contains("offset 1d", StringComparison.Ordinal));
        Assert.Contains(exprs.Values, e => e.Contains("kubelet_volume_stats_available_bytes", StringComparison.Ordinal));
        Assert.Contains(exprs.Values, e => e.Contains("sp_store_bytes", StringComparison.Ordinal));
    }

    [Fact]
    public void MetricNamesFile_ListsExactlyTheMetricsTheRulesAndDashboardUse()
    {
        var listed = MetricNamesFile.Read().Keys.ToHashSet(StringComparer.Ordinal);
        var used = UsedMetricNames();

        Assert.Empty(used.Except(listed).Order(StringComparer.Ordinal));
        Assert.Empty(listed.Except(used).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void MetricsMarkedSource_AreDeclaredInTheCode()
    {
        var declared = DeclaredMetricNames();
        var names = MetricNamesFile.Read();

        var missing = names.Where(n => n.Value != "external" && !declared.Contains(n.Key)).Select(n => n.Key).ToList();
        Assert.Empty(missing);
        Assert.Empty(names.Where(n => n.Value == "pending").Select(n => n.Key));
    }

    /// <summary>Metric names in the rule expressions and the dashboard queries, histogram suffixes folded.</summary>
    private static HashSet<string> UsedMetricNames()
    {
        var rule = DeployTree.Render("observability").Single(o => o.Kind == "PrometheusRule");
        var queries = Manifest.Maps(rule.Root, "spec", "groups").SelectMany(g => Manifest.Maps(g, "rules")).Select(r => Manifest.Scalar(r, "expr")!).ToList();
        using (var dashboard = Dashboard())
        {
            queries.AddRange(DashboardQueries(dashboard.RootElement));
            var variable = dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray()
                .Where(v => v.GetProperty("type").GetString() == "query")
                .Select(v => v.GetProperty("definition").GetString()!);
            queries.AddRange(variable);
        }

        Assert.NotEmpty(queries);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var query in queries)
        {
            // Drop label matchers and strings first so label values are not read as names.
            var stripped = LabelMatchers().Replace(query, "");
            foreach (Match m in MetricToken().Matches(stripped))
            {
                names.Add(HistogramSuffix().Replace(m.Value, ""));
            }

            if (UpSelector().IsMatch(query))
            {
                names.Add("up");
            }
        }

        return names;
    }

    /// <summary><c>promtool check rules</c> over <paramref name="yaml"/> (a rule file's groups), from a temporary file.</summary>
    private static ExternalTool.Result CheckRules(string yaml)
    {
        var file = Path.Combine(Path.GetTempPath(), $"sp-rules-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, yaml);
        try
        {
            return ExternalTool.Run("promtool", PromtoolHint, "check", "rules", file);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>The shipped Grafana dashboard, parsed (the caller disposes it).</summary>
    private static JsonDocument Dashboard() => JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoPaths.Observability, "dashboard.json")));

    /// <summary>The PromQL query of every panel target of <paramref name="dashboard"/>.</summary>
    private static List<string> DashboardQueries(JsonElement dashboard)
    {
        var queries = new List<string>();
        foreach (var panel in dashboard.GetProperty("panels").EnumerateArray())
        {
            if (panel.TryGetProperty("targets", out var targets))
            {
                queries.AddRange(targets.EnumerateArray().Select(t => t.GetProperty("expr").GetString()!));
            }
        }

        return queries;
    }

    /// <summary>Every sp_ / process_ metric name written as a string literal in src/ (how MetricRegistry declares them).</summary>
    private static HashSet<string> DeclaredMetricNames()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "src"), "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            {
                continue;
            }

            foreach (Match m in DeclaredLiteral().Matches(File.ReadAllText(file)))
            {
                names.Add(m.Groups[1].Value);
            }
        }

        return names;
    }

    private static string ToYaml(YamlNode node)
    {
        var stream = new YamlStream(new YamlDocument(node));
        using var writer = new StringWriter();
        stream.Save(writer, assignAnchors: false);
        return writer.ToString();
    }

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex LabelMatchers();

    [GeneratedRegex(@"\b(?:sp|process|kubelet)_[a-z0-9_]+\b")]
    private static partial Regex MetricToken();

    [GeneratedRegex(@"_(?:bucket|sum|count)$")]
    private static partial Regex HistogramSuffix();

    [GeneratedRegex(@"\bup\{")]
    private static partial Regex UpSelector();

    [GeneratedRegex("\"((?:sp|process)_[a-z0-9_]+)\"")]
    private static partial Regex DeclaredLiteral();
}

/// <summary>deploy/observability/metric-names.txt: name → status (source, pending, external).</summary>
internal static class MetricNamesFile
{
    public static Dictionary<string, string> Read()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in File.ReadAllLines(Path.Combine(RepoPaths.Observability, "metric-names.txt")))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            Assert.True(parts.Length == 2 && parts[1] is "source" or "pending" or "external", $"metric-names.txt: malformed line '{raw}'");
            Assert.True(result.TryAdd(parts[0], parts[1]), $"metric-names.txt lists {parts[0]} twice");
        }

        return result;
    }
}
