#!/usr/bin/env bash
# The PostgreSQL block layout (issue 14's disk target), measured on a store the backend bench kept:
# bytes a span, the reads of a trace, a span's values and a session, and the server's insert time,
# each against today's row-per-span table in the same database.
#
#   TMPDIR=/some/dir dotnet SpIstio.Backend.Benchmarks.dll --stores postgres --spans 100000 \
#     --load-seconds 30 --warmup-spans 20480 --keep-files --e2e-requests 1
#   bench/postgres-blocks/measure.sh /some/dir/sp-bench-*/pg
#
# layout.sql builds the blocks beside `spans` (one row per 64 spans of a tenant in arrival order,
# every span field an array: trace ids uuid[], span ids bigint[], the coded values bytea[]; TOAST
# with lz4) and the (tenant, trace) -> block table; q_*.sql are pgbench scripts over 1,000 sampled
# traces and sessions (rows_* against spans, blk_* against the blocks) and a batch's duplicate check
# (dedupe_*, a query a batch of 512); agg.sql times the queries over a whole time range (endpoint
# statistics, the service graph's join, trace search) on both; insert.sql copies tenant 1 into empty
# copies of both layouts, indexes included, and times each. Nothing of the backend reads the blocks:
# this is the measurement a store of its own would start from (bench/README.md).
set -euo pipefail
PGDATA=${1:?usage: measure.sh PGDATA}
HERE=$(cd "$(dirname "$0")" && pwd)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PORT=${PORT:-55432}
su postgres -c "$PGBIN/pg_ctl -D $PGDATA -o '-p $PORT -k /tmp' -l $PGDATA/../measure.log -w start" >/dev/null
trap 'su postgres -c "$PGBIN/pg_ctl -D $PGDATA -w stop" >/dev/null' EXIT
DB=$(psql -h /tmp -p "$PORT" -U postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'sp_bench%' LIMIT 1")
P=(psql -h /tmp -p "$PORT" -U postgres -d "$DB" -At -v ON_ERROR_STOP=1)
SPANS=$("${P[@]}" -c "SELECT count(*) FROM spans")
echo "database $DB, $SPANS spans"
"${P[@]}" -v spans="$SPANS" -f "$HERE/layout.sql" | sed -n '/^pg_toast\|^span_\|^block_\|^[0-9]/p'
"${P[@]}" -c "DROP TABLE IF EXISTS sample_traces, sample_sessions;
  CREATE TABLE sample_traces AS SELECT row_number() OVER () AS i, trace_id::uuid AS tid, trace_id AS hex
    FROM (SELECT DISTINCT trace_id FROM spans WHERE tenant_id = 1 ORDER BY 1 LIMIT 1000) t;
  CREATE TABLE sample_sessions AS SELECT row_number() OVER () AS i, session_id AS s
    FROM (SELECT DISTINCT session_id FROM spans WHERE tenant_id = 1 AND session_id IS NOT NULL ORDER BY 1 LIMIT 1000) t;
  CREATE INDEX ON sample_traces (i); CREATE INDEX ON sample_sessions (i); ANALYZE;" >/dev/null
# Duplicate detection at insert without the unique index: 20 batches of 512 stored (trace, span) ids
# (an agent re-sending a buffered batch) and 20 of new ones, looked up through the trace table.
"${P[@]}" -c "DROP TABLE IF EXISTS dedupe_existing, dedupe_new;
  CREATE TABLE dedupe_existing AS SELECT (row_number() OVER () - 1) / 512 + 1 AS b, trace_id::uuid AS tid, ('x' || span_id)::bit(64)::bigint AS sid
    FROM (SELECT trace_id, span_id FROM spans WHERE tenant_id = 1 ORDER BY md5(id::text) LIMIT 10240) x;
  CREATE TABLE dedupe_new AS SELECT (g - 1) / 512 + 1 AS b, gen_random_uuid() AS tid, (random() * 9e18)::bigint AS sid FROM generate_series(1, 10240) g;
  CREATE INDEX ON dedupe_existing (b); CREATE INDEX ON dedupe_new (b); ANALYZE;" >/dev/null
for q in rows_trace blk_trace rows_span blk_span rows_session blk_session dedupe_existing dedupe_new; do
  printf '%-13s ' "$q"
  "$PGBIN/pgbench" -h /tmp -p "$PORT" -U postgres -n -f "$HERE/q_$q.sql" -T 8 -c 1 "$DB" 2>&1 | awk '/latency average/ {printf "%s ms a query", $4}'
  echo
done
"${P[@]}" -f "$HERE/agg.sql" 2>&1 | awk '/^(endpoints|graph|search)/ {printf "%s%-16s", sep, $0; sep="\n"} /^Time/ {printf " %s ms", $2} END {print ""}'
"${P[@]}" -f "$HERE/insert.sql" 2>&1 | grep -E "^INSERT|^Time"
"${P[@]}" -c "DROP VIEW IF EXISTS spans_b; DROP TABLE IF EXISTS spans2, span_blocks2, block_traces2, span_blocks, block_traces, sample_traces, sample_sessions, dedupe_existing, dedupe_new" >/dev/null
