\set i random(1, 1000)
SELECT name, start_ns, end_ns, service, status_code FROM spans WHERE tenant_id = 1 AND session_id = (SELECT s FROM sample_sessions WHERE i = :i) ORDER BY start_ns, id;
