using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Storage.Retention;
using SpIstio.Backend.Tests.Storage;
using static SpIstio.Backend.Tests.Infrastructure.OtlpRequests;

namespace SpIstio.Backend.Tests.Hosting;

/// <summary>Two backends on one PostgreSQL: they start (and migrate) together, ingest together, both answer for everything, and one retention pass runs at a time.</summary>
[Collection(PostgresCollection.Name)]
public sealed class TwoReplicasTests(PostgresFixture postgres)
{
    [Fact]
    public async Task TwoBackendsOnOneDatabase_MigrateTogether_IngestConcurrently_AndBothSeeEverything()
    {
        var connection = await postgres.CreateDatabaseAsync();
        var spec = "postgres:" + connection;
        try
        {
            BackendOptions Options() => new() { Listen = "127.0.0.1:0", GrpcListen = null, Store = spec };

            // Started at once on an empty database: both run the migrations, serialised by the store's lock.
            var started = await Task.WhenAll(BackendServer.StartAsync(Options()), BackendServer.StartAsync(Options()));
            await using var first = started[0];
            await using var second = started[1];
            string key;
            await using (var admin = SpanStoreFactory.Open(spec, NullLoggerFactory.Instance))
            {
                key = (await KeyAdministration.CreateKeyAsync(admin, "acme", KeyScope.Ingest | KeyScope.Read, null, TimeProvider.System, CancellationToken.None)).Key;
            }

            using var toFirst = new HttpClient { BaseAddress = first.Address };
            using var toSecond = new HttpClient { BaseAddress = second.Address };
            var traces = Enumerable.Range(0, 20).Select(_ => ActivityTraceId.CreateRandom()).ToList();
            var answers = await Task.WhenAll(traces.Select((trace, i) =>
                PostAsync(i % 2 == 0 ? toFirst : toSecond, key, Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom()), GenericSpan(trace, ActivitySpanId.CreateRandom())))));

            Assert.All(answers, status => Assert.Equal(HttpStatusCode.OK, status));
            foreach (var client in new[] { toFirst, toSecond })
            {
                foreach (var trace in traces)
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, "/api/traces/" + trace.ToHexString());
                    request.Headers.Add("x-public-key", key);
                    using var response = await client.SendAsync(request);
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    using var view = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                    Assert.Equal(2, view.RootElement.GetProperty("spans").GetArrayLength());
                }
            }
        }
        finally
        {
            await postgres.DropDatabaseAsync(connection);
        }
    }

    [Fact]
    public async Task ARetentionPass_RunsOnOneReplicaAtATime_AndTheOtherSkips()
    {
        var connection = await postgres.CreateDatabaseAsync();
        try
        {
            var spec = "postgres:" + connection;
            await using var storeA = SpanStoreFactory.Open(spec, NullLoggerFactory.Instance);
            await using var storeB = SpanStoreFactory.Open(spec, NullLoggerFactory.Instance);
            await storeA.MigrateAsync(CancellationToken.None);
            var tenant = await storeA.EnsureTenantAsync("acme", CancellationToken.None);
            await storeA.InsertSpansAsync(tenant.Id, [TestSpans.Exchange(1, 1, start: DateTimeOffset.UtcNow.AddDays(-30))], CancellationToken.None);
            var retentionB = new RetentionService(storeB, new RetentionOptions(), TimeProvider.System, NullLogger<RetentionService>.Instance);

            var claim = await storeA.TryClaimRetentionAsync(CancellationToken.None);
            Assert.NotNull(claim);
            var skipped = await retentionB.RunOnceAsync(CancellationToken.None);
            await claim!.DisposeAsync();
            var ran = await retentionB.RunOnceAsync(CancellationToken.None);

            Assert.True(skipped.Skipped);
            Assert.Equal(0, skipped.DeletedByAge);
            Assert.False(ran.Skipped);
            Assert.Equal(1, ran.DeletedByAge);
        }
        finally
        {
            await postgres.DropDatabaseAsync(connection);
        }
    }

    private static async Task<HttpStatusCode> PostAsync(HttpClient client, string key, SpIstio.Core.Otlp.Proto.Collector.Trace.ExportTraceServiceRequest export)
    {
        using var content = new ByteArrayContent(export.ToByteArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = content };
        request.Headers.Add("x-public-key", key);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }
}
