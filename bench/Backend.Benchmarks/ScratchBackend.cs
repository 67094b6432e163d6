using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Hosting;

/// <summary>
/// A backend on SQLite in a folder of its own, served in this process (the same server
/// <c>sp backend</c> starts), with a client and the first-start key; disposing stops it and
/// deletes the folder. The memory benches' subject: the process's RSS is the server's.
/// </summary>
internal sealed class ScratchBackend : IAsyncDisposable
{
    private readonly string _folder;

    private ScratchBackend(string folder, BackendServer server, int connections)
    {
        _folder = folder;
        Server = server;
        Http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections }) { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(5) };
    }

    public BackendServer Server { get; }

    public HttpClient Http { get; }

    public string Key => Server.BootstrapKey!;

    /// <summary>Starts a backend with the defaults, as <paramref name="configure"/> changes them, and a client of up to <paramref name="connections"/> connections.</summary>
    public static async Task<ScratchBackend> StartAsync(string name, Func<BackendOptions, BackendOptions> configure, int connections)
    {
        string folder = Path.Combine(Path.GetTempPath(), "sp-bench-" + name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        try
        {
            var options = configure(new BackendOptions { Listen = "127.0.0.1:0", GrpcListen = null, Store = "sqlite:" + Path.Combine(folder, "sp.db") });
            return new ScratchBackend(folder, await BackendServer.StartAsync(options, NullLoggerFactory.Instance), connections);
        }
        catch
        {
            Directory.Delete(folder, recursive: true);
            throw;
        }
    }

    /// <summary>Posts <paramref name="body"/> (an OTLP protobuf ExportTraceServiceRequest) to /v1/traces with the first-start key.</summary>
    public async Task<HttpResponseMessage> PostExportAsync(byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/x-protobuf");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = content };
        request.Headers.Add("x-public-key", Key);
        return await Http.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Directory.Delete(_folder, recursive: true);
    }
}
