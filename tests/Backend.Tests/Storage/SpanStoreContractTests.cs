using System.Security.Cryptography;
using System.Text;
using SpIstio.Backend.Storage;
using static SpIstio.Backend.Tests.Storage.TestSpans;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>
/// The behaviour every <see cref="ISpanStore"/> promises, run against each implementation by a
/// subclass that supplies a fresh, migrated, empty store per test.
/// </summary>
public abstract partial class SpanStoreContractTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;

    protected ISpanStore Store { get; private set; } = null!;

    /// <summary>A new, empty store; the same database again when <paramref name="reopen"/> is true.</summary>
    protected abstract Task<ISpanStore> OpenStoreAsync(bool reopen);

    public async Task InitializeAsync()
    {
        Store = await OpenStoreAsync(reopen: false);
        await Store.MigrateAsync(None);
    }

    public async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        await CleanUpAsync();
    }

    protected virtual Task CleanUpAsync() => Task.CompletedTask;

    private async Task<long> TenantAsync(string name = "acme") => (await Store.EnsureTenantAsync(name, None)).Id;

    // Text search is indexed after the commit: a test that searches waits for the indexer first.
    private Task SearchableAsync() => ((ISearchIndexProgress)Store).WaitForSearchAsync(None);

    [Fact]
    public async Task A_full_exchange_round_trips_with_byte_identical_bodies()
    {
        long tenant = await TenantAsync();
        var json = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 200).Select(i => $"{{\"flight\":{i},\"to\":\"Paris\"}},")));
        var binary = new byte[3000];
        new Random(7).NextBytes(binary);
        binary[10] = 0;
        var span = Exchange(1, 1, session: "s-1", responseText: null) with
        {
            ParentSpanId = Span(9),
            Query = "page=2&q=x",
            Path = "/api/flights/42",
            Route = "/api/flights/{id}",
            StatusCode = 201,
            RequestHeadersJson = """[["accept","application/json"],["x-multi","a"],["x-multi","b"]]""",
            ResponseHeadersJson = """[["content-type","image/png"]]""",
            RequestBody = json,
            ResponseBody = binary,
            AttributesJson = """{"sp.request.body.truncated":false,"http.response.body.size":3000,"note":"é"}""",
        };

        Assert.Equal(1, await Store.InsertSpansAsync(tenant, [span], None));
        var stored = await Store.GetSpanAsync(tenant, span.TraceId, span.SpanId, None);

        Assert.NotNull(stored);
        Assert.Equal(json, stored.RequestBody.ToArray());
        Assert.Equal(binary, stored.ResponseBody.ToArray());
        Assert.Equal(span with { RequestBody = default, ResponseBody = default }, stored with { RequestBody = default, ResponseBody = default });
    }

    [Fact]
    public async Task Empty_texts_are_stored_as_empty_not_as_missing()
    {
        // OTLP allows an empty span name; a store must not turn it into NULL (name is NOT NULL).
        long tenant = await TenantAsync();
        var span = Exchange(1, 1) with { Name = string.Empty, Query = string.Empty, Route = string.Empty };

        Assert.Equal(1, await Store.InsertSpansAsync(tenant, [span], None));
        var stored = await Store.GetSpanAsync(tenant, span.TraceId, span.SpanId, None);

        Assert.Equal(string.Empty, stored!.Name);
        Assert.Equal(string.Empty, stored.Query);
        Assert.Equal(string.Empty, stored.Route);
    }

    [Fact]
    public async Task A_name_that_is_method_and_path_one_that_is_not_and_an_empty_one_read_back_as_written_everywhere()
    {
        // SQLite stores "GET /x" of a GET to /x as a marker and rebuilds it on read: every read and
        // the operation filter must answer as for a name stored whole, and other names as written.
        long tenant = await TenantAsync();
        var spans = new[]
        {
            Exchange(1, 1, session: "s-1", start: T0, path: "/x"),
            Exchange(1, 2, parent: 1, session: "s-1", start: T0.AddSeconds(1), path: "/x") with { Name = "checkout" },
            Exchange(1, 3, parent: 1, session: "s-1", start: T0.AddSeconds(2), path: "/x") with { Name = string.Empty },
            Exchange(1, 4, parent: 1, session: "s-1", start: T0.AddSeconds(3), method: "POST", path: "/x") with { Name = "GET /x" },
            Exchange(2, 5, session: "s-2", start: T0.AddSeconds(4), method: "POST", path: "/x"),
        };
        string[] names = ["GET /x", "checkout", "", "GET /x", "POST /x"];
        Assert.Equal(5, await Store.InsertSpansAsync(tenant, spans, None));
        await SearchableAsync();

        for (int i = 0; i < spans.Length; i++)
        {
            Assert.Equal(names[i], (await Store.GetSpanAsync(tenant, spans[i].TraceId, spans[i].SpanId, None))!.Name);
        }

        Assert.Equal(names[..4], (await Store.GetTraceAsync(tenant, Trace(1), None)).Select(s => s.Name));
        Assert.Equal(names[..4], (await Store.GetTraceSpansAsync(tenant, Trace(1), None)).Select(s => s.Name));
        Assert.Equal(names[..4], (await Store.GetSessionAsync(tenant, "s-1", None))!.Select(s => s.Name));
        Assert.Equal(["POST /x"], (await Store.GetSessionAsync(tenant, "s-2", None))!.Select(s => s.Name));

        async Task<string[]> Found(string operation) =>
            (await Store.SearchTracesAsync(tenant, new TraceQuery { Operation = operation }, None)).Items.Select(t => t.TraceId + " " + t.RootName).ToArray();
        Assert.Equal([Trace(1) + " GET /x"], await Found("GET /x"));
        Assert.Equal([Trace(2) + " POST /x"], await Found("POST /x"));
        Assert.Equal([Trace(1) + " GET /x"], await Found("checkout"));
        Assert.Empty(await Found("GET"));
        Assert.Empty(await Found("GET /y"));
        Assert.Empty(await Found("/x"));
    }

    [Fact]
    public async Task Non_ascii_and_long_texts_round_trip_and_are_found_by_search()
    {
        // Characters of two, three and four UTF-8 bytes, in short texts and in one of ~9 KB (SQLite's
        // store converts short bound text to UTF-8 itself and lets SQLite translate long text).
        long tenant = await TenantAsync();
        string query = "q=" + string.Concat(Enumerable.Repeat("zürich-東京-😀 ", 400));
        var span = Exchange(1, 1, service: "réservations", session: "séance-1", path: "/api/villes/zürich", responseText: """{"ville":"Zürich","gare":"東京駅"}""") with
        {
            Query = query,
        };

        Assert.Equal(1, await Store.InsertSpansAsync(tenant, [span], None));
        var stored = await Store.GetSpanAsync(tenant, span.TraceId, span.SpanId, None);
        await SearchableAsync();

        Assert.Equal(span with { RequestBody = default, ResponseBody = default }, stored! with { RequestBody = default, ResponseBody = default });
        Assert.Equal(span.ResponseBody.ToArray(), stored.ResponseBody.ToArray());
        Assert.Equal(["séance-1"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ZÜRICH 東京駅" }, None)).Items.Select(s => s.SessionId));
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "zurich" }, None)).Items);
    }

    [Fact]
    public async Task Small_and_empty_bodies_round_trip()
    {
        long tenant = await TenantAsync();
        var span = Exchange(1, 1) with { RequestBody = "ok"u8.ToArray(), ResponseBody = default, RequestHeadersJson = null, AttributesJson = "{}" };

        await Store.InsertSpansAsync(tenant, [span], None);
        var stored = await Store.GetSpanAsync(tenant, span.TraceId, span.SpanId, None);

        Assert.Equal("ok"u8.ToArray(), stored!.RequestBody.ToArray());
        Assert.True(stored.ResponseBody.IsEmpty);
        Assert.Null(stored.RequestHeadersJson);
        Assert.Equal("{}", stored.AttributesJson);
    }

    [Fact]
    public async Task Reinserting_the_same_spans_stores_them_once()
    {
        long tenant = await TenantAsync();
        var batch = Enumerable.Range(1, 5).Select(i => Exchange(1, i, session: "s", start: T0.AddSeconds(i))).ToList();

        int first = await Store.InsertSpansAsync(tenant, batch, None);
        int second = await Store.InsertSpansAsync(tenant, [.. batch, Exchange(1, 6, session: "s", start: T0.AddSeconds(6))], None);

        Assert.Equal(5, first);
        Assert.Equal(1, second);
        Assert.Equal(6, (await Store.GetTraceAsync(tenant, Trace(1), None)).Count);
        var session = Assert.Single((await Store.ListSessionsAsync(tenant, new SessionQuery(), None)).Items);
        Assert.Equal(6, session.SpanCount);
    }

    [Fact]
    public async Task A_batch_with_one_invalid_span_stores_nothing()
    {
        long tenant = await TenantAsync();
        var batch = Enumerable.Range(1, 4).Select(i => Exchange(1, i, session: "s")).ToList();
        batch.Add(Exchange(2, 5, session: "s") with { TraceId = "not-a-hex-trace-id" });

        await Assert.ThrowsAnyAsync<Exception>(() => Store.InsertSpansAsync(tenant, batch, None));

        Assert.Empty(await Store.GetTraceAsync(tenant, Trace(1), None));
        Assert.Null(await Store.GetSessionAsync(tenant, "s", None));
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery(), None)).Items);
        Assert.Equal(4, await Store.InsertSpansAsync(tenant, batch.Take(4).ToList(), None));
    }

    [Fact]
    public async Task No_query_returns_another_tenants_data()
    {
        long acme = await TenantAsync("acme");
        long other = await TenantAsync("other");
        await Store.InsertSpansAsync(acme,
        [
            Exchange(1, 1, service: "frontend", session: "s", responseText: "secret paris"),
            Exchange(1, 2, parent: 1, service: "frontend", session: "s", kind: 3, authority: "flights:8080"),
            Exchange(1, 3, parent: 2, service: "flights", session: "s"),
        ], None);
        await Store.AddApiKeyAsync(new ApiKeyRecord("k1", acme, SHA256.HashData("key1"u8), KeyScope.Read, null, T0, null), None);
        var range = (T0.AddDays(-1), T0.AddDays(1));
        await SearchableAsync();

        Assert.Empty((await Store.ListSessionsAsync(other, new SessionQuery(), None)).Items);
        Assert.Empty((await Store.ListSessionsAsync(other, new SessionQuery { Text = "paris" }, None)).Items);
        Assert.Null(await Store.GetSessionAsync(other, "s", None));
        Assert.Empty(await Store.GetTraceAsync(other, Trace(1), None));
        Assert.Null(await Store.GetSpanAsync(other, Trace(1), Span(1), None));
        Assert.Empty(await Store.GetServiceGraphAsync(other, range.Item1, range.Item2, None));
        Assert.Empty(await Store.GetEndpointsAsync(other, null, range.Item1, range.Item2, None));
        Assert.Empty(await Store.ListApiKeysAsync(other, None));
        Assert.False(await Store.RevokeApiKeyAsync(other, "k1", None));
        Assert.Equal(0, await Store.DeleteOlderThanAsync(other, T0.AddDays(1), None));
        Assert.Equal(3, (await Store.GetTraceAsync(acme, Trace(1), None)).Count);

        // The same ids in another tenant are a different span, not a duplicate.
        Assert.Equal(1, await Store.InsertSpansAsync(other, [Exchange(1, 1, session: "s")], None));
        Assert.Equal(3, (await Store.GetSessionAsync(acme, "s", None))!.Count);
        Assert.Single((await Store.GetSessionAsync(other, "s", None))!);
    }

    [Fact]
    public async Task Session_pages_are_newest_first_complete_and_stable_while_new_sessions_arrive()
    {
        long tenant = await TenantAsync();
        var spans = new List<StoredSpan>();
        for (int i = 0; i < 23; i++)
        {
            // Sessions 20–22 share one last-activity time: the cursor must break the tie.
            var start = T0.AddSeconds(Math.Min(i, 20));
            spans.Add(Exchange(i + 1, 1, session: $"s{i:D2}", start: start));
            spans.Add(Exchange(i + 1, 2, parent: 1, session: $"s{i:D2}", start: start.AddMilliseconds(-5)));
        }

        await Store.InsertSpansAsync(tenant, spans, None);

        var seen = new List<string>();
        string? cursor = null;
        int pages = 0;
        do
        {
            var page = await Store.ListSessionsAsync(tenant, new SessionQuery { Limit = 5, Cursor = cursor }, None);
            seen.AddRange(page.Items.Select(s => s.SessionId));
            cursor = page.NextCursor;
            if (pages++ == 0)
            {
                await Store.InsertSpansAsync(tenant, [Exchange(100, 1, session: "newer", start: T0.AddHours(1))], None);
            }
        }
        while (cursor is not null);

        var expected = Enumerable.Range(0, 23).Select(i => $"s{i:D2}")
            .OrderByDescending(s => Math.Min(int.Parse(s[1..], System.Globalization.CultureInfo.InvariantCulture), 20)).ThenByDescending(s => s, StringComparer.Ordinal).ToList();
        Assert.Equal(expected, seen);
        Assert.Equal(5, pages);
        Assert.Equal("newer", (await Store.ListSessionsAsync(tenant, new SessionQuery { Limit = 1 }, None)).Items[0].SessionId);
    }

    [Fact]
    public async Task Session_summaries_count_spans_traces_errors_and_services()
    {
        long tenant = await TenantAsync();
        await Store.InsertSpansAsync(tenant,
        [
            Exchange(1, 1, service: "frontend", session: "s", start: T0, durationMs: 100),
            Exchange(1, 2, parent: 1, service: "flights", session: "s", start: T0.AddMilliseconds(10), status: 503),
            Exchange(2, 3, service: "frontend", session: "s", start: T0.AddSeconds(2), durationMs: 250),
            Exchange(3, 4, service: "booking", session: "t", start: T0.AddSeconds(1)),
        ], None);

        var page = await Store.ListSessionsAsync(tenant, new SessionQuery(), None);

        Assert.Equal(["s", "t"], page.Items.Select(s => s.SessionId));
        var s = page.Items[0];
        Assert.Equal((3, 2, 1), (s.SpanCount, s.TraceCount, s.ErrorCount));
        Assert.Equal(["flights", "frontend"], s.Services);
        Assert.Equal(T0, s.FirstSeen);
        Assert.Equal(T0.AddSeconds(2).AddMilliseconds(250), s.LastSeen);
        Assert.Null(page.NextCursor);
    }

    [Fact]
    public async Task Session_filters_select_by_service_status_time_and_text()
    {
        long tenant = await TenantAsync();
        await Store.InsertSpansAsync(tenant,
        [
            Exchange(1, 1, service: "frontend", session: "paris", start: T0, responseText: """{"destination":"Paris","price":120}"""),
            Exchange(2, 2, service: "flights", session: "failing", start: T0.AddMinutes(1), status: 502, path: "/api/flights/search"),
            Exchange(3, 3, service: "frontend", session: "late", start: T0.AddHours(2), status: 404),
        ], None);
        await SearchableAsync();

        async Task<string[]> Ids(SessionQuery q) => (await Store.ListSessionsAsync(tenant, q, None)).Items.Select(s => s.SessionId).ToArray();

        Assert.Equal(["late", "paris"], await Ids(new SessionQuery { Service = "frontend" }));
        Assert.Equal(["failing"], await Ids(new SessionQuery { StatusClass = 5 }));
        Assert.Equal(["late"], await Ids(new SessionQuery { StatusClass = 4 }));
        Assert.Empty(await Ids(new SessionQuery { Service = "frontend", StatusClass = 5 }));
        Assert.Equal(["failing", "paris"], await Ids(new SessionQuery { From = T0, To = T0.AddHours(1) }));
        Assert.Equal(["late"], await Ids(new SessionQuery { From = T0.AddMinutes(30) }));
        Assert.Equal(["paris"], await Ids(new SessionQuery { Text = "PARIS" }));
        Assert.Equal(["failing"], await Ids(new SessionQuery { Text = "flights search" }));
        Assert.Empty(await Ids(new SessionQuery { Text = "london" }));
        Assert.Equal(["paris"], await Ids(new SessionQuery { Text = "paris", Service = "frontend", From = T0 }));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.ListSessionsAsync(tenant, new SessionQuery { Cursor = "garbage!" }, None));
    }

    [Fact]
    public async Task Traces_and_sessions_come_back_in_start_order_with_parent_links()
    {
        long tenant = await TenantAsync();
        await Store.InsertSpansAsync(tenant,
        [
            Exchange(1, 3, parent: 2, service: "flights", session: "s", start: T0.AddMilliseconds(20)),
            Exchange(1, 1, service: "frontend", session: "s", start: T0, durationMs: 80),
            Exchange(1, 2, parent: 1, service: "frontend", session: "s", start: T0.AddMilliseconds(10), kind: 3),
            Exchange(2, 4, service: "frontend", session: "s", start: T0.AddMilliseconds(5)),
        ], None);

        var trace = await Store.GetTraceAsync(tenant, Trace(1), None);
        var session = await Store.GetSessionAsync(tenant, "s", None);

        Assert.Equal([Span(1), Span(2), Span(3)], trace.Select(s => s.SpanId));
        Assert.Equal([null, Span(1), Span(2)], trace.Select(s => s.ParentSpanId));
        Assert.Equal(TimeSpan.FromMilliseconds(80), trace[0].EndTime - trace[0].StartTime);
        Assert.Equal([Span(1), Span(4), Span(2), Span(3)], session!.Select(s => s.SpanId));
        Assert.Null(await Store.GetSessionAsync(tenant, "unknown", None));
    }

    [Fact]
    public async Task Trace_search_filters_pages_and_lists_each_trace_once()
    {
        long tenant = await TenantAsync();
        await Store.InsertSpansAsync(tenant,
        [
            Exchange(1, 1, service: "orders", start: T0, path: "/orders/ord-1", responseText: "paris") with { Route = "/orders/{orderId}" },
            Exchange(2, 2, service: "orders", start: T0.AddMinutes(1), status: 503, durationMs: 900, path: "/orders/ord-2") with { AttributesJson = """{"app.attempt":2}""" },
            Exchange(3, 3, service: "payments", start: T0.AddMinutes(2), status: 402, path: "/payments") with { ModelJson = """{"resource":{"deployment.environment":"staging"}}""" },
            Exchange(1, 4, parent: 1, service: "payments", start: T0.AddMinutes(3), path: "/payments"),
        ], None);
        await SearchableAsync();

        async Task<string[]> Ids(TraceQuery q) => (await Store.SearchTracesAsync(tenant, q, None)).Items.Select(t => t.TraceId).ToArray();

        Assert.Equal([Trace(1), Trace(3), Trace(2)], await Ids(new TraceQuery()));
        Assert.Equal([Trace(2), Trace(1)], await Ids(new TraceQuery { Service = "orders" }));
        Assert.Equal([Trace(2), Trace(1)], await Ids(new TraceQuery { Route = "/orders/{id}" }));
        Assert.Equal([Trace(2)], await Ids(new TraceQuery { Status = TraceStatusFilter.Error }));
        Assert.Equal([Trace(3)], await Ids(new TraceQuery { Status = TraceStatusFilter.ClientError }));
        Assert.Equal([Trace(2)], await Ids(new TraceQuery { MinDuration = TimeSpan.FromMilliseconds(500) }));
        Assert.Equal([Trace(2)], await Ids(new TraceQuery { Attributes = [new("app.attempt", "2")] }));
        Assert.Equal([Trace(3)], await Ids(new TraceQuery { Attributes = [new("deployment.environment", "staging")] }));
        Assert.Equal([Trace(1)], await Ids(new TraceQuery { Text = "paris" }));
        Assert.Equal([Trace(3), Trace(2)], await Ids(new TraceQuery { From = T0.AddMinutes(1), To = T0.AddMinutes(3) }));
        Assert.Equal(["GET /orders/ord-1"], (await Store.SearchTracesAsync(tenant, new TraceQuery { Service = "payments", Status = TraceStatusFilter.Ok }, None)).Items.Select(t => t.RootName));

        var pages = new List<string>();
        string? cursor = null;
        do
        {
            var page = await Store.SearchTracesAsync(tenant, new TraceQuery { Limit = 1, Cursor = cursor }, None);
            pages.AddRange(page.Items.Select(t => t.TraceId));
            cursor = page.NextCursor;
        }
        while (cursor is not null && pages.Count < 10);

        Assert.Equal([Trace(1), Trace(3), Trace(2)], pages);
        var summary = (await Store.SearchTracesAsync(tenant, new TraceQuery { Service = "payments", Limit = 1 }, None)).Items[0];
        Assert.Equal((2, "orders"), (summary.SpanCount, summary.RootService));
        Assert.Equal(["orders", "payments"], summary.Services);
        await Assert.ThrowsAsync<ArgumentException>(() => Store.SearchTracesAsync(tenant, new TraceQuery { Cursor = "garbage!" }, None));
    }

    [Fact]
    public async Task The_span_model_round_trips_and_trace_spans_carry_it()
    {
        long tenant = await TenantAsync();
        const string model = """{"resource":{"service.name":"orders","host.cpu.count":8},"events":[{"timeUnixNano":"1","name":"e","attributes":{"x":1.5}}]}""";
        await Store.InsertSpansAsync(tenant, [Exchange(1, 1) with { ModelJson = model, AttributesJson = """{"app.int":42,"app.double":2.0}""" }], None);

        var span = await Store.GetSpanAsync(tenant, Trace(1), Span(1), None);
        var spans = await Store.GetTraceSpansAsync(tenant, Trace(1), None);

        Assert.Equal(model, span!.ModelJson);
        Assert.Equal("""{"app.int":42,"app.double":2.0}""", span.AttributesJson);
        Assert.Equal(model, Assert.Single(spans).ModelJson);
        Assert.Equal(span.AttributesJson, spans[0].AttributesJson);
    }

    [Fact]
    public async Task Service_graph_derives_edges_with_counts_errors_and_percentiles()
    {
        long tenant = await TenantAsync();
        var spans = new List<StoredSpan>();
        for (int i = 1; i <= 5; i++)
        {
            // frontend (server) → frontend (client, i×10 ms) → flights (server); the fifth call fails.
            int baseId = i * 10;
            spans.Add(Exchange(i, baseId, service: "frontend", durationMs: 100));
            spans.Add(Exchange(i, baseId + 1, parent: baseId, service: "frontend", kind: 3, durationMs: i * 10, authority: "flights:8080", status: i == 5 ? 500 : 200));
            spans.Add(Exchange(i, baseId + 2, parent: baseId + 1, service: "flights", durationMs: (i * 10) - 2, status: i == 5 ? 500 : 200));
        }

        // An uncaptured external callee, and an SDK span tree without client spans.
        spans.Add(Exchange(50, 1, service: "booking", kind: 3, authority: "api.stripe.com:443", durationMs: 40));
        spans.Add(Exchange(60, 1, service: "gateway", durationMs: 30));
        spans.Add(Exchange(60, 2, parent: 1, service: "booking", durationMs: 20));
        spans.Add(Exchange(70, 1, service: "frontend", start: T0.AddDays(2), kind: 3, authority: "late:80"));
        await Store.InsertSpansAsync(tenant, spans, None);

        var edges = await Store.GetServiceGraphAsync(tenant, T0.AddHours(-1), T0.AddHours(1), None);

        Assert.Equal(
            [
                new ServiceEdge("booking", "api.stripe.com", 1, 0, 40, 40, 40),
                new ServiceEdge("frontend", "flights", 5, 1, 30, 48, 49.6),
                new ServiceEdge("gateway", "booking", 1, 0, 20, 20, 20),
            ],
            edges.Select(e => e with { P50Ms = Math.Round(e.P50Ms, 6), P95Ms = Math.Round(e.P95Ms, 6), P99Ms = Math.Round(e.P99Ms, 6) }));
    }

    [Fact]
    public async Task Endpoint_stats_group_server_spans_by_method_and_route()
    {
        long tenant = await TenantAsync();
        var spans = new List<StoredSpan>();
        for (int i = 1; i <= 5; i++)
        {
            spans.Add(Exchange(i, 1, service: "flights", path: $"/api/flights/{i}", durationMs: i * 10, status: i == 5 ? 500 : 200));
        }

        spans.Add(Exchange(6, 1, service: "flights", method: "POST", path: "/api/flights", durationMs: 7));
        spans.Add(Exchange(7, 1, service: "frontend", path: "/", durationMs: 3));
        spans.Add(Exchange(8, 1, service: "frontend", kind: 3, path: "/api/flights/9", authority: "flights:8080"));
        await Store.InsertSpansAsync(tenant, spans, None);
        var (from, to) = (T0.AddHours(-1), T0.AddHours(1));

        var all = await Store.GetEndpointsAsync(tenant, null, from, to, None);
        var flights = await Store.GetEndpointsAsync(tenant, "flights", from, to, None);

        Assert.Equal(
            [
                new EndpointStats("flights", "POST", "/api/flights", 1, 0, 7, 7, 7),
                new EndpointStats("flights", "GET", "/api/flights/{id}", 5, 1, 30, 48, 49.6),
                new EndpointStats("frontend", "GET", "/", 1, 0, 3, 3, 3),
            ],
            all.Select(e => e with { P50Ms = Math.Round(e.P50Ms, 6), P95Ms = Math.Round(e.P95Ms, 6), P99Ms = Math.Round(e.P99Ms, 6) }));
        Assert.Equal(2, flights.Count);
        Assert.Empty(await Store.GetEndpointsAsync(tenant, null, T0.AddHours(1), T0.AddHours(2), None));
    }

    [Fact]
    public async Task Deleting_by_age_removes_old_spans_their_sessions_and_their_search_entries()
    {
        long tenant = await TenantAsync();
        var now = T0;
        await Store.InsertSpansAsync(tenant,
        [
            Exchange(1, 1, session: "old", start: now.AddDays(-10), responseText: "ancient lisbon"),
            Exchange(2, 1, session: "mixed", start: now.AddDays(-9)),
            Exchange(2, 2, parent: 1, session: "mixed", start: now.AddDays(-1), responseText: "recent lisbon"),
            Exchange(3, 1, session: "new", start: now.AddHours(-1)),
        ], None);
        await SearchableAsync();

        long deleted = await Store.DeleteOlderThanAsync(tenant, now.AddDays(-7), None);

        Assert.Equal(2, deleted);
        var sessions = (await Store.ListSessionsAsync(tenant, new SessionQuery(), None)).Items;
        Assert.Equal(["new", "mixed"], sessions.Select(s => s.SessionId));
        Assert.Equal(now.AddDays(-1), sessions[1].FirstSeen);
        Assert.Equal(1, sessions[1].SpanCount);
        Assert.Null(await Store.GetSessionAsync(tenant, "old", None));
        Assert.Equal(["mixed"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "lisbon" }, None)).Items.Select(s => s.SessionId));
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ancient" }, None)).Items);
    }

    [Fact]
    public async Task Deleting_a_session_removes_its_spans_roll_up_and_search_entries_and_nothing_else()
    {
        long acme = await TenantAsync("acme");
        long other = await TenantAsync("other");
        await Store.InsertSpansAsync(acme,
        [
            Exchange(1, 1, session: "s-1", responseText: "lisbon one"),
            Exchange(1, 2, parent: 1, session: "s-1", start: T0.AddSeconds(1)),
            Exchange(2, 1, session: "s-1", start: T0.AddMinutes(1), responseText: "lisbon two"),
            Exchange(3, 1, session: "s-2", responseText: "lisbon three"),
            Exchange(4, 1, responseText: "lisbon sessionless"),
        ], None);
        await Store.InsertSpansAsync(other, [Exchange(1, 1, session: "s-1", responseText: "lisbon other")], None);

        // Indexed first, so the delete has search entries to remove.
        await SearchableAsync();
        Assert.Equal(3, await Store.DeleteSessionAsync(acme, "s-1", None));

        Assert.Null(await Store.GetSessionAsync(acme, "s-1", None));
        Assert.Empty(await Store.GetTraceAsync(acme, Trace(1), None));
        Assert.Empty(await Store.GetTraceAsync(acme, Trace(2), None));
        Assert.Equal(["s-2"], (await Store.ListSessionsAsync(acme, new SessionQuery { Text = "lisbon" }, None)).Items.Select(s => s.SessionId));
        Assert.Single(await Store.GetTraceAsync(acme, Trace(4), None));
        Assert.Equal(["s-1"], (await Store.ListSessionsAsync(other, new SessionQuery { Text = "lisbon" }, None)).Items.Select(s => s.SessionId));
        Assert.Single((await Store.GetSessionAsync(other, "s-1", None))!);
        Assert.Equal(0, await Store.DeleteSessionAsync(acme, "s-1", None));
        Assert.Equal(0, await Store.DeleteSessionAsync(acme, "never-seen", None));
    }

    [Fact]
    public async Task Purging_a_tenant_deletes_everything_it_captured_in_batches_and_nothing_of_another()
    {
        long acme = await TenantAsync("acme");
        long other = await TenantAsync("other");
        // More spans than one delete batch holds, so the purge must take several transactions.
        const int Spans = 11_000;
        for (int batch = 0; batch < Spans / 1000; batch++)
        {
            var spans = Enumerable.Range(batch * 1000, 1000)
                .Select(i => Exchange(i + 1, 1, session: "s" + (i % 50), start: T0.AddMilliseconds(i), responseText: "lisbon"))
                .ToList();
            await Store.InsertSpansAsync(acme, spans, None);
        }

        await Store.AddMockAsync(acme, Mock("k1"), None);
        await Store.AddMockAsync(acme, Mock("k2"), None);
        await Store.AddApiKeyAsync(new ApiKeyRecord("acme1", acme, SHA256.HashData("sp_acme"u8), KeyScope.Admin, null, T0, null), None);
        await Store.InsertSpansAsync(other, [Exchange(1, 1, session: "s0", responseText: "lisbon")], None);
        var otherMock = await Store.AddMockAsync(other, Mock("k1"), None);
        await Store.AddApiKeyAsync(new ApiKeyRecord("other1", other, SHA256.HashData("sp_other"u8), KeyScope.Read, null, T0, null), None);

        Assert.Equal(
            [new("spans", Spans), new("sessions", 50), new("mocks", 2), new("replay_jobs", 0), new("api_keys", 1), new("ui_sessions", 0)],
            WithoutDictionaries(await Store.CountTenantDataAsync(acme, None)));

        var reports = new List<TenantTableRows>();
        var purged = await Store.PurgeTenantAsync(acme, removeTenant: false, new SynchronousProgress(reports), None);

        Assert.Equal([new("spans", Spans), new("sessions", 50), new("mocks", 2), new("replay_jobs", 0)], purged);
        Assert.True(reports.Count(r => r.Table == "spans") >= 3, "the spans went in several bounded batches");
        Assert.Equal([new("spans", 0), new("sessions", 0), new("mocks", 0), new("replay_jobs", 0), new("api_keys", 1), new("ui_sessions", 0)], WithoutDictionaries(await Store.CountTenantDataAsync(acme, None)));
        Assert.Empty((await Store.ListSessionsAsync(acme, new SessionQuery(), None)).Items);
        Assert.Empty((await Store.SearchTracesAsync(acme, new TraceQuery(), None)).Items);
        Assert.NotNull(await Store.FindTenantAsync("acme", None));
        Assert.NotNull(await Store.FindApiKeyAsync(SHA256.HashData("sp_acme"u8), None));

        var removed = await Store.PurgeTenantAsync(acme, removeTenant: true, null, None);

        Assert.Equal([new("spans", 0), new("sessions", 0), new("mocks", 0), new("replay_jobs", 0), new("api_keys", 1), new("ui_sessions", 0), new("tenants", 1)], WithoutDictionaries(removed));
        Assert.Null(await Store.FindTenantAsync("acme", None));
        Assert.Null(await Store.FindApiKeyAsync(SHA256.HashData("sp_acme"u8), None));
        Assert.Equal([new("spans", 1), new("sessions", 1), new("mocks", 1), new("replay_jobs", 0), new("api_keys", 1), new("ui_sessions", 0)], WithoutDictionaries(await Store.CountTenantDataAsync(other, None)));
        await SearchableAsync();
        Assert.Equal(["s0"], (await Store.ListSessionsAsync(other, new SessionQuery { Text = "lisbon" }, None)).Items.Select(s => s.SessionId));
        Assert.NotNull(await Store.GetMockAsync(other, otherMock.Id, None));
        Assert.NotNull(await Store.FindApiKeyAsync(SHA256.HashData("sp_other"u8), None));
    }

    // How many compression dictionaries a tenant has depends on when the background trainer ran.
    private static List<TenantTableRows> WithoutDictionaries(IEnumerable<TenantTableRows> rows) =>
        rows.Where(r => r.Table != "codec_dictionaries").ToList();

    [Fact]
    public async Task A_purge_covers_every_table_with_a_tenant_id()
    {
        var purged = new[] { "spans" }
            .Concat(SqlSpanStore.TenantDataTables.Select(t => t.Table))
            .Concat(SqlSpanStore.TenantIdentityTables.Select(t => t.Table))
            .Concat(((SqlSpanStore)Store).TenantIndexTables.Select(t => t.Table))
            .Order(StringComparer.Ordinal);

        Assert.Equal(purged, (await TablesWithTenantIdAsync()).Order(StringComparer.Ordinal));
    }

    /// <summary>The tables of the store's schema that have a <c>tenant_id</c> column.</summary>
    protected abstract Task<IReadOnlyList<string>> TablesWithTenantIdAsync();

    /// <summary>Records each report as it is made (<see cref="Progress{T}"/> would post them to the thread pool).</summary>
    private sealed class SynchronousProgress(List<TenantTableRows> reports) : IProgress<TenantTableRows>
    {
        public void Report(TenantTableRows value) => reports.Add(value);
    }

    [Fact]
    public async Task Deleting_by_size_removes_the_oldest_spans_first()
    {
        long acme = await TenantAsync("acme");
        long other = await TenantAsync("other");
        var random = new Random(3);
        for (int i = 0; i < 40; i++)
        {
            var body = new byte[8192];
            random.NextBytes(body);
            await Store.InsertSpansAsync(i % 2 == 0 ? acme : other, [Exchange(i + 1, 1, session: $"s{i}", start: T0.AddSeconds(i)) with { ResponseBody = body }], None);
        }

        long before = await Store.GetStoredBytesAsync(None);
        long deleted = await Store.DeleteOldestAsync(20 * 8192, None);

        Assert.True(before > 40 * 8192, $"stored bytes {before} should count the 320 KiB of incompressible bodies");
        Assert.InRange(deleted, 18, 21);
        Assert.Empty(await Store.GetTraceAsync(acme, Trace(1), None));
        Assert.Empty(await Store.GetTraceAsync(other, Trace(2), None));
        Assert.Single(await Store.GetTraceAsync(other, Trace(40), None));
        var remaining = (await Store.ListSessionsAsync(acme, new SessionQuery { Limit = 100 }, None)).Items.Count
            + (await Store.ListSessionsAsync(other, new SessionQuery { Limit = 100 }, None)).Items.Count;
        Assert.Equal(40 - deleted, remaining);
    }

    [Fact]
    public async Task Migrations_are_idempotent_across_restarts()
    {
        long tenant = await TenantAsync();
        await Store.InsertSpansAsync(tenant, [Exchange(1, 1, session: "s")], None);
        await Store.MigrateAsync(None);
        await Store.DisposeAsync();

        Store = await OpenStoreAsync(reopen: true);
        await Store.MigrateAsync(None);
        await Store.MigrateAsync(None);

        Assert.Equal(tenant, (await Store.FindTenantAsync("acme", None))!.Id);
        Assert.Single(await Store.GetTraceAsync(tenant, Trace(1), None));
    }

    [Fact]
    public async Task Tenants_are_created_once_and_keep_their_retention()
    {
        var first = await Store.EnsureTenantAsync("acme", None);
        var again = await Store.EnsureTenantAsync("acme", None);
        await Store.EnsureTenantAsync("beta", None);
        await Store.SetRetentionAsync(first.Id, TimeSpan.FromDays(3), None);

        Assert.Equal(first.Id, again.Id);
        Assert.Null(first.Retention);
        Assert.Equal(TimeSpan.FromDays(3), (await Store.FindTenantAsync("acme", None))!.Retention);
        Assert.Equal(["acme", "beta"], (await Store.ListTenantsAsync(None)).Select(t => t.Name));
        Assert.Null(await Store.FindTenantAsync("nobody", None));
        await Store.SetRetentionAsync(first.Id, null, None);
        Assert.Null((await Store.FindTenantAsync("acme", None))!.Retention);
    }

    [Fact]
    public async Task Keys_are_found_by_hash_listed_newest_first_and_revoked()
    {
        long tenant = await TenantAsync();
        var hash1 = SHA256.HashData("sp_key_one"u8);
        var hash2 = SHA256.HashData("sp_key_two"u8);
        await Store.AddApiKeyAsync(new ApiKeyRecord("k1", tenant, hash1, KeyScope.Ingest, "agent", T0, null), None);
        await Store.AddApiKeyAsync(new ApiKeyRecord("k2", tenant, hash2, KeyScope.Read | KeyScope.Admin, null, T0.AddMinutes(1), null), None);

        var found = await Store.FindApiKeyAsync(SHA256.HashData("sp_key_one"u8), None);
        Assert.NotNull(found);
        Assert.Equal(("k1", tenant, KeyScope.Ingest, "agent", T0), (found.KeyId, found.TenantId, found.Scopes, found.Description, found.CreatedAt));
        Assert.Equal(hash1, found.KeyHash);
        Assert.Null(found.RevokedAt);
        Assert.Equal(["k2", "k1"], (await Store.ListApiKeysAsync(tenant, None)).Select(k => k.KeyId));
        await Assert.ThrowsAnyAsync<Exception>(() => Store.AddApiKeyAsync(new ApiKeyRecord("k3", tenant, hash1, KeyScope.Read, null, T0, null), None));

        Assert.True(await Store.RevokeApiKeyAsync(tenant, "k1", None));
        Assert.False(await Store.RevokeApiKeyAsync(tenant, "missing", None));
        Assert.NotNull((await Store.FindApiKeyAsync(hash1, None))!.RevokedAt);
        Assert.Null((await Store.FindApiKeyAsync(hash2, None))!.RevokedAt);
        Assert.Null(await Store.FindApiKeyAsync(SHA256.HashData("unknown"u8), None));
    }

    private static MockRecord Mock(string key, string service = "rates", string authority = "rates.example", string environment = "", DateTimeOffset? expires = null) => new()
    {
        Service = service,
        Environment = environment,
        Method = "POST",
        Authority = authority,
        Path = "/api/quote",
        Query = "from=EUR",
        RequestBody = "{\"a\":1}"u8.ToArray(),
        MatchKey = key,
        StatusCode = 201,
        ResponseHeadersJson = """[["content-type","application/json"]]""",
        ResponseBody = "{\"rate\":1.1}"u8.ToArray(),
        Description = "quote",
        SourceTraceId = Trace(1),
        SourceSpanId = Span(1),
        CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000),
        UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000),
        ExpiresAt = expires,
    };

    [Fact]
    public async Task Mocks_round_trip_update_and_delete()
    {
        long tenant = await TenantAsync();
        var added = await Store.AddMockAsync(tenant, Mock("k1"), None);

        var read = await Store.GetMockAsync(tenant, added.Id, None);
        Assert.NotNull(read);
        Assert.True(added.Id > 0);
        Assert.Equal(added with { RequestBody = default, ResponseBody = default }, read with { RequestBody = default, ResponseBody = default });
        Assert.Equal("{\"rate\":1.1}", Encoding.UTF8.GetString(read.ResponseBody.Span));
        Assert.Equal("{\"a\":1}", Encoding.UTF8.GetString(read.RequestBody.Span));

        var changed = read with { StatusCode = 503, ResponseBody = default, UpdatedAt = read.UpdatedAt.AddMinutes(1) };
        Assert.True(await Store.UpdateMockAsync(tenant, changed, None));
        var reread = await Store.GetMockAsync(tenant, added.Id, None);
        Assert.Equal(503, reread!.StatusCode);
        Assert.True(reread.ResponseBody.IsEmpty);

        Assert.True(await Store.DeleteMockAsync(tenant, added.Id, None));
        Assert.Null(await Store.GetMockAsync(tenant, added.Id, None));
        Assert.False(await Store.DeleteMockAsync(tenant, added.Id, None));
        Assert.False(await Store.UpdateMockAsync(tenant, changed, None));
    }

    [Fact]
    public async Task Mocks_of_one_tenant_are_invisible_to_another()
    {
        long acme = await TenantAsync("acme");
        long other = await TenantAsync("other");
        var mock = await Store.AddMockAsync(acme, Mock("k1"), None);
        var now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_001_000);

        Assert.Null(await Store.GetMockAsync(other, mock.Id, None));
        Assert.Empty((await Store.ListMocksAsync(other, new MockQuery(), None)).Items);
        Assert.Null(await Store.FindMockAsync(other, ["k1"], "rates", null, now, None));
        Assert.False(await Store.DeleteMockAsync(other, mock.Id, None));
        Assert.False(await Store.UpdateMockAsync(other, mock with { StatusCode = 500 }, None));
        Assert.Equal(201, (await Store.GetMockAsync(acme, mock.Id, None))!.StatusCode);
    }

    [Fact]
    public async Task FindMock_prefers_specific_mocks_and_skips_expired_ones()
    {
        long tenant = await TenantAsync();
        var now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_100_000);
        await Store.AddMockAsync(tenant, Mock("any-host", authority: "", service: ""), None);
        var specific = await Store.AddMockAsync(tenant, Mock("host"), None);
        await Store.AddMockAsync(tenant, Mock("host", expires: now.AddSeconds(-1)) with { StatusCode = 410 }, None);
        await Store.AddMockAsync(tenant, Mock("host", service: "other") with { StatusCode = 418 }, None);
        await Store.AddMockAsync(tenant, Mock("staging-only", environment: "staging"), None);

        Assert.Equal(specific.Id, (await Store.FindMockAsync(tenant, ["host", "any-host"], "rates", null, now, None))!.Id);
        Assert.Equal("", (await Store.FindMockAsync(tenant, ["nothing", "any-host"], "rates", null, now, None))!.Authority);
        Assert.Null(await Store.FindMockAsync(tenant, ["nothing"], "rates", null, now, None));
        Assert.Null(await Store.FindMockAsync(tenant, ["staging-only"], "rates", "prod", now, None));
        Assert.NotNull(await Store.FindMockAsync(tenant, ["staging-only"], "rates", "staging", now, None));

        var live = (await Store.ListMocksAsync(tenant, new MockQuery { Service = "rates", IncludeAnyService = true, LiveAt = now }, None)).Items;
        Assert.Equal(3, live.Count);
        var all = (await Store.ListMocksAsync(tenant, new MockQuery(), None)).Items;
        Assert.Equal(5, all.Count);
        Assert.Equal(all.Select(m => m.Id).Order(), all.Select(m => m.Id));
    }

    [Fact]
    public async Task Mocks_are_listed_a_page_at_a_time_with_filters_kept_and_the_limit_clamped()
    {
        long tenant = await TenantAsync();
        var ids = new List<long>();
        for (var i = 0; i < 7; i++)
        {
            ids.Add((await Store.AddMockAsync(tenant, Mock("k" + i, service: i % 2 == 0 ? "rates" : "other"), None)).Id);
        }

        var first = await Store.ListMocksAsync(tenant, new MockQuery { Limit = 3 }, None);
        var second = await Store.ListMocksAsync(tenant, new MockQuery { Limit = 3, AfterId = long.Parse(first.NextCursor!, System.Globalization.CultureInfo.InvariantCulture) }, None);
        var third = await Store.ListMocksAsync(tenant, new MockQuery { Limit = 3, AfterId = long.Parse(second.NextCursor!, System.Globalization.CultureInfo.InvariantCulture) }, None);

        Assert.Equal(ids[..3], first.Items.Select(m => m.Id));
        Assert.Equal(ids[3..6], second.Items.Select(m => m.Id));
        Assert.Equal([ids[6]], third.Items.Select(m => m.Id));
        Assert.Null(third.NextCursor);

        // Exactly a page left: no next page.
        var rates = await Store.ListMocksAsync(tenant, new MockQuery { Service = "rates", Limit = 4 }, None);
        Assert.Equal([ids[0], ids[2], ids[4], ids[6]], rates.Items.Select(m => m.Id));
        Assert.Null(rates.NextCursor);
        var ratesAfter = await Store.ListMocksAsync(tenant, new MockQuery { Service = "rates", Limit = 1, AfterId = ids[0] }, None);
        Assert.Equal([ids[2]], ratesAfter.Items.Select(m => m.Id));
        Assert.Equal(ids[2].ToString(System.Globalization.CultureInfo.InvariantCulture), ratesAfter.NextCursor);

        // Out of range limits are clamped, never unbounded.
        Assert.Single((await Store.ListMocksAsync(tenant, new MockQuery { Limit = 0 }, None)).Items);
        Assert.Equal(7, (await Store.ListMocksAsync(tenant, new MockQuery { Limit = int.MaxValue }, None)).Items.Count);
        Assert.Equal(200, new MockQuery().Limit);
    }

    [Fact]
    public async Task Spans_are_searchable_once_indexed_and_the_watermark_resumes_after_a_restart()
    {
        long tenant = await TenantAsync();
        await Store.InsertSpansAsync(tenant, [Exchange(1, 1, session: "first", responseText: "lisbon")], None);
        await SearchableAsync();
        long before = ((ISearchIndexProgress)Store).IndexedUpTo;
        await Store.DisposeAsync();

        Store = await OpenStoreAsync(reopen: true);
        await Store.MigrateAsync(None);
        await Store.InsertSpansAsync(tenant, [Exchange(2, 2, session: "second", responseText: "lisbon porto")], None);
        await SearchableAsync();

        Assert.True(((ISearchIndexProgress)Store).IndexedUpTo > before);
        Assert.Equal(default, ((ISearchIndexProgress)Store).Lag);
        async Task<string[]> Ids(string q) => (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = q }, None)).Items.Select(s => s.SessionId).ToArray();
        Assert.Equal(["second", "first"], await Ids("lisbon"));
        Assert.Equal(["second"], await Ids("porto"));
    }

    [Fact]
    public async Task Spans_stored_after_retention_emptied_the_store_are_indexed_and_old_entries_never_match_them()
    {
        long tenant = await TenantAsync();
        await Store.InsertSpansAsync(tenant, [Exchange(1, 1, session: "gone", responseText: "ancient"), Exchange(1, 2, session: "gone", responseText: "ancient")], None);
        await SearchableAsync();
        await Store.DeleteOldestAsync(long.MaxValue, None);
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery(), None)).Items);

        await Store.InsertSpansAsync(tenant, [Exchange(2, 1, session: "fresh", responseText: "modern")], None);
        await SearchableAsync();

        Assert.Equal(["fresh"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "modern" }, None)).Items.Select(s => s.SessionId));
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ancient" }, None)).Items);
    }

    [Fact]
    public async Task Values_compressed_with_a_trained_tenant_dictionary_read_back_byte_identical_after_a_restart()
    {
        long tenant = await TenantAsync();
        var random = new Random(3);
        StoredSpan Body(int n) => Exchange(n, n, session: "s" + n, responseText: $$"""{"items":[{"id":{{random.Next()}},"city":"lisbon","price":{{random.Next(999)}}.5}],"total":{{n}}}""") with
        {
            RequestBody = Encoding.UTF8.GetBytes($$"""{"query":{"from":"LIS","to":"OPO","passengers":{{n % 5}}},"currency":"EUR"}"""),
        };

        // Enough values for the tenant's sample (each span gives its bodies and headers).
        var first = Enumerable.Range(1, CodecDictionaries.SampleValues / 2).Select(Body).ToList();
        await Store.InsertSpansAsync(tenant, first, None);
        var dictionary = await ((SqlSpanStore)Store).Dictionaries.WhenTrainedAsync(tenant);
        var second = Enumerable.Range(1000, 20).Select(Body).ToList();
        await Store.InsertSpansAsync(tenant, second, None);
        await Store.DisposeAsync();

        Store = await OpenStoreAsync(reopen: true);
        await Store.MigrateAsync(None);
        foreach (var span in first.Take(3).Concat(second))
        {
            var read = await Store.GetSpanAsync(tenant, span.TraceId, span.SpanId, None);
            Assert.Equal(span.RequestBody.ToArray(), read!.RequestBody.ToArray());
            Assert.Equal(span.ResponseBody.ToArray(), read.ResponseBody.ToArray());
            Assert.Equal(span.RequestHeadersJson, read.RequestHeadersJson);
        }

        Assert.True(dictionary.Id > 0);
        var reloaded = (await ((SqlSpanStore)Store).Dictionaries.ForTenantAsync(tenant, None))!;
        Assert.Equal(dictionary.Id, reloaded.Id);
        // Trained on the JSON column form, which both stores write (PostgreSQL since its packed
        // terms, migration 16), and which the saved bytes still say after a restart.
        Assert.True(((SqlSpanStore)Store).JsonColumnValues);
        Assert.True(dictionary.TrainedOnJsonColumns);
        Assert.True(reloaded.TrainedOnJsonColumns);
    }

    [Fact]
    public async Task A_retried_batch_stores_only_its_new_spans_and_rolls_up_their_sessions()
    {
        long tenant = await TenantAsync();
        Assert.Equal(2, await Store.InsertSpansAsync(tenant, [Exchange(1, 1, session: "s", start: T0), Exchange(1, 2, session: "s", start: T0.AddSeconds(1))], None));

        // A retried export with one span already stored, and a batch repeating a span of its own.
        Assert.Equal(1, await Store.InsertSpansAsync(tenant, [Exchange(1, 2, session: "s", start: T0.AddSeconds(1)), Exchange(1, 3, session: "s", start: T0.AddSeconds(5), responseText: "porto")], None));
        Assert.Equal(1, await Store.InsertSpansAsync(tenant, [Exchange(2, 1, session: "t", start: T0), Exchange(2, 1, session: "t", start: T0)], None));
        await SearchableAsync();

        Assert.Equal(3, (await Store.GetSessionAsync(tenant, "s", None))!.Count);
        var session = (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "porto" }, None)).Items.Single();
        Assert.Equal("s", session.SessionId);
        Assert.Equal(T0.AddSeconds(5).AddMilliseconds(10), session.LastSeen);
        Assert.Single((await Store.GetSessionAsync(tenant, "t", None))!);
    }

    [Fact]
    public async Task A_session_rolled_up_over_batches_spans_its_earliest_to_its_latest_start_under_its_id_as_sent()
    {
        // Non-ASCII ids, one short and one long enough that SQLite's writer binds it as UTF-16 rather than
        // from its 4 KiB stack buffer of UTF-8.
        long tenant = await TenantAsync();
        string shortId = "séance-ü-東京", longId = "séance-" + new string('x', 1400);
        await Store.InsertSpansAsync(tenant, [Exchange(1, 1, session: shortId, start: T0.AddSeconds(10)), Exchange(2, 1, session: longId, start: T0.AddSeconds(10))], None);
        await Store.InsertSpansAsync(tenant, [Exchange(3, 1, session: "other", start: T0.AddSeconds(20))], None);

        // A later batch with a span before the sessions' first and one after their last.
        await Store.InsertSpansAsync(tenant,
        [
            Exchange(1, 2, session: shortId, start: T0),
            Exchange(1, 3, session: shortId, start: T0.AddSeconds(30)),
            Exchange(2, 2, session: longId, start: T0.AddSeconds(40)),
        ], None);

        Assert.Equal([longId, shortId, "other"], (await Store.ListSessionsAsync(tenant, new SessionQuery(), None)).Items.Select(s => s.SessionId));
        Assert.Equal([shortId], (await Store.ListSessionsAsync(tenant, new SessionQuery { To = T0.AddSeconds(5) }, None)).Items.Select(s => s.SessionId));
        Assert.Equal([longId, shortId], (await Store.ListSessionsAsync(tenant, new SessionQuery { From = T0.AddSeconds(25) }, None)).Items.Select(s => s.SessionId));
        Assert.Equal(3, (await Store.GetSessionAsync(tenant, shortId, None))!.Count);
        Assert.Equal(2, (await Store.GetSessionAsync(tenant, longId, None))!.Count);
    }

    [Fact]
    public async Task Batches_of_many_chunks_store_every_span_once_or_nothing_when_one_is_refused()
    {
        // Large enough that the insert takes its spans from several encoding chunks (SQLite's
        // writer inserts while workers still encode), with a repeat of an earlier span near the end.
        long tenant = await TenantAsync();
        var batch = Enumerable.Range(1, 300).Select(i => Exchange(1, i, session: "s" + (i % 7), start: T0.AddMilliseconds(i), responseText: "w" + i)).ToList();
        batch.Insert(280, Exchange(1, 12, session: "s5", start: T0.AddMilliseconds(12)));
        Assert.Equal(300, await Store.InsertSpansAsync(tenant, batch, None));
        Assert.Equal(300, (await Store.GetTraceAsync(tenant, Trace(1), None)).Count);
        await SearchableAsync();
        Assert.Equal(["s4"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "w298" }, None)).Items.Select(s => s.SessionId));

        // One span the store refuses, late in the batch, keeps the whole batch out.
        var refused = Enumerable.Range(1, 300).Select(i => Exchange(2, i, session: "r")).ToList();
        refused[290] = refused[290] with { TraceId = "not-a-hex-trace-id" };
        await Assert.ThrowsAnyAsync<Exception>(() => Store.InsertSpansAsync(tenant, refused, None));
        Assert.Empty(await Store.GetTraceAsync(tenant, Trace(2), None));
        Assert.Null(await Store.GetSessionAsync(tenant, "r", None));
    }

    [Fact]
    public async Task Prepared_batches_of_a_tenant_commit_together_in_order_and_a_repeated_span_once()
    {
        long tenant = await TenantAsync();
        long other = await TenantAsync("other");
        var first = Enumerable.Range(1, 150).Select(i => Exchange(1, i, session: "s", start: T0.AddMilliseconds(i), responseText: "lisbon")).ToList();
        var second = Enumerable.Range(141, 30).Select(i => Exchange(1, i, session: "s", start: T0.AddMilliseconds(i), responseText: "porto")).ToList();

        // Prepared concurrently, as ingest prepares concurrent requests; stored together.
        var prepared = await Task.WhenAll(Store.PrepareSpansAsync(tenant, first, None).AsTask(), Store.PrepareSpansAsync(tenant, second, None).AsTask());
        Assert.Empty(await Store.GetTraceAsync(tenant, Trace(1), None));
        Assert.Equal(170, await Store.InsertPreparedAsync(tenant, prepared, None));

        Assert.Equal(170, (await Store.GetTraceAsync(tenant, Trace(1), None)).Count);
        Assert.Equal(170, (await Store.GetSessionAsync(tenant, "s", None))!.Count);
        await SearchableAsync();
        var porto = await Store.SearchTracesAsync(tenant, new TraceQuery { Text = "porto" }, None);
        Assert.Equal([Trace(1)], porto.Items.Select(t => t.TraceId));
        Assert.Empty((await Store.ListSessionsAsync(other, new SessionQuery(), None)).Items);
    }
}
