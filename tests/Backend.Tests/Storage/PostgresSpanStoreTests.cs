using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Storage.Postgres;
using static SpIstio.Backend.Tests.Storage.TestSpans;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>The contract suite on a real PostgreSQL: a fresh database per test.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresSpanStoreTests(PostgresFixture fixture) : SpanStoreContractTests
{
    private string? _connectionString;

    protected override async Task<ISpanStore> OpenStoreAsync(bool reopen)
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        return SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
    }

    protected override async Task<IReadOnlyList<string>> TablesWithTenantIdAsync()
    {
        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'tenant_id'", connection);
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }

    [Fact]
    public async Task Search_index_lag_reports_the_oldest_unindexed_commit_until_the_indexer_catches_up()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance, time);
        await store.MigrateAsync(CancellationToken.None);
        var progress = (ISearchIndexProgress)store;
        long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;

        // Hold the indexer's lock, as another replica's indexing pass would: the commits below stay unindexed.
        await using var holder = await HoldIndexerLockAsync();

        await store.InsertSpansAsync(tenant, [Exchange(1, 1), Exchange(1, 2)], CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(7));
        await store.InsertSpansAsync(tenant, [Exchange(2, 1)], CancellationToken.None);
        var searchable = progress.WaitForSearchAsync(CancellationToken.None);

        Assert.Equal(new SearchIndexLag(TimeSpan.FromSeconds(7), 3), progress.Lag);
        Assert.False(searchable.IsCompleted);

        await ReleaseIndexerLockAsync(holder);

        await searchable;
        Assert.Equal(default, progress.Lag);
    }

    [Fact]
    public async Task After_a_restart_the_search_index_lag_counts_the_spans_the_last_run_left_unindexed()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);

        // Another replica's indexing pass holds the lock while this backend stops, leaving three
        // spans in the form an older replica writes them (no search terms until the indexer fills
        // them in): the next run must index them, and text search does not find them until then.
        await using var holder = await HoldIndexerLockAsync();
        await using (var first = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance, time))
        {
            await first.MigrateAsync(CancellationToken.None);
            long tenant = (await first.EnsureTenantAsync("acme", CancellationToken.None)).Id;
            await first.InsertSpansAsync(tenant, [Exchange(1, 1, responseText: "lisbon"), Exchange(1, 2), Exchange(2, 1)], CancellationToken.None);
        }

        Assert.Equal(3, await ExecuteAsync("UPDATE spans SET terms = NULL, packed_terms = NULL, packed_numbers = NULL"));

        await using var second = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance, time);
        await second.MigrateAsync(CancellationToken.None);
        var progress = (ISearchIndexProgress)second;
        time.Advance(TimeSpan.FromSeconds(4));

        // Counted from the restart: search does not find them yet, and the metrics say so.
        Assert.Equal(new SearchIndexLag(TimeSpan.FromSeconds(4), 3), progress.Lag);

        long acme = (await second.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        Assert.Empty((await second.SearchTracesAsync(acme, new TraceQuery { Text = "lisbon" }, CancellationToken.None)).Items);

        await ReleaseIndexerLockAsync(holder);
        await progress.WaitForSearchAsync(CancellationToken.None);
        Assert.Equal(default, progress.Lag);
        Assert.Single((await second.SearchTracesAsync(acme, new TraceQuery { Text = "lisbon" }, CancellationToken.None)).Items);
    }

    [Fact]
    public async Task A_span_whose_body_no_longer_decodes_stays_found_by_the_words_its_stored_hashes_hold()
    {
        // Word hashes are taken from the bodies at ingest; a "maybe" is settled on the bodies as
        // stored. A body this version cannot decode (corrupt, or a codec of a newer version after a
        // rollback) cannot say no, so the span stays listed instead of silently vanishing.
        long tenant = (await Store.EnsureTenantAsync("rollback", CancellationToken.None)).Id;
        await Store.InsertSpansAsync(
            tenant,
            [Exchange(1, 1, session: "s1", responseText: "{\"city\":\"lisbon\"}"), Exchange(2, 1, session: "s2", responseText: "{\"city\":\"porto\"}")],
            CancellationToken.None);
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        Assert.Equal(2, await ExecuteAsync("UPDATE spans SET response_body = '\\xff00'::bytea"));

        var lisbon = await Store.SearchTracesAsync(tenant, new TraceQuery { Text = "lisbon" }, CancellationToken.None);
        Assert.Equal([Trace(1)], lisbon.Items.Select(t => t.TraceId));
        Assert.Equal(["s2"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "porto" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Empty((await Store.SearchTracesAsync(tenant, new TraceQuery { Text = "madrid" }, CancellationToken.None)).Items);
    }

    [Fact]
    public async Task Start_up_refuses_a_spans_sequence_that_caches_ids_and_names_the_fix()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using (var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance))
        {
            await store.MigrateAsync(CancellationToken.None);
        }

        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using (var alter = new Npgsql.NpgsqlCommand("ALTER SEQUENCE spans_id_seq CACHE 20", connection))
        {
            await alter.ExecuteNonQueryAsync();
        }

        await using (var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance))
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => store.MigrateAsync(CancellationToken.None));
            Assert.Contains("caches 20 ids", error.Message);
            Assert.Contains("ALTER SEQUENCE public.spans_id_seq CACHE 1", error.Message);
        }

        await using (var alter = new Npgsql.NpgsqlCommand("ALTER SEQUENCE spans_id_seq CACHE 1", connection))
        {
            await alter.ExecuteNonQueryAsync();
        }

        await using var fixedStore = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await fixedStore.MigrateAsync(CancellationToken.None);
    }

    [Fact]
    public async Task The_text_index_gathers_entries_in_a_16_MiB_pending_list()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT reloptions FROM pg_class WHERE relname = 'spans_terms'", connection);

        Assert.Contains("gin_pending_list_limit=16384", (string[])(await command.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task A_span_is_searchable_when_its_insert_returns_even_while_the_indexer_is_held()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;

        // The indexer cannot run: only the insert itself can have made the span findable.
        await using var holder = await HoldIndexerLockAsync();
        await store.InsertSpansAsync(tenant, [Exchange(1, 1, session: "s1", responseText: "lisbon porto")], CancellationToken.None);

        Assert.Equal([Trace(1)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = "porto lisbon" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal(["s1"], (await store.ListSessionsAsync(tenant, new SessionQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        await ReleaseIndexerLockAsync(holder);
    }

    [Fact]
    public async Task A_word_whose_hash_shares_a_bucket_with_a_stored_word_does_not_match_it()
    {
        // Two words with one bucket (top 16 bits of the hash) and different hashes: the index
        // offers the span for both, the stored hashes must turn the second away.
        var seen = new Dictionary<short, string>();
        string stored = string.Empty, other = string.Empty;
        for (int i = 0; other.Length == 0; i++)
        {
            string word = "w" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            short bucket = PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash(word));
            if (seen.TryGetValue(bucket, out string? first))
            {
                (stored, other) = (first, word);
            }
            else
            {
                seen[bucket] = word;
            }
        }

        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        await store.InsertSpansAsync(tenant, [Exchange(1, 1, session: "s1", responseText: stored)], CancellationToken.None);

        Assert.Equal([Trace(1)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = stored }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Empty((await store.SearchTracesAsync(tenant, new TraceQuery { Text = other }, CancellationToken.None)).Items);
        Assert.Empty((await store.ListSessionsAsync(tenant, new SessionQuery { Text = other }, CancellationToken.None)).Items);
    }

    [Fact]
    public async Task A_short_number_is_stored_as_its_code_without_hash_or_bucket_and_found_exactly()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        await store.InsertSpansAsync(tenant, [Exchange(1, 1, session: "s1", responseText: "{\"city\":\"lisbon\",\"seats\":42,\"id\":1234}")], CancellationToken.None);
        await store.InsertSpansAsync(tenant, [Exchange(2, 1, session: "s2", responseText: "{\"city\":\"paris\",\"seats\":7,\"gate\":\"042\"}")], CancellationToken.None);

        await using (var connection = new Npgsql.NpgsqlConnection(_connectionString))
        {
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand("SELECT packed_terms, term_buckets, packed_numbers, terms, numbers IS NULL FROM spans ORDER BY id LIMIT 1", connection);
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            var (terms, buckets, numbers) = ((byte[])reader[0], (short[])reader[1], (byte[])reader[2]);
            Assert.True(HoldsEntry(terms, PackedHash("1234")));
            Assert.Contains(PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("lisbon")), buckets);
            Assert.Equal(PackedNumber("42"), numbers);
            Assert.False(HoldsEntry(terms, PackedHash("42")));
            Assert.DoesNotContain(PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("42")), buckets);
            // The arrays of rows before migration 16 are left empty (terms) and null (numbers).
            Assert.Empty((long[])reader[3]);
            Assert.True(reader.GetBoolean(4));
        }

        Assert.Equal([Trace(1)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = "42" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal([Trace(1)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = "lisbon 42" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal([Trace(2)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = "042" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal(["s2"], (await store.ListSessionsAsync(tenant, new SessionQuery { Text = "7" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal(["s1"], (await store.ListSessionsAsync(tenant, new SessionQuery { Text = "42 1234" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Empty((await store.SearchTracesAsync(tenant, new TraceQuery { Text = "43" }, CancellationToken.None)).Items);
        Assert.Empty((await store.ListSessionsAsync(tenant, new SessionQuery { Text = "paris 42" }, CancellationToken.None)).Items);
    }

    [Fact]
    public async Task A_word_in_most_sampled_spans_leaves_the_text_index_and_is_still_found_exactly_by_every_replica()
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var store = (PostgresSpanStore)SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance, time);
        await store.MigrateAsync(CancellationToken.None);
        long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;

        // Another replica that read the (empty) set before this one's sample: its copy stays stale.
        await using var replica = (PostgresSpanStore)SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance, time);
        await replica.CommonBuckets.ForIngestAsync(CancellationToken.None);

        // The sample: "lisbon" in every span, a word of its own in each.
        int n = 0;
        while (n < PostgresCommonBuckets.SampleSpans)
        {
            var batch = Enumerable.Range(n + 1, 512).Select(i => Exchange(i, 1, session: "s" + i, responseText: "{\"city\":\"lisbon\",\"ref\":\"r" + i + "x\"}")).ToList();
            await store.InsertSpansAsync(tenant, batch, CancellationToken.None);
            n += batch.Count;
        }

        await store.CommonBuckets.Sampled;
        short lisbon = PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("lisbon"));
        short porto = PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("porto"));
        short own = PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("r7x"));
        Assert.True(store.CommonBuckets.ForQuery().Contains(lisbon));
        Assert.False(store.CommonBuckets.ForQuery().Contains(own));
        Assert.False(replica.CommonBuckets.ForQuery().Contains(lisbon));

        // New spans leave the common bucket out of the index and keep the word's hash; one has common words only.
        await store.InsertSpansAsync(tenant, [Exchange(9001, 1, session: "new1", start: T0.AddHours(1), responseText: "{\"city\":\"lisbon\",\"to\":\"porto\"}")], CancellationToken.None);
        await store.InsertSpansAsync(tenant, [Exchange(9002, 1, session: "new2", start: T0.AddHours(2), responseText: "{\"city\":\"lisbon\"}")], CancellationToken.None);
        await using (var connection = new Npgsql.NpgsqlConnection(_connectionString))
        {
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand("SELECT packed_terms, term_buckets FROM spans WHERE session_id = 'new1'", connection);
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.True(HoldsEntry((byte[])reader[0], PackedHash("lisbon")));
            Assert.DoesNotContain(lisbon, (short[])reader[1]);
            Assert.Contains(porto, (short[])reader[1]);
        }

        foreach (var reader in new[] { store, replica })
        {
            Assert.Equal(["new1"], (await reader.ListSessionsAsync(tenant, new SessionQuery { Text = "porto lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));
            Assert.Equal([Trace(9001)], (await reader.SearchTracesAsync(tenant, new TraceQuery { Text = "lisbon porto" }, CancellationToken.None)).Items.Select(t => t.TraceId));
            Assert.Equal(["s7"], (await reader.ListSessionsAsync(tenant, new SessionQuery { Text = "lisbon r7x" }, CancellationToken.None)).Items.Select(s => s.SessionId));
            Assert.Equal(["new2", "new1"], (await reader.ListSessionsAsync(tenant, new SessionQuery { Text = "lisbon", Limit = 2 }, CancellationToken.None)).Items.Select(s => s.SessionId));
            Assert.Empty((await reader.SearchTracesAsync(tenant, new TraceQuery { Text = "lisbon madrid" }, CancellationToken.None)).Items);
        }
    }

    [Fact]
    public Task Id_words_leave_the_text_index_for_a_filter_per_transaction_and_are_still_found_exactly() =>
        InDatabaseOfItsOwnAsync(async connectionString =>
        {
            await using var store = SpanStoreFactory.Open("postgres:" + connectionString, NullLoggerFactory.Instance);
            await store.MigrateAsync(CancellationToken.None);
            long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
            await store.InsertSpansAsync(tenant,
            [
                Exchange(1, 1, session: "s1", responseText: "{\"order\":\"ord48213\",\"city\":\"lisbon\"}"),
                Exchange(2, 2, session: "s2", responseText: "{\"order\":\"ord77120\",\"city\":\"porto\"}"),
            ], CancellationToken.None);
            await store.InsertSpansAsync(tenant, [Exchange(3, 3, session: "s3", start: T0.AddHours(1), responseText: "{\"order\":\"ord90001\",\"city\":\"lisbon\"}")], CancellationToken.None);

            await using var check = new Npgsql.NpgsqlConnection(connectionString);
            await check.OpenAsync();
            await using (var command = new Npgsql.NpgsqlCommand("SELECT packed_terms, term_buckets FROM spans ORDER BY id LIMIT 1", check))
            {
                await using var reader = await command.ExecuteReaderAsync();
                Assert.True(await reader.ReadAsync());
                var (terms, buckets) = ((byte[])reader[0], (short[])reader[1]);
                Assert.True(HoldsEntry(terms, PackedHash("ord48213")));
                Assert.DoesNotContain(PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("ord48213")), buckets);
                Assert.Contains(PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("lisbon")), buckets);
            }

            Assert.Equal(2L, await ScalarAsync(check, "SELECT COUNT(*) FROM span_filters"));
            Assert.Equal([Trace(1)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = "ord48213" }, CancellationToken.None)).Items.Select(t => t.TraceId));
            Assert.Equal(["s2"], (await store.ListSessionsAsync(tenant, new SessionQuery { Text = "porto ord77120" }, CancellationToken.None)).Items.Select(s => s.SessionId));
            // Both words are in the first transaction's filter, but in two different spans.
            Assert.Empty((await store.SearchTracesAsync(tenant, new TraceQuery { Text = "ord48213 ord77120" }, CancellationToken.None)).Items);
            Assert.Empty((await store.SearchTracesAsync(tenant, new TraceQuery { Text = "ord48213 porto" }, CancellationToken.None)).Items);
            Assert.Empty((await store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord99999" }, CancellationToken.None)).Items);
            // An id word every span holds (the authority's port) finds every span.
            Assert.Equal(["s3", "s2", "s1"], (await store.ListSessionsAsync(tenant, new SessionQuery { Text = "8080" }, CancellationToken.None)).Items.Select(s => s.SessionId));

            // Retention takes the first transaction's spans and its filter; the second's stays and still finds its span.
            Assert.Equal(2L, await store.DeleteOlderThanAsync(tenant, T0.AddMinutes(30), CancellationToken.None));
            Assert.Equal(1L, await ScalarAsync(check, "SELECT COUNT(*) FROM span_filters"));
            Assert.Equal(["s3"], (await store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord90001 lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));

            await store.PurgeTenantAsync(tenant, removeTenant: false, progress: null, CancellationToken.None);
            Assert.Equal(0L, await ScalarAsync(check, "SELECT COUNT(*) FROM span_filters"));
        });

    [Fact]
    public Task A_store_upgrades_in_place_to_id_filters_and_finds_its_spans_by_their_id_words() =>
        InDatabaseOfItsOwnAsync(async connectionString =>
        {
            // The schema before id filters, and a span as it stored it: its id word's bucket in the index.
            await SetUpOneIndexedSpanBeforeAsync(connectionString, "span_filters", ["lisbon", "ord48213"], "old", "frontend", "/lisbon/ord48213");

            await using var check = new Npgsql.NpgsqlConnection(connectionString);
            await check.OpenAsync();
            long heapBefore = await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint");

            await using var store = SpanStoreFactory.Open("postgres:" + connectionString, NullLoggerFactory.Instance);
            await store.MigrateAsync(CancellationToken.None);
            await store.InsertSpansAsync(1, [Exchange(2, 2, session: "new", start: T0, responseText: "{\"order\":\"ord48213\",\"city\":\"porto\"}")], CancellationToken.None);

            Assert.Equal(["new", "old"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "ord48213" }, CancellationToken.None)).Items.Select(s => s.SessionId));
            Assert.Equal([Trace(1)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon ord48213" }, CancellationToken.None)).Items.Select(t => t.TraceId));
            Assert.Equal([Trace(2)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "ord48213 porto" }, CancellationToken.None)).Items.Select(t => t.TraceId));

            // Only a table was added: the spans' rows were not rewritten.
            Assert.Equal(heapBefore, await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint"));
        });

    [Theory]
    [InlineData("ord48213", true)]
    [InlineData("2026", true)]
    [InlineData("a1b2", true)]
    [InlineData("123", false)]
    [InlineData("a12", false)]
    [InlineData("lisbon", false)]
    public void Words_of_four_characters_or_more_with_a_digit_are_id_words(string word, bool idWord) =>
        Assert.Equal(idWord, PostgresSearchTerms.IsIdWord(word));

    [Theory]
    [InlineData("4", true)]
    [InlineData("42", true)]
    [InlineData("999", true)]
    [InlineData("007", true)]
    [InlineData("1000", false)]
    [InlineData("a1", false)]
    [InlineData("id", false)]
    [InlineData("\u0664\u0662", false)]
    public void Only_words_of_one_to_three_ASCII_digits_are_short_numbers(string word, bool shortNumber) =>
        Assert.Equal(shortNumber, PostgresSearchTerms.IsShortNumber(word));

    [Fact]
    public void Every_short_number_has_a_code_of_its_own_from_0_to_1109()
    {
        // Leading zeros make other words ("7", "07", "007"): each must keep a code of its own.
        var words = Enumerable.Range(0, 10).Select(n => n.ToString("D1", System.Globalization.CultureInfo.InvariantCulture))
            .Concat(Enumerable.Range(0, 100).Select(n => n.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)))
            .Concat(Enumerable.Range(0, 1000).Select(n => n.ToString("D3", System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();

        Assert.Equal(Enumerable.Range(0, 1110).Select(n => (short)n), words.Select(w => PostgresSearchTerms.NumberCode(w)).Order());
    }

    [Fact]
    public Task A_store_at_the_previous_schema_upgrades_in_place_and_its_spans_become_searchable() =>
        InDatabaseOfItsOwnAsync(UpgradeAsync);

    // Upgrade tests build an older schema: the suite's database has the current one already.
    private async Task InDatabaseOfItsOwnAsync(Func<string, Task> test)
    {
        string connectionString = await fixture.CreateDatabaseAsync();
        try
        {
            await test(connectionString);
        }
        finally
        {
            await fixture.DropDatabaseAsync(connectionString);
        }
    }

    private static async Task UpgradeAsync(string connectionString)
    {
        // The schema before word hashes were stored with the span, and two spans as it stored
        // them: one indexed (in span_search), one the indexer had not reached yet; both found by
        // the word in their path after the upgrade.
        await SetUpBeforeAsync(connectionString, "ADD COLUMN terms", """
            INSERT INTO tenants (name, created_ns) VALUES ('acme', 0);
            INSERT INTO spans (tenant_id, trace_id, span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, authority, path, stored_bytes)
            SELECT 1, lpad(to_hex(n), 32, '0'), lpad(to_hex(n), 16, '0'), 'GET /lisbon', 2, 'frontend', n, n + 1, 0, 1, 's' || n, 'frontend:8080', '/lisbon/' || n, 100
            FROM generate_series(1, 2) AS n;
            INSERT INTO sessions SELECT 1, 's' || n, n, n FROM generate_series(1, 2) AS n;
            INSERT INTO span_search (span_id, terms) VALUES (1, '{1}');
            UPDATE search_progress SET indexed_to = 1;
            """);

        await using var store = SpanStoreFactory.Open("postgres:" + connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        await ((ISearchIndexProgress)store).WaitForSearchAsync(CancellationToken.None);

        Assert.Equal(["s2", "s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal([Trace(2)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon 2" }, CancellationToken.None)).Items.Select(t => t.TraceId));

        // New spans go in with their terms beside the upgraded ones.
        await store.InsertSpansAsync(1, [Exchange(3, 3, session: "s3", path: "/lisbon/3")], CancellationToken.None);
        Assert.Equal(["s3", "s2", "s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));
    }

    [Fact]
    public Task A_store_with_spans_in_the_previous_layout_upgrades_in_place_and_reads_them_as_before() =>
        InDatabaseOfItsOwnAsync(UpgradeStorageAsync);

    private static async Task UpgradeStorageAsync(string connectionString)
    {
        await using (var connection = new Npgsql.NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();

            // The schema before this version, with two spans as it stored them: word hashes large
            // enough (EXTERNAL then) that TOAST moved them out of the row, and hex ids it checked.
            var setup = SchemaBefore("spans_trace_id_check");
            setup.Append("""
                INSERT INTO tenants (name, created_ns) VALUES ('acme', 0);
                INSERT INTO spans (tenant_id, trace_id, span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, authority, path, request_body, stored_bytes, terms, term_buckets)
                SELECT 1, lpad(to_hex(n), 32, '0'), lpad(to_hex(n), 16, '0'), 'GET /lisbon', 2, 'frontend', n, n + 1, 0, 1, 's' || n, 'frontend:8080', '/lisbon/' || n,
                    NULL, 100, h.terms,
                    -- Every word's bucket, as versions before short numbers went without one stored them.
                    ARRAY(SELECT DISTINCT (b.h >> 48)::smallint FROM unnest(h.terms) AS b(h) ORDER BY 1)
                FROM generate_series(1, 2) AS n,
                    LATERAL (SELECT CASE n WHEN 1 THEN @t1 ELSE @t2 END AS terms) AS h;
                INSERT INTO sessions SELECT 1, 's' || n, n, n FROM generate_series(1, 2) AS n;
                """);
            await using var command = new Npgsql.NpgsqlCommand(setup.ToString(), connection);
            // The words of the path ("lisbon", the number) and 400 more (numbers never queried).
            foreach (int n in new[] { 1, 2 })
            {
                long[] terms = [PostgresSearchTerms.Hash("lisbon"), PostgresSearchTerms.Hash(n.ToString(System.Globalization.CultureInfo.InvariantCulture)), .. Enumerable.Range(n * 1000, 400).Select(w => PostgresSearchTerms.Hash("w" + w.ToString(System.Globalization.CultureInfo.InvariantCulture)))];
                command.Parameters.AddWithValue("t" + n.ToString(System.Globalization.CultureInfo.InvariantCulture), terms);
            }

            await command.ExecuteNonQueryAsync();
            Assert.Equal(1L, await ScalarAsync(connection, "SELECT COUNT(*) FROM pg_class WHERE relname = 'spans' AND pg_relation_size(reltoastrelid) > 0"));
        }

        await using var store = SpanStoreFactory.Open("postgres:" + connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);

        // The old rows read and match as before; a new one goes in beside them with the same view.
        await store.InsertSpansAsync(1, [Exchange(3, 3, session: "s3", path: "/lisbon/3")], CancellationToken.None);
        Assert.Equal(["s3", "s2", "s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal([Trace(1), Trace(2), Trace(3)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(t => t.TraceId).Order());
        Assert.Equal([Trace(2)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon 2" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal([Span(2)], (await store.GetTraceAsync(1, Trace(2), CancellationToken.None)).Select(s => s.SpanId));

        await using var check = new Npgsql.NpgsqlConnection(connectionString);
        await check.OpenAsync();
        Assert.Equal(0L, await ScalarAsync(check, "SELECT COUNT(*) FROM pg_constraint WHERE conrelid = 'spans'::regclass AND contype = 'c'"));
        Assert.Equal(2L, await ScalarAsync(check, "SELECT COUNT(*) FROM pg_attribute WHERE attrelid = 'spans'::regclass AND attname IN ('terms', 'term_buckets') AND attstorage = 'm'"));
    }

    [Fact]
    public Task A_store_upgrades_in_place_to_C_collated_session_and_service_keys_and_the_session_index_on_tenant_and_session() =>
        InDatabaseOfItsOwnAsync(UpgradeCollationAsync);

    private static async Task UpgradeCollationAsync(string connectionString)
    {
        // The schema before session and service were "C"-collated, with a trace of two spans (a
        // root and its child) and a session as it stored them.
        await SetUpBeforeAsync(connectionString, "COLLATE \"C\"", """
            INSERT INTO tenants (name, created_ns) VALUES ('acme', 0);
            INSERT INTO spans (tenant_id, trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, authority, path, stored_bytes, terms, term_buckets)
            SELECT 1, lpad(to_hex(7), 32, '0'), lpad(to_hex(n), 16, '0'), CASE n WHEN 2 THEN lpad(to_hex(1), 16, '0') END,
                'GET /lisbon', 2, CASE n WHEN 1 THEN 'frontend' ELSE 'flights' END, n, n + 1, 0, 1, 'sess-a', 'frontend:8080', '/lisbon', 100,
                ARRAY[@h], ARRAY[@b]
            FROM generate_series(1, 2) AS n;
            INSERT INTO sessions VALUES (1, 'sess-a', 1, 2);
            """,
            ("h", PostgresSearchTerms.Hash("lisbon")),
            ("b", PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("lisbon"))));

        await using var check = new Npgsql.NpgsqlConnection(connectionString);
        await check.OpenAsync();
        long heapBefore = await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint");

        await using var store = SpanStoreFactory.Open("postgres:" + connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);

        // The rows read as before, are found by their ids, by text, by service and by session.
        var trace = await store.GetTraceAsync(1, Trace(7), CancellationToken.None);
        Assert.Equal([(Span(1), (string?)null), (Span(2), Span(1))], trace.Select(s => (s.SpanId, s.ParentSpanId)));
        Assert.Equal(Trace(7), (await store.GetSpanAsync(1, Trace(7), Span(2), CancellationToken.None))!.TraceId);
        Assert.Equal([Trace(7)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal([Trace(7)], (await store.SearchTracesAsync(1, new TraceQuery { Service = "flights" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal(["sess-a"], (await store.ListSessionsAsync(1, new SessionQuery(), CancellationToken.None)).Items.Select(s => s.SessionId));

        // A retried export of a stored span is recognised as stored; a new span of the session goes in beside them.
        Assert.Equal(0, await store.InsertSpansAsync(1, [Exchange(7, 2, parent: 1, session: "sess-a")], CancellationToken.None));
        Assert.Equal(1, await store.InsertSpansAsync(1, [Exchange(7, 3, parent: 2, session: "sess-a", path: "/lisbon")], CancellationToken.None));
        Assert.Equal([Span(1), Span(2), Span(3)], (await store.GetTraceAsync(1, Trace(7), CancellationToken.None)).Select(s => s.SpanId).Order());
        Assert.Equal(3, (await store.GetSessionAsync(1, "sess-a", CancellationToken.None))!.Count);

        Assert.Equal(3L, await ScalarAsync(check, "SELECT COUNT(*) FROM information_schema.columns WHERE (table_name, column_name) IN (('spans', 'session_id'), ('spans', 'service'), ('sessions', 'session_id')) AND collation_name = 'C'"));
        Assert.Equal(3L, await ScalarAsync(check, "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'spans' AND column_name IN ('trace_id', 'span_id', 'parent_span_id') AND data_type = 'text'"));
        Assert.Equal(1L, await ScalarAsync(check, "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'spans_session' AND indexdef LIKE '%(tenant_id, session_id) WHERE%'"));
        // Only the collation changed: the table's rows were not rewritten (docs/production.md says so).
        Assert.Equal(heapBefore, await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint"));
    }

    [Fact]
    public Task A_store_upgrades_in_place_to_short_number_codes_while_an_older_replica_keeps_writing_and_finding() =>
        InDatabaseOfItsOwnAsync(UpgradeNumbersAsync);

    private static async Task UpgradeNumbersAsync(string connectionString)
    {
        // The schema before short numbers had codes, and a span as it stored them: every word's hash and bucket.
        string[] oldWords = ["lisbon", "42"];
        await SetUpBeforeAsync(connectionString, "ADD COLUMN numbers", """
            INSERT INTO tenants (name, created_ns) VALUES ('acme', 0);
            INSERT INTO spans (tenant_id, trace_id, span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, authority, path, stored_bytes, terms, term_buckets)
            VALUES (1, lpad(to_hex(1), 32, '0'), lpad(to_hex(1), 16, '0'), 'GET /lisbon', 2, 'frontend', 1, 2, 0, 1, 's1', 'frontend:8080', '/lisbon/42', 100, @h, @b);
            INSERT INTO sessions VALUES (1, 's1', 1, 1);
            """,
            ("h", oldWords.Select(w => PostgresSearchTerms.Hash(w)).ToArray()),
            ("b", oldWords.Select(w => PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash(w))).Distinct().Order().ToArray()));

        await using var check = new Npgsql.NpgsqlConnection(connectionString);
        await check.OpenAsync();
        long heapBefore = await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint");

        await using var store = SpanStoreFactory.Open("postgres:" + connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);

        // An older replica, still running, stores a span the way it did (no numbers column in its COPY).
        string[] olderReplicaWords = ["paris", "7"];
        await using (var older = new Npgsql.NpgsqlCommand(
            """
            INSERT INTO spans (tenant_id, trace_id, span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, authority, path, stored_bytes, terms, term_buckets)
            VALUES (1, lpad(to_hex(2), 32, '0'), lpad(to_hex(1), 16, '0'), 'GET /paris', 2, 'frontend', 3, 4, 0, 1, 's2', 'frontend:8080', '/paris/7', 100, @h, @b);
            INSERT INTO sessions VALUES (1, 's2', 3, 3);
            """,
            check))
        {
            older.Parameters.AddWithValue("h", olderReplicaWords.Select(w => PostgresSearchTerms.Hash(w)).ToArray());
            older.Parameters.AddWithValue("b", olderReplicaWords.Select(w => PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash(w))).Distinct().Order().ToArray());
            await older.ExecuteNonQueryAsync();
        }

        // And this version stores one with codes, beside them.
        await store.InsertSpansAsync(1, [Exchange(3, 1, session: "s3", path: "/lisbon/42")], CancellationToken.None);

        Assert.Equal([Trace(1), Trace(3)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "42" }, CancellationToken.None)).Items.Select(t => t.TraceId).Order());
        Assert.Equal(["s3", "s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "lisbon 42" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal(["s2"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "7" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal([Trace(2)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "paris 7" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Empty((await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon 7" }, CancellationToken.None)).Items);

        // Only the catalog changed: the table's rows were not rewritten.
        Assert.Equal(heapBefore, await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint"));
        Assert.Equal(1L, await ScalarAsync(check, "SELECT COUNT(*) FROM spans WHERE packed_numbers IS NOT NULL"));
    }

    [Fact]
    public Task A_store_upgrades_in_place_to_common_buckets_and_finds_its_spans_by_a_word_that_became_common() =>
        InDatabaseOfItsOwnAsync(UpgradeCommonBucketsAsync);

    private static async Task UpgradeCommonBucketsAsync(string connectionString)
    {
        // The schema before common buckets, and a span as it stored it: every word's bucket.
        await SetUpOneIndexedSpanBeforeAsync(connectionString, "search_common_buckets", ["lisbon", "porto"], "s1", "frontend:8080", "/lisbon/porto");

        await using var check = new Npgsql.NpgsqlConnection(connectionString);
        await check.OpenAsync();
        long heapBefore = await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint");

        await using var store = SpanStoreFactory.Open("postgres:" + connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);

        // A replica's sample finds "lisbon" common: the old span, which holds its bucket, is still found by it.
        await using (var add = new Npgsql.NpgsqlCommand("INSERT INTO search_common_buckets VALUES (@b)", check))
        {
            add.Parameters.AddWithValue("b", PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash("lisbon")));
            await add.ExecuteNonQueryAsync();
        }

        Assert.Equal(["s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal([Trace(1)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "porto lisbon" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Empty((await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon madrid" }, CancellationToken.None)).Items);

        // Only a table was added: the spans' rows were not rewritten.
        Assert.Equal(heapBefore, await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint"));
    }

    // A database at the schema before the first migration whose script contains marker, with
    // rows (SQL, with its parameters) as that version stored them.
    // A store at the schema before marker holding one span of tenant "acme", trace 1, GET /lisbon,
    // as that schema stored it: every word's hash in terms and its bucket in term_buckets.
    private static Task SetUpOneIndexedSpanBeforeAsync(string connectionString, string marker, string[] words, string session, string authority, string path) =>
        SetUpBeforeAsync(connectionString, marker, """
            INSERT INTO tenants (name, created_ns) VALUES ('acme', 0);
            INSERT INTO spans (tenant_id, trace_id, span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, authority, path, stored_bytes, terms, term_buckets, numbers)
            VALUES (1, lpad(to_hex(1), 32, '0'), lpad(to_hex(1), 16, '0'), 'GET /lisbon', 2, 'frontend', 1, 2, 0, 1, @s, @a, @p, 100, @h, @b, '{}');
            INSERT INTO sessions VALUES (1, @s, 1, 1);
            """,
            ("s", session),
            ("a", authority),
            ("p", path),
            ("h", words.Select(w => PostgresSearchTerms.Hash(w)).ToArray()),
            ("b", words.Select(w => PostgresSearchTerms.Bucket(PostgresSearchTerms.Hash(w))).Distinct().Order().ToArray()));

    private static async Task SetUpBeforeAsync(string connectionString, string marker, string rows, params (string Name, object Value)[] parameters)
    {
        await using var connection = new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(SchemaBefore(marker).Append(rows).ToString(), connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        await command.ExecuteNonQueryAsync();
    }

    // Every migration before the first whose script contains marker, as a store at that version
    // would have run them (found by content: the orchestrator may renumber migrations).
    private static System.Text.StringBuilder SchemaBefore(string marker)
    {
        int upTo = PostgresMigrations.All.ToList().FindIndex(m => m.Contains(marker, StringComparison.Ordinal));
        Assert.True(upTo > 0, marker);
        var setup = new System.Text.StringBuilder("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL);");
        for (int i = 0; i < upTo; i++)
        {
            setup.Append(PostgresMigrations.All[i]).Append(";INSERT INTO schema_migrations VALUES (").Append(i + 1).Append(", 0);");
        }

        return setup;
    }

    // One statement on the test's database from a connection of its own, as another process would
    // run it; the rows it touched.
    private async Task<int> ExecuteAsync(string sql)
    {
        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(sql, connection);
        return await command.ExecuteNonQueryAsync();
    }

    private static async Task<long> ScalarAsync(Npgsql.NpgsqlConnection connection, string sql)
    {
        await using var command = new Npgsql.NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public Task A_store_upgrades_in_place_to_packed_terms_and_searches_old_and_new_rows_of_one_tenant_together() =>
        InDatabaseOfItsOwnAsync(UpgradePackedTermsAsync);

    private static async Task UpgradePackedTermsAsync(string connectionString)
    {
        // Two words of letters only (not id words, so no filter stands between them and the rows)
        // whose hashes share their top 35 bits: one packed entry, two words.
        var (stored, other) = WordsOfOnePackedEntry();

        // The schema before packed terms, and a span as it stored it: every word's hash in terms.
        await SetUpOneIndexedSpanBeforeAsync(connectionString, "packed_terms", ["lisbon", "porto"], "s1", "frontend:8080", "/lisbon/porto");
        await using var check = new Npgsql.NpgsqlConnection(connectionString);
        await check.OpenAsync();
        long heapBefore = await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint");

        await using var store = SpanStoreFactory.Open("postgres:" + connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        Assert.Equal(heapBefore, await ScalarAsync(check, "SELECT pg_relation_filenode('spans')::bigint"));

        // New rows: trace 2 holds the other word, trace 3 (newer) the stored one, whose entry is the other's too.
        await store.InsertSpansAsync(1, [Exchange(2, 1, session: "s2", start: T0.AddHours(1), responseText: "{\"city\":\"lisbon\",\"w\":\"" + other + "\",\"seats\":7}")], CancellationToken.None);
        await store.InsertSpansAsync(1, [Exchange(3, 1, session: "s3", start: T0.AddHours(2), responseText: "{\"city\":\"madrid\",\"w\":\"" + stored + "\"}")], CancellationToken.None);
        Assert.Equal(2L, await ScalarAsync(check, "SELECT COUNT(*) FROM spans WHERE packed_terms IS NOT NULL AND cardinality(terms) = 0"));

        // A word in the old row and a new one; a word only in the old row; a short number only in a new one.
        Assert.Equal(["s2", "s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal([Trace(2), Trace(1)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal([Trace(1)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "porto lisbon" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal(["s2"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "lisbon 7" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        // Words that no row holds, and words that rows hold apart.
        Assert.Empty((await store.SearchTracesAsync(1, new TraceQuery { Text = "paris" }, CancellationToken.None)).Items);
        Assert.Empty((await store.ListSessionsAsync(1, new SessionQuery { Text = "porto madrid" }, CancellationToken.None)).Items);
        Assert.Empty((await store.SearchTracesAsync(1, new TraceQuery { Text = "madrid 7" }, CancellationToken.None)).Items);

        // The packed check says "maybe" for trace 3 on the other word; its search text says no,
        // and the scan goes on to trace 2, which holds it.
        Assert.Equal([Trace(2)], (await store.SearchTracesAsync(1, new TraceQuery { Text = other }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal(["s2"], (await store.ListSessionsAsync(1, new SessionQuery { Text = other }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal([Trace(3)], (await store.SearchTracesAsync(1, new TraceQuery { Text = stored }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal(["s3"], (await store.ListSessionsAsync(1, new SessionQuery { Text = stored + " madrid" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Empty((await store.ListSessionsAsync(1, new SessionQuery { Text = other + " madrid" }, CancellationToken.None)).Items);
        Assert.Empty((await store.SearchTracesAsync(1, new TraceQuery { Text = other + " madrid" }, CancellationToken.None)).Items);
    }

    [Fact]
    public async Task False_packed_matches_met_first_in_a_scan_or_a_session_leave_every_true_match_listed_on_every_page()
    {
        // Spans holding `stored` are a packed "maybe" for `other` whose search text says no. They are
        // the newest spans of the scan and the first span read of their sessions, so trace search
        // has to resume past them (also inside a trace whose older span holds the word) and the
        // session list has to read a session's next span, or drop a session none of whose spans holds it.
        var (stored, other) = WordsOfOnePackedEntry();
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        long tenant = (await store.EnsureTenantAsync("settle", CancellationToken.None)).Id;
        StoredSpan Holding(string word, int trace, int span, string session, double hours) =>
            Exchange(trace, span, session: session, start: T0.AddHours(hours), responseText: "{\"w\":\"" + word + "\"}");

        // One at a time, in this order: within a session the span inserted last is read first.
        StoredSpan[] spans =
        [
            Holding(other, 10, 2, "mixed", 1),
            Holding(stored, 10, 1, "mixed", 5),
            Holding(stored, 11, 1, "false-only", 4),
            Holding(other, 12, 1, "true-12", 3),
            Holding(stored, 13, 1, "false-only", 2),
            Holding(other, 14, 1, "true-14", 0.5),
        ];
        foreach (var span in spans)
        {
            await store.InsertSpansAsync(tenant, [span], CancellationToken.None);
        }

        // Trace search, one trace a page: each true trace once, at its newest span holding the word.
        var traces = await AllPagesAsync(1, async cursor =>
        {
            var page = await store.SearchTracesAsync(tenant, new TraceQuery { Text = other, Limit = 1, Cursor = cursor }, CancellationToken.None);
            return (page.Items.Select(t => t.TraceId).ToList(), page.NextCursor);
        });
        Assert.Equal([Trace(12), Trace(10), Trace(14)], traces);
        Assert.Equal([Trace(12), Trace(10), Trace(14)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = other }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal([Trace(10), Trace(11), Trace(13)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = stored }, CancellationToken.None)).Items.Select(t => t.TraceId));

        // The session list, two sessions a page: a page may list fewer, none is lost or listed twice.
        var sessions = await AllPagesAsync(2, async cursor =>
        {
            var page = await store.ListSessionsAsync(tenant, new SessionQuery { Text = other, Limit = 2, Cursor = cursor }, CancellationToken.None);
            return (page.Items.Select(s => s.SessionId).ToList(), page.NextCursor);
        });

        Assert.Equal(["mixed", "true-12", "true-14"], sessions);
        Assert.Equal(["mixed", "false-only"], (await store.ListSessionsAsync(tenant, new SessionQuery { Text = stored }, CancellationToken.None)).Items.Select(s => s.SessionId));
    }

    // Every page of a query from the first, each no longer than limit (at most ten pages).
    private static async Task<List<string>> AllPagesAsync(int limit, Func<string?, Task<(List<string> Items, string? Next)>> read)
    {
        var all = new List<string>();
        string? cursor = null;
        for (int page = 0; page < 10; page++)
        {
            var (items, next) = await read(cursor);
            Assert.True(items.Count <= limit);
            all.AddRange(items);
            if ((cursor = next) is null)
            {
                break;
            }
        }

        return all;
    }

    [Fact]
    public async Task Words_whose_packed_entries_hold_the_bytes_LIKE_reads_as_wildcards_or_escape_are_found_exactly()
    {
        // Queries look for an entry with LIKE '%entry%': an entry byte of '%', '_' or '\' must match only itself.
        string[] words = [.. new[] { (byte)'%', (byte)'_', (byte)'\\' }.Select(special => LetterWords().First(w => PackedHash(w).AsSpan(1).Contains(special)))];
        _connectionString ??= await fixture.CreateDatabaseAsync();
        await using var store = SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        long tenant = (await store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        for (int i = 0; i < words.Length; i++)
        {
            await store.InsertSpansAsync(tenant, [Exchange(i + 1, 1, session: "s" + i, responseText: "{\"w\":\"" + words[i] + "\"}")], CancellationToken.None);
        }

        for (int i = 0; i < words.Length; i++)
        {
            Assert.Equal([Trace(i + 1)], (await store.SearchTracesAsync(tenant, new TraceQuery { Text = words[i] }, CancellationToken.None)).Items.Select(t => t.TraceId));
            Assert.Equal(["s" + i], (await store.ListSessionsAsync(tenant, new SessionQuery { Text = words[i] + " items" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        }

        Assert.Empty((await store.SearchTracesAsync(tenant, new TraceQuery { Text = words[0] + " " + words[1] }, CancellationToken.None)).Items);
    }

    // Words of letters only ("q", "qb", "qc", …): not id words, so no filter stands between them and the rows.
    private static IEnumerable<string> LetterWords()
    {
        for (int i = 0; ; i++)
        {
            var word = new System.Text.StringBuilder("q");
            for (int n = i; n > 0; n /= 26)
            {
                word.Append((char)('a' + (n % 26)));
            }

            yield return word.ToString();
        }
    }

    // Two words of letters whose hashes' packed entries are equal (found by the birthday bound: ~2^17.5 words).
    private static (string Stored, string Other) WordsOfOnePackedEntry()
    {
        var seen = new Dictionary<long, string>();
        foreach (string w in LetterWords())
        {
            long entry = unchecked((long)((ulong)PostgresSearchTerms.Hash(w) >> 29));
            if (seen.TryGetValue(entry, out string? first))
            {
                Assert.Equal(PackedHash(first), PackedHash(w));
                return (first, w);
            }

            seen[entry] = w;
        }

        throw new System.Diagnostics.UnreachableException("LetterWords never ends");
    }

    private static byte[] PackedHash(string word)
    {
        var entry = new byte[PostgresSearchTerms.PackedHashBytes];
        PostgresSearchTerms.PackHash(PostgresSearchTerms.Hash(word), entry);
        return entry;
    }

    private static byte[] PackedNumber(string word)
    {
        var entry = new byte[PostgresSearchTerms.PackedNumberBytes];
        PostgresSearchTerms.PackNumber(PostgresSearchTerms.NumberCode(word), entry);
        return entry;
    }

    // Whether packed entries hold this entry at an entry's start.
    private static bool HoldsEntry(byte[] packed, byte[] entry)
    {
        for (int at = 0; at + entry.Length <= packed.Length; at += entry.Length)
        {
            if (packed.AsSpan(at, entry.Length).SequenceEqual(entry))
            {
                return true;
            }
        }

        return false;
    }

    [Fact]
    public void A_packed_entry_starts_with_the_only_byte_whose_top_bit_is_set()
    {
        // So position() in a row's entries can only match at an entry's start, never across two.
        foreach (long hash in new[] { 0L, -1L, long.MinValue, long.MaxValue, PostgresSearchTerms.Hash("lisbon") })
        {
            var entry = new byte[PostgresSearchTerms.PackedHashBytes];
            PostgresSearchTerms.PackHash(hash, entry);
            Assert.Equal(0x80, entry[0] & 0x80);
            Assert.All(entry[1..], b => Assert.Equal(0, b & 0x80));
        }

        Assert.Equal(new byte[] { 0x80 | (1109 >> 7), 1109 & 0x7F }, PackedNumber("999"));
        Assert.Equal(new byte[] { 0x80, 0 }, PackedNumber("0"));
        // The top 35 bits of the hash, 7 a byte.
        var lisbon = PackedHash("lisbon");
        ulong prefix = 0;
        foreach (byte b in lisbon)
        {
            prefix = (prefix << 7) | (byte)(b & 0x7F);
        }

        Assert.Equal((ulong)PostgresSearchTerms.Hash("lisbon") >> 29, prefix);
    }

    [Fact]
    public void Search_term_hashes_never_change_they_are_stored()
    {
        // A different hash would leave every span indexed before it unfindable.
        Assert.Equal(-5518093010897676151L, PostgresSearchTerms.Hash("lisbon"));
        Assert.Equal(unchecked((long)System.IO.Hashing.XxHash3.HashToUInt64("ação42"u8)), PostgresSearchTerms.Hash("ação42"));
        Assert.Equal("{" + PostgresSearchTerms.Hash("a") + "," + PostgresSearchTerms.Hash("b") + "}", PostgresSearchTerms.OfQuery(["a", "b"], PostgresCommonBuckets.Set.Empty).Hashes);
    }

    // A connection holding the search indexer's lock, as another replica's indexing pass would.
    private async Task<Npgsql.NpgsqlConnection> HoldIndexerLockAsync()
    {
        var holder = new Npgsql.NpgsqlConnection(_connectionString);
        await holder.OpenAsync();
        await using var take = new Npgsql.NpgsqlCommand("SELECT pg_advisory_lock(" + PostgresSpanStore.IndexerLockKey + ")", holder);
        await take.ExecuteNonQueryAsync();
        return holder;
    }

    private static async Task ReleaseIndexerLockAsync(Npgsql.NpgsqlConnection holder)
    {
        await using var release = new Npgsql.NpgsqlCommand("SELECT pg_advisory_unlock(" + PostgresSpanStore.IndexerLockKey + ")", holder);
        await release.ExecuteNonQueryAsync();
    }

    protected override Task CleanUpAsync() =>
        _connectionString is null ? Task.CompletedTask : fixture.DropDatabaseAsync(_connectionString);
}
