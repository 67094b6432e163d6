using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Agent.Tests.Infrastructure;

/// <summary>
/// A real backend on a SQLite file in a temp folder, with an ingest key for one tenant: what an
/// agent exported (to an <see cref="OtlpReceiver"/>, where the test reads the spans as sent) goes
/// through the backend's OTLP ingest into the store, and is read back as stored.
/// </summary>
public sealed class StoringBackend : IAsyncDisposable
{
    private const string TenantName = "acme";
    private readonly string _directory;
    private readonly BackendServer _server;
    private readonly long _tenant;

    private StoringBackend(string directory, BackendServer server, long tenant, string ingestKey)
    {
        _directory = directory;
        _server = server;
        _tenant = tenant;
        IngestKey = ingestKey;
    }

    /// <summary>An ingest key of the tenant.</summary>
    public string IngestKey { get; }

    /// <summary>Starts the backend and creates the tenant's ingest key.</summary>
    public static async Task<StoringBackend> StartAsync()
    {
        var directory = Path.Combine(Path.GetTempPath(), "sp-agent-store-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        var server = await BackendServer.StartAsync(new BackendOptions { Listen = "127.0.0.1:0", Store = "sqlite:" + Path.Combine(directory, "sp.db") });
        var key = await KeyAdministration.CreateKeyAsync(server.Store, TenantName, KeyScope.Ingest, null, TimeProvider.System, CancellationToken.None);
        var tenant = await server.Store.FindTenantAsync(TenantName, CancellationToken.None) ?? throw new InvalidOperationException("no tenant " + TenantName);
        return new StoringBackend(directory, server, tenant.Id, key.Key);
    }

    /// <summary>
    /// Posts what an agent exported (the bytes and content headers <paramref name="export"/> arrived
    /// with) to the backend's OTLP ingest, which answers once it stored them, and reads
    /// <paramref name="span"/> back from the store in full (bodies included).
    /// </summary>
    public async Task<StoredSpan> StoreAsync(ReceivedExport export, OtlpSpan span)
    {
        using var client = new HttpClient { BaseAddress = _server.Address };
        using var content = new ByteArrayContent(export.Body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(export.Header("content-type") ?? "application/x-protobuf");
        if (export.Header("content-encoding") is { } encoding)
        {
            content.Headers.ContentEncoding.Add(encoding);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = content };
        request.Headers.Add("x-public-key", IngestKey);
        using var response = await client.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var stored = await _server.Store.GetSpanAsync(_tenant, Convert.ToHexStringLower(span.TraceId.Span), Convert.ToHexStringLower(span.SpanId.Span), CancellationToken.None);
        Assert.NotNull(stored);
        return stored;
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
