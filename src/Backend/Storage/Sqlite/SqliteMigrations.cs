namespace SpIstio.Backend.Storage.Sqlite;

/// <summary>The SQLite schema, one script per version; released scripts are never edited, only appended to.</summary>
internal static class SqliteMigrations
{
    public static readonly IReadOnlyList<string> All =
    [
        // 1: tenants, keys, spans, the session roll-up and the full-text index.
        """
        CREATE TABLE tenants (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            retention_seconds INTEGER,
            created_ns INTEGER NOT NULL);

        CREATE TABLE api_keys (
            key_hash BLOB PRIMARY KEY,
            key_id TEXT NOT NULL,
            tenant_id INTEGER NOT NULL REFERENCES tenants (id),
            scopes INTEGER NOT NULL,
            description TEXT,
            created_ns INTEGER NOT NULL,
            revoked_ns INTEGER);
        CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_ns);

        CREATE TABLE spans (
            id INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL,
            trace_id TEXT NOT NULL CHECK (length(trace_id) = 32 AND trace_id NOT GLOB '*[^0-9a-f]*'),
            span_id TEXT NOT NULL CHECK (length(span_id) = 16 AND span_id NOT GLOB '*[^0-9a-f]*'),
            parent_span_id TEXT CHECK (parent_span_id IS NULL OR (length(parent_span_id) = 16 AND parent_span_id NOT GLOB '*[^0-9a-f]*')),
            name TEXT NOT NULL,
            kind INTEGER NOT NULL,
            service TEXT NOT NULL,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,
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
            request_headers BLOB,
            response_headers BLOB,
            request_body BLOB,
            response_body BLOB,
            attributes BLOB,
            stored_bytes INTEGER NOT NULL);
        CREATE UNIQUE INDEX spans_trace ON spans (tenant_id, trace_id, span_id);
        CREATE INDEX spans_session ON spans (tenant_id, session_id, start_ns) WHERE session_id IS NOT NULL;
        CREATE INDEX spans_time ON spans (tenant_id, start_ns);

        CREATE TABLE sessions (
            tenant_id INTEGER NOT NULL,
            session_id TEXT NOT NULL,
            first_ns INTEGER NOT NULL,
            last_ns INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, session_id)) WITHOUT ROWID;
        CREATE INDEX sessions_recent ON sessions (tenant_id, last_ns, session_id);

        CREATE VIRTUAL TABLE spans_fts USING fts5 (body, content = '', contentless_delete = 1, detail = none, tokenize = 'unicode61 remove_diacritics 0');
        CREATE TRIGGER spans_fts_delete AFTER DELETE ON spans BEGIN
            DELETE FROM spans_fts WHERE rowid = old.id;
        END;
        """,

        // 2: mocks (recorded responses answering agent lookups), matched by a replay key.
        """
        CREATE TABLE mocks (
            id INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL REFERENCES tenants (id),
            service TEXT NOT NULL,
            environment TEXT NOT NULL,
            method TEXT NOT NULL,
            authority TEXT NOT NULL,
            path TEXT NOT NULL,
            query TEXT,
            request_body BLOB,
            match_key TEXT NOT NULL,
            status_code INTEGER NOT NULL,
            response_headers TEXT NOT NULL,
            response_body BLOB,
            description TEXT,
            source_trace_id TEXT,
            source_span_id TEXT,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            expires_ns INTEGER);
        CREATE INDEX mocks_key ON mocks (tenant_id, match_key);
        CREATE INDEX mocks_service ON mocks (tenant_id, service, id);
        """,

        // The whole OpenTelemetry span model (resource, scope, status, events, links; SpanModelJson),
        // compressed like the attributes; and the service-first time index trace search walks.
        """
        ALTER TABLE spans ADD COLUMN span_model BLOB;
        CREATE INDEX spans_service_time ON spans (tenant_id, service, start_ns);
        """,

        // Ingest throughput (issue 14): per-tenant zstd dictionaries that stored values name by id
        // (BodyCodec), and the post-commit search indexer's watermark: every span with an id at or
        // below indexed_to is in spans_fts. Spans stored before this version are already indexed.
        """
        CREATE TABLE codec_dictionaries (
            id INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL,
            created_ns INTEGER NOT NULL,
            dictionary BLOB NOT NULL);
        CREATE INDEX codec_dictionaries_tenant ON codec_dictionaries (tenant_id, id);
        CREATE TABLE search_progress (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            indexed_to INTEGER NOT NULL);
        INSERT INTO search_progress (id, indexed_to) VALUES (1, COALESCE((SELECT MAX(id) FROM spans), 0));
        """,

        // Replay jobs the Trace View starts: one row per job, claimed by one backend's worker under a
        // lease; the report (JSON, compressed like bodies) is written when the job ends.
        """
        CREATE TABLE replay_jobs (
            id INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL REFERENCES tenants (id),
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
            report BLOB,
            created_ns INTEGER NOT NULL,
            started_ns INTEGER,
            finished_ns INTEGER,
            owner TEXT,
            lease_ns INTEGER);
        CREATE INDEX replay_jobs_tenant ON replay_jobs (tenant_id, id);
        CREATE INDEX replay_jobs_status ON replay_jobs (status, id);
        """,

        // Trace View sign-in sessions, shared by every backend on the store: the SHA-256 of the
        // cookie's random id (never the id) and of the key signed in with (never the key); and the
        // ASP.NET Core data-protection key ring, so a form's antiforgery token made by one replica
        // is accepted by another.
        """
        CREATE TABLE ui_sessions (
            id_hash BLOB PRIMARY KEY,
            tenant_id INTEGER NOT NULL,
            key_hash BLOB NOT NULL,
            created_ns INTEGER NOT NULL,
            last_seen_ns INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX ui_sessions_seen ON ui_sessions (last_seen_ns);

        CREATE TABLE data_protection_keys (
            name TEXT PRIMARY KEY,
            xml TEXT NOT NULL,
            created_ns INTEGER NOT NULL);
        """,

        // Ingest CPU (issue 14): FTS5 merges a level's segments once 16 have gathered instead of 4,
        // so each indexed word is rewritten by about half as many merges (merging was a third of
        // FTS5's share of the ingest profile); a query reads at most 16 segments per level. Stored in
        // the table's own configuration, so existing files take it too (bench/README.md, "Backend").
        """
        INSERT INTO spans_fts (spans_fts, rank) VALUES ('automerge', 16);
        """,

        // gRPC calls: the status code, so lists show the status name without reading attributes
        // (null: not a gRPC call; -1: a gRPC call that ended without a status).
        """
        ALTER TABLE spans ADD COLUMN grpc_status INTEGER;
        """,

        // Disk (issue 14, round 3): the text index writes its segments in blocks of 8,000 bytes
        // instead of 4,050 (one to an 8 KiB page instead of two): half as many blocks, each of which
        // starts with a whole term and is a row of its own: 2,145 -> 2,096 bytes a span in the bench
        // (bench/README.md, "Backend"). Stored in the table's configuration, so existing files write
        // new segments this way too.
        """
        INSERT INTO spans_fts (spans_fts, rank) VALUES ('pgsz', 8000);
        """,

        // Disk (issue 14, round 6): trace and span ids as their 16 and 8 bytes instead of 32 and 16
        // hex digits, in the row and in spans_trace (bench/README.md, "Backend"); the queries read
        // and compare them through hex() / unhex() (SqliteSpanStore.IdSql). SQLite cannot change a
        // column's type in place, so the table is rebuilt with the same row ids (the text index's
        // rowids stay valid), then its indexes and the text index's delete trigger.
        """
        CREATE TABLE spans_binary_ids (
            id INTEGER PRIMARY KEY,
            tenant_id INTEGER NOT NULL,
            trace_id BLOB NOT NULL CHECK (typeof(trace_id) = 'blob' AND length(trace_id) = 16),
            span_id BLOB NOT NULL CHECK (typeof(span_id) = 'blob' AND length(span_id) = 8),
            parent_span_id BLOB CHECK (parent_span_id IS NULL OR (typeof(parent_span_id) = 'blob' AND length(parent_span_id) = 8)),
            name TEXT NOT NULL,
            kind INTEGER NOT NULL,
            service TEXT NOT NULL,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,
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
            request_headers BLOB,
            response_headers BLOB,
            request_body BLOB,
            response_body BLOB,
            attributes BLOB,
            stored_bytes INTEGER NOT NULL,
            span_model BLOB,
            grpc_status INTEGER);
        INSERT INTO spans_binary_ids (id, tenant_id, trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns,
            is_error, is_exchange, session_id, direction, method, scheme, authority, path, query, route, status_code,
            request_headers, response_headers, request_body, response_body, attributes, stored_bytes, span_model, grpc_status)
        SELECT id, tenant_id, unhex(trace_id), unhex(span_id), unhex(parent_span_id), name, kind, service, start_ns, end_ns,
            is_error, is_exchange, session_id, direction, method, scheme, authority, path, query, route, status_code,
            request_headers, response_headers, request_body, response_body, attributes, stored_bytes, span_model, grpc_status
        FROM spans ORDER BY id;
        DROP TABLE spans;
        ALTER TABLE spans_binary_ids RENAME TO spans;
        CREATE UNIQUE INDEX spans_trace ON spans (tenant_id, trace_id, span_id);
        CREATE INDEX spans_session ON spans (tenant_id, session_id, start_ns) WHERE session_id IS NOT NULL;
        CREATE INDEX spans_time ON spans (tenant_id, start_ns);
        CREATE INDEX spans_service_time ON spans (tenant_id, service, start_ns);
        CREATE TRIGGER spans_fts_delete AFTER DELETE ON spans BEGIN
            DELETE FROM spans_fts WHERE rowid = old.id;
        END;
        """,

        // Disk and ingest CPU (issue 14, rounds 10 and 11): words with a digit and at least four
        // characters (ids, codes) go into a Bloom filter per span, 128 spans' filters to a row of
        // spans_skip, instead of FTS5, unless they are common; a query checks the spans whose filter
        // may hold such a word against their search text (SqliteSkipIndex). Spans indexed before
        // (id <= skip_from) hold all their words in FTS5 and are still found there. A row goes with
        // the last span of its block (retention, purge, tenant deletion).
        """
        ALTER TABLE search_progress ADD COLUMN skip_from INTEGER NOT NULL DEFAULT 0;
        UPDATE search_progress SET skip_from = indexed_to;
        CREATE TABLE spans_skip (block INTEGER PRIMARY KEY, filter BLOB NOT NULL);
        CREATE TRIGGER spans_skip_delete AFTER DELETE ON spans
        WHEN NOT EXISTS (SELECT 1 FROM spans WHERE id BETWEEN (old.id >> 7) << 7 AND ((old.id >> 7) << 7) + 127) BEGIN
            DELETE FROM spans_skip WHERE block = old.id >> 7;
        END;
        """,
    ];
}
