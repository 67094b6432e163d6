using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>The contract suite on a SQLite file in a temporary folder.</summary>
public sealed class SqliteSpanStoreTests : SpanStoreContractTests
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-sqlite-" + Guid.NewGuid().ToString("N"));

    protected override Task<ISpanStore> OpenStoreAsync(bool reopen) =>
        Task.FromResult(SpanStoreFactory.Open("sqlite:" + Path.Combine(_directory, "sp.db"), NullLoggerFactory.Instance));

    protected override Task CleanUpAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    protected override async Task<IReadOnlyList<string>> TablesWithTenantIdAsync()
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table' AND c.name = 'tenant_id'";
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }

    [Fact]
    public async Task The_text_index_merges_segments_sixteen_at_a_time() =>
        Assert.Equal(16L, await TextIndexSettingAsync("automerge"));

    [Fact]
    public async Task The_text_index_writes_blocks_of_one_page() =>
        Assert.Equal(8000L, await TextIndexSettingAsync("pgsz"));

    [Fact]
    public async Task The_indexer_writes_a_pass_as_one_text_index_segment_not_one_per_span()
    {
        // FTS5 writes its pending terms out as a new segment at every statement savepoint, which an
        // INSERT ... SELECT opens per row: a segment per span, merged over and over. One batch is
        // read by one pass of the indexer, so its spans must land in one segment.
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        var spans = Enumerable.Range(1, 40).Select(n => TestSpans.Exchange(n, 1, responseText: "lisbon " + n)).ToList();
        Assert.Equal(40, await Store.InsertSpansAsync(tenant, spans, CancellationToken.None));
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        Assert.Equal(40, (await Store.SearchTracesAsync(tenant, new TraceQuery { Text = "lisbon", Limit = 100 }, CancellationToken.None)).Items.Count);
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(DISTINCT segid) FROM spans_fts_idx";
        Assert.Equal(1L, await command.ExecuteScalarAsync());
    }

    // A setting FTS5 keeps in the table's own configuration (set by the migrations).
    private async Task<long> TextIndexSettingAsync(string key)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT v FROM spans_fts_config WHERE k = @k";
        command.Parameters.AddWithValue("@k", key);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Ids_and_codes_are_found_through_the_span_filters_exactly_and_FTS5_does_not_hold_them()
    {
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        var spans = Enumerable.Range(1, 300)
            .Select(n => TestSpans.Exchange(n, n, session: "s" + n, path: "/orders/ord" + (1000 + n), responseText: "{\"city\":\"lisbon\",\"code\":\"XK" + (5000 + n) + "\"}"))
            .ToList();
        Assert.Equal(300, await Store.InsertSpansAsync(tenant, spans, CancellationToken.None));
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        // Spans 1-300 span three rows of 128 spans' filters; 127 and 128 sit on either side of a boundary.
        foreach (int n in new[] { 1, 127, 128, 255, 257, 300 })
        {
            Assert.Equal([TestSpans.Trace(n)], (await Store.SearchTracesAsync(tenant, new TraceQuery { Text = "xk" + (5000 + n) }, CancellationToken.None)).Items.Select(t => t.TraceId));
            Assert.Equal(["s" + n], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ORD" + (1000 + n) + " lisbon" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        }

        // Words no span holds, and two words of different spans: nothing, whatever a filter answers.
        Assert.Empty((await Store.SearchTracesAsync(tenant, new TraceQuery { Text = "xk9999" }, CancellationToken.None)).Items);
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord1001 xk5002" }, CancellationToken.None)).Items);
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord1001 paris" }, CancellationToken.None)).Items);
        Assert.Equal(300, (await Store.SearchTracesAsync(tenant, new TraceQuery { Text = "lisbon", Limit = 500 }, CancellationToken.None)).Items.Count);

        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT (SELECT COUNT(*) FROM spans_fts WHERE spans_fts MATCH '\"xk5001\"') || ' ' || (SELECT COUNT(*) FROM spans_fts WHERE spans_fts MATCH '\"lisbon\"') || ' ' || (SELECT COUNT(*) FROM spans_skip)";
        Assert.Equal("0 300 3", await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Each_span_of_an_indexer_pass_is_in_FTS5_under_its_own_words_and_a_span_of_skip_words_only_has_no_FTS5_row()
    {
        // One pass, texts of many lengths side by side: odd spans have a letters-only word of their
        // own (to FTS5) of 3 to 45 letters; even spans hold nothing but unique ids (all to the filters).
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        static string Word(int n) => string.Concat(Enumerable.Repeat("w" + new string([(char)('a' + (n % 26)), (char)('a' + (n / 26 % 26))]), 1 + (n % 15)));
        var spans = Enumerable.Range(1, 200)
            .Select(n => n % 2 == 1
                ? TestSpans.Exchange(n, n, session: "s" + n, path: "/api/items", responseText: "{\"city\":\"" + Word(n) + "\",\"code\":\"XK" + (5000 + n) + "\"}")
                : TestSpans.Exchange(n, n, session: "s" + n, path: "/k" + (10000 + n), authority: "h" + (20000 + n)))
            .ToList();
        Assert.Equal(200, await Store.InsertSpansAsync(tenant, spans, CancellationToken.None));
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        foreach (int n in Enumerable.Range(1, 200).Where(n => n % 2 == 1))
        {
            Assert.Equal("s" + n, await ScalarAsync($"SELECT group_concat(session_id) FROM spans WHERE id IN (SELECT rowid FROM spans_fts WHERE spans_fts MATCH '\"{Word(n)}\"')"));
        }

        Assert.Equal("100", await ScalarAsync("SELECT COUNT(*) FROM spans_fts_docsize"));
        Assert.Equal("0", await ScalarAsync("SELECT COUNT(*) FROM spans_fts WHERE spans_fts MATCH '\"xk5001\"'"));
        foreach (int n in new[] { 2, 100, 200 })
        {
            Assert.Equal(["s" + n], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "k" + (10000 + n) + " H" + (20000 + n) }, CancellationToken.None)).Items.Select(s => s.SessionId));
        }

        Assert.Equal(["s101"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = Word(101) + " xk5101" }, CancellationToken.None)).Items.Select(s => s.SessionId));
    }

    [Fact]
    public async Task A_row_of_filters_goes_with_the_last_span_of_its_block()
    {
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        var spans = Enumerable.Range(1, 260).Select(n => TestSpans.Exchange(n, n, session: n <= 255 ? "old" : "new", path: "/orders/ord" + (1000 + n))).ToList();
        Assert.Equal(260, await Store.InsertSpansAsync(tenant, spans, CancellationToken.None));
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        // Spans 1-255 fill the rows of blocks 0 and 1 (ids 0-255); 256-260 are in block 2.
        Assert.Equal(255L, await Store.DeleteSessionAsync(tenant, "old", CancellationToken.None));
        Assert.Equal("2", await ScalarAsync("SELECT group_concat(block) FROM spans_skip"));
        Assert.Equal(["new"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord1258" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord1100" }, CancellationToken.None)).Items);
    }

    [Fact]
    public async Task Retention_by_size_leaves_a_row_of_filters_only_for_blocks_with_spans_and_answers_stay_exact()
    {
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        var spans = Enumerable.Range(1, 300).Select(n => TestSpans.Exchange(n, n, session: "s" + n, path: "/orders/ord" + (1000 + n))).ToList();
        Assert.Equal(300, await Store.InsertSpansAsync(tenant, spans, CancellationToken.None));
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        long deleted = await ((IRetentionStore)Store).DeleteOldestAsync(long.Parse((string)(await ScalarAsync("SELECT SUM(stored_bytes) FROM spans WHERE id <= 200"))!, System.Globalization.CultureInfo.InvariantCulture), CancellationToken.None);
        Assert.Equal(200L, deleted);
        Assert.Equal("0", await ScalarAsync("SELECT COUNT(*) FROM spans_skip k WHERE NOT EXISTS (SELECT 1 FROM spans WHERE id >> 7 = k.block)"));
        Assert.Equal(await ScalarAsync("SELECT COUNT(DISTINCT id >> 7) FROM spans"), await ScalarAsync("SELECT COUNT(*) FROM spans_skip"));
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord1150" }, CancellationToken.None)).Items);
        Assert.Equal(["s299"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord1299" }, CancellationToken.None)).Items.Select(s => s.SessionId));
    }

    [Fact]
    public async Task A_digit_word_most_spans_hold_goes_to_FTS5_after_a_few_spans_and_every_span_holding_it_is_found()
    {
        // "v2026" in every span: a query for it must not check every span's filter and body.
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        var spans = Enumerable.Range(1, 300)
            .Select(n => TestSpans.Exchange(n, n, session: "s" + n, path: "/orders/ord" + (1000 + n), responseText: "{\"api\":\"v2026\"}"))
            .ToList();
        Assert.Equal(300, await Store.InsertSpansAsync(tenant, spans, CancellationToken.None));
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        // Only its first spans (before it was seen in Threshold of them) hold it in their filter alone.
        Assert.Equal(
            (SpIstio.Backend.Storage.Sqlite.CommonSkipWords.Threshold - 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
            await ScalarAsync("SELECT COUNT(*) FROM spans WHERE id NOT IN (SELECT rowid FROM spans_fts WHERE spans_fts MATCH '\"v2026\"')"));
        var all = await Store.SearchTracesAsync(tenant, new TraceQuery { Text = "V2026", Limit = 500 }, CancellationToken.None);
        Assert.Equal(Enumerable.Range(1, 300).Select(TestSpans.Trace).Order(), all.Items.Select(t => t.TraceId).Order());
        Assert.Equal(["s1"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "v2026 ord1001" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal(["s150"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "ord1150 v2026" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "v2025" }, CancellationToken.None)).Items);
    }

    [Fact]
    public async Task A_query_whose_words_more_spans_may_hold_than_the_limit_is_refused_naming_the_limit()
    {
        // Six spans hold one of three rare codes each: a query for all three checks six spans.
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        string[] codes = ["aa1111", "bb2222", "cc3333"];
        var spans = Enumerable.Range(1, 6).Select(n => TestSpans.Exchange(n, n, session: "s" + n, path: "/orders/" + codes[n % 3])).ToList();
        Assert.Equal(6, await Store.InsertSpansAsync(tenant, spans, CancellationToken.None));
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        var store = (SpIstio.Backend.Storage.Sqlite.SqliteSpanStore)Store;
        store.MaxCheckedSpans = 6;
        Assert.Empty((await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "aa1111 bb2222 cc3333" }, CancellationToken.None)).Items);
        Assert.Equal(["s3", "s6"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "aa1111" }, CancellationToken.None)).Items.Select(s => s.SessionId).Order());

        store.MaxCheckedSpans = 5;
        var refused = await Assert.ThrowsAsync<SearchTooBroadException>(() => Store.SearchTracesAsync(tenant, new TraceQuery { Text = "aa1111 bb2222 cc3333" }, CancellationToken.None));
        Assert.Contains("more than 5 spans", refused.Message, StringComparison.Ordinal);
        Assert.Equal(["s3", "s6"], (await Store.ListSessionsAsync(tenant, new SessionQuery { Text = "aa1111" }, CancellationToken.None)).Items.Select(s => s.SessionId).Order());
    }

    [Fact]
    public async Task Another_tenants_spans_that_hold_the_words_do_not_count_toward_the_limit()
    {
        // Six spans of "other" hold one code each; acme's one span holds all six (each code in two
        // spans: never common). Every span's filter may hold a word of the query.
        string[] codes = ["ff1001", "ff1002", "ff1003", "ff1004", "ff1005", "ff1006"];
        long other = (await Store.EnsureTenantAsync("other", CancellationToken.None)).Id;
        long acme = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        var theirs = Enumerable.Range(0, 6).Select(n => TestSpans.Exchange(11 + n, 11 + n, session: "o" + n, path: "/orders/" + codes[n])).ToList();
        Assert.Equal(6, await Store.InsertSpansAsync(other, theirs, CancellationToken.None));
        Assert.Equal(1, await Store.InsertSpansAsync(acme, [TestSpans.Exchange(20, 20, session: "a", path: "/orders/" + string.Join('/', codes))], CancellationToken.None));
        await ((ISearchIndexProgress)Store).WaitForSearchAsync(CancellationToken.None);

        var store = (SpIstio.Backend.Storage.Sqlite.SqliteSpanStore)Store;
        store.MaxCheckedSpans = 2;
        var query = new SessionQuery { Text = string.Join(' ', codes) };
        Assert.Equal(["a"], (await Store.ListSessionsAsync(acme, query, CancellationToken.None)).Items.Select(s => s.SessionId));
        await Assert.ThrowsAsync<SearchTooBroadException>(() => Store.ListSessionsAsync(other, new SessionQuery { Text = "ff1001 ff1002 ff1003" }, CancellationToken.None));
    }

    private async Task<string?> ScalarAsync(string sql)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_file_of_schema_10_keeps_its_indexed_spans_searchable_by_ids_and_indexes_the_rest_into_block_filters()
    {
        // Span 1 was indexed by schema 10 (every word in FTS5, its code among them); span 2 was not yet.
        string path = Path.Combine(_directory, "previous.db");
        await CreateFileAtVersionAsync(path, 10, $$"""
            INSERT INTO tenants (name, created_ns) VALUES ('acme', 0);
            INSERT INTO spans (id, tenant_id, trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, authority, path, stored_bytes)
            VALUES (1, 1, unhex('{{TestSpans.Trace(7)}}'), unhex('{{TestSpans.Span(1)}}'), NULL, 'GET /orders', 2, 'frontend', 1, 2, 0, 1, 's1', 'frontend:8080', '/orders/ab1234', 100),
                   (2, 1, unhex('{{TestSpans.Trace(8)}}'), unhex('{{TestSpans.Span(2)}}'), NULL, 'GET /orders', 2, 'frontend', 3, 4, 0, 1, 's2', 'frontend:8080', '/orders/cd5678', 100);
            INSERT INTO sessions VALUES (1, 's1', 1, 1), (1, 's2', 3, 3);
            INSERT INTO spans_fts (rowid, body) VALUES (1, 'frontend 8080 orders ab1234');
            UPDATE search_progress SET indexed_to = 1;
            """);

        await using var store = SpanStoreFactory.Open("sqlite:" + path, NullLoggerFactory.Instance);
        await store.MigrateAsync(CancellationToken.None);
        await ((ISearchIndexProgress)store).WaitForSearchAsync(CancellationToken.None);

        Assert.Equal([TestSpans.Trace(7)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "ab1234" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal([TestSpans.Trace(8)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "cd5678 orders" }, CancellationToken.None)).Items.Select(t => t.TraceId));
        Assert.Equal(["s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "orders ab1234" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal(["s2"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "cd5678" }, CancellationToken.None)).Items.Select(s => s.SessionId));
        Assert.Equal(["s2", "s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "8080" }, CancellationToken.None)).Items.Select(s => s.SessionId));
    }

    // A file of its own at an earlier schema version, then the given rows as that version stored them.
    private async Task CreateFileAtVersionAsync(string path, int version, string rows)
    {
        Directory.CreateDirectory(_directory);
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path + ";Pooling=False");
        await connection.OpenAsync();
        var setup = new System.Text.StringBuilder("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL);");
        for (int i = 0; i < version; i++)
        {
            setup.Append(SpIstio.Backend.Storage.Sqlite.SqliteMigrations.All[i]).Append(";INSERT INTO schema_migrations VALUES (").Append(i + 1).Append(", 0);");
        }

        await using var command = connection.CreateCommand();
        command.CommandText = setup.Append(rows).ToString();
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task A_file_of_schema_9_upgrades_in_place_with_its_spans_readable_and_searchable()
    {
        // A file of its own at version 9, holding spans as that version stored them (hex text
        // ids), the second not yet in the text index.
        string path = Path.Combine(_directory, "previous.db");
        await CreateFileAtVersionAsync(path, 9, $$"""
                INSERT INTO tenants (name, created_ns) VALUES ('acme', 0);
                INSERT INTO spans (id, tenant_id, trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, authority, path, stored_bytes)
                VALUES (1, 1, '{{TestSpans.Trace(7)}}', '{{TestSpans.Span(1)}}', NULL, 'GET /lisbon', 2, 'frontend', 1, 2, 0, 1, 's1', 'frontend:8080', '/lisbon/1', 100),
                       (2, 1, '{{TestSpans.Trace(7)}}', '{{TestSpans.Span(2)}}', '{{TestSpans.Span(1)}}', 'GET /lisbon', 3, 'frontend', 3, 4, 0, 1, 's1', 'frontend:8080', '/lisbon/2', 100);
                INSERT INTO sessions VALUES (1, 's1', 1, 3);
                INSERT INTO spans_fts (rowid, body) VALUES (1, 'frontend 8080 lisbon 1');
                UPDATE search_progress SET indexed_to = 1;
                """);

        await using (var store = SpanStoreFactory.Open("sqlite:" + path, NullLoggerFactory.Instance))
        {
            await store.MigrateAsync(CancellationToken.None);
            await ((ISearchIndexProgress)store).WaitForSearchAsync(CancellationToken.None);

            var trace = await store.GetTraceAsync(1, TestSpans.Trace(7), CancellationToken.None);
            Assert.Equal([(TestSpans.Trace(7), TestSpans.Span(1), (string?)null), (TestSpans.Trace(7), TestSpans.Span(2), TestSpans.Span(1))], trace.Select(s => (s.TraceId, s.SpanId, s.ParentSpanId)));
            Assert.Equal("/lisbon/2", (await store.GetSpanAsync(1, TestSpans.Trace(7), TestSpans.Span(2), CancellationToken.None))?.Path);
            Assert.Equal([TestSpans.Trace(7)], (await store.SearchTracesAsync(1, new TraceQuery { Text = "lisbon 2" }, CancellationToken.None)).Items.Select(t => t.TraceId));
            Assert.Equal(["s1"], (await store.ListSessionsAsync(1, new SessionQuery { Text = "lisbon 1" }, CancellationToken.None)).Items.Select(s => s.SessionId));

            // The unique index holds the converted ids: the same span again is not stored twice.
            Assert.Equal(0, await store.InsertSpansAsync(1, [TestSpans.Exchange(7, 2, parent: 1)], CancellationToken.None));
            Assert.Equal(1, await store.InsertSpansAsync(1, [TestSpans.Exchange(7, 3, parent: 2)], CancellationToken.None));
            Assert.Equal(3, (await store.GetTraceAsync(1, TestSpans.Trace(7), CancellationToken.None)).Count);
        }

        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path + ";Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT group_concat(DISTINCT typeof(trace_id) || ' ' || length(trace_id) || ' ' || length(span_id)) FROM spans";
            Assert.Equal("blob 16 8", await command.ExecuteScalarAsync());
        }
    }

    [Fact]
    public async Task A_row_the_database_refuses_fails_its_batch_with_SQLites_reason_and_the_next_batch_goes_in()
    {
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;

        // The table's CHECK refuses a trace id that is not 32 lower-case hex digits.
        var refused = TestSpans.Exchange(1, 1) with { TraceId = "not-a-trace-id" };
        var error = await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => Store.InsertSpansAsync(tenant, [refused], CancellationToken.None));
        Assert.Equal(19, error.SqliteErrorCode); // SQLITE_CONSTRAINT
        Assert.Contains("CHECK constraint failed", error.Message, StringComparison.Ordinal);

        // The prepared insert was reset: the next batch is stored.
        Assert.Equal(1, await Store.InsertSpansAsync(tenant, [TestSpans.Exchange(2, 1)], CancellationToken.None));
    }

    [Fact]
    public async Task Committed_spans_reach_the_database_file_through_checkpoints_beside_the_writer_while_the_store_stays_open()
    {
        // 1,200 small spans fill far fewer WAL pages than the writer's own checkpoint waits for
        // (4,096) or SQLite's default (1,000): only the checkpointer beside it moves them into the
        // database file, which a copy of that file alone (no WAL) then shows.
        var store = (SpIstio.Backend.Storage.Sqlite.SqliteSpanStore)Store;
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        var spans = Enumerable.Range(1, 1200).Select(n => TestSpans.Exchange(n, n, responseText: "lisbon " + n)).ToList();
        Assert.Equal(600, await Store.InsertSpansAsync(tenant, spans[..600], CancellationToken.None));
        Assert.Equal(600, await Store.InsertSpansAsync(tenant, spans[600..], CancellationToken.None));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await store.WaitForCheckpointAsync(1200, timeout.Token);

        string copy = Path.Combine(_directory, "copy.db");
        File.Copy(Path.Combine(_directory, "sp.db"), copy);
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + copy + ";Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM spans WHERE tenant_id = " + tenant;
        Assert.Equal(1200L, await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_tenant_with_a_dictionary_from_before_json_columns_trains_one_for_them_and_reads_both_back_after_a_restart()
    {
        var none = CancellationToken.None;
        string file = Path.Combine(_directory, "upgraded.db");
        string spec = "sqlite:" + file;
        var random = new Random(7);
        var old = Enumerable.Range(1, 10).Select(n => JsonExchange(n, random)).ToList();
        var sampled = Enumerable.Range(100, CodecDictionaries.SampleValues / 2).Select(n => JsonExchange(n, random)).ToList();
        var later = Enumerable.Range(1000, 10).Select(n => JsonExchange(n, random)).ToList();
        long tenant;
        long oldId;
        CodecDictionary trained;
        await using (var store = (SqlSpanStore)SpanStoreFactory.Open(spec, NullLoggerFactory.Instance))
        {
            await store.MigrateAsync(none);
            tenant = (await store.EnsureTenantAsync("acme", none)).Id;
            // As a version before codec 4 left the store: the tenant's dictionary trained on raw
            // JSON bodies, without the column mark.
            byte[] rawTrained = ZstdSharp.DictBuilder.TrainFromBuffer(Enumerable.Range(0, 300).Select(_ => JsonBody(random)), CodecDictionaries.DictionaryBytes);
            oldId = (long)(await ScalarAsync(file, "INSERT INTO codec_dictionaries (tenant_id, created_ns, dictionary) VALUES ($t, 1, $d) RETURNING id", ("$t", tenant), ("$d", rawTrained)))!;

            await store.InsertSpansAsync(tenant, old, none);
            await store.InsertSpansAsync(tenant, sampled, none);
            trained = await store.Dictionaries.WhenTrainedAsync(tenant).WaitAsync(TimeSpan.FromMinutes(1));
            await store.InsertSpansAsync(tenant, later, none);

            // Until the new dictionary is trained, bodies stay plain zstd with the old one; after, JSON columns with the new one.
            Assert.NotEqual(oldId, trained.Id);
            Assert.True(trained.TrainedOnJsonColumns);
            foreach (var span in old)
            {
                byte[] stored = await StoredResponseBodyAsync(file, tenant, span);
                Assert.Equal(3, stored[0]);
                Assert.Equal(oldId, BodyCodec.DictionaryIdOf(stored));
            }

            foreach (var span in later)
            {
                byte[] stored = await StoredResponseBodyAsync(file, tenant, span);
                Assert.Equal(4, stored[0]);
                Assert.Equal(trained.Id, BodyCodec.DictionaryIdOf(stored));
            }
        }

        await using (var restarted = (SqlSpanStore)SpanStoreFactory.Open(spec, NullLoggerFactory.Instance))
        {
            await restarted.MigrateAsync(none);
            foreach (var span in old.Concat(sampled.Take(5)).Concat(later))
            {
                var read = await restarted.GetSpanAsync(tenant, span.TraceId, span.SpanId, none);
                Assert.Equal(span.RequestBody.ToArray(), read!.RequestBody.ToArray());
                Assert.Equal(span.ResponseBody.ToArray(), read.ResponseBody.ToArray());
            }

            // The new dictionary is the tenant's from now on: no third one is trained.
            var current = await restarted.Dictionaries.ForTenantAsync(tenant, none);
            Assert.Equal(trained.Id, current!.Id);
            Assert.False(restarted.Dictionaries.WantsSamples(current));
            Assert.Equal(trained.Id, (await restarted.Dictionaries.WhenTrainedAsync(tenant).WaitAsync(TimeSpan.FromMinutes(1))).Id);
        }
    }

    [Fact]
    public async Task A_new_tenants_batch_arriving_while_its_first_dictionary_trains_waits_for_it_so_only_the_batch_before_goes_without()
    {
        var none = CancellationToken.None;
        string file = Path.Combine(_directory, "first.db");
        var random = new Random(11);
        var sampled = Enumerable.Range(1, CodecDictionaries.SampleValues / 2).Select(n => JsonExchange(n, random)).ToList();
        var next = Enumerable.Range(1000, 10).Select(n => JsonExchange(n, random)).ToList();
        await using var store = (SqlSpanStore)SpanStoreFactory.Open("sqlite:" + file, NullLoggerFactory.Instance);
        await store.MigrateAsync(none);
        long tenant = (await store.EnsureTenantAsync("acme", none)).Id;
        // The batch waits for the training, not for a clock, however long a loaded machine takes.
        store.Dictionaries.FirstTrainingWait = TimeSpan.FromMinutes(5);

        // The first batch gives the tenant its sample and starts the training; the next one is
        // sent at once, as an exporter's next batch is, without waiting for anything.
        await store.InsertSpansAsync(tenant, sampled, none);
        await store.InsertSpansAsync(tenant, next, none);

        var trained = await store.Dictionaries.WhenTrainedAsync(tenant).WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(0, BodyCodec.DictionaryIdOf(await StoredResponseBodyAsync(file, tenant, sampled[0]))); // no dictionary
        foreach (var span in next)
        {
            Assert.Equal(trained.Id, BodyCodec.DictionaryIdOf(await StoredResponseBodyAsync(file, tenant, span)));
        }
    }

    // A JSON body long enough for JSON columns (MinJsonColumnsLength): a few records of one shape.
    private static byte[] JsonBody(Random random) => System.Text.Encoding.UTF8.GetBytes(
        "{\"items\":[" + string.Join(',', Enumerable.Range(0, 10).Select(i =>
            $$"""{"id":{{random.Next()}},"city":"{{(random.Next(2) == 0 ? "lisbon" : "porto")}}","price":{{random.Next(999)}}.5,"seat":{{i}}}""")) + "],\"currency\":\"EUR\"}");

    private static StoredSpan JsonExchange(int n, Random random) =>
        TestSpans.Exchange(n, n, session: "s" + n) with { RequestBody = JsonBody(random), ResponseBody = JsonBody(random) };

    private static async Task<byte[]> StoredResponseBodyAsync(string file, long tenant, StoredSpan span) =>
        (byte[])(await ScalarAsync(file, "SELECT response_body FROM spans WHERE tenant_id = $t AND trace_id = unhex($r) AND span_id = unhex($s)", ("$t", tenant), ("$r", span.TraceId), ("$s", span.SpanId)))!;

    private static async Task<object?> ScalarAsync(string file, string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + file + ";Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return await command.ExecuteScalarAsync();
    }

    [Fact]
    public async Task A_method_and_path_name_is_stored_as_an_empty_blob_and_a_row_that_holds_it_whole_still_reads_and_filters()
    {
        long tenant = (await Store.EnsureTenantAsync("acme", CancellationToken.None)).Id;
        var rebuilt = TestSpans.Exchange(1, 1, path: "/x");
        var whole = TestSpans.Exchange(2, 2, path: "/x");
        var empty = TestSpans.Exchange(3, 3, path: "/x") with { Name = string.Empty };
        Assert.Equal(3, await Store.InsertSpansAsync(tenant, [rebuilt, whole, empty], CancellationToken.None));

        // The bytes saved: the derived name takes no payload; the empty name stays text.
        string file = Path.Combine(_directory, "sp.db");
        Assert.Equal("blob 0,blob 0,text 0", await ScalarAsync(file, "SELECT group_concat(typeof(name) || ' ' || length(CAST(name AS BLOB))) FROM (SELECT name FROM spans ORDER BY id)"));

        // A row written before names were derived holds the whole name.
        await ScalarAsync(file, "UPDATE spans SET name = method || ' ' || path WHERE span_id = unhex($s)", ("$s", whole.SpanId));
        Assert.Equal("text", await ScalarAsync(file, "SELECT typeof(name) FROM spans WHERE span_id = unhex($s)", ("$s", whole.SpanId)));

        Assert.Equal("GET /x", (await Store.GetSpanAsync(tenant, whole.TraceId, whole.SpanId, CancellationToken.None))!.Name);
        Assert.Equal("GET /x", Assert.Single(await Store.GetTraceAsync(tenant, whole.TraceId, CancellationToken.None)).Name);
        Assert.Equal(string.Empty, (await Store.GetSpanAsync(tenant, empty.TraceId, empty.SpanId, CancellationToken.None))!.Name);
        var found = await Store.SearchTracesAsync(tenant, new TraceQuery { Operation = "GET /x" }, CancellationToken.None);
        Assert.Equal([TestSpans.Trace(2), TestSpans.Trace(1)], found.Items.Select(t => t.TraceId).Order().Reverse());
        Assert.All(found.Items, t => Assert.Equal("GET /x", t.RootName));
    }

    [Fact]
    public async Task The_database_uses_WAL_so_readers_run_beside_the_writer()
    {
        await Store.EnsureTenantAsync("acme", CancellationToken.None);

        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + Path.Combine(_directory, "sp.db"));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode";

        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
    }
}
