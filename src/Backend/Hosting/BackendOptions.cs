using System.Globalization;
using System.Net;

namespace SpIstio.Backend.Hosting;

/// <summary>
/// Settings of <c>sp backend</c>. Every problem is reported at once by <see cref="Validate"/>,
/// each naming the option and the bad value.
/// </summary>
public sealed record BackendOptions
{
    /// <summary>The default of <see cref="MaxBodyBytes"/>: 16 MiB, a little under the OpenTelemetry Collector's 20 MiB receiver default, far above the 4 MiB gRPC default an exporter batches to.</summary>
    public const int DefaultMaxBodyBytes = 16 * 1024 * 1024;

    /// <summary>
    /// Where OTLP/HTTP, the query API, OpenAPI, metrics and health listen (<c>host:port</c>; port 0
    /// picks a free one). HTTP/1.1 only: see <see cref="GrpcListen"/> for gRPC.
    /// </summary>
    public string Listen { get; init; } = "127.0.0.1:8090";

    /// <summary>
    /// Where OTLP/gRPC listens (HTTP/2 cleartext, <c>host:port</c>), or null for no gRPC. A port of
    /// its own because Kestrel does not detect HTTP/2 prior knowledge on a cleartext port that
    /// also serves HTTP/1.1 (it answers HTTP_1_1_REQUIRED); <c>sp backend</c> defaults it to the
    /// listen host on 4317, the OTLP/gRPC port.
    /// </summary>
    public string? GrpcListen { get; init; }

    /// <summary>The store: <c>sqlite:&lt;file&gt;</c> (the embedded default) or <c>postgres:&lt;connection string&gt;</c>.</summary>
    public string Store { get; init; } = "sqlite:./data/sp.db";

    /// <summary>The largest export body accepted, counted after gzip decompression (413 above it).</summary>
    public int MaxBodyBytes { get; init; } = DefaultMaxBodyBytes;

    /// <summary>
    /// The most one attribute value (a body, a header, any attribute) may hold, in UTF-8 bytes;
    /// a longer value is truncated and flagged. One span's values together may hold four times this.
    /// Every key holder is untrusted: this bounds what one span costs each reader.
    /// </summary>
    public int MaxAttributeBytes { get; init; } = Ingest.ConversionLimits.DefaultMaxAttributeBytes;

    /// <summary>
    /// The bytes all large span reads in flight (API span detail, HAR, the exchange page) may make
    /// the process hold together; further readers wait, then get 503 + Retry-After (<see cref="Api.ReadBudget"/>).
    /// </summary>
    public long ReadBudgetBytes { get; init; } = Api.ReadBudget.DefaultTotalBytes;

    /// <summary>
    /// The bytes all export requests in flight (OTLP/HTTP and OTLP/gRPC) may make the process hold
    /// together, counted as their bodies times <see cref="Ingest.IngestBudget.Amplification"/> (times
    /// <see cref="Ingest.IngestBudget.QueuedAmplification"/> once their spans are queued); a request
    /// that does not fit is refused with 503 + Retry-After (gRPC: UNAVAILABLE) (<see cref="Ingest.IngestBudget"/>).
    /// </summary>
    public long IngestBudgetBytes { get; init; } = Ingest.IngestBudget.DefaultTotalBytes;

    /// <summary>
    /// Spans that may wait in the write queue (queued or committing) before exporters are told to
    /// retry (503 + Retry-After). 100,000 spans is about two seconds of ingest at the SQLite
    /// target rate: enough to absorb a burst, small enough to keep memory bounded.
    /// </summary>
    public int QueueCapacity { get; init; } = 100_000;

    /// <summary>The most spans one group commit takes.</summary>
    public int MaxBatchSpans { get; init; } = 8_192;

    /// <summary>Demo mode: the fixed key <see cref="Auth.ApiKeys.DemoKey"/> is accepted for the <c>default</c> tenant.</summary>
    public bool Demo { get; init; }

    /// <summary>How long spans are kept for a tenant without its own retention (7 days).</summary>
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(7);

    /// <summary>When set, the oldest spans are deleted while the store holds more than this many bytes.</summary>
    public long? MaxStoreBytes { get; init; }

    /// <summary>How often the retention job runs.</summary>
    public TimeSpan RetentionInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a checked API key is remembered (a revoked key stops working within this time).</summary>
    public TimeSpan KeyCacheTtl { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a Trace View session lives without a request (12 h by default; sign-out ends it at once).</summary>
    public TimeSpan SessionIdleTimeout { get; init; } = Auth.TraceViewSessions.DefaultIdleTimeout;

    /// <summary>
    /// PEM certificate (chain) for TLS on both listeners, with <see cref="TlsKeyPath"/>; null for
    /// cleartext (inside the mesh, Istio's mTLS covers it). Reloaded when the files change.
    /// </summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>PEM private key of <see cref="TlsCertificatePath"/>.</summary>
    public string? TlsKeyPath { get; init; }

    /// <summary>
    /// Descriptor set files (<c>protoc --descriptor_set_out=FILE --include_imports</c>) or folders of
    /// them, read once at start-up: the API, the Trace View and HAR show captured gRPC messages of
    /// the methods they describe as JSON with field names, others schema-less. Empty: none.
    /// </summary>
    public IReadOnlyList<string> GrpcDescriptorSets { get; init; } = [];

    /// <summary>Every problem, each naming the option; empty when the options are usable.</summary>
    public IReadOnlyList<string> Validate() => ValidateAll(out _);

    /// <summary>Every problem, and the descriptor sets read along the way (null when there are problems with them).</summary>
    internal IReadOnlyList<string> ValidateAll(out Core.GrpcMessages.GrpcDescriptorSet? descriptors)
    {
        var problems = new List<string>();
        var ic = CultureInfo.InvariantCulture;
        if (!ListenAddress.TryParse(Listen, out _))
        {
            problems.Add("listen: '" + Listen + "' is not host:port (e.g. 127.0.0.1:8090, 0.0.0.0:8090, [::1]:8090, localhost:8090)");
        }

        if (GrpcListen is not null && !ListenAddress.TryParse(GrpcListen, out _))
        {
            problems.Add("grpc-listen: '" + GrpcListen + "' is not host:port");
        }
        else if (GrpcListen is not null && ListenAddress.TryParse(Listen, out var main) && ListenAddress.TryParse(GrpcListen, out var grpc)
            && main.Port != 0 && main.Port == grpc.Port)
        {
            problems.Add(string.Create(ic, $"grpc-listen: '{GrpcListen}' uses the port of --listen ({main.Port}); OTLP/gRPC needs a port of its own"));
        }

        if (string.IsNullOrWhiteSpace(Store)
            || !(Store.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase) || Store.StartsWith("postgres:", StringComparison.OrdinalIgnoreCase))
            || Store.IndexOf(':', StringComparison.Ordinal) == Store.Length - 1)
        {
            problems.Add("store: '" + Store + "' is not sqlite:<file> or postgres:<connection string>");
        }

        if (MaxBodyBytes < 1024)
        {
            problems.Add(string.Create(ic, $"max-body-bytes: '{MaxBodyBytes}' must be at least 1024"));
        }

        if (MaxAttributeBytes < 1024)
        {
            problems.Add(string.Create(ic, $"max-attribute-bytes: '{MaxAttributeBytes}' must be at least 1024"));
        }

        if (ReadBudgetBytes < 1024 * 1024)
        {
            problems.Add(string.Create(ic, $"read-budget-bytes: '{ReadBudgetBytes}' must be at least 1 MiB"));
        }

        if (IngestBudgetBytes < 1024 * 1024)
        {
            problems.Add(string.Create(ic, $"ingest-budget-bytes: '{IngestBudgetBytes}' must be at least 1 MiB"));
        }

        if (QueueCapacity < 1)
        {
            problems.Add(string.Create(ic, $"queue-capacity: '{QueueCapacity}' must be at least 1"));
        }

        if (MaxBatchSpans < 1)
        {
            problems.Add(string.Create(ic, $"max-batch-spans: '{MaxBatchSpans}' must be at least 1"));
        }

        if (Retention < TimeSpan.FromMinutes(1))
        {
            problems.Add(string.Create(ic, $"retention: '{Retention}' must be at least one minute"));
        }

        if (MaxStoreBytes is < 1)
        {
            problems.Add(string.Create(ic, $"max-store-bytes: '{MaxStoreBytes}' must be positive"));
        }

        if (RetentionInterval < TimeSpan.FromSeconds(1))
        {
            problems.Add(string.Create(ic, $"retention-interval: '{RetentionInterval}' must be at least one second"));
        }

        if ((TlsCertificatePath is null) != (TlsKeyPath is null))
        {
            problems.Add(TlsCertificatePath is null
                ? "tls-key: '" + TlsKeyPath + "' is given without --tls-cert; give both or neither"
                : "tls-cert: '" + TlsCertificatePath + "' is given without --tls-key; give both or neither");
        }
        else if (TlsCertificatePath is not null)
        {
            if (!File.Exists(TlsCertificatePath))
            {
                problems.Add("tls-cert: '" + TlsCertificatePath + "' does not exist");
            }

            if (!File.Exists(TlsKeyPath))
            {
                problems.Add("tls-key: '" + TlsKeyPath + "' does not exist");
            }
        }

        if (SessionIdleTimeout <= TimeSpan.Zero)
        {
            problems.Add(string.Create(ic, $"session-idle: '{SessionIdleTimeout}' must be positive"));
        }

        if (KeyCacheTtl < TimeSpan.Zero)
        {
            problems.Add(string.Create(ic, $"key-cache-ttl: '{KeyCacheTtl}' must not be negative"));
        }

        (descriptors, var descriptorProblems) = GrpcCalls.GrpcDescriptorFiles.Load(GrpcDescriptorSets);
        problems.AddRange(descriptorProblems);
        return problems;
    }

    /// <summary>Throws <see cref="BackendOptionsException"/> listing every problem, if any.</summary>
    public void ValidateOrThrow() => ValidateAndLoad();

    /// <summary>Like <see cref="ValidateOrThrow"/>, returning the descriptor sets it read.</summary>
    internal Core.GrpcMessages.GrpcDescriptorSet ValidateAndLoad()
    {
        var problems = ValidateAll(out var descriptors);
        if (problems.Count > 0)
        {
            throw new BackendOptionsException(problems);
        }

        return descriptors!;
    }
}

/// <summary>Invalid backend options; <see cref="Problems"/> lists every one.</summary>
public sealed class BackendOptionsException : Exception
{
    /// <summary>Creates the exception.</summary>
    public BackendOptionsException(IReadOnlyList<string> problems)
        : base("Invalid backend options:" + Environment.NewLine + string.Join(Environment.NewLine, problems))
    {
        Problems = problems;
    }

    /// <summary>Every problem, each naming the option.</summary>
    public IReadOnlyList<string> Problems { get; }
}

/// <summary>A parsed <c>host:port</c> listen address.</summary>
/// <param name="Address">The IP to bind, or null for <see cref="Localhost"/> or any address.</param>
/// <param name="Localhost">True for <c>localhost:port</c> (both loopbacks).</param>
/// <param name="Port">The port; 0 picks a free one.</param>
public readonly record struct ListenAddress(IPAddress? Address, bool Localhost, int Port)
{
    /// <summary>Parses <c>127.0.0.1:8090</c>, <c>[::1]:8090</c>, <c>0.0.0.0:8090</c>, <c>localhost:8090</c>, <c>*:8090</c> or <c>:8090</c>.</summary>
    public static bool TryParse(string? text, out ListenAddress address)
    {
        address = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var colon = text.LastIndexOf(':');
        if (colon < 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            return false;
        }

        var host = text.AsSpan(0, colon);
        if (host.Length == 0 || host.SequenceEqual("*"))
        {
            address = new ListenAddress(IPAddress.IPv6Any, false, port);
            return true;
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            address = new ListenAddress(null, true, port);
            return true;
        }

        if (host.Length > 2 && host[0] == '[' && host[^1] == ']')
        {
            host = host[1..^1];
        }

        if (!IPAddress.TryParse(host, out var ip))
        {
            return false;
        }

        address = new ListenAddress(ip, false, port);
        return true;
    }
}
