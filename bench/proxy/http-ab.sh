#!/usr/bin/env bash
# A/B of two agent builds as HTTP capture proxies (cpu.sh's cells: static nginx upstream, nginx
# receiver answering 200): one YARP passthrough and the two capture proxies run side by side and
# their cells alternate (A B, then B A), so both builds see the same minutes of a loaded machine.
# Per cell: CPU-µs a request (utime + stime over the requests wrk completed, the exporter's work for
# them included), and the managed bytes allocated and gen0 collections per captured request.
#
#   bench/proxy/http-ab.sh "dotnet OLD/sp.dll" "dotnet NEW/sp.dll"     # two JIT builds
#   bench/proxy/http-ab.sh OLD/sp-agent NEW/sp-agent                   # two AOT publishes
#   SIZE=64k SECONDS_PER_CELL=15 ROUNDS=4 PROFILE=B bench/proxy/http-ab.sh A B   # perf of B: $OUT/http-prof-B.data
#   RATE=3000 bench/proxy/http-ab.sh A B    # every cell at the same offered rate (ProxyBench load, open loop):
#                                           # on a loaded machine wrk's closed loop gives each cell another
#                                           # rate, and CPU per request falls as the rate rises
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp}
read -r -a AGENT_A <<<"$1"; read -r -a AGENT_B <<<"$2"
SIZE=${SIZE:-1k}; SECONDS_PER_CELL=${SECONDS_PER_CELL:-10}; CONNS=${CONNS:-8}; ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-18880}
UPSTREAM_PORT=$((BASE_PORT + 1)); RECEIVER_PORT=$((BASE_PORT + 2)); YARP_PORT=$((BASE_PORT + 4))
CA=$((BASE_PORT + 5)); ADMA=$((BASE_PORT + 6)); CB=$((BASE_PORT + 7)); ADMB=$((BASE_PORT + 8))
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -n ${NO_BUILD:-} ]] || dotnet build -c Release -v q -nologo "$ROOT/bench/ProxyBench/ProxyBench.csproj" >/dev/null
BENCH=$ROOT/bench/ProxyBench/bin/Release/net10.0/ProxyBench.dll
# shellcheck source=bench/proxy/lib.sh
source "$ROOT/bench/proxy/lib.sh"
start_nginx 1 1024
NGINX_PID=${PIDS[-1]}
# nginx's CPU (master and worker): upstream and receiver share the cores with the proxy under test.
nginx_ticks() { local t=0 p; for p in "$NGINX_PID" $(pgrep -P "$NGINX_PID"); do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }
clear_runtime_overrides
start yarp "${AGENT_A[@]}" agent proxy --listen "127.0.0.1:$YARP_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" --no-capture --ignore-env
YPID=${PIDS[-1]}
# PROFILE: JIT frames are named through the runtime's perf map, with W^X off (see cpu.sh).
[[ -z ${PROFILE:-} ]] || export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
for x in A B; do
  if [[ $x == A ]]; then agent=("${AGENT_A[@]}"); port=$CA; adm=$ADMA; else agent=("${AGENT_B[@]}"); port=$CB; adm=$ADMB; fi
  start "cap$x" "${agent[@]}" agent proxy --listen "127.0.0.1:$port" --upstream "http://127.0.0.1:$UPSTREAM_PORT" --admin "127.0.0.1:$adm" \
    --ignore-env --set "sp_backend_url=http://127.0.0.1:$RECEIVER_PORT" --set public_key=bench --set service_name=bench
  eval "PID_$x=${PIDS[-1]}"
done
for p in $UPSTREAM_PORT $RECEIVER_PORT $YARP_PORT $CA $CB $ADMA $ADMB; do wait_port "$p"; done

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m) == 1 { n += $NF } END { printf "%.0f", n }'; }
exported() { echo $(( $(metric "$1" sp_export_spans_total) + $(metric "$1" sp_export_dropped_total) )); }
# gc_state ADMIN_PORT -> "gen0 gen1 gen2 allocated-bytes pause-seconds" since the process started
gc_state() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '
    $1 == "dotnet_gc_collections_total{generation=\"0\"}" { g0 = $2 }
    $1 == "dotnet_gc_collections_total{generation=\"1\"}" { g1 = $2 }
    $1 == "dotnet_gc_collections_total{generation=\"2\"}" { g2 = $2 }
    $1 == "dotnet_gc_allocated_bytes_total" { a = $2 }
    $1 == "dotnet_gc_pause_seconds_total" { p = $2 }
    END { printf "%.0f %.0f %.0f %.0f %.6f", g0, g1, g2, a, p }'
}
drain() { local e0=-1 e1; e1=$(exported "$1"); while [[ $e0 != "$e1" ]]; do e0=$e1; sleep 1.2; e1=$(exported "$1"); done; }
cell() { # port pid admin-port|- label
  local port=$1 pid=$2 adm=$3 label=$4 url="http://127.0.0.1:$1/$SIZE" out n before after e0 gc0 dropped0 perf_pid= extra="" latency=""
  wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null
  if [[ $adm != - ]]; then drain "$adm"; e0=$(exported "$adm"); gc0=$(gc_state "$adm"); dropped0=$(metric "$adm" sp_export_dropped_total); fi
  before=$(cpu_ticks "$pid"); local nginx0; nginx0=$(nginx_ticks)
  if [[ -n ${PROFILE:-} && $label == "cap$PROFILE" && -z ${PROFILED:-} ]]; then
    PROFILED=1; perf record -F 499 -g -p "$pid" -o "$OUT/http-prof-$PROFILE.data" -- sleep "$SECONDS_PER_CELL" >"$OUT/http-perf.log" 2>&1 & perf_pid=$!
  fi
  if [[ -n ${RATE:-} ]]; then
    out=$(dotnet "$BENCH" load "$url" "$RATE" "$SECONDS_PER_CELL" 64 0)
    n=$(awk -v s="$SECONDS_PER_CELL" '{ printf "%d", $2 * s }' <<<"$out")
    latency=$(awk '{ printf ", latency ms p50 %s p99 %s p99.9 %s max %s, errors %s; CPU-us/request of the load generator %s", $3, $5, $6, $7, $8, $9 }' <<<"$out")
  else
    out=$(wrk -t1 -c"$CONNS" -d"${SECONDS_PER_CELL}s" "$url")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
  fi
  # the exporter's work for the window's exchanges lands inside it (or 30 s)
  if [[ $adm != - ]]; then for _ in $(seq 1 60); do (( $(exported "$adm") - e0 >= n )) && break; sleep 0.5; done; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "$label exited during the cell; the end of its log:"; tail -40 "$TMP/$label.log"; exit 1; fi
  after=$(cpu_ticks "$pid")
  [[ -z $perf_pid ]] || wait "$perf_pid" || true
  if [[ $adm != - ]]; then
    # per 1,000 requests: collections of each generation; GC pause: ms per second of the cell
    extra=$(awk -v n="$n" -v s="$SECONDS_PER_CELL" -v before="$gc0" -v after="$(gc_state "$adm")" 'BEGIN {
      split(before, b, " "); split(after, a, " ")
      printf ", %d B allocated/request, gen0/1/2 per 1k %.2f/%.3f/%.3f, GC pause %.1f ms/s", (a[4] - b[4]) / n,
        (a[1] - b[1]) * 1000 / n, (a[2] - b[2]) * 1000 / n, (a[3] - b[3]) * 1000 / n, (a[5] - b[5]) * 1000 / s }')
    extra+=", dropped $(( $(metric "$adm" sp_export_dropped_total) - dropped0 ))"
  fi
  [[ -z ${RATE:-} ]] || latency+=$(awk -v n="$n" -v t="$(( $(nginx_ticks) - nginx0 ))" -v hz="$CLK_TCK" 'BEGIN { printf ", of nginx %.1f", t * 1e6 / hz / n }')
  echo "$label: $(awk -v n="$n" -v t="$((after - before))" -v hz="$CLK_TCK" 'BEGIN { printf "%d requests, %.1f CPU-us/request", n, t * 1e6 / hz / n }')$extra$latency"
}
echo "A: ${AGENT_A[*]}"; echo "B: ${AGENT_B[*]}"; echo "size $SIZE, ${RATE:+open loop at $RATE req/s, }load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  cell "$YARP_PORT" "$YPID" - yarp
  if (( r % 2 )); then cell "$CA" "$PID_A" "$ADMA" capA; cell "$CB" "$PID_B" "$ADMB" capB
  else cell "$CB" "$PID_B" "$ADMB" capB; cell "$CA" "$PID_A" "$ADMA" capA; fi
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
for x in A B; do
  adm=$([[ $x == A ]] && echo "$ADMA" || echo "$ADMB"); pid=$([[ $x == A ]] && echo "$PID_A" || echo "$PID_B")
  echo "cap$x dropped $(metric "$adm" sp_export_dropped_total), RSS $(rss_mib "$pid" VmRSS) MiB, peak (VmHWM) $(rss_mib "$pid" VmHWM) MiB"
done
