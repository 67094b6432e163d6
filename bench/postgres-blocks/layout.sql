-- The PostgreSQL block layout as columns: one row per 64 spans of a tenant in arrival order, each
-- span field an array (trace ids uuid[], span ids bigint[]), the coded values as bytea[].
SET default_toast_compression = lz4;
DROP VIEW IF EXISTS spans_b;
DROP TABLE IF EXISTS span_blocks, block_traces;
CREATE TABLE span_blocks (
  tenant_id bigint NOT NULL, id bigint NOT NULL, n int NOT NULL,
  start_lo bigint NOT NULL, start_hi bigint NOT NULL,
  services text[] NOT NULL, sessions text[],
  trace_ids uuid[] NOT NULL, span_ids bigint[] NOT NULL, parent_ids bigint[] NOT NULL,
  names text[], kinds int[], starts bigint[], ends bigint[], is_error int[], is_exchange int[],
  span_services text[], session_ids text[], directions text[], methods text[], schemes text[], authorities text[],
  paths text[], queries text[], routes text[], status_codes int[], grpc_statuses int[], stored_bytes bigint[],
  request_headers bytea[], response_headers bytea[], request_bodies bytea[], response_bodies bytea[], attributes bytea[], span_models bytea[],
  filter bytea,
  PRIMARY KEY (tenant_id, id));
CREATE TABLE block_traces (tenant_id bigint NOT NULL, trace_id uuid NOT NULL, block_id bigint NOT NULL);
CREATE INDEX block_traces_trace ON block_traces (tenant_id, trace_id);
INSERT INTO span_blocks
SELECT tenant_id, min(id), count(*), min(start_ns), max(start_ns),
  array_agg(DISTINCT service), array_agg(DISTINCT session_id) FILTER (WHERE session_id IS NOT NULL),
  array_agg(trace_id::uuid ORDER BY id), array_agg(('x' || span_id)::bit(64)::bigint ORDER BY id),
  array_agg(coalesce(('x' || parent_span_id)::bit(64)::bigint, 0) ORDER BY id),
  array_agg(name ORDER BY id), array_agg(kind ORDER BY id), array_agg(start_ns ORDER BY id), array_agg(end_ns ORDER BY id),
  array_agg(is_error ORDER BY id), array_agg(is_exchange ORDER BY id), array_agg(service ORDER BY id), array_agg(session_id ORDER BY id),
  array_agg(direction ORDER BY id), array_agg(method ORDER BY id), array_agg(scheme ORDER BY id), array_agg(authority ORDER BY id),
  array_agg(path ORDER BY id), array_agg(query ORDER BY id), array_agg(route ORDER BY id), array_agg(status_code ORDER BY id),
  array_agg(grpc_status ORDER BY id), array_agg(stored_bytes ORDER BY id),
  array_agg(request_headers ORDER BY id), array_agg(response_headers ORDER BY id), array_agg(request_body ORDER BY id),
  array_agg(response_body ORDER BY id), array_agg(attributes ORDER BY id), array_agg(span_model ORDER BY id),
  string_agg(substr(sha512(convert_to(id::text,'UTF8')),1,62), ''::bytea ORDER BY id)
FROM spans GROUP BY tenant_id, (id - 1) / 64 ORDER BY min(id);
CREATE INDEX span_blocks_time ON span_blocks (tenant_id, start_lo);
CREATE INDEX span_blocks_sessions ON span_blocks USING gin (sessions);
INSERT INTO block_traces SELECT tenant_id, trace_id::uuid, min(id) OVER w FROM (
  SELECT DISTINCT ON (tenant_id, trace_id, (id-1)/64) tenant_id, trace_id, id FROM spans ORDER BY tenant_id, trace_id, (id-1)/64, id) d
  WINDOW w AS (PARTITION BY tenant_id, (id-1)/64) ORDER BY id;
-- The blocks read as rows, for the aggregate queries (agg.sql): a store would add its block-level
-- conditions (time range, trace, session) before the unnest.
CREATE VIEW spans_b AS
SELECT b.tenant_id, b.id + u.ord - 1 AS id, u.trace_id, u.span_id, u.parent_span_id,
  u.name, u.kind, u.service, u.start_ns, u.end_ns, u.is_error, u.session_id, u.direction, u.method, u.authority, u.path, u.route, u.status_code, u.grpc_status
FROM span_blocks b, LATERAL unnest(b.trace_ids, b.span_ids, b.parent_ids, b.names, b.kinds, b.span_services, b.starts, b.ends, b.is_error,
  b.session_ids, b.directions, b.methods, b.authorities, b.paths, b.routes, b.status_codes, b.grpc_statuses)
  WITH ORDINALITY AS u(trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, is_error, session_id, direction, method, authority, path, route, status_code, grpc_status, ord);
CHECKPOINT;
SELECT c.relname, pg_relation_size(c.oid) AS bytes, round(pg_relation_size(c.oid) / :spans::numeric, 1) AS per_span FROM pg_class c
 WHERE c.relname IN ('span_blocks','block_traces','block_traces_trace','span_blocks_time','span_blocks_sessions','span_blocks_pkey')
    OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'span_blocks')
    OR c.oid = (SELECT indexrelid FROM pg_index WHERE indrelid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'span_blocks'))
 ORDER BY 2 DESC;
SELECT round(sum(pg_total_relation_size(c.oid)) / :spans::numeric, 1) AS blocks_total_per_span FROM pg_class c WHERE c.relname IN ('span_blocks','block_traces');
SELECT round(pg_total_relation_size('spans') / :spans::numeric, 1) AS spans_total_per_span, round(pg_database_size(current_database()) / :spans::numeric, 1) AS db_per_span;
