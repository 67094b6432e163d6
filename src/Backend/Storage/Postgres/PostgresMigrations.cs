namespace SpIstio.Backend.Storage.Postgres;

/// <summary>The PostgreSQL schema, one script per version; released scripts are never edited, only appended to.</summary>
internal static class PostgresMigrations
{
    public static readonly IReadOnlyList<string> All =
    [
        // 1: tenants, keys, spans (with a tsvector for q), the session roll-up.
        """
        CREATE TABLE tenants (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            retention_seconds BIGINT,
            created_ns BIGINT NOT NULL);

        CREATE TABLE api_keys (
            key_hash BYTEA PRIMARY KEY,
            key_id TEXT NOT NULL,
            tenant_id BIGINT NOT NULL REFERENCES tenants (id),
            scopes INTEGER NOT NULL,
            description TEXT,
            created_ns BIGINT NOT NULL,
            revoked_ns BIGINT);
        CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_ns);

        CREATE TABLE spans (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id BIGINT NOT NULL,
            trace_id TEXT NOT NULL CHECK (trace_id ~ '^[0-9a-f]{32}$'),
            span_id TEXT NOT NULL CHECK (span_id ~ '^[0-9a-f]{16}$'),
            parent_span_id TEXT CHECK (parent_span_id ~ '^[0-9a-f]{16}$'),
            name TEXT NOT NULL,
            kind INTEGER NOT NULL,
            service TEXT NOT NULL,
            start_ns BIGINT NOT NULL,
            end_ns BIGINT NOT NULL,
            is_error INTEGER NOT NULL,
            is_exchange INTEGER NOT NULL,
            session_id TEXT,
            direction TEXT,
            method TEXT,
            scheme TEXT,
            authority TEXT,
            path TEXT,
            query TEXT,
            route TEXT,
            status_code INTEGER,
            request_headers BYTEA,
            response_headers BYTEA,
            request_body BYTEA,
            response_body BYTEA,
            attributes BYTEA,
            stored_bytes BIGINT NOT NULL,
            search TSVECTOR);
        -- Already Brotli-compressed by the store: TOAST must not spend time compressing them again.
        ALTER TABLE spans ALTER COLUMN request_headers SET STORAGE EXTERNAL,
            ALTER COLUMN response_headers SET STORAGE EXTERNAL,
            ALTER COLUMN request_body SET STORAGE EXTERNAL,
            ALTER COLUMN response_body SET STORAGE EXTERNAL,
            ALTER COLUMN attributes SET STORAGE EXTERNAL;
        CREATE UNIQUE INDEX spans_trace ON spans (tenant_id, trace_id, span_id);
        CREATE INDEX spans_session ON spans (tenant_id, session_id, start_ns) WHERE session_id IS NOT NULL;
        CREATE INDEX spans_time ON spans (tenant_id, start_ns);
        CREATE INDEX spans_search ON spans USING GIN (search);

        CREATE TABLE sessions (
            tenant_id BIGINT NOT NULL,
            session_id TEXT NOT NULL,
            first_ns BIGINT NOT NULL,
            last_ns BIGINT NOT NULL,
            PRIMARY KEY (tenant_id, session_id));
        CREATE INDEX sessions_recent ON sessions (tenant_id, last_ns, session_id);
        """,

        // 2: mocks (recorded responses answering agent lookups), matched by a replay key.
        """
        CREATE TABLE mocks (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id BIGINT NOT NULL REFERENCES tenants (id),
            service TEXT NOT NULL,
            environment TEXT NOT NULL,
            method TEXT NOT NULL,
            authority TEXT NOT NULL,
            path TEXT NOT NULL,
            query TEXT,
            request_body BYTEA,
            match_key TEXT NOT NULL,
            status_code INTEGER NOT NULL,
            response_headers TEXT NOT NULL,
            response_body BYTEA,
            description TEXT,
            source_trace_id TEXT,
            source_span_id TEXT,
            created_ns BIGINT NOT NULL,
            updated_ns BIGINT NOT NULL,
            expires_ns BIGINT);
        CREATE INDEX mocks_key ON mocks (tenant_id, match_key);
        CREATE INDEX mocks_service ON mocks (tenant_id, service, id);
        """,

        // The whole OpenTelemetry span model (resource, scope, status, events, links; SpanModelJson),
        // compressed by the store like the attributes; and the service-first time index trace search walks.
        """
        ALTER TABLE spans ADD COLUMN span_model BYTEA;
        ALTER TABLE spans ALTER COLUMN span_model SET STORAGE EXTERNAL;
        CREATE INDEX spans_service_time ON spans (tenant_id, service, start_ns);
        """,

        // Ingest throughput (issue 14): per-tenant zstd dictionaries that stored values name by id
        // (BodyCodec); the search index moves out of spans into span_search, filled after the
        // commit by the search indexer, whose watermark says every span with an id at or below
        // indexed_to is indexed (ids are committed in order: see PostgresSpanStore). Existing
        // vectors move over, so spans stored before this version stay searchable.
        """
        CREATE TABLE codec_dictionaries (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id BIGINT NOT NULL,
            created_ns BIGINT NOT NULL,
            dictionary BYTEA NOT NULL);
        CREATE INDEX codec_dictionaries_tenant ON codec_dictionaries (tenant_id, id);
        CREATE TABLE span_search (
            span_id BIGINT PRIMARY KEY REFERENCES spans (id) ON DELETE CASCADE,
            search TSVECTOR NOT NULL);
        INSERT INTO span_search (span_id, search) SELECT id, search FROM spans WHERE search IS NOT NULL;
        ALTER TABLE spans DROP COLUMN search;
        CREATE INDEX span_search_terms ON span_search USING GIN (search);
        CREATE TABLE search_progress (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            indexed_to BIGINT NOT NULL);
        INSERT INTO search_progress (id, indexed_to) SELECT 1, COALESCE(MAX(id), 0) FROM spans;
        """,

        // Replay jobs the Trace View starts: one row per job, claimed by one backend's worker under a
        // lease (FOR UPDATE SKIP LOCKED); the report (JSON, compressed like bodies) is written when the job ends.
        """
        CREATE TABLE replay_jobs (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id BIGINT NOT NULL REFERENCES tenants (id),
            session_id TEXT NOT NULL,
            service TEXT,
            target TEXT NOT NULL,
            ignore_rules TEXT,
            status TEXT NOT NULL,
            total INTEGER NOT NULL,
            completed INTEGER NOT NULL,
            passed INTEGER NOT NULL,
            regressions INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            error TEXT,
            report BYTEA,
            created_ns BIGINT NOT NULL,
            started_ns BIGINT,
            finished_ns BIGINT,
            owner TEXT,
            lease_ns BIGINT);
        CREATE INDEX replay_jobs_tenant ON replay_jobs (tenant_id, id);
        CREATE INDEX replay_jobs_status ON replay_jobs (status, id);
        """,

        // Trace View sign-in sessions, shared by every backend on the store: the SHA-256 of the
        // cookie's random id (never the id) and of the key signed in with (never the key); and the
        // ASP.NET Core data-protection key ring, so a form's antiforgery token made by one replica
        // is accepted by another.
        """
        CREATE TABLE ui_sessions (
            id_hash BYTEA PRIMARY KEY,
            tenant_id BIGINT NOT NULL,
            key_hash BYTEA NOT NULL,
            created_ns BIGINT NOT NULL,
            last_seen_ns BIGINT NOT NULL);
        CREATE INDEX ui_sessions_seen ON ui_sessions (last_seen_ns);

        CREATE TABLE data_protection_keys (
            name TEXT PRIMARY KEY,
            xml TEXT NOT NULL,
            created_ns BIGINT NOT NULL);
        """,

        // Search lag and ingest CPU (issue 14): the text index gathers new entries in a pending list
        // of 16 MiB instead of 4 MiB before merging them into the tree, so each merge sorts and
        // inserts four times as many at once (server CPU per span 25-30 % lower in three A/B runs
        // of the bench, disk 0.86x -> 0.80x raw). Text queries scan that list, so their p99 under
        // full ingest load can rise (bench/README.md, "Backend"); without a list at all
        // (fastupdate off) the server spent 735 us a span against 254.
        """
        ALTER INDEX span_search_terms SET (gin_pending_list_limit = 16384);
        """,

        // gRPC calls: the status code, so lists show the status name without reading attributes
        // (null: not a gRPC call; -1: a gRPC call that ended without a status).
        """
        ALTER TABLE spans ADD COLUMN grpc_status INTEGER;
        """,

        // Search lag and ingest CPU (issue 14): the text index holds 64-bit hashes of the words
        // (PostgresSearchTerms, computed by the backend) in a BIGINT[] instead of a tsvector: the
        // server no longer parses vector text and its GIN compares fixed-width keys (server CPU of
        // indexing about a third lower in an A/B of the same words). Vectors cannot be turned into
        // the backend's hashes in SQL, so the index starts over from the first span: the watermark
        // goes back to 0 and the indexer re-reads every stored span (text search misses old spans
        // until it has, never returns wrong ones).
        """
        DROP TABLE span_search;
        CREATE TABLE span_search (
            span_id BIGINT PRIMARY KEY REFERENCES spans (id) ON DELETE CASCADE,
            terms BIGINT[] NOT NULL);
        CREATE INDEX span_search_terms ON span_search USING GIN (terms) WITH (gin_pending_list_limit = 16384);
        UPDATE search_progress SET indexed_to = 0;
        """,

        // Search at commit (issue 14): each span's word hashes go into spans.terms in the COPY
        // that stores it (computed while the batch is encoded), so a span is searchable once it is
        // acknowledged; span_search, its key, its per-row foreign-key check, the watermark and the
        // indexer's re-reading of bodies go. The GIN index no longer holds the 64-bit hashes
        // (each a key of its own: merging ~90 new keys a span into the tree was four fifths of the
        // server's ingest CPU, and 1.3 KB a span on disk) but their top 16 bits, term_buckets: at
        // most 65,536 keys whose posting lists grow at their ends. A bucket match is a candidate;
        // the exact hashes in terms decide (PostgresSpanStore's text conditions test both).
        // Hashes are random: EXTERNAL keeps TOAST from trying to compress them. Spans stored
        // before this version get their terms from the indexer, oldest first, through
        // spans_unindexed (text search misses them until it has, never returns wrong ones); new
        // spans never enter that partial index.
        """
        DROP TABLE span_search;
        DROP TABLE search_progress;
        ALTER TABLE spans ADD COLUMN terms BIGINT[], ADD COLUMN term_buckets SMALLINT[];
        ALTER TABLE spans ALTER COLUMN terms SET STORAGE EXTERNAL;
        CREATE INDEX spans_terms ON spans USING GIN (term_buckets) WITH (gin_pending_list_limit = 16384);
        CREATE INDEX spans_unindexed ON spans (id) WHERE terms IS NULL;
        """,

        // Bytes and server CPU per span (issue 14). A span's row (~2.4 KB with its word hashes)
        // is over the 2 KB TOAST threshold, and TOAST moved the hashes out first, being the
        // largest EXTERNAL value: ~80 B of chunk row, chunk index entry and pointer for a value
        // every text query reads. MAIN keeps terms and term_buckets in the row and sends the
        // compressed bodies out instead (heap + TOAST 2,815 -> 2,656 B a span in a same-hour
        // A/B); MAIN values are compressed only when a row is still too large with every
        // EXTERNAL value moved out, which a span's row never is in practice, and term_buckets
        // (EXTENDED until now) is no longer handed to pglz first, which fails on it every time.
        // The hex checks on ids move from regex CHECKs the server ran on every row (~2.5 % of its
        // ingest CPU) to the store's own check of the batch before it is sent (PostgresSpanStore):
        // a batch with a malformed id still stores nothing.
        // Rows stored before keep their layout until rewritten; both read the same.
        """
        ALTER TABLE spans DROP CONSTRAINT IF EXISTS spans_trace_id_check,
            DROP CONSTRAINT IF EXISTS spans_span_id_check,
            DROP CONSTRAINT IF EXISTS spans_parent_span_id_check;
        ALTER TABLE spans ALTER COLUMN terms SET STORAGE MAIN, ALTER COLUMN term_buckets SET STORAGE MAIN;
        """,

        // Server CPU and index bytes per span (issue 14): the text keys that b-trees order
        // (session and service) under the "C" collation, so index inserts and lookups compare
        // bytes instead of calling strcoll for the database's locale (a non-C locale such as
        // en_US.UTF-8 or C.UTF-8 on PostgreSQL 15). Sessions now sort by byte order (as on
        // SQLite) where last_ns ties. Changing only a column's collation leaves the table's rows
        // as they are (no rewrite); the indexes on those columns are rebuilt, under the ALTER's
        // lock. Ids stay hex text: storing them as bytes was measured (~50 B a span less in
        // spans_trace, no CPU visible) but would rewrite spans and change what an older replica
        // writes, and PostgreSQL migrations only add, so replicas of two releases can share a
        // store during a rolling upgrade (bench/README.md, round 7).
        // spans_session drops start_ns from its key: a session's spans then share one key, which
        // the b-tree stores once with a list of row pointers (deduplication) instead of an entry
        // of ~50 B a span, inserted mid-tree and split half-empty; the session view sorts the few
        // spans of one session itself.
        """
        DROP INDEX spans_session;
        ALTER TABLE spans ALTER COLUMN session_id TYPE TEXT COLLATE "C",
            ALTER COLUMN service TYPE TEXT COLLATE "C";
        ALTER TABLE sessions ALTER COLUMN session_id TYPE TEXT COLLATE "C";
        CREATE INDEX spans_session ON spans (tenant_id, session_id) WHERE session_id IS NOT NULL;
        """,

        // Server CPU and bytes per span (issue 14): short numbers (1-3 digits, PostgresSearchTerms)
        // are stored as exact 2-byte codes in numbers, with neither an 8-byte hash in terms nor a
        // bucket in the text index, whose cost is per posting: they were ~40 % of a JSON span's
        // words. Adding a column without a default and setting its storage change only the
        // catalog: rows stay where they are, and an older replica still writing during a rolling
        // upgrade leaves numbers null, which queries read as "every hash in terms", as before.
        """
        ALTER TABLE spans ADD COLUMN numbers SMALLINT[];
        ALTER TABLE spans ALTER COLUMN numbers SET STORAGE MAIN;
        """,

        // Server CPU and bytes per span (issue 14): the buckets that are in a large share of the
        // spans (PostgresCommonBuckets: the JSON keys, hosts and enum values every span of an API
        // carries), which new spans leave out of the text index; their words' hashes stay in
        // terms, so search stays exact. A new table only: an older replica still running during a
        // rolling upgrade indexes every bucket, as before; its text queries ask the index for
        // common buckets too, so until it is replaced they miss, for a common word, the spans a
        // newer replica stored (as they miss newer spans' short numbers since version 13).
        """
        CREATE TABLE search_common_buckets (
            bucket SMALLINT PRIMARY KEY);
        """,

        // Server CPU per span (issue 14): the id words (PostgresSearchTerms.IsIdWord: ids, codes,
        // long numbers, ~24 of a span's ~29 index postings, nearly all unique) leave the text
        // index; each ingest transaction stores one Bloom filter of its spans' id words instead,
        // over the row ids (lo, hi] it drew (PostgresIdFilter), and a query checks the exact hashes
        // of the spans whose transaction's filter may hold its id words. Random bits: EXTERNAL
        // keeps TOAST from trying to compress them, and lets a query read one byte of a filter
        // (substring) without the rest. A new table only: an older replica still running during a
        // rolling upgrade indexes every bucket, and newer queries find its spans through their
        // buckets as they find spans stored before this version; until it is replaced, its own
        // text queries miss the id words of the spans a newer replica stored.
        """
        CREATE TABLE span_filters (
            tenant_id BIGINT NOT NULL,
            lo BIGINT NOT NULL,
            hi BIGINT NOT NULL,
            filter BYTEA NOT NULL);
        ALTER TABLE span_filters ALTER COLUMN filter SET STORAGE EXTERNAL;
        CREATE INDEX span_filters_tenant ON span_filters (tenant_id, lo);
        """,

        // Bytes per span (issue 14): the heap holds four rows an 8 KiB page until a row is under
        // ~1,630 B; the word hashes (bigint[], ~390 B) and short numbers' codes (smallint[], ~100 B)
        // of new rows go packed into BYTEA instead (PostgresSearchTerms.PackHash, PackNumber:
        // 5 bytes a hash, 2 a code, matched with LIKE '%entry%'). A hash's entry is a 35-bit prefix, so
        // a packed match is a "maybe" the span's rebuilt search text settles. New rows write an
        // empty terms array (not null: null marks a row the indexer has to fill) and null numbers.
        // Adding columns without a default and setting their storage change only the catalog. An
        // older replica still running during a rolling upgrade writes arrays, which newer queries
        // read as before; its own text queries do not find the spans a newer replica stored.
        """
        ALTER TABLE spans ADD COLUMN packed_terms BYTEA, ADD COLUMN packed_numbers BYTEA;
        ALTER TABLE spans ALTER COLUMN packed_terms SET STORAGE MAIN, ALTER COLUMN packed_numbers SET STORAGE MAIN;
        """,
    ];
}
