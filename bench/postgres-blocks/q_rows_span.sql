\set i random(1, 1000)
SELECT request_headers, response_headers, request_body, response_body, attributes, span_model FROM spans WHERE tenant_id = 1 AND trace_id = (SELECT hex FROM sample_traces WHERE i = :i);
