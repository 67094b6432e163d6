using System.Buffers;
using System.Data.Common;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace SpIstio.Backend.Storage.Postgres;

/// <summary>
/// The production store: PostgreSQL through one pooled <see cref="NpgsqlDataSource"/>. Batches
/// arrive by binary COPY into a per-transaction staging table and move to <c>spans</c> with
/// <c>INSERT … SELECT … ON CONFLICT DO NOTHING</c>, so a retried export stores nothing twice and
/// COPY's speed is kept; the session roll-up is updated by the same statement.
/// </summary>
internal sealed class PostgresSpanStore : SqlSpanStore
{
    // Any constant: serialises concurrent migrations of backends starting together.
    private const long MigrationLockKey = 0x5350_4953_5449_4F;

    private const string Columns =
        "tenant_id, trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, " +
        "session_id, direction, method, scheme, authority, path, query, route, status_code, request_headers, response_headers, " +
        "request_body, response_body, attributes, stored_bytes, span_model, grpc_status, terms, term_buckets, numbers, packed_terms, packed_numbers";

    private const string CreateStaging =
        "CREATE TEMP TABLE IF NOT EXISTS spans_staging (tenant_id BIGINT, trace_id TEXT, span_id TEXT, parent_span_id TEXT, name TEXT, kind INTEGER, " +
        "service TEXT, start_ns BIGINT, end_ns BIGINT, is_error INTEGER, is_exchange INTEGER, session_id TEXT, direction TEXT, method TEXT, " +
        "scheme TEXT, authority TEXT, path TEXT, query TEXT, route TEXT, status_code INTEGER, request_headers BYTEA, response_headers BYTEA, " +
        "request_body BYTEA, response_body BYTEA, attributes BYTEA, stored_bytes BIGINT, span_model BYTEA, grpc_status INTEGER, terms BIGINT[], term_buckets SMALLINT[], numbers SMALLINT[], packed_terms BYTEA, packed_numbers BYTEA) ON COMMIT DELETE ROWS";

    // The text index's pending list (16 MiB) is merged into its tree by the insert that fills it,
    // which gathers the list's entries in memory and writes them out whenever they pass work_mem:
    // at the default 4 MB, a list's ~65,000 bucket keys were written out several times a merge,
    // each key's posting list decoded and rewritten for a few new spans each time (two fifths of the
    // server's ingest CPU). With 64 MB the bench's lists were gathered whole, each key written
    // about once a merge (that part of the profile fell from 40 % to 14-18 %). Only
    // the backend holding the merge uses it (a merge takes the index's metapage lock; other
    // inserts skip the merge), so the server needs at most this much more memory per index.
    private const string IngestSettings = "SET LOCAL work_mem = '64MB'";

    // Read before a transaction stores spans with an id filter: the identity's sequence caches no
    // ids in sessions (CACHE 1, as migration 1 made it), so every id drawn after this read is
    // higher, and (this, last id drawn] holds the transaction's rows. Reading draws no id, so the
    // ids stay consecutive as SearchIndexLag counts them.
    private const string FilterLow = "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('spans', 'id')::regclass), 0);";

    private static string InsertFilter(string hi) => "INSERT INTO span_filters (tenant_id, lo, hi, filter) VALUES (@t, @lo, " + hi + ", @bf)";

    private const string MoveStaged =
        "WITH ins AS (" +
        "INSERT INTO spans (" + Columns + ") SELECT " + Columns + " FROM spans_staging " +
        "ON CONFLICT (tenant_id, trace_id, span_id) DO NOTHING RETURNING id, session_id, start_ns), " +
        "up AS (INSERT INTO sessions (tenant_id, session_id, first_ns, last_ns) " +
        "SELECT @t, session_id, MIN(start_ns), MAX(start_ns) FROM ins WHERE session_id IS NOT NULL GROUP BY session_id ORDER BY session_id " +
        "ON CONFLICT (tenant_id, session_id) DO UPDATE SET first_ns = LEAST(sessions.first_ns, excluded.first_ns), last_ns = GREATEST(sessions.last_ns, excluded.last_ns)) " +
        "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM ins";

    // One indexing pass at a time across replicas (they would fill the same spans' terms).
    internal const long IndexerLockKey = 0x5350_494E_4458;

    // Each span's hashes, buckets and short numbers are slices of three flat arrays (@h, @b, @n,
    // 1-based bounds in the other arrays): a few parameters for the whole pass instead of array
    // literals per span for the server to parse.
    private const string FillTerms =
        "UPDATE spans SET terms = @h[v.lo:v.hi], term_buckets = @b[v.blo:v.bhi], numbers = @n[v.nlo:v.nhi] " +
        "FROM unnest(@ids, @lo, @hi, @blo, @bhi, @nlo, @nhi) AS v(id, lo, hi, blo, bhi, nlo, nhi) WHERE spans.id = v.id AND spans.terms IS NULL";

    // Another constant: one retention pass at a time across every backend on this database.
    private const long RetentionLockKey = 0x5350_5245_5445_4E;

    private readonly NpgsqlDataSource _dataSource;

    // Ingest's COPYs (and their session upserts) take turns; their commits do not (CopyTurn).
    private readonly SemaphoreSlim _copyTurn = new(1, 1);

    public PostgresSpanStore(string connectionString, ILogger logger, TimeProvider timeProvider)
        : base(logger, timeProvider)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        _dataSource = NpgsqlDataSource.Create(builder);
        CommonBuckets = new PostgresCommonBuckets(LoadCommonBucketsAsync, AddCommonBucketsAsync, logger, timeProvider);
        StoreLog.Opened(logger, Kind, builder.Host + "/" + builder.Database);
        StoreLog.Compression(logger, Kind, NativeZstd.Describe(NativeZstd.Default));
    }

    public override string Kind => "postgres";

    // A commit waits 5-10 ms for the WAL flush with both cores idle: with a second group commit in
    // flight, one batch copies (CopyTurn) while the other waits for its flush. Session rows are
    // upserted in session id order, so two transactions of one tenant wait for each other rather
    // than deadlock (as two replicas' do).
    public override int IngestWriters => 2;

    /// <summary>The text index's common buckets as this process knows and learns them.</summary>
    internal PostgresCommonBuckets CommonBuckets { get; }

    protected override IReadOnlyList<string> Migrations => PostgresMigrations.All;

    protected override string SkipLockedSql => " FOR UPDATE SKIP LOCKED";

    // The GIN index finds the spans whose buckets hold those of the query's words (@qb: none when
    // every term is a short number or in a common bucket); their exact hashes and short numbers'
    // codes decide, or, in rows stored before codes (numbers null), the short numbers' hashes.
    // Commands are planned with their parameters' values, so the cardinality tests fold away.
    // @qb leaves out the common buckets this process knows of; the condition also removes those
    // the store holds now, in the query's snapshot: a span that left a bucket out was committed
    // after the bucket was added, so a query that sees the span never asks the index for it. (A
    // bucket another replica added since this process last read the set leaves an empty array,
    // which GIN answers by reading the whole index: slow, still exact.)
    // Rows stored before migration 16 (packed_terms null) hold exact hashes and codes in arrays;
    // newer rows hold them packed (PostgresSearchTerms.PackHash), where each of the query's
    // entries must be found: exact for short numbers, a "maybe" for the other words, which
    // FalseTextMatchesAsync settles on the spans a query returns. An entry is looked for with
    // LIKE '%entry%' (@qp0…, @qpn0…: PackedPattern) rather than position(), which matches the
    // same: the planner estimates a LIKE's fixed bytes as selective (0.2 each), as it does the
    // arrays' @>, where it took position() > 0 (and a CASE over both forms) for a third of the
    // rows and walked every session of the tenant probing each for an id word (~300 ms against ~7).
    private static string TermsMatch(string[] terms)
    {
        var (hashes, numbers) = PostgresSearchTerms.PackedCounts(terms);
        var packed = new System.Text.StringBuilder();
        for (int i = 0; i < hashes; i++)
        {
            packed.Append(packed.Length > 0 ? " AND " : string.Empty).Append("x.packed_terms LIKE @qp").Append(i).Append("::bytea");
        }

        for (int i = 0; i < numbers; i++)
        {
            packed.Append(packed.Length > 0 ? " AND " : string.Empty).Append("x.packed_numbers LIKE @qpn").Append(i).Append("::bytea");
        }

        // Older rows: packed_terms null makes the second branch null, so the first decides; newer
        // rows: the first is false.
        return
            "(cardinality(@qb::smallint[]) = 0 OR x.term_buckets @> ARRAY(SELECT unnest(@qb::smallint[]) EXCEPT SELECT bucket FROM search_common_buckets)) " +
            "AND ((x.packed_terms IS NULL AND x.terms @> @q::bigint[] " +
            "AND (cardinality(@qn::smallint[]) = 0 OR x.numbers @> @qn::smallint[] OR (x.numbers IS NULL AND x.terms @> @qnh::bigint[]))) " +
            "OR (" + packed + "))";
    }

    // '%entry%' for bytea LIKE: the entry's bytes with LIKE's special ones ('%', '_', the escape, a backslash) escaped.
    private static byte[] PackedPattern(byte[] entry)
    {
        var pattern = new List<byte>((entry.Length * 2) + 2) { (byte)'%' };
        foreach (byte b in entry)
        {
            if (b is (byte)'%' or (byte)'_' or (byte)'\\')
            {
                pattern.Add((byte)'\\');
            }

            pattern.Add(b);
        }

        pattern.Add((byte)'%');
        return [.. pattern];
    }

    // With id words, the spans that may hold them: those stored with their id words' buckets in
    // the index (before span_filters, or by an older replica) and every span of a transaction
    // whose filter has each of the query's probes set (@qip, PostgresIdFilter). A probe reads one
    // byte of the filter (substring of an EXTERNAL value fetches only its chunk), and the first
    // clear bit ends the filter's test. TermsMatch's exact hashes decide.
    private const string IdWordsMatch =
        " AND x.id IN (SELECT o.id FROM spans o WHERE o.tenant_id = @t AND o.term_buckets @> ARRAY(SELECT unnest(@qib::smallint[]) EXCEPT SELECT bucket FROM search_common_buckets) " +
        "UNION ALL SELECT generate_series(f.lo + 1, f.hi) FROM span_filters f WHERE f.tenant_id = @t AND NOT EXISTS (" +
        "SELECT 1 FROM (SELECT p & (octet_length(f.filter)::bigint * 8 - 1) AS b FROM unnest(@qip::bigint[]) p) m " +
        "WHERE get_byte(substring(f.filter FROM (m.b >> 3)::int + 1 FOR 1), 0) & (1 << (m.b & 7)::int) = 0))";

    protected override string SessionTextCondition(string[] terms) =>
        "s.session_id IN (SELECT x.session_id FROM spans x WHERE " + SpanTextCondition(terms) + " AND x.tenant_id = @t AND x.session_id IS NOT NULL)";

    protected override string SpanTextCondition(string[] terms) =>
        PostgresSearchTerms.HasIdWord(terms) ? TermsMatch(terms) + IdWordsMatch : TermsMatch(terms);

    // The word hashes are written with the span (CopyAsync): they come from the search text built
    // while the batch is encoded, from the bodies at hand.
    protected override bool SearchTextOnIngest => true;

    // On since migration 16: with the packed terms and codec 4's smaller bodies a bench row is
    // ~1,620 B, five rows an 8 KiB page; with either alone ~1,800 B, four a page, so codec 4's
    // encode (a few µs a span) buys the page only with them (bench/README.md, "issue 14 (pgdiet)").
    protected internal override bool JsonColumnValues => true;

    protected override void AddTextQuery(DbCommand command, long tenantId, string[] terms)
    {
        var query = PostgresSearchTerms.OfQuery(terms, CommonBuckets.ForQuery());
        Add(command, "q", query.Hashes);
        Add(command, "qb", query.Buckets);
        if (query.IdProbes.Length > 0)
        {
            Add(command, "qib", query.IdBuckets);
            Add(command, "qip", query.IdProbes);
        }
        Add(command, "qn", query.Numbers);
        Add(command, "qnh", query.NumberHashes);
        for (int i = 0; i < query.PackedHashes.Length; i++)
        {
            Add(command, "qp" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), PackedPattern(query.PackedHashes[i]));
        }

        for (int i = 0; i < query.PackedNumbers.Length; i++)
        {
            Add(command, "qpn" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), PackedPattern(query.PackedNumbers[i]));
        }
    }

    // The id filters only narrow the candidates: on the spans of a few sessions the rows' own
    // hashes decide (with the filters' subquery the planner could run it once a row).
    protected override string SpanTextRowCondition(string[] terms) => TermsMatch(terms);

    protected override bool TextMatchesMayBeFalse(string[] terms) => PostgresSearchTerms.PackedCounts(terms).Hashes > 0;

    protected override string MaybeTextMatchSql(string alias) => alias + ".packed_terms IS NOT NULL";

    // A packed row's match on a word that is not a short number is a 35-bit prefix's: the span's
    // search text, rebuilt from its stored columns, says whether it holds every term (a body that
    // no longer decodes cannot say no). Rows stored before migration 16 matched on exact hashes
    // and are not read.
    protected override async Task<IReadOnlySet<long>> FalseTextMatchesAsync(
        DbConnection connection, long tenantId, string[] terms, IReadOnlyCollection<long> spanIds, CancellationToken cancellationToken)
    {
        var falseMatches = new HashSet<long>();
        if (spanIds.Count == 0 || !TextMatchesMayBeFalse(terms))
        {
            return falseMatches;
        }

        await using var command = Command(connection, null,
            "SELECT id, authority, path, query, request_body, response_body FROM spans WHERE tenant_id = @t AND id = ANY(@ids) AND packed_terms IS NOT NULL");
        Add(command, "t", tenantId);
        Add(command, "ids", spanIds.ToArray());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!StoredTextHolds(reader, 1, 2, 3, 4, 5, terms))
            {
                falseMatches.Add(reader.GetInt64(0));
            }
        }

        return falseMatches;
    }

    protected override async Task BeforeMigrationsAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, "SELECT pg_advisory_xact_lock(@k)");
        Add(command, "k", MigrationLockKey);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    // The id filters' ranges (FilterLow) hold only while no session caches ids of the spans' sequence:
    // with CACHE n a session draws ids below another's last value, and a filter's range would miss
    // them, so a search by id would silently skip spans. Migration 1 leaves CACHE 1; a DBA's ALTER
    // SEQUENCE would break that, so start-up refuses it with the fix.
    protected override async Task AfterMigrationsAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction,
            "SELECT s.seqcache, pg_get_serial_sequence('spans', 'id') FROM pg_sequence s WHERE s.seqrelid = pg_get_serial_sequence('spans', 'id')::regclass");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false) && reader.GetInt64(0) != 1)
        {
            throw new InvalidOperationException(
                $"PostgreSQL sequence {reader.GetString(1)} caches {reader.GetInt64(0)} ids per session; sp's id search needs CACHE 1 " +
                $"(the id filters assume ids are drawn in order across sessions). Run: ALTER SEQUENCE {reader.GetString(1)} CACHE 1;");
        }
    }

    protected override Task<T> WriteAsync<T>(Func<DbConnection, Task<T>> work, CancellationToken cancellationToken) =>
        ReadAsync(work, cancellationToken);

    protected override async Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return await work(connection).ConfigureAwait(false);
        }
    }

    public override async Task<int> InsertSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spans);
        if (spans.Count == 0)
        {
            return 0;
        }

        RequireHexIds(spans);
        return await InsertEncodedAsync(tenantId, await EncodeAsync(tenantId, spans, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
    }

    // Compression is most of the process's ingest CPU: ingest (IngestQueue) encodes each request on
    // a pool thread as soon as it is queued, so its single writer only copies and commits; it
    // encoded every group commit itself between commits before, with the server idle meanwhile
    // (bench/README.md, "Backend").
    public override async ValueTask<PreparedSpans> PrepareSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spans);
        RequireHexIds(spans);
        return new PreparedSpans(tenantId, spans, spans.Count == 0 ? [] : await EncodeAsync(tenantId, spans, cancellationToken).ConfigureAwait(false));
    }

    public override async Task<int> InsertPreparedAsync(long tenantId, IReadOnlyList<PreparedSpans> batches, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batches);
        foreach (var prepared in batches)
        {
            // PrepareSpansAsync checked the ids of what it encoded; unprepared spans are checked here.
            if (prepared.Encoded is null)
            {
                RequireHexIds(prepared.Spans);
            }
        }

        var encoded = await EncodePreparedAsync(tenantId, batches, cancellationToken).ConfigureAwait(false);
        return encoded.Length == 0 ? 0 : await InsertEncodedAsync(tenantId, encoded, cancellationToken).ConfigureAwait(false);
    }

    private async Task<int> InsertEncodedAsync(long tenantId, EncodedSpan[] encoded, CancellationToken cancellationToken)
    {
        var terms = PostgresSearchTerms.OfBatch(encoded, await CommonBuckets.ForIngestAsync(cancellationToken).ConfigureAwait(false));
        CommonBuckets.Observe(terms);
        var filter = PostgresIdFilter.Of(terms);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // A batch of new spans (almost every batch) is copied straight into spans; only when
            // one already exists (a retried export) does the unique index refuse the COPY, and the
            // batch goes the staged way, which skips what exists.
            var direct = await TryCopyDirectAsync(connection, tenantId, encoded, terms, filter, cancellationToken).ConfigureAwait(false);
            if (direct is { } maxDirect)
            {
                Committed(maxDirect);
                return encoded.Length;
            }

            using var turn = await CopyTurn.TakeAsync(_copyTurn, cancellationToken).ConfigureAwait(false);
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                long filterLow;
                await using (var create = new NpgsqlCommand((filter is null ? string.Empty : FilterLow) + IngestSettings + ";" + CreateStaging, connection, transaction))
                {
                    filterLow = await ExecuteFilterLowAsync(create, filter, cancellationToken).ConfigureAwait(false);
                }

                await CopyAsync(connection, "spans_staging", tenantId, encoded, terms, cancellationToken).ConfigureAwait(false);

                long inserted, maxId;
                await using (var move = new NpgsqlCommand(MoveStaged, connection, transaction))
                {
                    move.Parameters.AddWithValue("t", tenantId);
                    await using var reader = await move.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                    inserted = reader.GetInt64(0);
                    maxId = reader.GetInt64(1);
                }

                if (filter is not null && inserted > 0)
                {
                    await using var insertFilter = new NpgsqlCommand(InsertFilter("@hi"), connection, transaction);
                    insertFilter.Parameters.AddWithValue("t", tenantId);
                    insertFilter.Parameters.AddWithValue("lo", filterLow);
                    insertFilter.Parameters.AddWithValue("hi", maxId);
                    insertFilter.Parameters.AddWithValue("bf", filter);
                    await insertFilter.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                turn.Release();
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                Committed(maxId);
                return (int)inserted;
            }
        }
    }

    // Runs a transaction's first command, which starts with FilterLow when the batch has a filter; its id (0 without a filter).
    private static async Task<long> ExecuteFilterLowAsync(NpgsqlCommand command, byte[]? filter, CancellationToken cancellationToken)
    {
        if (filter is null)
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }

        return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>
    /// Refuses the whole batch when a span's ids are not lower-case hex of their length: checked
    /// here, once, rather than by a regex CHECK the server ran on every row it stored.
    /// </summary>
    private static void RequireHexIds(IReadOnlyList<StoredSpan> spans)
    {
        for (int i = 0; i < spans.Count; i++)
        {
            var s = spans[i];
            if (!IsLowerHex(s.TraceId, 32) || !IsLowerHex(s.SpanId, 16) || (s.ParentSpanId is { } parent && !IsLowerHex(parent, 16)))
            {
                throw new ArgumentException(
                    $"Span {i} of the batch: trace_id must be 32 and span_id and parent_span_id 16 lower-case hex characters; nothing of the batch was stored.",
                    nameof(spans));
            }
        }
    }

    private static bool IsLowerHex(string? value, int length) =>
        value is not null && value.Length == length && !value.AsSpan().ContainsAnyExcept(LowerHex);

    private static readonly SearchValues<char> LowerHex = SearchValues.Create("0123456789abcdef");

    /// <summary>
    /// Copies the batch into <c>spans</c> and upserts its sessions in one transaction (ids of a
    /// COPY are drawn in row order, so the session's last one is the batch's highest); null, with
    /// nothing stored, when a span of the batch already exists.
    /// </summary>
    private async Task<long?> TryCopyDirectAsync(NpgsqlConnection connection, long tenantId, EncodedSpan[] spans, PostgresSearchTerms.SpanTerms[] terms, byte[]? filter, CancellationToken cancellationToken)
    {
        using var turn = await CopyTurn.TakeAsync(_copyTurn, cancellationToken).ConfigureAwait(false);
        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (transaction.ConfigureAwait(false))
        {
            long filterLow;
            await using (var settings = new NpgsqlCommand((filter is null ? string.Empty : FilterLow) + IngestSettings, connection, transaction))
            {
                filterLow = await ExecuteFilterLowAsync(settings, filter, cancellationToken).ConfigureAwait(false);
            }

            try
            {
                await CopyAsync(connection, "spans", tenantId, spans, terms, cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                return null;
            }

            var sessions = new SortedDictionary<string, (long First, long Last)>(StringComparer.Ordinal);
            foreach (var e in spans)
            {
                if (e.Span.SessionId is { } id)
                {
                    sessions[id] = sessions.TryGetValue(id, out var range) ? (Math.Min(range.First, e.StartNs), Math.Max(range.Last, e.StartNs)) : (e.StartNs, e.StartNs);
                }
            }

            long maxId;
            await using (var finish = new NpgsqlCommand(
                "SELECT currval(pg_get_serial_sequence('spans', 'id'));" +
                // Sorted by session id, like the staged path, so concurrent batches lock session rows in one order.
                "INSERT INTO sessions (tenant_id, session_id, first_ns, last_ns) SELECT @t, s, f, l FROM unnest(@s, @f, @l) AS v(s, f, l) " +
                "ON CONFLICT (tenant_id, session_id) DO UPDATE SET first_ns = LEAST(sessions.first_ns, excluded.first_ns), last_ns = GREATEST(sessions.last_ns, excluded.last_ns)" +
                (filter is null ? string.Empty : ";" + InsertFilter("currval(pg_get_serial_sequence('spans', 'id'))")),
                connection,
                transaction))
            {
                finish.Parameters.AddWithValue("t", tenantId);
                if (filter is not null)
                {
                    finish.Parameters.AddWithValue("lo", filterLow);
                    finish.Parameters.AddWithValue("bf", filter);
                }

                finish.Parameters.AddWithValue("s", sessions.Keys.ToArray());
                finish.Parameters.AddWithValue("f", sessions.Values.Select(v => v.First).ToArray());
                finish.Parameters.AddWithValue("l", sessions.Values.Select(v => v.Last).ToArray());
                maxId = (long)(await finish.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            }

            turn.Release();
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return maxId;
        }
    }

    /// <summary>
    /// One ingest transaction's turn to copy, held from its first statement until just before its
    /// commit. Two group commits are in flight (<see cref="IngestWriters"/>), and what they overlap
    /// is one batch's COPY with the other's commit, which waits 5-10 ms for its WAL flush with the
    /// cores idle. Their COPYs do not overlap: rows then reach the heap, and their postings the text
    /// index, in the order of the commits' ids, as from one writer; two COPYs at once interleaved
    /// them, and the GIN index grew by ~13 % (postings inserted mid-page split it half-empty), with
    /// relation-extension and buffer-lock waits between the two (bench/README.md, "Backend").
    /// </summary>
    private sealed class CopyTurn : IDisposable
    {
        private SemaphoreSlim? _turns;

        private CopyTurn(SemaphoreSlim turns) => _turns = turns;

        public static async Task<CopyTurn> TakeAsync(SemaphoreSlim turns, CancellationToken cancellationToken)
        {
            await turns.WaitAsync(cancellationToken).ConfigureAwait(false);
            return new CopyTurn(turns);
        }

        /// <summary>Lets the next transaction copy; again (or on dispose) does nothing.</summary>
        public void Release() => Interlocked.Exchange(ref _turns, null)?.Release();

        public void Dispose() => Release();
    }

    private static async Task CopyAsync(NpgsqlConnection connection, string table, long tenantId, EncodedSpan[] spans, PostgresSearchTerms.SpanTerms[] terms, CancellationToken cancellationToken)
    {
        var importer = await connection.BeginBinaryImportAsync(
            "COPY " + table + " (" + Columns + ") FROM STDIN (FORMAT BINARY)", cancellationToken).ConfigureAwait(false);
        await using (importer.ConfigureAwait(false))
        {
            // Rows are written with the synchronous Write: it only copies into Npgsql's write buffer
            // (a socket write happens when that fills), while WriteAsync costs a state machine and a
            // ValueTask per field, 29 fields per row.
            for (int i = 0; i < spans.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var e = spans[i];
                var s = e.Span;
                importer.StartRow();
                importer.Write(tenantId, NpgsqlDbType.Bigint);
                importer.Write(s.TraceId, NpgsqlDbType.Text);
                importer.Write(s.SpanId, NpgsqlDbType.Text);
                WriteText(importer, s.ParentSpanId);
                importer.Write(s.Name, NpgsqlDbType.Text);
                importer.Write(s.Kind, NpgsqlDbType.Integer);
                importer.Write(s.ServiceName, NpgsqlDbType.Text);
                importer.Write(e.StartNs, NpgsqlDbType.Bigint);
                importer.Write(e.EndNs, NpgsqlDbType.Bigint);
                importer.Write(s.IsError ? 1 : 0, NpgsqlDbType.Integer);
                importer.Write(s.IsExchange ? 1 : 0, NpgsqlDbType.Integer);
                WriteText(importer, s.SessionId);
                WriteText(importer, s.Direction);
                WriteText(importer, s.Method);
                WriteText(importer, s.Scheme);
                WriteText(importer, s.Authority);
                WriteText(importer, s.Path);
                WriteText(importer, s.Query);
                WriteText(importer, s.Route);
                if (s.StatusCode is { } status)
                {
                    importer.Write(status, NpgsqlDbType.Integer);
                }
                else
                {
                    importer.WriteNull();
                }

                WriteBytes(importer, e.RequestHeaders);
                WriteBytes(importer, e.ResponseHeaders);
                WriteBytes(importer, e.RequestBody);
                WriteBytes(importer, e.ResponseBody);
                WriteBytes(importer, e.Attributes);
                importer.Write(e.StoredBytes, NpgsqlDbType.Bigint);
                WriteBytes(importer, e.Model);
                if (s.GrpcStatus is { } grpcStatus)
                {
                    importer.Write(grpcStatus, NpgsqlDbType.Integer);
                }
                else
                {
                    importer.WriteNull();
                }

                // Migration 16: the hashes and codes packed, ~165 B a row less than the arrays. terms
                // stays an empty array, not null: null is what marks a row the indexer (this
                // release's or an older replica's) has yet to fill, and an older replica's
                // condition on an empty array finds nothing rather than failing.
                importer.Write(Array.Empty<long>(), NpgsqlDbType.Array | NpgsqlDbType.Bigint);
                importer.Write(terms[i].Buckets, NpgsqlDbType.Array | NpgsqlDbType.Smallint);
                importer.WriteNull();
                importer.Write(terms[i].PackedHashes, NpgsqlDbType.Bytea);
                importer.Write(terms[i].PackedNumbers, NpgsqlDbType.Bytea);
            }

            await importer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static void WriteText(NpgsqlBinaryImporter importer, string? value)
    {
        if (value is null)
        {
            importer.WriteNull();
        }
        else
        {
            importer.Write(value, NpgsqlDbType.Text);
        }
    }

    private static void WriteBytes(NpgsqlBinaryImporter importer, byte[]? value)
    {
        if (value is null)
        {
            importer.WriteNull();
        }
        else
        {
            importer.Write(value, NpgsqlDbType.Bytea);
        }
    }

    internal override IReadOnlyList<(string Table, string Key)> TenantIndexTables => [("span_filters", "lo")];

    // A filter goes once no span of its ids is left (retention deletes the oldest ids first; a
    // filter whose range holds a live span stays, and a query reads only that span of it).
    protected override async Task AfterSpansDeletedAsync(DbConnection connection, DbTransaction transaction, long maxId, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction,
            "DELETE FROM span_filters f WHERE f.lo < @max AND NOT EXISTS (SELECT 1 FROM spans x WHERE x.id > f.lo AND x.id <= f.hi)");
        Add(command, "max", maxId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public override Task<long> GetStoredBytesAsync(CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        // PostgreSQL's relation sizes fall only after VACUUM FULL (deleted rows' space is reused, not
        // returned), so size-based retention would keep deleting against a number that never drops.
        // The per-row stored size recorded at insert (compressed bodies, headers, attributes, search
        // text and row overhead) is what deleting spans actually frees.
        await using var command = Command(connection, null, "SELECT COALESCE(SUM(stored_bytes), 0) FROM spans");
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
    }, cancellationToken);

    /// <summary>
    /// A session-level advisory lock on a connection of its own, held for the pass:
    /// <c>pg_try_advisory_lock</c> does not wait, so a replica that finds it taken skips the pass,
    /// and a replica that dies mid-pass releases it with its connection.
    /// </summary>
    public override async Task<IAsyncDisposable?> TryClaimRetentionAsync(CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var command = new NpgsqlCommand("SELECT pg_try_advisory_lock(@k)", connection);
            command.Parameters.AddWithValue("k", RetentionLockKey);
            if ((bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
            {
                return new RetentionClaim(connection);
            }
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        await connection.DisposeAsync().ConfigureAwait(false);
        return null;
    }

    private sealed class RetentionClaim(NpgsqlConnection connection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await using (connection.ConfigureAwait(false))
            {
                await using var command = new NpgsqlCommand("SELECT pg_advisory_unlock(@k)", connection);
                command.Parameters.AddWithValue("k", RetentionLockKey);
                await command.ExecuteScalarAsync().ConfigureAwait(false);
            }
        }
    }

    private Task<short[]> LoadCommonBucketsAsync(CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT bucket FROM search_common_buckets");
        var buckets = new List<short>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            buckets.Add(reader.GetInt16(0));
        }

        return buckets.ToArray();
    }, cancellationToken);

    private Task AddCommonBucketsAsync(short[] buckets) => WriteAsync(async connection =>
    {
        await using var command = Command(connection, null, "INSERT INTO search_common_buckets (bucket) SELECT unnest(@b) ON CONFLICT DO NOTHING");
        Add(command, "b", buckets);
        return await command.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }, CancellationToken.None);

    // EXTERNAL storage (uncompressed TOAST) lets substring fetch only the first chunk of a value.
    protected override string BlobHeadSql(string column) => "substring(" + column + " from 1 for " + BodyCodec.HeadBytes + ")";

    protected override string BlobLengthSql(string column) => "octet_length(" + column + ")";

    // The rows the indexer has not filled yet hold a null terms array (spans_unindexed).
    protected override string IndexedToSql => "COALESCE((SELECT MIN(id) - 1 FROM spans WHERE terms IS NULL), (SELECT COALESCE(MAX(id), 0) FROM spans))";

    /// <summary>
    /// One pass under the indexer lock. Spans are stored with their word hashes, so a pass only
    /// fills the terms of spans stored before this schema version (spans_unindexed, oldest
    /// first: their search text is built here from the decoded bodies) and reports how far the
    /// index reaches: once none is left, every span this snapshot sees is searchable, and spans
    /// committed after it carry their terms.
    /// </summary>
    protected override async Task<(long IndexedUpTo, int Count)> IndexNextAsync(int maxSpans, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                var ids = new List<long>();
                var terms = new List<PostgresSearchTerms.SpanTerms>();
                long upTo;
                await using (var select = new NpgsqlCommand(
                    "SELECT pg_advisory_xact_lock(" + IndexerLockKey + "); " +
                    "SELECT id, authority, path, query, request_body, response_body FROM spans WHERE terms IS NULL ORDER BY id LIMIT @n; " +
                    "SELECT COALESCE(MAX(id), 0) FROM spans",
                    connection,
                    transaction))
                {
                    select.Parameters.AddWithValue("n", maxSpans);
                    await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        ids.Add(reader.GetInt64(0));
                        // Every bucket, id words' too (no filter covers these rows), like the spans of this schema's first versions (the set may grow meanwhile).
                        terms.Add(PostgresSearchTerms.Of(SearchTextOf(reader, 1, 2, 3, 4, 5), PostgresCommonBuckets.Set.Empty, idWordsFiltered: false));
                    }

                    await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                    await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                    upTo = reader.GetInt64(0);
                }

                if (ids.Count == 0)
                {
                    return (upTo, 0);
                }

                await using (var fill = new NpgsqlCommand(FillTerms, connection, transaction))
                {
                    var (lows, highs, hashes) = Flatten(terms, t => t.Hashes);
                    var (bucketLows, bucketHighs, buckets) = Flatten(terms, t => t.Buckets);
                    var (numberLows, numberHighs, numbers) = Flatten(terms, t => t.Numbers);
                    fill.Parameters.AddWithValue("ids", ids.ToArray());
                    fill.Parameters.AddWithValue("lo", lows);
                    fill.Parameters.AddWithValue("hi", highs);
                    fill.Parameters.AddWithValue("h", hashes);
                    fill.Parameters.AddWithValue("blo", bucketLows);
                    fill.Parameters.AddWithValue("bhi", bucketHighs);
                    fill.Parameters.AddWithValue("b", buckets);
                    fill.Parameters.AddWithValue("nlo", numberLows);
                    fill.Parameters.AddWithValue("nhi", numberHighs);
                    fill.Parameters.AddWithValue("n", numbers);
                    await fill.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                // A full pass may leave older spans for the next one: it vouches only for the ids it reached.
                return (ids.Count == maxSpans ? ids[^1] : upTo, ids.Count);
            }
        }
    }

    // Arrays of each span laid end to end, and each one's 1-based first and last index in the whole.
    private static (int[] Lows, int[] Highs, T[] Flat) Flatten<T>(List<PostgresSearchTerms.SpanTerms> terms, Func<PostgresSearchTerms.SpanTerms, T[]> part)
    {
        var lows = new int[terms.Count];
        var highs = new int[terms.Count];
        var flat = new List<T>();
        for (int i = 0; i < terms.Count; i++)
        {
            lows[i] = flat.Count + 1;
            flat.AddRange(part(terms[i]));
            highs[i] = flat.Count;
        }

        return (lows, highs, [.. flat]);
    }

    public override async ValueTask DisposeAsync()
    {
        await StopIndexerAsync().ConfigureAwait(false);
        await _dataSource.DisposeAsync().ConfigureAwait(false);
        _copyTurn.Dispose();
    }
}
