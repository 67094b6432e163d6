SET default_toast_compression = lz4;
DROP TABLE IF EXISTS spans2, span_blocks2, block_traces2;
CREATE TABLE spans2 (LIKE spans INCLUDING ALL);
CREATE TABLE span_blocks2 (LIKE span_blocks INCLUDING ALL);
CREATE TABLE block_traces2 (LIKE block_traces INCLUDING ALL);
\timing on
INSERT INTO spans2 (tenant_id, trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, direction, method, scheme, authority, path, query, route, status_code, request_headers, response_headers, request_body, response_body, attributes, stored_bytes, span_model, grpc_status, terms, term_buckets, numbers, packed_terms, packed_numbers)
 SELECT tenant_id, trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns, is_error, is_exchange, session_id, direction, method, scheme, authority, path, query, route, status_code, request_headers, response_headers, request_body, response_body, attributes, stored_bytes, span_model, grpc_status, terms, term_buckets, numbers, packed_terms, packed_numbers FROM spans WHERE tenant_id = 1 ORDER BY id;
INSERT INTO span_blocks2 SELECT * FROM span_blocks WHERE tenant_id = 1 ORDER BY id;
INSERT INTO block_traces2 SELECT * FROM block_traces WHERE tenant_id = 1;
