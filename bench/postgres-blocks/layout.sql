-- The PostgreSQL block layout as columns: one row per 64 spans of a tenant in arrival order,
-- each span field an array (or fixed-width ids concatenated), the coded values as bytea[].
SET default_toast_compression = lz4;
DROP TABLE IF EXISTS span_blocks, block_traces;
CREATE TABLE span_blocks (
  tenant_id bigint NOT NULL, id bigint NOT NULL, n int NOT NULL,
  start_lo bigint NOT NULL, start_hi bigint NOT NULL,
  services text[] NOT NULL, sessions text[],
  trace_ids bytea NOT NULL, span_ids bytea NOT NULL, parent_ids bytea NOT NULL,
  names text[], kinds int[], starts bigint[], ends bigint[], is_error int[], is_exchange int[],
  span_services text[], session_ids text[], directions text[], methods text[], schemes text[], authorities text[],
  paths text[], queries text[], routes text[], status_codes int[], grpc_statuses int[], stored_bytes bigint[],
  request_headers bytea[], response_headers bytea[], request_bodies bytea[], response_bodies bytea[], attributes bytea[], span_models bytea[],
  filter bytea,
  PRIMARY KEY (tenant_id, id));
CREATE TABLE block_traces (tenant_id bigint NOT NULL, trace_id bytea NOT NULL, block_id bigint NOT NULL);
CREATE INDEX block_traces_trace ON block_traces (tenant_id, trace_id);
INSERT INTO span_blocks
SELECT tenant_id, min(id), count(*), min(start_ns), max(start_ns),
  array_agg(DISTINCT service), array_agg(DISTINCT session_id) FILTER (WHERE session_id IS NOT NULL),
  string_agg(decode(trace_id,'hex'), ''::bytea ORDER BY id), string_agg(decode(span_id,'hex'), ''::bytea ORDER BY id),
  string_agg(coalesce(decode(parent_span_id,'hex'), '\x0000000000000000'::bytea), ''::bytea ORDER BY id),
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
INSERT INTO block_traces SELECT tenant_id, decode(trace_id,'hex'), min(id) OVER w FROM (
  SELECT DISTINCT ON (tenant_id, trace_id, (id-1)/64) tenant_id, trace_id, id FROM spans ORDER BY tenant_id, trace_id, (id-1)/64, id) d
  WINDOW w AS (PARTITION BY tenant_id, (id-1)/64) ORDER BY id;
CHECKPOINT;
SELECT c.relname, pg_relation_size(c.oid) AS bytes, round(pg_relation_size(c.oid) / :spans::numeric, 1) AS per_span FROM pg_class c
 WHERE c.relname IN ('span_blocks','block_traces','block_traces_trace','span_blocks_time','span_blocks_sessions','span_blocks_pkey')
    OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'span_blocks')
    OR c.oid = (SELECT indexrelid FROM pg_index WHERE indrelid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'span_blocks'))
 ORDER BY 2 DESC;
SELECT round(sum(pg_total_relation_size(c.oid)) / :spans::numeric, 1) AS blocks_total_per_span FROM pg_class c WHERE c.relname IN ('span_blocks','block_traces');
SELECT round(pg_total_relation_size('spans') / :spans::numeric, 1) AS spans_total_per_span, round(pg_database_size(current_database()) / :spans::numeric, 1) AS db_per_span;
