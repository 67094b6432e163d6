\set b random(1, 20)
SELECT count(*) FROM (SELECT tid, sid FROM dedupe_existing WHERE b = :b) i
JOIN block_traces bt ON bt.tenant_id = 1 AND bt.trace_id = i.tid
JOIN span_blocks s ON s.tenant_id = 1 AND s.id = bt.block_id
WHERE i.sid = ANY(s.span_ids);
