using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using SpIstio.Backend.Tests.Storage;
using Xunit.Abstractions;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// <c>sp backend</c> on a real PostgreSQL, crashed while OTLP clients export to it: the backend
/// with SIGKILL, or the database server as a crash stops it. Every span whose export was
/// acknowledged (200) is there afterwards, by trace and by text search; exports that were not
/// acknowledged may be missing.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SpBackendPostgresCrashTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private const int SpansPerExport = 20;

    [Fact]
    public async Task KillDashNine_EveryAcknowledgedSpanIsThereAfterRestart_AndSearchFindsIt()
    {
        string connectionString = await postgres.CreateDatabaseAsync();
        try
        {
            string store = "postgres:" + connectionString;
            string key = await CreateKeyAsync(store);
            var exporters = new Exporters(key);
            var backend = StartBackend(store);
            await using (backend)
            {
                using var http = new HttpClient { BaseAddress = await SpBackendTests.AddressAsync(backend) };
                exporters.Start(http);
                await exporters.WaitForAcknowledgedAsync(30);

                backend.KillHard();
                await exporters.StopAsync();
            }

            output.WriteLine(exporters.Describe());

            var restarted = StartBackend(store);
            await using (restarted)
            {
                using var http = new HttpClient { BaseAddress = await SpBackendTests.AddressAsync(restarted) };
                await AssertAcknowledgedAreStoredAsync(http, key, exporters.Acknowledged);
            }
        }
        finally
        {
            await postgres.DropDatabaseAsync(connectionString);
        }
    }

    [Fact]
    public async Task DatabaseServerCrash_AcknowledgedSpansAreKept_AndTheBackendReconnectsWithoutARestart()
    {
        // A server of this test's own: it is crashed, and commits must survive that (the shared
        // cluster's synchronous_commit=off would lose acknowledged ones).
        var server = await PostgresFixture.StartOwnClusterAsync();
        try
        {
            string store = "postgres:" + await server.CreateDatabaseAsync();
            string key = await CreateKeyAsync(store);
            var exporters = new Exporters(key);
            var backend = StartBackend(store);
            await using (backend)
            {
                using var http = new HttpClient { BaseAddress = await SpBackendTests.AddressAsync(backend) };
                exporters.Start(http);
                await exporters.WaitForAcknowledgedAsync(30);

                await server.CrashAsync();
                // The backend noticed: an export was refused rather than acknowledged.
                await exporters.WaitForRefusedAsync(1);
                await server.StartAgainAsync();
                int beforeRecovery = exporters.Acknowledged.Count;
                await exporters.WaitForAcknowledgedAsync(beforeRecovery + 30);
                await exporters.StopAsync();
                output.WriteLine(exporters.Describe() + ", " + beforeRecovery + " acknowledged before the server came back");

                Assert.False(backend.HasExited, "the backend exited: " + backend.Output);
                await AssertAcknowledgedAreStoredAsync(http, key, exporters.Acknowledged);
            }
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    private static SpChild StartBackend(string store) =>
        SpChild.Start("backend", "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--store", store);

    private static async Task<string> CreateKeyAsync(string store)
    {
        var run = await SpProcess.RunAsync("keys", "create", "--tenant", "acme", "--scope", "ingest,read", "--store", store);
        Assert.True(run.ExitCode == 0, run.StdErr);
        return run.StdOut.Trim();
    }

    /// <summary>
    /// Each acknowledged trace, whole, by the trace API; then, once the search indexer has caught
    /// up with a commit made after all of them, by a text search for the word only it carries.
    /// </summary>
    private static async Task AssertAcknowledgedAreStoredAsync(HttpClient http, string key, IReadOnlyCollection<ActivityTraceId> acknowledged)
    {
        foreach (var trace in acknowledged)
        {
            using var view = await GetJsonAsync(http, key, "/api/traces/" + trace.ToHexString());
            Assert.Equal(SpansPerExport, view.RootElement.GetProperty("spans").GetArrayLength());
        }

        // The indexer's watermark moves in row-id order: past a span committed now, it is past
        // every span committed before, the killed process's too.
        using (var marker = await SpBackendTests.PostAsync(http, key, Batch(ActivityTraceId.CreateRandom())))
        {
            Assert.Equal(HttpStatusCode.OK, marker.StatusCode);
        }

        await WaitForSearchIndexAsync(http);
        foreach (var trace in acknowledged)
        {
            using var found = await GetJsonAsync(http, key, "/api/traces?q=" + OrderWord(trace));
            var traces = found.RootElement.GetProperty("items");
            Assert.Equal(1, traces.GetArrayLength());
            Assert.Equal(trace.ToHexString(), traces[0].GetProperty("traceId").GetString());
        }
    }

    private static async Task<JsonDocument> GetJsonAsync(HttpClient http, string key, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("x-public-key", key);
        using var response = await http.SendAsync(request);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, path + ": " + (int)response.StatusCode + " " + body);
        return JsonDocument.Parse(body);
    }

    /// <summary>
    /// Waits until /metrics says the search indexer has caught up with this process's commits: the
    /// indexer's progress is the signal (a separate process has no other), read until it says so.
    /// </summary>
    private static async Task WaitForSearchIndexAsync(HttpClient http)
    {
        var deadline = Stopwatch.StartNew();
        string metrics;
        do
        {
            metrics = await http.GetStringAsync("/metrics");
            if (metrics.Contains("\nsp_search_index_lag_seconds 0\n", StringComparison.Ordinal)
                && metrics.Contains("\nsp_search_index_behind_spans 0\n", StringComparison.Ordinal))
            {
                return;
            }

            await Task.Delay(50);
        }
        while (deadline.Elapsed < TimeSpan.FromSeconds(60));

        Assert.Fail("the search indexer did not catch up in 60 s: " + string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("sp_search_index", StringComparison.Ordinal))));
    }

    // A word of the URL that only this trace's spans carry: an order id a user would search for.
    private static string OrderWord(ActivityTraceId trace) => "ord" + trace.ToHexString()[..20];

    private static byte[] Batch(ActivityTraceId trace) =>
        SpBackendTests.Batch(trace, SpansPerExport, "/api/orders/" + OrderWord(trace) + "/items/");

    /// <summary>Four OTLP/HTTP exporters sending one trace an export, without pause, until stopped or the backend is gone.</summary>
    private sealed class Exporters(string key)
    {
        private readonly ConcurrentBag<ActivityTraceId> _acknowledged = [];
        private readonly CancellationTokenSource _stop = new();
        private Task[] _senders = [];
        private int _refused;

        // Completed (and replaced) on every answer, so a wait wakes on the answer that may reach its count.
        private TaskCompletionSource _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IReadOnlyCollection<ActivityTraceId> Acknowledged => _acknowledged;

        public string Describe() => _acknowledged.Count + " exports acknowledged, " + Volatile.Read(ref _refused) + " refused";

        public void Start(HttpClient http) => _senders = [.. Enumerable.Range(0, 4).Select(_ => Task.Run(() => SendAsync(http)))];

        public Task WaitForAcknowledgedAsync(int count) => WaitForAsync(() => _acknowledged.Count >= count, count + " acknowledged exports");

        public Task WaitForRefusedAsync(int count) => WaitForAsync(() => Volatile.Read(ref _refused) >= count, count + " refused exports");

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_senders);
        }

        private async Task SendAsync(HttpClient http)
        {
            while (!_stop.IsCancellationRequested)
            {
                var trace = ActivityTraceId.CreateRandom();
                try
                {
                    using var response = await SpBackendTests.PostAsync(http, key, Batch(trace));
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        _acknowledged.Add(trace);
                    }
                    else
                    {
                        Interlocked.Increment(ref _refused);
                    }

                    Interlocked.Exchange(ref _answered, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                }
                catch (HttpRequestException)
                {
                    return; // the backend is gone
                }
            }
        }

        /// <summary>Waits on the exporters' answers (or their end) until <paramref name="reached"/>; 90 s without one fails.</summary>
        private async Task WaitForAsync(Func<bool> reached, string what)
        {
            var allEnded = Task.WhenAll(_senders);
            while (true)
            {
                var answered = Volatile.Read(ref _answered).Task;
                if (reached())
                {
                    return;
                }

                if (allEnded.IsCompleted)
                {
                    Assert.Fail("no " + what + ", the exporters stopped: " + Describe());
                }

                try
                {
                    await Task.WhenAny(answered, allEnded).WaitAsync(TimeSpan.FromSeconds(90));
                }
                catch (TimeoutException)
                {
                    Assert.Fail("no " + what + " and no answer in 90 s: " + Describe());
                }
            }
        }
    }
}
