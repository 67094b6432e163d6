using System.Globalization;
using System.Text.RegularExpressions;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Redaction;
using SpIstio.Core.Rules;

namespace SpIstio.Core.Configuration;

/// <summary>
/// Checks bound <see cref="AgentOptions"/> once, at start, and returns every problem at once
/// (YARP's ConfigValidator style): regexes that do not compile, URLs that are not http(s),
/// numbers outside sane ranges, invalid method names, a hash mode without a key.
/// </summary>
public static class AgentOptionsValidator
{
    /// <summary>Largest body limit accepted: 64 MiB, beyond which capture would hold whole uploads in memory.</summary>
    public const int MaxBodyLimit = 64 * 1024 * 1024;

    /// <summary>Largest decoded-body limit accepted: 256 MiB.</summary>
    public const int MaxDecodedBodyLimit = 256 * 1024 * 1024;

    /// <summary>Largest export queue accepted: one million exchanges, already gigabytes at the default body limits.</summary>
    public const int MaxExportQueueCapacity = 1_000_000;

    /// <summary>Largest export batch accepted: 64 MiB, beyond which receivers commonly refuse the request (413).</summary>
    public const int MaxExportBatchBytes = 64 * 1024 * 1024;

    /// <summary>Smallest disk export buffer accepted: 1 MiB, room for a few compressed batches.</summary>
    public const long MinExportBufferBytes = 1024 * 1024;

    /// <summary>Largest disk export buffer accepted: 64 GiB.</summary>
    public const long MaxExportBufferBytes = 64L * 1024 * 1024 * 1024;

    /// <summary>Validates <paramref name="options"/>; an empty list means valid.</summary>
    public static IReadOnlyList<ConfigProblem> Validate(AgentOptions options) => Validate(options, sources: null);

    internal static List<ConfigProblem> Validate(AgentOptions options, IReadOnlyDictionary<string, string>? sources)
    {
        ArgumentNullException.ThrowIfNull(options);
        var v = new Checker(sources);

        var url = K<AgentOptions>(nameof(AgentOptions.SpBackendUrl));
        if (!options.SpBackendUrl.IsAbsoluteUri
            || (options.SpBackendUrl.Scheme != Uri.UriSchemeHttp && options.SpBackendUrl.Scheme != Uri.UriSchemeHttps))
        {
            v.Error(url, options.SpBackendUrl.OriginalString, "is not an http or https URL");
        }

        if (string.IsNullOrWhiteSpace(options.PublicKey))
        {
            v.Warning(K<AgentOptions>(nameof(AgentOptions.PublicKey)), "is empty: the backend rejects exports without a key");
        }

        if (string.IsNullOrWhiteSpace(options.ServiceName))
        {
            v.Error(K<AgentOptions>(nameof(AgentOptions.ServiceName)), options.ServiceName, "must not be empty (leave the key out to detect the service name)");
        }

        ValidateCollectionRules(options.CollectionRules, v);
        ValidateExemptionRules(options.ExemptionRules, v);

        v.Range(K<AgentOptions>(nameof(AgentOptions.CacheTtlSeconds)), options.CacheTtlSeconds, 0, 31_536_000);
        v.Range(K<AgentOptions>(nameof(AgentOptions.MaxCacheSizeMb)), options.MaxCacheSizeMb, 0, 65_536);
        v.Range(K<AgentOptions>(nameof(AgentOptions.AsyncTimeoutMs)), options.AsyncTimeoutMs, 1, 600_000);
        v.Range(K<AgentOptions>(nameof(AgentOptions.MaxConcurrentRequests)), options.MaxConcurrentRequests, 1, 10_000);
        if (options.FallbackTimeoutMs is { } fallbackTimeout)
        {
            v.Range(K<AgentOptions>(nameof(AgentOptions.FallbackTimeoutMs)), fallbackTimeout, 1, 600_000);
        }

        var breaker = K<AgentOptions>(nameof(AgentOptions.CircuitBreaker));
        v.Range(Join(breaker, K<CircuitBreakerOptions>(nameof(CircuitBreakerOptions.MaxFailures))), options.CircuitBreaker.MaxFailures, 1, 10_000);
        v.Range(Join(breaker, K<CircuitBreakerOptions>(nameof(CircuitBreakerOptions.TimeoutSeconds))), options.CircuitBreaker.TimeoutSeconds, 1, 86_400);

        ValidateCapture(options.Capture, v);
        ValidateGrpcCapture(options.Capture.Grpc, v);
        ValidateStreamCapture(options.Capture.Streams, v);
        ValidateRedaction(options.Redaction, v);
        ValidateExport(options.Export, v);
        ValidateCache(options.Cache, v);
        ValidateProxy(options.Proxy, v);
        ValidateExtProc(options.ExtProc, v);

        var ratioKey = Join(K<AgentOptions>(nameof(AgentOptions.Sampling)), K<SamplingOptions>(nameof(SamplingOptions.Ratio)));
        if (!(options.Sampling.Ratio >= 0.0 && options.Sampling.Ratio <= 1.0))
        {
            v.Error(ratioKey, options.Sampling.Ratio.ToString(CultureInfo.InvariantCulture), "is not between 0.0 and 1.0");
        }

        return v.Problems;
    }

    private static void ValidateCollectionRules(CollectionRulesOptions rules, Checker v)
    {
        var http = Join(K<AgentOptions>(nameof(AgentOptions.CollectionRules)), K<CollectionRulesOptions>(nameof(CollectionRulesOptions.Http)));
        var server = Join(http, K<HttpCollectionRules>(nameof(HttpCollectionRules.Server)));
        for (var i = 0; i < rules.Http.Server.Count; i++)
        {
            v.Regex(Join(Index(server, i), K<ServerRule>(nameof(ServerRule.Path))), rules.Http.Server[i].Path);
        }

        var client = Join(http, K<HttpCollectionRules>(nameof(HttpCollectionRules.Client)));
        for (var i = 0; i < rules.Http.Client.Count; i++)
        {
            var rule = rules.Http.Client[i];
            var rulePath = Index(client, i);
            v.Regex(Join(rulePath, K<ClientRule>(nameof(ClientRule.Host))), rule.Host);
            v.RegexList(Join(rulePath, K<ClientRule>(nameof(ClientRule.Paths))), rule.Paths);
            v.TokenList(Join(rulePath, K<ClientRule>(nameof(ClientRule.Methods))), rule.Methods, "is not a valid HTTP method name");
        }
    }

    private static void ValidateExemptionRules(List<ExemptionRule> rules, Checker v)
    {
        var exemption = K<AgentOptions>(nameof(AgentOptions.ExemptionRules));
        for (var i = 0; i < rules.Count; i++)
        {
            var rulePath = Index(exemption, i);
            v.RegexList(Join(rulePath, K<ExemptionRule>(nameof(ExemptionRule.HostPatterns))), rules[i].HostPatterns);
            v.RegexList(Join(rulePath, K<ExemptionRule>(nameof(ExemptionRule.PathPatterns))), rules[i].PathPatterns);
        }
    }

    private static void ValidateCapture(CaptureOptions capture, Checker v)
    {
        var prefix = K<AgentOptions>(nameof(AgentOptions.Capture));
        var request = Join(prefix, K<CaptureOptions>(nameof(CaptureOptions.MaxRequestBodyBytes)));
        var response = Join(prefix, K<CaptureOptions>(nameof(CaptureOptions.MaxResponseBodyBytes)));
        var decoded = Join(prefix, K<CaptureOptions>(nameof(CaptureOptions.MaxDecodedBodyBytes)));
        v.Range(Join(prefix, K<CaptureOptions>(nameof(CaptureOptions.WorkerThreads))), capture.WorkerThreads, 0, CaptureOptions.MaxWorkerThreads);
        var limitsValid = v.Range(request, capture.MaxRequestBodyBytes, 0, MaxBodyLimit);
        limitsValid &= v.Range(response, capture.MaxResponseBodyBytes, 0, MaxBodyLimit);
        if (v.Range(decoded, capture.MaxDecodedBodyBytes, 0, MaxDecodedBodyLimit) && limitsValid)
        {
            // A decoded limit below the capture limit would cut compressed bodies shorter than plain ones.
            var largest = Math.Max(capture.MaxRequestBodyBytes, capture.MaxResponseBodyBytes);
            if (capture.MaxDecodedBodyBytes < largest)
            {
                v.Error(
                    decoded,
                    capture.MaxDecodedBodyBytes.ToString(CultureInfo.InvariantCulture),
                    string.Create(CultureInfo.InvariantCulture, $"is smaller than the largest body limit ({largest}); it must be at least that"));
            }
        }
    }

    private static void ValidateGrpcCapture(GrpcCaptureOptions grpc, Checker v)
    {
        var prefix = Join(K<AgentOptions>(nameof(AgentOptions.Capture)), K<CaptureOptions>(nameof(CaptureOptions.Grpc)));
        v.Range(Join(prefix, K<GrpcCaptureOptions>(nameof(GrpcCaptureOptions.MaxMessageBytes))), grpc.MaxMessageBytes, 0, MaxBodyLimit);
        v.Range(Join(prefix, K<GrpcCaptureOptions>(nameof(GrpcCaptureOptions.MaxMessages))), grpc.MaxMessages, 0, 100_000);
        v.Range(Join(prefix, K<GrpcCaptureOptions>(nameof(GrpcCaptureOptions.MaxStreamBytes))), grpc.MaxStreamBytes, 0L, MaxBodyLimit);
        var sets = Join(prefix, K<GrpcCaptureOptions>(nameof(GrpcCaptureOptions.DescriptorSets)));
        var readable = new List<(string Source, byte[] Bytes)>();
        foreach (var path in grpc.DescriptorSets)
        {
            if (GrpcDescriptorSet.TryReadFile(path, out var bytes) is { } problem)
            {
                v.Error(sets, path, problem);
            }
            else
            {
                readable.Add((path, bytes));
            }
        }

        if (readable.Count == grpc.DescriptorSets.Count && readable.Count > 0)
        {
            // Each file parses alone; together they must also hold every import.
            try
            {
                GrpcDescriptorSet.Load(readable);
            }
            catch (InvalidDataException ex)
            {
                v.Error(sets, string.Join(", ", grpc.DescriptorSets), ex.Message);
            }
        }
    }

    private static void ValidateStreamCapture(StreamCaptureOptions streams, Checker v)
    {
        var prefix = Join(K<AgentOptions>(nameof(AgentOptions.Capture)), K<CaptureOptions>(nameof(CaptureOptions.Streams)));
        v.Range(Join(prefix, K<StreamCaptureOptions>(nameof(StreamCaptureOptions.MaxEvents))), streams.MaxEvents, 0, 100_000);
        v.Range(Join(prefix, K<StreamCaptureOptions>(nameof(StreamCaptureOptions.MaxEventBytes))), streams.MaxEventBytes, 0, MaxBodyLimit);
        v.Range(Join(prefix, K<StreamCaptureOptions>(nameof(StreamCaptureOptions.MaxStreamBytes))), streams.MaxStreamBytes, 0L, MaxBodyLimit);
        v.Range(Join(prefix, K<StreamCaptureOptions>(nameof(StreamCaptureOptions.MaxDurationMs))), streams.MaxDurationMs, 1, 24 * 60 * 60 * 1000);
    }

    private static void ValidateRedaction(RedactionOptions redaction, Checker v)
    {
        var prefix = K<AgentOptions>(nameof(AgentOptions.Redaction));
        if (redaction.Enabled && redaction.Mode == RedactionMode.Hash && string.IsNullOrEmpty(redaction.HashKey))
        {
            v.Error(Join(prefix, K<RedactionOptions>(nameof(RedactionOptions.HashKey))), null, "must be set when redaction.mode is hash");
        }

        if (redaction.Enabled && redaction.Pii == PiiMode.Hash && string.IsNullOrEmpty(redaction.HashKey))
        {
            v.Error(Join(prefix, K<RedactionOptions>(nameof(RedactionOptions.HashKey))), null, "must be set when redaction.pii is hash");
        }

        var patterns = Join(prefix, K<RedactionOptions>(nameof(RedactionOptions.Patterns)));
        for (var i = 0; i < redaction.Patterns.Count; i++)
        {
            if (Redactor.PatternProblem(redaction.Patterns[i]) is { } problem)
            {
                v.Error(string.Create(CultureInfo.InvariantCulture, $"{patterns}[{i}]"), redaction.Patterns[i], problem);
            }
        }

        v.TokenList(Join(prefix, K<RedactionOptions>(nameof(RedactionOptions.Headers))), redaction.Headers, "is not a valid HTTP header name");
        v.TokenList(Join(prefix, K<RedactionOptions>(nameof(RedactionOptions.KeepHeaders))), redaction.KeepHeaders, "is not a valid HTTP header name");
    }

    // The files are read here, so a wrong path or a file that is not PEM stops the start with the key named.
    private static void ValidateExportTls(ExportOptions export, string prefix, Checker v)
    {
        var caKey = Join(prefix, K<ExportOptions>(nameof(ExportOptions.CaFile)));
        if (export.CaFile.Length > 0)
        {
            if (!File.Exists(export.CaFile))
            {
                v.Error(caKey, export.CaFile, "does not exist");
            }
            else
            {
                try
                {
                    var bundle = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
                    bundle.ImportFromPemFile(export.CaFile);
                    if (bundle.Count == 0)
                    {
                        v.Error(caKey, export.CaFile, "holds no PEM certificate");
                    }
                }
                catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
                {
                    v.Error(caKey, export.CaFile, "is not a PEM certificate bundle: " + e.Message);
                }
            }
        }

        var certKey = Join(prefix, K<ExportOptions>(nameof(ExportOptions.ClientCertFile)));
        var keyKey = Join(prefix, K<ExportOptions>(nameof(ExportOptions.ClientKeyFile)));
        if ((export.ClientCertFile.Length == 0) != (export.ClientKeyFile.Length == 0))
        {
            v.Error(export.ClientCertFile.Length == 0 ? keyKey : certKey, export.ClientCertFile.Length == 0 ? export.ClientKeyFile : export.ClientCertFile, "needs its pair: set both client_cert_file and client_key_file, or neither");
        }
        else if (export.ClientCertFile.Length > 0)
        {
            try
            {
                using var pair = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(export.ClientCertFile, export.ClientKeyFile);
            }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                v.Error(certKey, export.ClientCertFile, "with client_key_file '" + export.ClientKeyFile + "' is not a PEM certificate and its private key: " + e.Message);
            }
        }
    }

    private static void ValidateProxy(ProxyOptions proxy, Checker v)
    {
        var prefix = K<AgentOptions>(nameof(AgentOptions.Proxy));
        v.Range(Join(prefix, K<ProxyOptions>(nameof(ProxyOptions.MaxRequestHeadersKb))), proxy.MaxRequestHeadersKb, 1, ProxyOptions.MaxRequestHeadersKbLimit);
        v.Range(Join(prefix, K<ProxyOptions>(nameof(ProxyOptions.MaxRequestHeadersCount))), proxy.MaxRequestHeadersCount, 1, 10_000);
        v.Range(Join(prefix, K<ProxyOptions>(nameof(ProxyOptions.UpstreamTimeoutMs))), proxy.UpstreamTimeoutMs, 1, 86_400_000);
        v.Range(Join(prefix, K<ProxyOptions>(nameof(ProxyOptions.MaxConnections))), proxy.MaxConnections, 1, ProxyOptions.MaxConnectionsLimit);
        v.Range(Join(prefix, K<ProxyOptions>(nameof(ProxyOptions.MaxGrpcStreams))), proxy.MaxGrpcStreams, 1, ProxyOptions.MaxConnectionsLimit);
        if (proxy.MaxRequestBodyBytes < 0)
        {
            v.Error(Join(prefix, K<ProxyOptions>(nameof(ProxyOptions.MaxRequestBodyBytes))), proxy.MaxRequestBodyBytes.ToString(CultureInfo.InvariantCulture), "must be 0 (no limit) or positive");
        }
    }

    private static void ValidateExtProc(ExtProcServerOptions extProc, Checker v)
    {
        var prefix = K<AgentOptions>(nameof(AgentOptions.ExtProc));
        v.Range(Join(prefix, K<ExtProcServerOptions>(nameof(ExtProcServerOptions.MaxConnections))), extProc.MaxConnections, 1, ExtProcServerOptions.MaxConnectionsLimit);
        v.Range(Join(prefix, K<ExtProcServerOptions>(nameof(ExtProcServerOptions.MaxStreams))), extProc.MaxStreams, 1, ExtProcServerOptions.MaxStreamsLimit);
    }

    private static void ValidateExport(ExportOptions export, Checker v)
    {
        var prefix = K<AgentOptions>(nameof(AgentOptions.Export));
        v.Range(Join(prefix, K<ExportOptions>(nameof(ExportOptions.QueueCapacity))), export.QueueCapacity, 1, MaxExportQueueCapacity);
        v.Range(Join(prefix, K<ExportOptions>(nameof(ExportOptions.MaxBatchSpans))), export.MaxBatchSpans, 1, 100_000);
        v.Range(Join(prefix, K<ExportOptions>(nameof(ExportOptions.MaxBatchBytes))), export.MaxBatchBytes, 1024, MaxExportBatchBytes);
        v.Range(Join(prefix, K<ExportOptions>(nameof(ExportOptions.BatchDelayMs))), export.BatchDelayMs, 1, 60_000);
        v.Range(Join(prefix, K<ExportOptions>(nameof(ExportOptions.ShutdownFlushMs))), export.ShutdownFlushMs, 0, 600_000);
        v.Range(Join(prefix, K<ExportOptions>(nameof(ExportOptions.MaxRetries))), export.MaxRetries, 0, 100);
        ValidateExportTls(export, prefix, v);
        v.Range(Join(prefix, K<ExportOptions>(nameof(ExportOptions.BufferMaxBytes))), export.BufferMaxBytes, MinExportBufferBytes, MaxExportBufferBytes);
        v.Range(Join(prefix, K<ExportOptions>(nameof(ExportOptions.MaxInflightBytes))), export.MaxInflightBytes, 1024 * 1024, MaxExportBufferBytes);
    }

    private static void ValidateCache(CacheOptions cache, Checker v)
    {
        v.Range(Join(K<AgentOptions>(nameof(AgentOptions.Cache)), K<CacheOptions>(nameof(CacheOptions.PullIntervalSeconds))), cache.PullIntervalSeconds, 1, 86_400);
        var rules = Join(K<AgentOptions>(nameof(AgentOptions.Cache)), K<CacheOptions>(nameof(CacheOptions.Rules)));
        if (cache.Mode == CacheMode.ReplayOnly && !cache.Rules.Exists(r => !r.Exclude))
        {
            v.Error(
                Join(K<AgentOptions>(nameof(AgentOptions.Cache)), K<CacheOptions>(nameof(CacheOptions.Mode))),
                "replay_only",
                "needs at least one cache rule that is not an exclude rule: without one no request has a recorded answer, and every request would be refused");
        }

        for (var i = 0; i < cache.Rules.Count; i++)
        {
            var rule = cache.Rules[i];
            var rulePath = Index(rules, i);
            var modeKey = Join(rulePath, K<CacheRule>(nameof(CacheRule.Mode)));
            if (rule.Mode is { } mode && rule.Exclude)
            {
                v.Error(modeKey, ConfigMetadata.EnumName(mode), "has no effect on an exclude rule (a match is never cached)");
            }

            if ((rule.Mode ?? cache.Mode) == CacheMode.Record && rule.RemoteLookup && !rule.Exclude)
            {
                v.Error(Join(rulePath, K<CacheRule>(nameof(CacheRule.RemoteLookup))), "true", "has no effect in mode record, which never answers from a recording");
            }

            v.Regex(Join(rulePath, K<CacheRule>(nameof(CacheRule.Host))), rule.Host);
            v.RegexList(Join(rulePath, K<CacheRule>(nameof(CacheRule.Paths))), rule.Paths);
            v.TokenList(Join(rulePath, K<CacheRule>(nameof(CacheRule.Methods))), rule.Methods, "is not a valid HTTP method name");
            v.TokenList(Join(rulePath, K<CacheRule>(nameof(CacheRule.VaryHeaders))), rule.VaryHeaders, "is not a valid HTTP header name");
            v.NonBlankList(Join(rulePath, K<CacheRule>(nameof(CacheRule.IgnoreQueryParams))), rule.IgnoreQueryParams);
            v.NonBlankList(Join(rulePath, K<CacheRule>(nameof(CacheRule.IgnoreBodyFields))), rule.IgnoreBodyFields);
            var statuses = Join(rulePath, K<CacheRule>(nameof(CacheRule.Statuses)));
            for (var s = 0; s < rule.Statuses.Count; s++)
            {
                v.Range(Index(statuses, s), rule.Statuses[s], 200, 599);
            }
        }
    }

    private static string K<T>(string propertyName) => ConfigMetadata.Key<T>(propertyName);

    private static string Join(string path, string key) => string.Concat(path, ".", key);

    private static string Index(string path, int index) => string.Create(CultureInfo.InvariantCulture, $"{path}[{index}]");

    /// <summary>RFC 9110 token characters (method and header names).</summary>
    internal static bool IsToken(string value)
    {
        if (value.Length == 0)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && !"!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private sealed class Checker(IReadOnlyDictionary<string, string>? sources)
    {
        public List<ConfigProblem> Problems { get; } = [];

        public void Error(string key, string? value, string message) =>
            Problems.Add(new ConfigProblem(key, value, message, ProblemSeverity.Error, SourceOf(key)));

        public void Warning(string key, string message) =>
            Problems.Add(new ConfigProblem(key, null, message, ProblemSeverity.Warning, SourceOf(key)));

        public bool Range(string key, int value, int min, int max)
        {
            if (value >= min && value <= max)
            {
                return true;
            }

            var why = value < 0 ? "is negative" : "is out of range";
            Error(key, value.ToString(CultureInfo.InvariantCulture), string.Create(CultureInfo.InvariantCulture, $"{why}: it must be between {min} and {max}"));
            return false;
        }

        public bool Range(string key, long value, long min, long max)
        {
            if (value >= min && value <= max)
            {
                return true;
            }

            var why = value < 0 ? "is negative" : "is out of range";
            Error(key, value.ToString(CultureInfo.InvariantCulture), string.Create(CultureInfo.InvariantCulture, $"{why}: it must be between {min} and {max}"));
            return false;
        }

        public void Regex(string key, string pattern)
        {
            if (!AnchoredRegex.TryCompile(pattern, out _, out var error))
            {
                Error(key, pattern, "is not a valid regex: " + UnanchoredError(pattern, error));
            }
        }

        public void RegexList(string key, List<string> patterns)
        {
            for (var i = 0; i < patterns.Count; i++)
            {
                Regex(Index(key, i), patterns[i]);
            }
        }

        public void NonBlankList(string key, List<string> values)
        {
            for (var i = 0; i < values.Count; i++)
            {
                if (string.IsNullOrWhiteSpace(values[i]))
                {
                    Error(Index(key, i), values[i], "must not be empty");
                }
            }
        }

        public void TokenList(string key, List<string> values, string message)
        {
            for (var i = 0; i < values.Count; i++)
            {
                if (!IsToken(values[i]))
                {
                    Error(Index(key, i), values[i], message);
                }
            }
        }

        // The anchored wrapper shifts offsets and shows a pattern the user never wrote; the same
        // pattern compiled bare gives the error in the user's own terms.
        private static string? UnanchoredError(string pattern, string? anchoredError)
        {
            try
            {
                _ = new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
                return anchoredError;
            }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
            {
                return ex.Message;
            }
        }

        private string? SourceOf(string key) => sources is not null && sources.TryGetValue(key, out var source) ? source : null;
    }
}
