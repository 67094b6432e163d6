using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Infrastructure;

namespace SpIstio.Backend.Tests.Hosting;

public sealed class BackendServerTests : IDisposable
{
    private readonly string _directory = BackendFixture.NewDirectory();

    private string Spec => "sqlite:" + Path.Combine(_directory, "sp.db");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void Validate_ListsEveryProblemNamingTheOption()
    {
        var options = new BackendOptions
        {
            Listen = "nowhere",
            GrpcListen = "127.0.0.1:99999",
            Store = "mysql:x",
            MaxBodyBytes = 10,
            MaxAttributeBytes = 10,
            ReadBudgetBytes = 10,
            IngestBudgetBytes = 10,
            QueueCapacity = 0,
            Retention = TimeSpan.FromSeconds(5),
        };

        var problems = options.Validate();

        Assert.Equal(9, problems.Count);
        Assert.Equal(["listen", "grpc-listen", "store", "max-body-bytes", "max-attribute-bytes", "read-budget-bytes", "ingest-budget-bytes", "queue-capacity", "retention"], problems.Select(p => p[..p.IndexOf(':')]));
        var thrown = Assert.Throws<BackendOptionsException>(options.ValidateOrThrow);
        Assert.Equal(problems, thrown.Problems);
    }

    [Theory]
    [InlineData("127.0.0.1:8090", "127.0.0.1", 8090)]
    [InlineData("[::1]:0", "::1", 0)]
    [InlineData(":4318", "::", 4318)]
    [InlineData("*:4318", "::", 4318)]
    public void ListenAddress_ParsesHostAndPort(string text, string ip, int port)
    {
        Assert.True(ListenAddress.TryParse(text, out var address));
        Assert.Equal(IPAddress.Parse(ip), address.Address);
        Assert.Equal(port, address.Port);
    }

    [Fact]
    public async Task FirstStart_CreatesTheDefaultTenantAndAKeyThatWorks_LaterStartsDoNot()
    {
        Directory.CreateDirectory(_directory);
        var options = new BackendOptions { Listen = "127.0.0.1:0", Store = Spec };

        string key;
        await using (var first = await BackendServer.StartAsync(options))
        {
            key = Assert.IsType<string>(first.BootstrapKey);
            using var http = new HttpClient { BaseAddress = first.Address };
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/sessions");
            request.Headers.Add("x-public-key", key);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await using var second = await BackendServer.StartAsync(options);
        Assert.Null(second.BootstrapKey);
        Assert.Null(second.GrpcAddress);
    }

    [Fact]
    public async Task FirstStart_OnABusyPort_CreatesNoKey_AndTheNextStartStillPrintsOne()
    {
        Directory.CreateDirectory(_directory);
        using var busy = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        var port = ((IPEndPoint)busy.LocalEndpoint).Port;

        await Assert.ThrowsAnyAsync<SpIstio.Core.Startup.StartupException>(() => BackendServer.StartAsync(
            new BackendOptions { Listen = "127.0.0.1:" + port.ToString(System.Globalization.CultureInfo.InvariantCulture), Store = Spec }));

        await using var next = await BackendServer.StartAsync(new BackendOptions { Listen = "127.0.0.1:0", Store = Spec });
        Assert.StartsWith(ApiKeys.Prefix, Assert.IsType<string>(next.BootstrapKey), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DemoMode_AcceptsTheFixedKey_OtherwiseItIsRefused()
    {
        Directory.CreateDirectory(_directory);
        await using (var demo = await BackendServer.StartAsync(new BackendOptions { Listen = "127.0.0.1:0", Store = Spec, Demo = true }))
        {
            Assert.Equal(HttpStatusCode.OK, await GetSessionsAsync(demo.Address, ApiKeys.DemoKey));
        }

        await using var normal = await BackendServer.StartAsync(new BackendOptions { Listen = "127.0.0.1:0", Store = Spec });
        Assert.Equal(HttpStatusCode.Unauthorized, await GetSessionsAsync(normal.Address, ApiKeys.DemoKey));
    }

    [Fact]
    public async Task RetentionJob_RunsAtStart_AndDeletesSpansOlderThanTheRetention()
    {
        Directory.CreateDirectory(_directory);
        var store = SpanStoreFactory.Open(Spec, NullLoggerFactory.Instance);
        await using var _ = store;
        await store.MigrateAsync(CancellationToken.None);
        var tenant = await store.EnsureTenantAsync("acme", CancellationToken.None);
        var now = DateTimeOffset.UtcNow;
        await store.InsertSpansAsync(tenant.Id, [Span("a", now.AddHours(-3)), Span("b", now.AddMinutes(-5))], CancellationToken.None);

        await using var server = await BackendServer.StartAsync(new BackendOptions { Listen = "127.0.0.1:0", Store = Spec, Retention = TimeSpan.FromHours(1) }, store: store);

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline && (await store.GetTraceAsync(tenant.Id, new string('a', 32), CancellationToken.None)).Count > 0)
        {
            await Task.Delay(50);
        }

        Assert.Empty(await store.GetTraceAsync(tenant.Id, new string('a', 32), CancellationToken.None));
        Assert.Single(await store.GetTraceAsync(tenant.Id, new string('b', 32), CancellationToken.None));
    }

    [Fact]
    public async Task Stop_CommitsWhatIsQueued_AndClosesTheListener()
    {
        await using var backend = await BackendFixture.StartAsync();
        var address = backend.Server.Address;

        await backend.Server.StopAsync();

        using var http = new HttpClient { BaseAddress = address };
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/healthz"));
        Assert.Equal(0, backend.Server.Metrics.QueueDepth.Value);
    }

    private static async Task<HttpStatusCode> GetSessionsAsync(Uri address, string key)
    {
        using var http = new HttpClient { BaseAddress = address };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/sessions");
        request.Headers.Add("x-public-key", key);
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    private static StoredSpan Span(string id, DateTimeOffset start) => new()
    {
        TraceId = new string(id[0], 32),
        SpanId = new string(id[0], 16),
        Name = "old",
        ServiceName = "svc",
        StartTime = start,
        EndTime = start.AddMilliseconds(1),
    };
}
