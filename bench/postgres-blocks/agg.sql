-- Queries over a whole time range of tenant 1 (the Trace View's endpoint and service statistics,
-- the service graph's parent/child join, trace search's first page), on `spans` and on the blocks
-- read as rows (spans_b); each twice, the second warm. work_mem as the store sets it for its merges.
SET work_mem = '64MB';
\timing on
\o /dev/null
\echo endpoints rows
SELECT service, method, COALESCE(route, path, '/'), end_ns - start_ns, is_error, status_code, grpc_status FROM spans WHERE tenant_id = 1 AND start_ns >= 0 AND start_ns < 9000000000000000000 AND method IS NOT NULL AND kind <> 3 AND (direction IS NULL OR direction <> 'outbound');
SELECT service, method, COALESCE(route, path, '/'), end_ns - start_ns, is_error, status_code, grpc_status FROM spans WHERE tenant_id = 1 AND start_ns >= 0 AND start_ns < 9000000000000000000 AND method IS NOT NULL AND kind <> 3 AND (direction IS NULL OR direction <> 'outbound');
\echo endpoints blocks
SELECT service, method, COALESCE(route, path, '/'), end_ns - start_ns, is_error, status_code, grpc_status FROM spans_b WHERE tenant_id = 1 AND start_ns >= 0 AND start_ns < 9000000000000000000 AND method IS NOT NULL AND kind <> 3 AND (direction IS NULL OR direction <> 'outbound');
SELECT service, method, COALESCE(route, path, '/'), end_ns - start_ns, is_error, status_code, grpc_status FROM spans_b WHERE tenant_id = 1 AND start_ns >= 0 AND start_ns < 9000000000000000000 AND method IS NOT NULL AND kind <> 3 AND (direction IS NULL OR direction <> 'outbound');
\echo graph rows
SELECT p.service, s.service, s.end_ns - s.start_ns, s.is_error, s.status_code, s.grpc_status FROM spans s JOIN spans p ON p.tenant_id = s.tenant_id AND p.trace_id = s.trace_id AND p.span_id = s.parent_span_id WHERE s.tenant_id = 1 AND s.start_ns >= 0 AND s.start_ns < 9000000000000000000 AND p.service <> s.service AND p.kind <> 3 AND (p.direction IS NULL OR p.direction <> 'outbound');
SELECT p.service, s.service, s.end_ns - s.start_ns, s.is_error, s.status_code, s.grpc_status FROM spans s JOIN spans p ON p.tenant_id = s.tenant_id AND p.trace_id = s.trace_id AND p.span_id = s.parent_span_id WHERE s.tenant_id = 1 AND s.start_ns >= 0 AND s.start_ns < 9000000000000000000 AND p.service <> s.service AND p.kind <> 3 AND (p.direction IS NULL OR p.direction <> 'outbound');
\echo graph blocks
SELECT p.service, s.service, s.end_ns - s.start_ns, s.is_error, s.status_code, s.grpc_status FROM spans_b s JOIN spans_b p ON p.tenant_id = s.tenant_id AND p.trace_id = s.trace_id AND p.span_id = s.parent_span_id WHERE s.tenant_id = 1 AND s.start_ns >= 0 AND s.start_ns < 9000000000000000000 AND p.service <> s.service AND p.kind <> 3 AND (p.direction IS NULL OR p.direction <> 'outbound');
SELECT p.service, s.service, s.end_ns - s.start_ns, s.is_error, s.status_code, s.grpc_status FROM spans_b s JOIN spans_b p ON p.tenant_id = s.tenant_id AND p.trace_id = s.trace_id AND p.span_id = s.parent_span_id WHERE s.tenant_id = 1 AND s.start_ns >= 0 AND s.start_ns < 9000000000000000000 AND p.service <> s.service AND p.kind <> 3 AND (p.direction IS NULL OR p.direction <> 'outbound');
\echo search rows
SELECT trace_id, max(start_ns) m FROM spans WHERE tenant_id = 1 AND status_code >= 500 GROUP BY trace_id ORDER BY m DESC LIMIT 20;
SELECT trace_id, max(start_ns) m FROM spans WHERE tenant_id = 1 AND status_code >= 500 GROUP BY trace_id ORDER BY m DESC LIMIT 20;
\echo search blocks
SELECT trace_id, max(start_ns) m FROM spans_b WHERE tenant_id = 1 AND status_code >= 500 GROUP BY trace_id ORDER BY m DESC LIMIT 20;
SELECT trace_id, max(start_ns) m FROM spans_b WHERE tenant_id = 1 AND status_code >= 500 GROUP BY trace_id ORDER BY m DESC LIMIT 20;
