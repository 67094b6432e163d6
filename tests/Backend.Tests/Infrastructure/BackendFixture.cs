using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Infrastructure;

/// <summary>
/// A real backend on 127.0.0.1 port 0 over a real SQLite file in a temporary folder, with keys
/// for two tenants (acme: ingest+read, ingest only, read only; globex: ingest+read).
/// </summary>
internal sealed class BackendFixture : IAsyncDisposable
{
    private readonly string _directory;
    private readonly ISpanStore _store;

    private BackendFixture(string directory, ISpanStore store, BackendServer server)
    {
        _directory = directory;
        _store = store;
        Server = server;
        Http = new HttpClient { BaseAddress = server.Address };
    }

    public BackendServer Server { get; }

    public HttpClient Http { get; }

    /// <summary>The store as the test sees it (the real SQLite store, possibly wrapped by the test).</summary>
    public ISpanStore Store => _store;

    /// <summary>Completes once everything committed so far is searchable by text (the indexer runs after the commit).</summary>
    public Task SearchableAsync() => ((ISearchIndexProgress)Server.Store).WaitForSearchAsync(CancellationToken.None);

    public long AcmeId { get; private set; }

    public long GlobexId { get; private set; }

    public string AcmeKey { get; private set; } = "";

    public string AcmeIngestOnlyKey { get; private set; } = "";

    public string AcmeReadOnlyKey { get; private set; } = "";

    public string GlobexKey { get; private set; } = "";

    public static string NewDirectory() => Path.Combine(Path.GetTempPath(), "sp-backend-" + Guid.NewGuid().ToString("N"));

    /// <summary>Starts a backend; <paramref name="wrap"/> may decorate the real store (a commit gate).</summary>
    public static async Task<BackendFixture> StartAsync(
        Func<BackendOptions, BackendOptions>? configure = null,
        Func<ISpanStore, ISpanStore>? wrap = null,
        ILoggerFactory? loggerFactory = null)
    {
        var directory = NewDirectory();
        Directory.CreateDirectory(directory);
        var spec = "sqlite:" + Path.Combine(directory, "sp.db");
        var real = SpanStoreFactory.Open(spec, NullLoggerFactory.Instance);
        await real.MigrateAsync(CancellationToken.None);
        var store = wrap is null ? real : wrap(real);
        var options = new BackendOptions { Listen = "127.0.0.1:0", GrpcListen = "127.0.0.1:0", Store = spec };
        options = configure?.Invoke(options) ?? options;
        var server = await BackendServer.StartAsync(options, loggerFactory, store: store);
        var fixture = new BackendFixture(directory, store, server);
        await fixture.CreateKeysAsync();
        return fixture;
    }

    public HttpRequestMessage Request(HttpMethod method, string path, string? key)
    {
        var request = new HttpRequestMessage(method, path);
        if (key is not null)
        {
            request.Headers.Add("x-public-key", key);
        }

        return request;
    }

    public async Task<HttpResponseMessage> GetAsync(string path, string? key)
    {
        using var request = Request(HttpMethod.Get, path, key);
        return await Http.SendAsync(request);
    }

    public async Task<HttpResponseMessage> PostAsync(string path, string? key, byte[] body, string contentType, string? contentEncoding = null)
    {
        using var request = Request(HttpMethod.Post, path, key);
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        if (contentEncoding is not null)
        {
            request.Content.Headers.ContentEncoding.Add(contentEncoding);
        }

        return await Http.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.StopAsync();
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private async Task CreateKeysAsync()
    {
        var time = TimeProvider.System;
        var acme = await KeyAdministration.CreateKeyAsync(_store, "acme", KeyScope.Ingest | KeyScope.Read, null, time, CancellationToken.None);
        AcmeId = acme.Tenant.Id;
        AcmeKey = acme.Key;
        AcmeIngestOnlyKey = (await KeyAdministration.CreateKeyAsync(_store, "acme", KeyScope.Ingest, null, time, CancellationToken.None)).Key;
        AcmeReadOnlyKey = (await KeyAdministration.CreateKeyAsync(_store, "acme", KeyScope.Read, null, time, CancellationToken.None)).Key;
        var globex = await KeyAdministration.CreateKeyAsync(_store, "globex", KeyScope.Ingest | KeyScope.Read, null, time, CancellationToken.None);
        GlobexId = globex.Tenant.Id;
        GlobexKey = globex.Key;
    }
}
