#!/usr/bin/env bash
# Overload reproduction for the capture proxy's exporter (issue 13: "the capture proxy stops
# exporting after long overload"): long saturation, then a check that exports resume.
#
#   bench/proxy/overload.sh                      # Native AOT sp-agent, 6 rounds of 10 s
#   AGENT_JIT=1 ROUNDS=3 bench/proxy/overload.sh # the JIT build (dotnet sp.dll)
#   INFLIGHT=16777216 bench/proxy/overload.sh    # the shipped budget instead of the 1 MiB minimum
#
# It provokes the condition directly instead of hoping for it on a shared machine: the proxy runs
# with export.max_inflight_bytes at its 1 MiB minimum (so the managed heap is capped at
# 2 x 1 MiB + 16 MiB + proxy.max_connections x 256 KiB, see src/Cli/Commands/AgentHeapLimit.cs) and
# wrk saturates it with 64 KiB incompressible responses over more connections than
# proxy.max_connections (default 128; MAX_CONNECTIONS sets it), so the proxy refuses some (503) and
# the heap runs near its hard limit. Before the connection bound, the heap reached the limit and
# allocations anywhere in the process threw OutOfMemoryException. After the overload, a few hundred requests
# go through at a low rate; the check passes when every one of them is exported
# (sp_export_spans_total{result="exported"} grows by that many) and the byte budget drains back to
# near zero. Prints the exporter's metrics after each round and the proxy's log lines above Information.
# Exit code: 0 when exports resumed, 1 when they did not or the proxy died (its exit status and the
# end of its log are printed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-10}
CONNS=${CONNS:-256}
INFLIGHT=${INFLIGHT:-1048576}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-128}
SIZE=${SIZE:-64k-random}
CHECK_REQUESTS=${CHECK_REQUESTS:-200}
BASE_PORT=${BASE_PORT:-18280}
UPSTREAM_PORT=$((BASE_PORT + 1))
RECEIVER_PORT=$((BASE_PORT + 2))
CAPTURE_PORT=$((BASE_PORT + 5))
ADMIN_PORT=$((BASE_PORT + 6))
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }

dotnet build -c Release -v q -nologo "$ROOT/bench/ProxyBench/ProxyBench.csproj" >/dev/null
BENCH="$ROOT/bench/ProxyBench/bin/Release/net10.0/ProxyBench.dll"
# shellcheck source=bench/proxy/lib.sh
source "$ROOT/bench/proxy/lib.sh"
agent_command
start_nginx 1 4096
clear_runtime_overrides
start capture "${AGENT[@]}" agent proxy --listen "127.0.0.1:$CAPTURE_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" --ignore-env --set "sp_backend_url=http://127.0.0.1:$RECEIVER_PORT" --set public_key=bench \
  --set service_name=bench --set "export.max_inflight_bytes=$INFLIGHT" --set "proxy.max_connections=$MAX_CONNECTIONS"
CAPTURE_PID=${PIDS[-1]}
# The proxy's log outlives the scratch folder: OUT (default bench/proxy/out/overload-<time>/capture.log).
OUT=${OUT:-$ROOT/bench/proxy/out/overload-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
trap 'cp "$TMP/capture.log" "$OUT/capture.log" 2>/dev/null || true; cleanup' EXIT
for port in "$UPSTREAM_PORT" "$RECEIVER_PORT" "$CAPTURE_PORT" "$ADMIN_PORT"; do wait_port "$port"; done

# died WHEN: the proxy is gone. Says so with its exit status (a signal's name for a kill, 134 for the
# runtime's abort on "Out of memory.") and the end of its log, then fails the script: a dead proxy
# must never end the run silently (a failed curl under `set -e` used to do just that).
died() {
  local status=0 how
  wait "$CAPTURE_PID" 2>/dev/null || status=$?
  if (( status > 128 )); then how="status $status, signal $(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128)))"; else how="status $status"; fi
  echo "FAIL: the capture proxy (pid $CAPTURE_PID) exited $1 ($how); the last lines of its log (all of it in $OUT/capture.log):" >&2
  tail -40 "$TMP/capture.log" >&2
  exit 1
}
alive() { kill -0 "$CAPTURE_PID" 2>/dev/null || died "$1"; } # WHEN

# scrape: reads the proxy's /metrics into PAGE, in this shell (not in a $(…) subshell, where an
# exit would end only the subshell). A scrape that fails is the proxy's death when the process is
# gone, and a failure of its own otherwise: both end the run.
scrape() {
  local status=0
  PAGE=$(curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics") || status=$?
  if (( status != 0 )); then
    alive "while its metrics were read"
    echo "FAIL: the capture proxy is running but its admin port did not answer /metrics (curl exit status $status)" >&2
    exit 1
  fi
}
# metric NAME_AND_LABELS -> its value in the last scrape (0 when absent).
metric() { awk -v m="$1" '$1 == m { v = $2 } END { printf "%d", v + 0 }' <<<"$PAGE"; }
report() { # label
  alive "before the report \"$1\""
  scrape
  printf '%-12s exported %9d  failed %7d  dropped %9d  loop faults %3d  inflight %9d bytes  backend_up %2d  refused conns %7d  RSS peak %s MiB\n' "$1" \
    "$(metric 'sp_export_spans_total{result="exported"}')" "$(metric 'sp_export_spans_total{result="failed"}')" \
    "$(metric sp_export_dropped_total)" "$(metric sp_export_loop_faults_total)" "$(metric sp_export_inflight_bytes)" \
    "$(metric sp_backend_up)" "$(metric sp_proxy_connections_refused_total)" "$(rss_mib "$CAPTURE_PID" VmHWM)"
}

echo "overload: ${AGENT[*]} with export.max_inflight_bytes=$INFLIGHT proxy.max_connections=$MAX_CONNECTIONS; $ROUNDS x ${DURATION}s of wrk -c$CONNS /$SIZE"
for round in $(seq 1 "$ROUNDS"); do
  # wrk's request count, non-2xx answers (the proxy's 503 refusals) and socket errors.
  wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$CAPTURE_PORT/$SIZE" 2>&1 \
    | grep -E "requests in|Non-2xx|Socket errors" | sed 's/^ */  wrk: /' || true
  alive "during overload round $round"
  report "round $round"
done

# Let what was queued during the overload drain: the budget empties once every batch is sent.
for _ in $(seq 1 50); do
  scrape
  (( $(metric sp_export_queue_depth) == 0 )) && break
  sleep 0.2
done
report "after"

scrape
exported_before=$(metric 'sp_export_spans_total{result="exported"}')
for i in $(seq 1 "$CHECK_REQUESTS"); do
  curl -s -o /dev/null "http://127.0.0.1:$CAPTURE_PORT/1k" || alive "before check request $i of $CHECK_REQUESTS"
done
# Exports are asynchronous (batch_delay_ms): wait for them to show, up to 10 s.
want=$((exported_before + CHECK_REQUESTS))
for _ in $(seq 1 50); do
  scrape
  (( $(metric 'sp_export_spans_total{result="exported"}') >= want )) && break
  sleep 0.2
done
report "check"
got=$(( $(metric 'sp_export_spans_total{result="exported"}') - exported_before ))

echo "proxy log (warnings and errors; all of it in $OUT/capture.log):"
grep -E "warn|fail|crit|rror|nhandled|Abort" "$TMP/capture.log" | head -40 || true
alive "after the check"
if (( got >= CHECK_REQUESTS )); then
  echo "PASS: exports resumed after the overload ($got of $CHECK_REQUESTS exchanges sent after it were exported)"
else
  echo "FAIL: exports did not resume after the overload ($got of $CHECK_REQUESTS exchanges sent after it were exported)"
  exit 1
fi
