using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.EndToEnd.Tests;

/// <summary><c>sp backend</c> and <c>sp keys</c> as separate processes on a SQLite file.</summary>
public sealed class SpBackendTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-e2e-" + Guid.NewGuid().ToString("N"));

    private string Store => "sqlite:" + Path.Combine(_directory, "data", "sp.db");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task KillDashNine_EveryAcknowledgedSpanIsThereAfterRestart()
    {
        var key = await CreateKeyAsync("acme", "ingest,read");
        var acknowledged = new ConcurrentBag<ActivityTraceId>();
        var backend = SpChild.Start("backend", "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--store", Store);
        await using (backend)
        {
            var address = await AddressAsync(backend);
            using var http = new HttpClient { BaseAddress = address };
            using var stop = new CancellationTokenSource();
            // Four exporters send 20-span batches without pause; the process is killed mid-stream.
            var senders = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var trace = ActivityTraceId.CreateRandom();
                    try
                    {
                        using var response = await PostAsync(http, key, Batch(trace, 20));
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            acknowledged.Add(trace);
                        }
                    }
                    catch (HttpRequestException)
                    {
                        return; // the backend is gone
                    }
                }
            })).ToArray();

            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (acknowledged.Count < 30 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            backend.KillHard();
            stop.Cancel();
            await Task.WhenAll(senders);
        }

        Assert.True(acknowledged.Count >= 30, "only " + acknowledged.Count + " exports were acknowledged");
        var restarted = SpChild.Start("backend", "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--store", Store);
        await using (restarted)
        {
            using var http = new HttpClient { BaseAddress = await AddressAsync(restarted) };
            foreach (var trace in acknowledged)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/api/traces/" + trace.ToHexString());
                request.Headers.Add("x-public-key", key);
                using var response = await http.SendAsync(request);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                using var view = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                Assert.Equal(20, view.RootElement.GetProperty("spans").GetArrayLength());
            }
        }
    }

    [Fact]
    public async Task KeysCreate_PrintsAKeyThatWorks_ListShowsIt_RevokeStopsIt()
    {
        var key = await CreateKeyAsync("acme", "ingest");
        var keyId = key.Split('_')[1];

        var list = await SpProcess.RunAsync("keys", "list", "--tenant", "acme", "--store", Store);
        Assert.Equal(0, list.ExitCode);
        Assert.Contains(keyId, list.StdOut, StringComparison.Ordinal);
        Assert.Contains("ingest", list.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain(key, list.StdOut, StringComparison.Ordinal);

        var backend = SpChild.Start("backend", "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--store", Store);
        await using (backend)
        {
            using var http = new HttpClient { BaseAddress = await AddressAsync(backend) };
            using var accepted = await PostAsync(http, key, Batch(ActivityTraceId.CreateRandom(), 1));
            using var unknown = await PostAsync(http, key + "x", Batch(ActivityTraceId.CreateRandom(), 1));
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        }

        var revoke = await SpProcess.RunAsync("keys", "revoke", keyId, "--tenant", "acme", "--store", Store);
        Assert.Equal(0, revoke.ExitCode);
        var again = SpChild.Start("backend", "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--store", Store);
        await using (again)
        {
            using var http = new HttpClient { BaseAddress = await AddressAsync(again) };
            using var refused = await PostAsync(http, key, Batch(ActivityTraceId.CreateRandom(), 1));
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }
    }

    [Fact]
    public async Task KeysCreate_WithBadInput_ListsEveryProblem()
    {
        var run = await SpProcess.RunAsync("keys", "create", "--tenant", "Not Valid", "--scope", "write", "--store", Store);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("error: tenant: 'Not Valid'", run.StdErr, StringComparison.Ordinal);
        Assert.Contains("error: scope: 'write'", run.StdErr, StringComparison.Ordinal);
        Assert.Equal("", run.StdOut);
    }

    [Fact]
    public async Task FirstStart_PrintsTheDefaultKeyOnce_AndSigtermDrainsAndExitsZero()
    {
        var first = SpChild.Start("backend", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--store", Store);
        string key;
        await using (first)
        {
            var address = await AddressAsync(first);
            key = (await first.WaitForLineAsync(l => l.StartsWith("  sp_", StringComparison.Ordinal))).Trim();
            Assert.Contains(first.Lines, l => l.StartsWith("OTLP/gRPC on http://127.0.0.1:", StringComparison.Ordinal));
            using var http = new HttpClient { BaseAddress = address };
            using var accepted = await PostAsync(http, key, Batch(ActivityTraceId.CreateRandom(), 3));
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);

            first.Terminate();

            Assert.Equal(0, await first.WaitForExitAsync());
            Assert.Contains("stopped", first.Lines);
        }

        Assert.True(File.Exists(Path.Combine(_directory, "data", "sp.db")));
        var second = SpChild.Start("backend", "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--store", Store);
        await using (second)
        {
            await AddressAsync(second);
            Assert.DoesNotContain(second.Lines, l => l.Contains("sp_", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task KeysAndTenants_RefuseAMissingStore_NameTheStoreUsed_AndManageRetention()
    {
        var refused = await SpProcess.RunAsync("keys", "create", "--tenant", "acme", "--scope", "read", "--store", Store);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("does not exist", refused.StdErr, StringComparison.Ordinal);
        Assert.Contains("--create-store", refused.StdErr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_directory, "data", "sp.db")));

        var created = await SpProcess.RunAsync("tenants", "create", "acme", "--retention", "7d", "--store", Store, "--create-store");
        Assert.Equal(0, created.ExitCode);
        Assert.Contains("store: sqlite:" + Path.Combine(_directory, "data", "sp.db") + " (from --store)", created.StdErr, StringComparison.Ordinal);

        var set = await SpProcess.RunAsync("tenants", "set-retention", "acme", "30d", "--store", Store);
        Assert.Equal(0, set.ExitCode);
        var list = await SpProcess.RunAsync("tenants", "list", "--store", Store);
        Assert.Equal(0, list.ExitCode);
        Assert.Matches(@"(?m)^acme\s+30d\s", list.StdOut);

        var unknown = await SpProcess.RunAsync("tenants", "set-retention", "nobody", "1d", "--store", Store);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("tenant 'nobody' does not exist", unknown.StdErr, StringComparison.Ordinal);
    }

    private async Task<string> CreateKeyAsync(string tenant, string scope)
    {
        var run = await SpProcess.RunAsync("keys", "create", "--tenant", tenant, "--scope", scope, "--store", Store, "--create-store");
        Assert.Equal(0, run.ExitCode);
        var key = run.StdOut.Trim();
        Assert.Matches("^sp_[a-z2-7]{12}_[0-9A-Za-z]{32}$", key);
        Assert.Contains("shown only this once", run.StdErr, StringComparison.Ordinal);
        return key;
    }

    internal static async Task<Uri> AddressAsync(SpChild backend)
    {
        var line = await backend.WaitForLineAsync(l => l.StartsWith("sp backend listening on ", StringComparison.Ordinal));
        var url = line["sp backend listening on ".Length..].Split(' ')[0];
        return new Uri(url);
    }

    internal static async Task<HttpResponseMessage> PostAsync(HttpClient http, string key, byte[] body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        request.Headers.Add("x-public-key", key);
        return await http.SendAsync(request);
    }

    /// <summary>An OTLP/HTTP export of <paramref name="spans"/> spans of one trace, their paths under <paramref name="pathPrefix"/>.</summary>
    internal static byte[] Batch(ActivityTraceId trace, int spans, string pathPrefix = "/api/items/")
    {
        var now = DateTimeOffset.UtcNow;
        var exchanges = new List<Exchange>(spans);
        for (var i = 0; i < spans; i++)
        {
            exchanges.Add(new Exchange
            {
                ServiceName = "checkout",
                Method = "GET",
                Authority = "checkout:8080",
                Path = pathPrefix + i.ToString(CultureInfo.InvariantCulture),
                StatusCode = 200,
                TraceId = trace,
                SpanId = ActivitySpanId.CreateRandom(),
                StartTime = now,
                EndTime = now.AddMilliseconds(3),
                SessionId = "e2e",
            });
        }

        return ExchangeSpanMapper.ToExportRequest(exchanges, null, "e2e").ToByteArray();
    }
}
