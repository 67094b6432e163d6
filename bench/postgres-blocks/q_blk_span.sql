\set i random(1, 1000)
SELECT b.request_headers[u.ord], b.response_headers[u.ord], b.request_bodies[u.ord], b.response_bodies[u.ord], b.attributes[u.ord], b.span_models[u.ord] FROM (SELECT tid FROM sample_traces WHERE i = :i) q
JOIN block_traces bt ON bt.tenant_id = 1 AND bt.trace_id = q.tid
JOIN span_blocks b ON b.tenant_id = bt.tenant_id AND b.id = bt.block_id,
LATERAL generate_series(1, b.n) AS u(ord)
WHERE b.trace_ids[u.ord] = q.tid;
