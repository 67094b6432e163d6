\set i random(1, 1000)
SELECT u.name, u.st, u.en, u.service, u.status FROM (SELECT s FROM sample_sessions WHERE i = :i) q
JOIN span_blocks b ON b.tenant_id = 1 AND b.sessions @> ARRAY[q.s],
LATERAL unnest(b.names, b.starts, b.ends, b.span_services, b.status_codes, b.session_ids) WITH ORDINALITY AS u(name, st, en, service, status, sid, ord)
WHERE u.sid = q.s ORDER BY u.st;
