using System.Buffers;
using System.Data.Common;
using System.Text;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using SQLitePCL;

namespace SpIstio.Backend.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file in WAL mode, one writer connection (SQLite admits one
/// writer at a time, so queuing in-process is cheaper than SQLITE_BUSY retries) and pooled
/// read connections that WAL lets run beside the writer.
/// </summary>
/// <remarks>
/// Durability: <c>synchronous=NORMAL</c>. In WAL mode a commit appends to the WAL file with a
/// write() before the call returns, so once <see cref="InsertSpansAsync"/> completes the spans
/// survive a crash or <c>kill -9</c> of this process (the OS holds the pages). Only a power cut
/// or kernel crash can lose the last commits before the next checkpoint fsync (the database
/// stays consistent either way); <see cref="SqliteStoreOptions.FullSync"/> selects
/// <c>synchronous=FULL</c> for that at the cost of an fsync per batch.
/// </remarks>
internal sealed class SqliteSpanStore : SqlSpanStore
{
    private readonly string _path;
    private readonly string _connectionString;
    private readonly SqliteStoreOptions _options;
    /// <summary>Characters of search text held for the indexer at most (~16 MiB); past it the indexer decodes the stored bodies instead.</summary>
    private const long MaxPreparedChars = 8L * 1024 * 1024;

    /// <summary>
    /// Text whose UTF-8 form may take up to this many bytes is converted for binding on the stack
    /// (up to 1,364 characters: names, paths and a span's search text, ~430 characters in the bench).
    /// </summary>
    private const int StackUtf8Bytes = 4096;

    private const string InsertSql =
        "INSERT INTO spans (tenant_id, trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, " +
        "session_id, direction, method, scheme, authority, path, query, route, status_code, request_headers, response_headers, " +
        "request_body, response_body, attributes, stored_bytes, span_model, id, grpc_status) " +
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29) " +
        "ON CONFLICT (tenant_id, trace_id, span_id) DO NOTHING";

    private readonly SemaphoreSlim _writeLock = new(1, 1);

    /// <summary>
    /// Spans committed between two checkpoints by the checkpointer (~1.7 MB of WAL in the bench):
    /// a checkpoint copies the WAL's pages into the database file and fsyncs both, and the
    /// writer's own automatic checkpoint did that at a commit, holding the write lock through the
    /// fsyncs while the cores had nothing to do (bench/README.md, "Backend", round 13).
    /// </summary>
    private const int CheckpointSpans = 1024;

    /// <summary>
    /// The WAL pages (64 MiB at 16 KiB pages, the <c>journal_size_limit</c>) past which the writer
    /// checkpoints at its commit as SQLite does by default (at 1,000 pages): a bound on the WAL for
    /// when the checkpointer cannot keep up (a reader holding an old snapshot, a failing disk).
    /// </summary>
    private const int WriterCheckpointPages = 4096;

    // Wakes the checkpointer; one signal pending at most, it checkpoints everything committed by then.
    private readonly System.Threading.Channels.Channel<bool> _checkpointSignal =
        System.Threading.Channels.Channel.CreateBounded<bool>(new System.Threading.Channels.BoundedChannelOptions(1) { FullMode = System.Threading.Channels.BoundedChannelFullMode.DropWrite });
    private readonly object _checkpointGate = new();
    private Task? _checkpointer;
    private SqliteConnection? _checkpointConnection;
    private bool _checkpointStopped;
    private long _uncheckpointedSpans;
    private long _checkpointedThrough;
    private TaskCompletionSource _checkpointPass = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Search text of this process's newest commits, in row id order, for the indexer to take
    // instead of reading and decompressing the bodies again (ingest built it while encoding).
    private readonly Queue<(long Id, string SpanId, string? Text)> _prepared = new();
    private long _preparedChars;
    private long _lastPreparedId;
    private SqliteConnection? _writer;
    private sqlite3_stmt? _insertSpan;
    private sqlite3_stmt? _spanExists;
    private sqlite3_stmt? _indexSpan;
    // A request's skip-word matches, for the batches of one trace search (a connection is one request's).
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<SqliteConnection, SkipMatchIds> _skipMatches = new();
    private readonly CommonSkipWords _commonSkipWords = new();
    private sqlite3_stmt? _readSkip;
    private sqlite3_stmt? _writeSkip;
    private SqliteCommand? _nextId;
    private sqlite3_stmt? _upsertSession;
    private bool _disposed;

    /// <summary>
    /// A clock of the calling thread's CPU seconds; when set (the benchmark sets it), the CPU of
    /// the writer's turns is added up: what runs under the write lock runs on one core at a time,
    /// everything else can use the other (bench/README.md, "Backend").
    /// </summary>
    internal Func<double>? TurnClock { get; set; }

    /// <summary>CPU seconds ingest spent holding the write lock (inserts and commits), while <see cref="TurnClock"/> is set.</summary>
    internal double IngestTurnSeconds { get; private set; }

    /// <summary>CPU seconds the search indexer spent holding the write lock, while <see cref="TurnClock"/> is set.</summary>
    internal double IndexTurnSeconds { get; private set; }

    // A writer's turn measured from TurnStart to TurnSince; both 0 while no clock is set.
    private double TurnStart() => TurnClock?.Invoke() ?? 0;

    private double TurnSince(double started) => TurnClock is { } clock ? clock() - started : 0;

    public SqliteSpanStore(string path, SqliteStoreOptions options, ILogger logger, TimeProvider timeProvider)
        : base(logger, timeProvider)
    {
        _path = Path.GetFullPath(path);
        _options = options;
        string? directory = Path.GetDirectoryName(_path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = _path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        StoreLog.Opened(logger, Kind, _path);
        StoreLog.Compression(logger, Kind, NativeZstd.Describe(NativeZstd.Default));
    }

    public override string Kind => "sqlite";

    /// <summary>The database file.</summary>
    public string FilePath => _path;

    protected override IReadOnlyList<string> Migrations => SqliteMigrations.All;

    protected override bool SearchTextOnIngest => true;

    protected override string SessionTextCondition(string[] terms) =>
        "s.session_id IN (SELECT x.session_id FROM spans x WHERE x.tenant_id = @t AND " + SpanTextCondition(terms) + ")";

    // Every word in FTS5 (spans indexed before the skip filters, and spans whose skip words were
    // all common), and the spans found through the filters (@qids, AddTextQuery).
    protected override string SpanTextCondition(string[] terms) => HasSkipWord(terms)
        ? "x.id IN (SELECT f.rowid FROM spans_fts f WHERE spans_fts MATCH @q UNION ALL SELECT value FROM json_each(@qids))"
        : "x.id IN (SELECT f.rowid FROM spans_fts f WHERE spans_fts MATCH @q)";

    private static bool HasSkipWord(string[] terms) => Array.Exists(terms, term => SqliteSkipIndex.IsSkipWord(term));

    // Ids are stored as bytes (SqliteMigrations, "binary ids"); the API speaks lower-case hex.
    // hex() of NULL is '' in SQLite, hence the nullif for parent ids.
    protected override string IdSql(string column) => "lower(nullif(hex(" + column + "), ''))";

    // unhex() of text that is not hex is NULL, which matches nothing (as an id of the wrong format did).
    protected override string IdParameterSql(string name) => "unhex(@" + name + ")";

    // A name that is the span's method, a space and its path (most HTTP spans' name) is stored as an
    // empty BLOB (19 B a bench row: alone below the page step, with zstd level 3 bodies a `spans`
    // leaf holds ~14.8 rows instead of ~13.9; bench/README.md, 2026-11-29, issue 14 (sqlitedisk2)).
    // No text compares equal to a BLOB, so a span whose real name is "" keeps it, and rows written
    // before keep their full name.
    protected override string NameSql(string prefix) =>
        "CASE WHEN typeof(" + prefix + "name) = 'blob' THEN " + prefix + "method || ' ' || " + prefix + "path ELSE " + prefix + "name END";

    protected override void AddTextQuery(DbCommand command, long tenantId, string[] terms)
    {
        Add(command, "q", FtsQuery(terms));
        if (HasSkipWord(terms))
        {
            Add(command, "qids", SkipMatches((SqliteConnection)command.Connection!, tenantId, terms));
        }
    }

    /// <summary>
    /// The default of the most spans one text query checks through the skip filters (a filter's "maybe" read and
    /// decoded): ~20 µs of CPU each, so ~0.2 s a request at most. Words the filters hold are rare
    /// (CommonSkipWords), so only a query of several such words that are each in many spans'
    /// filters, or a store past its bound of common words, reaches it.
    /// </summary>
    public const int DefaultMaxCheckedSpans = 10_000;

    /// <summary>Most spans one text query checks through the skip filters (<see cref="DefaultMaxCheckedSpans"/>; tests lower it).</summary>
    internal int MaxCheckedSpans { get; set; } = DefaultMaxCheckedSpans;

    // The ids (a JSON array) of the tenant's spans past skip_from whose filter may hold one of the
    // query's skip words and whose search text holds every word of the query. Found once per request
    // (trace search asks once a batch) on the request's own connection, in process, newest block
    // first, at most MaxCheckedSpans checked.
    private string SkipMatches(SqliteConnection connection, long tenantId, string[] terms)
    {
        string key = tenantId.ToString(System.Globalization.CultureInfo.InvariantCulture) + " " + string.Join(' ', terms);
        if (_skipMatches.TryGetValue(connection, out var cached) && cached.Key == key)
        {
            return cached.Ids;
        }

        ulong[] hashes = SqliteSkipIndex.QueryHashes(Array.FindAll(terms, term => SqliteSkipIndex.IsSkipWord(term)));
        var ids = new System.Text.StringBuilder("[");
        int checkedSpans = 0;
        var db = connection.Handle!;
        using var filters = PrepareRaw(connection,
            "SELECT block, filter, (SELECT skip_from FROM search_progress WHERE id = 1) FROM spans_skip " +
            "WHERE block >= (SELECT skip_from FROM search_progress WHERE id = 1) >> " + SqliteSkipIndex.BlockShift.ToString(System.Globalization.CultureInfo.InvariantCulture) +
            " ORDER BY block DESC");
        using var span = PrepareRaw(connection, "SELECT authority, path, query, request_body, response_body FROM spans WHERE id = ?1 AND tenant_id = ?2");
        raw.sqlite3_bind_int64(span, 2, tenantId);
        int rc;
        while ((rc = raw.sqlite3_step(filters)) == raw.SQLITE_ROW)
        {
            long first = raw.sqlite3_column_int64(filters, 0) << SqliteSkipIndex.BlockShift;
            long skipFrom = raw.sqlite3_column_int64(filters, 2);
            var row = raw.sqlite3_column_blob(filters, 1);
            for (int slot = 0; slot + SqliteSkipIndex.SlotBytes <= row.Length; slot += SqliteSkipIndex.SlotBytes)
            {
                long id = first + (slot / SqliteSkipIndex.SlotBytes);
                if (id <= skipFrom || !SqliteSkipIndex.MayHoldAny(row.Slice(slot, SqliteSkipIndex.SlotBytes), hashes))
                {
                    continue;
                }

                raw.sqlite3_bind_int64(span, 1, id);
                if (raw.sqlite3_step(span) == raw.SQLITE_ROW)
                {
                    // Counted only when the span is the tenant's: another tenant's candidates cost a
                    // key lookup, not a decode, and must not get this tenant's query refused.
                    if (++checkedSpans > MaxCheckedSpans)
                    {
                        throw new SearchTooBroadException(
                            "holds words that more than " + MaxCheckedSpans.ToString(System.Globalization.CultureInfo.InvariantCulture) +
                            " spans may hold, the most one search checks in SQLite's filters of ids and codes (words with a digit): add a rarer word");
                    }

                    if (SqliteSkipIndex.Holds(SearchTextOf(
                        ColumnText(span, 0), ColumnText(span, 1), ColumnText(span, 2), ColumnBytes(span, 3), ColumnBytes(span, 4)), terms))
                    {
                        ids.Append(ids.Length > 1 ? "," : string.Empty).Append(id);
                    }
                }

                rc = raw.sqlite3_reset(span);
                if (rc != raw.SQLITE_OK)
                {
                    SqliteException.ThrowExceptionForRC(rc, db);
                }
            }
        }

        if (rc != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(rc, db);
        }

        string result = ids.Append(']').ToString();
        _skipMatches.AddOrUpdate(connection, new SkipMatchIds(key, result));
        return result;
    }

    private static string? ColumnText(sqlite3_stmt statement, int index) =>
        raw.sqlite3_column_type(statement, index) == raw.SQLITE_NULL ? null : raw.sqlite3_column_text(statement, index).utf8_to_string();

    private static byte[]? ColumnBytes(sqlite3_stmt statement, int index) =>
        raw.sqlite3_column_type(statement, index) == raw.SQLITE_NULL ? null : raw.sqlite3_column_blob(statement, index).ToArray();

    // Terms are letters and digits only (SearchText.Terms), so quoting cannot be broken out of.
    private static string FtsQuery(string[] terms) => "\"" + string.Join("\" \"", terms) + "\"";

    protected override async Task<T> WriteAsync<T>(Func<DbConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await work(OpenWriter()).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    protected override async Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var connection = new SqliteConnection(_connectionString);
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
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

        // Compression is the expensive part and needs no connection: pool workers start on the
        // batch at once, this thread joins them while it waits for the writer, and the writer
        // takes each chunk as it is done (EncodedBatch), so inserting overlaps encoding.
        var dictionary = await Dictionaries.ForTenantAsync(tenantId, cancellationToken).ConfigureAwait(false);
        var batch = new EncodedBatch(spans, dictionary, SearchTextOnIngest, JsonColumnValues);
        batch.StartWorkers(Environment.ProcessorCount - 1);
        var locked = _writeLock.WaitAsync(cancellationToken);
        while (!locked.IsCompleted && batch.TryEncodeNext())
        {
        }

        int inserted = await InsertWhenLockedAsync(locked, tenantId, batch).ConfigureAwait(false);
        if (Dictionaries.WantsSamples(dictionary))
        {
            Dictionaries.Observe(tenantId, batch.All());
        }

        return inserted;
    }

    public override async ValueTask<PreparedSpans> PrepareSpansAsync(long tenantId, IReadOnlyList<StoredSpan> spans, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spans);
        return new PreparedSpans(tenantId, spans, spans.Count == 0 ? [] : await EncodeAsync(tenantId, spans, cancellationToken).ConfigureAwait(false));
    }

    public override async Task<int> InsertPreparedAsync(long tenantId, IReadOnlyList<PreparedSpans> batches, CancellationToken cancellationToken)
    {
        var encoded = await EncodePreparedAsync(tenantId, batches, cancellationToken).ConfigureAwait(false);
        if (encoded.Length == 0)
        {
            return 0;
        }

        return await InsertWhenLockedAsync(_writeLock.WaitAsync(cancellationToken), tenantId, EncodedBatch.FromEncoded(encoded)).ConfigureAwait(false);
    }

    // Both ingest paths: insert once the write lock (`locked`, the wait for it) is held, release it,
    // then tell the indexer what was committed.
    private async Task<int> InsertWhenLockedAsync(Task locked, long tenantId, EncodedBatch batch)
    {
        await locked.ConfigureAwait(false);
        int inserted;
        long maxId;
        try
        {
            double started = TurnStart();
            (inserted, maxId) = InsertLocked(tenantId, batch);
            IngestTurnSeconds += TurnSince(started);
        }
        finally
        {
            _writeLock.Release();
        }

        Committed(maxId);
        CheckpointAfter(inserted);
        return inserted;
    }

    // Counts what was committed (ingest's spans after Committed, or the indexer's) and wakes the
    // checkpointer once CheckpointSpans have been.
    private void CheckpointAfter(int inserted)
    {
        if (Interlocked.Add(ref _uncheckpointedSpans, inserted) < CheckpointSpans)
        {
            return;
        }

        lock (_checkpointGate)
        {
            if (_checkpointStopped)
            {
                return;
            }

            _checkpointer ??= Task.Run(RunCheckpointerAsync);
        }

        _checkpointSignal.Writer.TryWrite(true);
    }

    /// <summary>
    /// Checkpoints the WAL on a connection of its own (PASSIVE: it copies what is committed
    /// without blocking the writer, who keeps appending meanwhile), so the fsyncs run beside the
    /// writer's next inserts instead of inside its turn. Durability is unchanged: a commit is in
    /// the WAL before it is acknowledged, and a checkpoint only moves committed pages.
    /// </summary>
    private async Task RunCheckpointerAsync()
    {
        var signals = _checkpointSignal.Reader;
        while (await signals.WaitToReadAsync().ConfigureAwait(false))
        {
            signals.TryRead(out _);
            Interlocked.Exchange(ref _uncheckpointedSpans, 0);
            long through = CommittedUpTo;
            try
            {
                if (CheckpointPassive())
                {
                    Volatile.Write(ref _checkpointedThrough, through);
                }
                else
                {
                    // A reader's older snapshot kept the newest pages in the WAL: the next commit
                    // (the indexer's, after its read) wakes this again.
                    Interlocked.Add(ref _uncheckpointedSpans, CheckpointSpans);
                }
            }
            catch (SqliteException e)
            {
                // The writer's own checkpoint (WriterCheckpointPages) still bounds the WAL.
                StoreLog.CheckpointFailed(Logger, e);
            }

            Interlocked.Exchange(ref _checkpointPass, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }

    // True when every page in the WAL at the start is now in the database file.
    private bool CheckpointPassive()
    {
        if (_checkpointConnection is null)
        {
            var connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var pragma = connection.CreateCommand();
            // A checkpoint fsyncs as its connection's synchronous setting says: the writer's.
            pragma.CommandText = SynchronousPragma;
            pragma.ExecuteNonQuery();
            _checkpointConnection = connection;
        }

        using var checkpoint = _checkpointConnection.CreateCommand();
        checkpoint.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
        using var result = checkpoint.ExecuteReader();
        // busy, pages in the WAL, pages copied into the database file.
        return result.Read() && result.GetInt64(0) == 0 && result.GetInt64(1) == result.GetInt64(2);
    }

    private string SynchronousPragma => _options.FullSync ? "PRAGMA synchronous = FULL;" : "PRAGMA synchronous = NORMAL;";

    /// <summary>
    /// Completes once a checkpoint pass that started after span row <paramref name="id"/> was
    /// committed has run (tests wait on it, never on time): the pages of that commit are then in
    /// the database file unless a reader still needed the WAL's older pages.
    /// </summary>
    internal async Task WaitForCheckpointAsync(long id, CancellationToken cancellationToken)
    {
        while (true)
        {
            var pass = Volatile.Read(ref _checkpointPass).Task;
            if (Volatile.Read(ref _checkpointedThrough) >= id)
            {
                return;
            }

            await pass.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    protected override string IndexedToSql => "(SELECT indexed_to FROM search_progress WHERE id = 1)";

    /// <summary>
    /// Reads the next spans past the watermark on a read connection (WAL: a consistent snapshot
    /// beside the writer), builds their search text there, and takes the write lock only to add
    /// them to <c>spans_fts</c> and move the watermark in one transaction. Row ids are assigned
    /// in commit order by the single writer and never reused (<see cref="InsertLocked"/>), so
    /// every id at or below the watermark was seen.
    /// </summary>
    protected override async Task<(long IndexedUpTo, int Count)> IndexNextAsync(int maxSpans, CancellationToken cancellationToken)
    {
        var (from, rows, upTo) = await ReadAsync(async connection =>
        {
            await using var progress = Command(connection, null, "SELECT indexed_to FROM search_progress WHERE id = 1");
            long watermark = Convert.ToInt64(
                await progress.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) ?? throw new InvalidOperationException("search_progress has no row: the schema is incomplete."),
                System.Globalization.CultureInfo.InvariantCulture);
            TakePrepared(watermark, null, out _);
            var list = new List<(long Id, string Text)>();
            var unprepared = new List<int>();
            long last = watermark;
            int count = 0;
            await using (var select = Command(connection, null, "SELECT id, lower(hex(span_id)) FROM spans WHERE id > @w ORDER BY id LIMIT @n"))
            {
                Add(select, "w", watermark);
                Add(select, "n", maxSpans);
                await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    last = reader.GetInt64(0);
                    count++;
                    if (TakePrepared(last, reader.GetString(1), out string? prepared))
                    {
                        if (prepared is not null)
                        {
                            list.Add((last, prepared));
                        }
                    }
                    else
                    {
                        unprepared.Add(list.Count);
                        list.Add((last, string.Empty));
                    }
                }
            }

            if (unprepared.Count > 0)
            {
                // This process did not build these rows' text at ingest (a restart, another
                // process's rows, the held text over its budget): read the indexed columns and
                // decode the bodies. Only then: a row's bodies are most of what it holds.
                await using var columns = Command(connection, null, "SELECT authority, path, query, request_body, response_body FROM spans WHERE id = @id");
                var id = Add(columns, "id", 0L);
                foreach (int at in unprepared)
                {
                    id.Value = list[at].Id;
                    await using var reader = await columns.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    list[at] = (list[at].Id, await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? SearchTextOf(reader, 0, 1, 2, 3, 4) ?? string.Empty : string.Empty);
                }

                list.RemoveAll(row => row.Text.Length == 0);
            }

            return (watermark, list, (last, count));
        }, cancellationToken).ConfigureAwait(false);

        if (upTo.count == 0)
        {
            return (from, 0);
        }

        // Each span's words split between FTS5 and its filter before the write lock is taken: the
        // writer's turn runs on one core at a time, and ingest waits for it (bench/README.md,
        // "Backend"). The indexer runs one pass at a time, so the common words are counted in order.
        using var split = new IndexRows(rows, _commonSkipWords);

        await WriteAsync(connection =>
        {
            double started = TurnStart();
            try
            {
                IndexLocked((SqliteConnection)connection, from, split, upTo.last);
            }
            finally
            {
                IndexTurnSeconds += TurnSince(started);
            }

            return Task.FromResult(0);
        }, cancellationToken).ConfigureAwait(false);
        CheckpointAfter(upTo.count);
        return (upTo.last, upTo.count);
    }

    // The indexer's turn as the writer: the pass's FTS5 rows and filters, and the watermark moved
    // from `from` to `to` in one transaction.
    private void IndexLocked(SqliteConnection writer, long from, IndexRows rows, long to)
    {
        using var transaction = writer.BeginTransaction();
        // One row a statement, INSERT ... VALUES. An INSERT ... SELECT (as the existence check
        // was written before) makes SQLite open a statement savepoint for every execution, and
        // FTS5 writes its pending terms to disk at each savepoint: a segment per span, merged
        // again and again (40 % of the ingest profile). This way the terms gather in FTS5's
        // memory and are written once, at the commit (bench/README.md, "Backend").
        var insert = _indexSpan ??= PrepareRaw(writer, "INSERT INTO spans_fts (rowid, body) VALUES (?1, ?2)");
        var db = writer.Handle!;
        // A span retention deleted since it was read is not indexed (its id is never reused either
        // way). One range scan over the pass's ids, walked beside them (both ascending): a lookup
        // per span was a B-tree descent each, under the write lock.
        var existing = ExistingIds(writer, rows);
        int next = 0;
        var filters = new Dictionary<long, byte[]>();
        for (int i = 0; i < rows.Count; i++)
        {
            long spanId = rows.Ids[i];
            while (next < existing.Count && existing[next] < spanId)
            {
                next++;
            }

            if (next == existing.Count || existing[next] != spanId)
            {
                continue;
            }

            long block = spanId >> SqliteSkipIndex.BlockShift;
            if (!filters.TryGetValue(block, out var filter))
            {
                filters.Add(block, filter = new byte[SqliteSkipIndex.FilterBytes]);
            }

            // A span is in one pass once: its slot of the pass's filter is still empty.
            rows.Slot(i).CopyTo(SqliteSkipIndex.SlotOf(filter, spanId));
            if (rows.FtsText(i) is { IsEmpty: false } ftsText)
            {
                raw.sqlite3_bind_int64(insert, 1, spanId);
                Text(insert, 2, ftsText);
                Step(insert, db);
            }
        }

        WriteSkipFilters(writer, filters);

        using var move = Command(writer, transaction, "UPDATE search_progress SET indexed_to = @to WHERE id = 1 AND indexed_to = @from");
        Add(move, "to", to);
        Add(move, "from", from);
        if (move.ExecuteNonQuery() != 1)
        {
            // Another process moved it (two backends on one file): drop this pass, the next one rereads.
            transaction.Rollback();
            return;
        }

        transaction.Commit();
    }

    // The ids of spans still present between the pass's first and last id, ascending.
    private List<long> ExistingIds(SqliteConnection writer, IndexRows rows)
    {
        var ids = new List<long>(rows.Count);
        if (rows.Count == 0)
        {
            return ids;
        }

        var range = _spanExists ??= PrepareRaw(writer, "SELECT id FROM spans WHERE id BETWEEN ?1 AND ?2 ORDER BY id");
        raw.sqlite3_bind_int64(range, 1, rows.Ids[0]);
        raw.sqlite3_bind_int64(range, 2, rows.Ids[^1]);
        int rc;
        while ((rc = raw.sqlite3_step(range)) == raw.SQLITE_ROW)
        {
            ids.Add(raw.sqlite3_column_int64(range, 0));
        }

        raw.sqlite3_reset(range);
        if (rc != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(rc, writer.Handle!);
        }

        return ids;
    }

    // ORs a pass's filters into their blocks' rows (a block's spans can come in several passes).
    private void WriteSkipFilters(SqliteConnection writer, Dictionary<long, byte[]> filters)
    {
        var read = _readSkip ??= PrepareRaw(writer, "SELECT filter FROM spans_skip WHERE block = ?1");
        var write = _writeSkip ??= PrepareRaw(writer, "INSERT OR REPLACE INTO spans_skip (block, filter) VALUES (?1, ?2)");
        var db = writer.Handle!;
        foreach (var (block, filter) in filters)
        {
            raw.sqlite3_bind_int64(read, 1, block);
            int rc = raw.sqlite3_step(read);
            if (rc == raw.SQLITE_ROW)
            {
                SqliteSkipIndex.Merge(filter, raw.sqlite3_column_blob(read, 0));
            }

            raw.sqlite3_reset(read);
            if (rc is not raw.SQLITE_ROW and not raw.SQLITE_DONE)
            {
                SqliteException.ThrowExceptionForRC(rc, db);
            }

            raw.sqlite3_bind_int64(write, 1, block);
            raw.sqlite3_bind_blob(write, 2, filter);
            Step(write, db);
        }
    }

    private (int Inserted, long MaxId) InsertLocked(long tenantId, EncodedBatch spans)
    {
        var writer = OpenWriter();
        using var transaction = writer.BeginTransaction();
        var insert = _insertSpan ??= PrepareRaw(writer, InsertSql);
        // Ids are given explicitly, above both the newest row and the search watermark: SQLite
        // would otherwise reuse the ids of deleted newest rows (retention can empty the table),
        // and a reused id at or below the watermark would never be indexed.
        var next = _nextId ??= Prepare(writer, "SELECT MAX(COALESCE((SELECT MAX(id) FROM spans), 0), (SELECT indexed_to FROM search_progress WHERE id = 1))");
        // A raw statement bound by position like the insert: through ADO.NET each session's roll-up
        // looked its four parameters up by name and boxed them, under the write lock.
        var session = _upsertSession ??= PrepareRaw(writer,
            "INSERT INTO sessions (tenant_id, session_id, first_ns, last_ns) VALUES (?1, ?2, ?3, ?4) " +
            "ON CONFLICT (tenant_id, session_id) DO UPDATE SET first_ns = MIN(first_ns, excluded.first_ns), last_ns = MAX(last_ns, excluded.last_ns)");
        next.Transaction = transaction;
        long id = Convert.ToInt64(next.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        long firstId = id;

        var sessions = new Dictionary<string, (long First, long Last)>(StringComparer.Ordinal);
        var texts = new (long Id, string SpanId, string? Text)[spans.Count];
        var db = writer.Handle!;
        int inserted = 0;
        for (int i = 0; i < spans.Count; i++)
        {
            var e = spans[i];
            // The span's values bound by position to the statement prepared once per connection:
            // binding by name would look each of the 29 names up again for every row.
            var s = e.Span;
            Int64(insert, 1, tenantId);
            Id(insert, 2, s.TraceId);
            Id(insert, 3, s.SpanId);
            Id(insert, 4, s.ParentSpanId);
            if (IsMethodAndPath(s.Name, s.Method, s.Path))
            {
                raw.sqlite3_bind_zeroblob(insert, 5, 0);
            }
            else
            {
                Text(insert, 5, s.Name);
            }

            Int64(insert, 6, s.Kind);
            Text(insert, 7, s.ServiceName);
            Int64(insert, 8, e.StartNs);
            Int64(insert, 9, e.EndNs);
            Int64(insert, 10, s.IsError ? 1 : 0);
            Int64(insert, 11, s.IsExchange ? 1 : 0);
            Text(insert, 12, s.SessionId);
            Text(insert, 13, s.Direction);
            Text(insert, 14, s.Method);
            Text(insert, 15, s.Scheme);
            Text(insert, 16, s.Authority);
            Text(insert, 17, s.Path);
            Text(insert, 18, s.Query);
            Text(insert, 19, s.Route);
            NullableInt64(insert, 20, s.StatusCode);
            Blob(insert, 21, e.RequestHeaders);
            Blob(insert, 22, e.ResponseHeaders);
            Blob(insert, 23, e.RequestBody);
            Blob(insert, 24, e.ResponseBody);
            Blob(insert, 25, e.Attributes);
            Int64(insert, 26, e.StoredBytes);
            Blob(insert, 27, e.Model);
            Int64(insert, 28, id + 1);
            NullableInt64(insert, 29, s.GrpcStatus);

            Step(insert, db);

            // No change when the span already exists (a retried export); its id is then not used.
            if (raw.sqlite3_changes(db) == 0)
            {
                continue;
            }

            id++;
            texts[inserted++] = (id, s.SpanId, e.SearchText);

            if (s.SessionId is not null)
            {
                sessions[s.SessionId] = sessions.TryGetValue(s.SessionId, out var range)
                    ? (Math.Min(range.First, e.StartNs), Math.Max(range.Last, e.StartNs))
                    : (e.StartNs, e.StartNs);
            }
        }

        foreach (var (sessionId, range) in sessions)
        {
            Int64(session, 1, tenantId);
            Text(session, 2, sessionId);
            Int64(session, 3, range.First);
            Int64(session, 4, range.Last);
            Step(session, db);
        }

        transaction.Commit();
        HoldPrepared(firstId, texts.AsSpan(0, inserted));
        return (inserted, id);
    }

    /// <summary>Holds the search text of spans just committed (ids ascending) for the indexer, within <see cref="MaxPreparedChars"/>.</summary>
    private void HoldPrepared(long afterId, ReadOnlySpan<(long Id, string SpanId, string? Text)> texts)
    {
        lock (_prepared)
        {
            if (afterId < _lastPreparedId)
            {
                // Retention deleted the newest rows before they were indexed and their ids are given
                // again: what is held for them no longer describes them, and the queue stays ascending.
                _prepared.Clear();
                _preparedChars = 0;
            }

            foreach (var (id, spanId, text) in texts)
            {
                long chars = text?.Length ?? 0;
                if (_preparedChars + chars > MaxPreparedChars)
                {
                    // The indexer is far behind: it reads these spans' bodies from the store instead.
                    break;
                }

                _prepared.Enqueue((id, spanId, text));
                _preparedChars += chars;
                _lastPreparedId = id;
            }
        }
    }

    /// <summary>
    /// Takes the held search text of row <paramref name="id"/> (the indexer reads ids ascending),
    /// dropping text of rows below it, which retention deleted or another process indexed. The
    /// row's span id must match: an id that retention freed and another process reused is then
    /// read from the row, never given this process's text.
    /// </summary>
    private bool TakePrepared(long id, string? spanId, out string? text)
    {
        lock (_prepared)
        {
            while (_prepared.TryPeek(out var head) && head.Id <= id)
            {
                _prepared.Dequeue();
                _preparedChars -= head.Text?.Length ?? 0;
                if (head.Id == id && head.SpanId == spanId)
                {
                    text = head.Text;
                    return true;
                }
            }
        }

        text = null;
        return false;
    }

    private static void Int64(sqlite3_stmt statement, int index, long value) => raw.sqlite3_bind_int64(statement, index, value);

    private static void NullableInt64(sqlite3_stmt statement, int index, int? value)
    {
        if (value is { } v)
        {
            raw.sqlite3_bind_int64(statement, index, v);
        }
        else
        {
            raw.sqlite3_bind_null(statement, index);
        }
    }

    // Trace and span ids are stored as their 16 and 8 bytes, not as 32 and 16 hex digits. A value
    // that is not hex is bound as the text it is, for the table's CHECK to refuse with its reason.
    private static void Id(sqlite3_stmt statement, int index, string? hex)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (hex is { Length: > 0 and <= 32 } && Convert.FromHexString(hex, bytes, out _, out int written) == System.Buffers.OperationStatus.Done)
        {
            raw.sqlite3_bind_blob(statement, index, bytes[..written]);
        }
        else
        {
            Text(statement, index, hex);
        }
    }

    // Whether name is method + " " + path, which NameSql rebuilds from the row (compared without building it).
    private static bool IsMethodAndPath(string name, string? method, string? path) =>
        method is not null && path is not null &&
        name.Length == method.Length + 1 + path.Length &&
        name.StartsWith(method, StringComparison.Ordinal) &&
        name[method.Length] == ' ' &&
        name.EndsWith(path, StringComparison.Ordinal);

    private static void Text(sqlite3_stmt statement, int index, string? value)
    {
        if (value is null)
        {
            raw.sqlite3_bind_null(statement, index);
        }
        else if (value.Length == 0)
        {
            // An empty span pins to a null pointer, which SQLite would bind as NULL.
            raw.sqlite3_bind_text(statement, index, string.Empty);
        }
        else
        {
            Text(statement, index, value.AsSpan());
        }
    }

    // Non-empty text (an empty span pins to a null pointer, which SQLite would bind as NULL).
    private static void Text(sqlite3_stmt statement, int index, ReadOnlySpan<char> value)
    {
        if (Encoding.UTF8.GetMaxByteCount(value.Length) is var max and <= StackUtf8Bytes)
        {
            // The file's text is UTF-8: text bound as UTF-16 is translated by SQLite's own
            // character loop into a buffer it allocates for each value (sqlite3VdbeMemTranslate,
            // 0.5 % of the ingest profile with the indexer's search text; bench/README.md,
            // "Backend", round 9); .NET's encoder is vectorised and needs no allocation here.
            // SQLite copies the bound bytes (SQLITE_TRANSIENT), so a stack buffer is enough; it is
            // sized to the value because the runtime zeroes what is allocated.
            Span<byte> utf8 = stackalloc byte[max];
            raw.sqlite3_bind_text(statement, index, utf8[..Encoding.UTF8.GetBytes(value, utf8)]);
        }
        else
        {
            // Longer text (a long query string) is rare: SQLite translates it, into memory it frees
            // after the statement, where a pooled buffer would keep the largest one seen.
            raw.sqlite3_bind_text16(statement, index, value);
        }
    }

    private static void Blob(sqlite3_stmt statement, int index, byte[]? value)
    {
        if (value is null)
        {
            raw.sqlite3_bind_null(statement, index);
        }
        else if (value.Length == 0)
        {
            raw.sqlite3_bind_zeroblob(statement, index, 0);
        }
        else
        {
            raw.sqlite3_bind_blob(statement, index, value);
        }
    }

    /// <summary>
    /// SQLite evaluates substr() over the whole value, so a 16 MB body would be loaded just to read
    /// its header: the header is read through incremental blob I/O instead (5 bytes), and length()
    /// of a blob is answered without reading it.
    /// </summary>
    public override Task<long?> GetSpanSizeAsync(long tenantId, string traceId, string spanId, CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        string[] columns = ["request_headers", "response_headers", "request_body", "response_body", "attributes"];
        await using var command = Command(connection, null,
            "SELECT id, " + string.Join(", ", columns.Select(c => "length(" + c + ")")) +
            " FROM spans WHERE tenant_id = @t AND trace_id = unhex(@tr) AND span_id = unhex(@sp)");
        Add(command, "t", tenantId);
        Add(command, "tr", traceId);
        Add(command, "sp", spanId);
        long id;
        var lengths = new long[columns.Length];
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return (long?)null;
            }

            id = reader.GetInt64(0);
            for (int i = 0; i < columns.Length; i++)
            {
                lengths[i] = reader.IsDBNull(i + 1) ? 0 : reader.GetInt64(i + 1);
            }
        }

        long total = 0;
        var head = new byte[BodyCodec.HeadBytes];
        for (int i = 0; i < columns.Length; i++)
        {
            if (lengths[i] == 0)
            {
                continue;
            }

            using var blob = new SqliteBlob((SqliteConnection)connection, "spans", columns[i], id, readOnly: true);
            int read = blob.Read(head, 0, (int)Math.Min(head.Length, lengths[i]));
            total += BodyCodec.DecodedLength(head.AsSpan(0, read), lengths[i]);
        }

        return total;
    }, cancellationToken);

    public override Task<long> GetStoredBytesAsync(CancellationToken cancellationToken) => ReadAsync(async connection =>
    {
        // Pages in use (free pages are reused before the file grows, so they do not count).
        await using var command = Command(connection, null,
            "SELECT (p.page_count - f.freelist_count) * s.page_size FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s");
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
    }, cancellationToken);

    public override async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        await StopIndexerAsync().ConfigureAwait(false);
        Task? checkpointer;
        lock (_checkpointGate)
        {
            _checkpointStopped = true;
            checkpointer = _checkpointer;
        }

        _checkpointSignal.Writer.TryComplete();
        if (checkpointer is not null)
        {
            await checkpointer.ConfigureAwait(false);
        }

        if (_checkpointConnection is not null)
        {
            await _checkpointConnection.DisposeAsync().ConfigureAwait(false);
        }

        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            _disposed = true;
            _insertSpan?.Dispose();
            _spanExists?.Dispose();
            _indexSpan?.Dispose();
            _readSkip?.Dispose();
            _writeSkip?.Dispose();
            _nextId?.Dispose();
            _upsertSession?.Dispose();
            if (_writer is not null)
            {
                // Fold the WAL back into the database so the file is self-contained at rest.
                using (var checkpoint = _writer.CreateCommand())
                {
                    checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
                    checkpoint.ExecuteNonQuery();
                }

                await _writer.DisposeAsync().ConfigureAwait(false);
            }

            using var pooled = new SqliteConnection(_connectionString);
            SqliteConnection.ClearPool(pooled);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private SqliteConnection OpenWriter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_writer is not null)
        {
            return _writer;
        }

        var writer = new SqliteConnection(_connectionString);
        writer.Open();
        using (var pragma = writer.CreateCommand())
        {
            pragma.CommandText =
                // Only takes effect on a new file (an existing one keeps its size). Rows are
                // appended in id order, so a leaf page holds as many whole rows as fit and the
                // rest of it stays empty: a span row of ~1.4 KB (compressed bodies inline) fits
                // five to an 8 KiB page, a sixth of which is then empty, and eleven to 16 KiB.
                // A row larger than a page mostly keeps its overflow pages full (SQLite leaves the
                // remainder in the leaf). The price: a commit writes each page it touches to the WAL
                // whole, twice the bytes for an index leaf hit at random (bench/README.md, "Backend").
                "PRAGMA page_size = 16384;" +
                "PRAGMA journal_mode = WAL;" +
                SynchronousPragma +
                // The checkpointer (RunCheckpointerAsync) checkpoints every CheckpointSpans; the
                // writer only past this bound.
                "PRAGMA wal_autocheckpoint = " + WriterCheckpointPages.ToString(System.Globalization.CultureInfo.InvariantCulture) + ";" +
                "PRAGMA busy_timeout = 30000;" +
                "PRAGMA journal_size_limit = 67108864;" +
                "PRAGMA cache_size = -32768;";
            pragma.ExecuteNonQuery();
        }

        _writer = writer;
        return writer;
    }

    // Runs a raw statement one step and resets it, returning the step's code. Reset before the check:
    // the statement is ready for the next row, and the error (with its message) stays on the
    // connection for the exception.
    private static int Step(sqlite3_stmt statement, sqlite3 db)
    {
        int rc = raw.sqlite3_step(statement);
        raw.sqlite3_reset(statement);
        SqliteException.ThrowExceptionForRC(rc, db);
        return rc;
    }

    private static sqlite3_stmt PrepareRaw(SqliteConnection connection, string sql)
    {
        var db = connection.Handle!;
        int rc = raw.sqlite3_prepare_v3(db, sql, raw.SQLITE_PREPARE_PERSISTENT, out var statement);
        if (rc != raw.SQLITE_OK)
        {
            statement?.Dispose();
            SqliteException.ThrowExceptionForRC(rc, db);
        }

        // ThrowExceptionForRC threw for any code but SQLITE_OK, with which the statement is set.
        return statement!;
    }

    private static SqliteCommand Prepare(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (string name in parameters)
        {
            command.Parameters.Add(new SqliteParameter("@" + name, null));
        }

        command.Prepare();
        return command;
    }
}

/// <summary>
/// An indexer pass's spans with their words split (<see cref="SqliteSkipIndex.Split"/>) before the
/// write lock: each one's FTS5 text and its filter slot, in two pooled arrays for the pass (a pass's
/// 2,048 slots, 124 KiB, were a large-object allocation each pass, and its texts a string each span).
/// </summary>
internal sealed class IndexRows : IDisposable
{
    private readonly byte[] _slots;
    private readonly char[] _text;
    private readonly List<(int Start, int Length)> _fts;

    /// <summary>Splits the words of every span of <paramref name="rows"/> (its id and search text), in order.</summary>
    public IndexRows(IReadOnlyList<(long Id, string Text)> rows, CommonSkipWords common)
    {
        int slotBytes = rows.Count * SqliteSkipIndex.SlotBytes;
        _slots = ArrayPool<byte>.Shared.Rent(slotBytes);
        // Split ORs a span's bits into its slot: it must start empty.
        _slots.AsSpan(0, slotBytes).Clear();

        // The FTS5 texts are never longer than the search texts they come from.
        int textLength = 0;
        foreach (var (_, text) in rows)
        {
            textLength += text.Length;
        }

        _text = ArrayPool<char>.Shared.Rent(Math.Max(textLength, 1));
        _fts = new(rows.Count);
        Ids = new(rows.Count);
        int written = 0;
        foreach (var (id, text) in rows)
        {
            int length = SqliteSkipIndex.Split(text, _slots.AsSpan(Ids.Count * SqliteSkipIndex.SlotBytes, SqliteSkipIndex.SlotBytes), common, _text.AsSpan(written, text.Length));
            _fts.Add((written, length));
            written += length;
            Ids.Add(id);
        }
    }

    public List<long> Ids { get; }

    public int Count => Ids.Count;

    /// <summary>The filter bits of span <paramref name="index"/>: its skip words that are not common.</summary>
    public ReadOnlySpan<byte> Slot(int index) => _slots.AsSpan(index * SqliteSkipIndex.SlotBytes, SqliteSkipIndex.SlotBytes);

    /// <summary>The words FTS5 indexes for span <paramref name="index"/>, separated by spaces (empty: none).</summary>
    public ReadOnlySpan<char> FtsText(int index) => _text.AsSpan(_fts[index].Start, _fts[index].Length);

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_slots);
        ArrayPool<char>.Shared.Return(_text);
    }
}

/// <summary>The ids of a text query's skip-word matches (<c>SqliteSpanStore.SkipMatches</c>), for the query's terms and tenant.</summary>
internal sealed record SkipMatchIds(string Key, string Ids);

/// <summary>SQLite store settings.</summary>
/// <param name="FullSync">
/// <c>synchronous=FULL</c>: fsync every commit, so acknowledged spans also survive power loss.
/// Off by default: NORMAL already keeps every acknowledged span across a process crash or
/// <c>kill -9</c>, which is what the ingest contract promises.
/// </param>
internal sealed record SqliteStoreOptions(bool FullSync = false);
