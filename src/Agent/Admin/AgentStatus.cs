using System.Buffers;
using System.Text.Json;
using SpIstio.Agent.Cache;
using SpIstio.Agent.Export;
using SpIstio.Agent.Metrics;
using SpIstio.Core.Metrics;

namespace SpIstio.Agent.Admin;

/// <summary>
/// The state of an export buffer that holds exchanges while the backend is away (the disk export
/// buffer implements it). Without one, <c>/status</c> reports the in-memory queue only.
/// </summary>
public interface IExportBufferStatus
{
    /// <summary>What kind of buffer this is, e.g. <c>disk</c>.</summary>
    string Kind { get; }

    /// <summary>Bytes the buffer holds now.</summary>
    long Bytes { get; }

    /// <summary>Exchanges the buffer holds now.</summary>
    long Exchanges { get; }

    /// <summary>The age of the oldest exchange held, null when empty.</summary>
    TimeSpan? OldestAge { get; }
}

/// <summary>Which configuration the agent runs: a digest of its inputs and where they came from.</summary>
/// <param name="Digest">e.g. <c>sha256:3f2a…</c>, equal for equal inputs, so two agents can be compared.</param>
/// <param name="Source">e.g. <c>file /etc/sp/agent.yaml, 2 SP_ variables, 1 --set override</c>.</param>
public sealed record ConfigIdentity(string Digest, string Source);

/// <summary>
/// The facts <c>/status</c> reports on the admin port: whether the backend answers, the last
/// successful export, the export queue and buffer, the circuit, the cache and the configuration.
/// Read through small seams (the exporter's <see cref="ExportHealth"/>, <see cref="IExportBufferStatus"/>)
/// so each part owns its own facts.
/// </summary>
public sealed class AgentStatus
{
    private readonly OtlpExporter _exporter;
    private readonly AgentMetrics _metrics;
    private readonly ResponseStore? _cache;
    private readonly TimeProvider _time;
    private readonly GaugeFamily _configInfo;
    private ConfigIdentity? _config;

    /// <summary>Creates the status of an agent and registers <c>sp_config_info</c>.</summary>
    public AgentStatus(OtlpExporter exporter, AgentMetrics metrics, ResponseStore? cache, TimeProvider timeProvider)
    {
        _exporter = exporter ?? throw new ArgumentNullException(nameof(exporter));
        _metrics = metrics ?? throw new ArgumentNullException(nameof(metrics));
        _cache = cache;
        _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _configInfo = metrics.Registry.Gauge("sp_config_info", "1, labelled with the digest of the configuration the agent runs (compare agents by it).", "digest");
    }

    /// <summary>The configuration identity shown at <c>/status</c> and as <c>sp_config_info{digest}</c>; set by the host.</summary>
    public ConfigIdentity? Config
    {
        get => Volatile.Read(ref _config);
        set
        {
            Volatile.Write(ref _config, value);
            if (value is not null)
            {
                _configInfo.WithLabels(value.Digest).Set(1);
            }
        }
    }

    /// <summary>
    /// The export buffer, when one holds exchanges while the backend is away. Set by whoever
    /// creates it (the disk export buffer); null reports <c>"buffer": null</c>.
    /// </summary>
    public IExportBufferStatus? Buffer { get; set; }

    /// <summary>Exchanges the backend accepted, exchanges waiting (queue and buffer) and exchanges lost since start (for the shutdown line).</summary>
    public (long Delivered, long Buffered, long Lost) Totals()
    {
        var health = _exporter.Health.Snapshot();
        var buffered = (long)_metrics.ExportQueueDepth.Value + (Buffer?.Exchanges ?? 0);
        var lost = _metrics.ExportDropped.Value + _metrics.ExportSpansFailed.Value + _metrics.ExportSpansRejected.Value;
        return (health.DeliveredSpans, buffered, lost);
    }

    /// <summary>The <c>/status</c> document as UTF-8 JSON.</summary>
    public byte[] ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            var health = _exporter.Health.Snapshot();
            var now = _time.GetUtcNow();
            json.WriteStartObject();

            json.WriteStartObject("backend");
            json.WriteString("url", _exporter.Endpoint.GetLeftPart(UriPartial.Authority));
            if (health.BackendReachable is { } reachable)
            {
                json.WriteBoolean("reachable", reachable);
            }
            else
            {
                json.WriteNull("reachable");
            }

            WriteTime(json, "last_successful_export", health.LastSuccess);
            WriteAge(json, "last_successful_export_age_seconds", health.LastSuccess is { } success ? now - success : null);
            WriteTime(json, "last_attempt", health.LastAttempt);
            WriteStringOrNull(json, "last_error", health.LastError);
            json.WriteString("circuit", _exporter.CircuitState switch
            {
                BackendCircuitState.Closed => "closed",
                BackendCircuitState.Open => "open",
                _ => "half_open",
            });
            json.WriteEndObject();

            json.WriteStartObject("export");
            json.WriteNumber("queue_exchanges", (long)_metrics.ExportQueueDepth.Value);
            json.WriteNumber("delivered_spans", health.DeliveredSpans);
            json.WriteNumber("dropped_exchanges", _metrics.ExportDropped.Value);
            json.WriteNumber("failed_spans", _metrics.ExportSpansFailed.Value);
            json.WriteNumber("rejected_spans", _metrics.ExportSpansRejected.Value);
            if (Buffer is { } store)
            {
                json.WriteStartObject("buffer");
                json.WriteString("kind", store.Kind);
                json.WriteNumber("bytes", store.Bytes);
                json.WriteNumber("exchanges", store.Exchanges);
                WriteAge(json, "oldest_age_seconds", store.OldestAge);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("buffer");
            }

            json.WriteEndObject();

            if (_cache is not null)
            {
                json.WriteStartObject("cache");
                json.WriteNumber("entries", _cache.Count);
                json.WriteNumber("bytes", _cache.Bytes);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("cache");
            }

            if (Config is { } config)
            {
                json.WriteStartObject("config");
                json.WriteString("digest", config.Digest);
                json.WriteString("source", config.Source);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("config");
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteTime(Utf8JsonWriter json, string name, DateTimeOffset? value)
    {
        if (value is { } time)
        {
            json.WriteString(name, time.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteAge(Utf8JsonWriter json, string name, TimeSpan? age)
    {
        if (age is { } value)
        {
            json.WriteNumber(name, Math.Round(value.TotalSeconds, 3));
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteStringOrNull(Utf8JsonWriter json, string name, string? value)
    {
        if (value is null)
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteString(name, value);
        }
    }
}
