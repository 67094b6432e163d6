using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.Replay;
using SpIstio.Backend.Tests.Storage;

namespace SpIstio.Backend.Tests.Hosting;

/// <summary>Replay jobs with two backends on one PostgreSQL: every job runs on exactly one of them, and both show every job's progress and report.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ReplayJobReplicasTests(PostgresFixture postgres)
{
    [Fact]
    public async Task JobsQueuedOnEitherReplica_RunOnceEach_AndBothShowTheirReports()
    {
        var connection = await postgres.CreateDatabaseAsync();
        try
        {
            var spec = "postgres:" + connection;
            BackendOptions Options() => new() { Listen = "127.0.0.1:0", GrpcListen = null, Store = spec };
            var started = await Task.WhenAll(BackendServer.StartAsync(Options()), BackendServer.StartAsync(Options()));
            await using var first = started[0];
            await using var second = started[1];
            await using var target = await ReplayTarget.StartAsync();
            string key;
            await using (var admin = SpanStoreFactory.Open(spec, NullLoggerFactory.Instance))
            {
                key = (await KeyAdministration.CreateKeyAsync(admin, "acme", KeyScope.Ingest | KeyScope.Read | KeyScope.Admin, null, TimeProvider.System, CancellationToken.None)).Key;
            }

            using var toFirst = new HttpClient { BaseAddress = first.Address };
            using var toSecond = new HttpClient { BaseAddress = second.Address };
            foreach (var client in new[] { toFirst, toSecond })
            {
                client.DefaultRequestHeaders.Add("x-public-key", key);
            }

            using (var content = new ByteArrayContent(ReplayTarget.RecordedJourney(ReplayJobsApiTests.Session).ToByteArray()))
            {
                content.Headers.ContentType = new("application/x-protobuf");
                using var ingest = await toFirst.PostAsync("/v1/traces", content);
                Assert.Equal(HttpStatusCode.OK, ingest.StatusCode);
            }

            const int Jobs = 6;
            var ids = new List<long>();
            for (var i = 0; i < Jobs; i++)
            {
                using var start = await (i % 2 == 0 ? toFirst : toSecond).PostAsJsonAsync("/api/replays", new { sessionId = ReplayJobsApiTests.Session, target = target.Address.ToString() });
                Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
                ids.Add((await start.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64());
            }

            // Waits on each job's recorded status, asking the replica that did not queue it.
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            for (var i = 0; i < Jobs; i++)
            {
                JsonElement job;
                while ((job = await (i % 2 == 0 ? toSecond : toFirst).GetFromJsonAsync<JsonElement>("/api/replays/" + ids[i], patience.Token)).GetProperty("status").GetString() is "queued" or "running")
                {
                    await Task.Delay(50, patience.Token);
                }

                Assert.Equal("done", job.GetProperty("status").GetString());
                Assert.Equal(2, job.GetProperty("report").GetProperty("results").GetArrayLength());
            }

            // Each job sent its two requests once: no job ran on both replicas.
            Assert.Equal(Jobs * 2, target.Requests);
            Assert.Equal(Jobs, target.IssuedIds.Count);
        }
        finally
        {
            await postgres.DropDatabaseAsync(connection);
        }
    }
}
