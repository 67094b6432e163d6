\set i random(1, 1000)
SELECT u.name, u.st, u.en, u.service, u.status FROM (SELECT tid FROM sample_traces WHERE i = :i) q
JOIN block_traces bt ON bt.tenant_id = 1 AND bt.trace_id = q.tid
JOIN span_blocks b ON b.tenant_id = bt.tenant_id AND b.id = bt.block_id,
LATERAL unnest(b.names, b.starts, b.ends, b.span_services, b.status_codes) WITH ORDINALITY AS u(name, st, en, service, status, ord)
WHERE b.trace_ids[u.ord::int] = q.tid ORDER BY u.st;
