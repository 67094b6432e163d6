\set i random(1, 1000)
SELECT name, start_ns, end_ns, service, status_code FROM spans WHERE tenant_id = 1 AND trace_id = (SELECT hex FROM sample_traces WHERE i = :i) ORDER BY start_ns, id;
