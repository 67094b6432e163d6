#!/usr/bin/env bash
# Process CPU per request of the capture proxy and of YARP passthrough: the measure that holds on a
# shared (loaded) machine, where req/s is noise. Same upstream, receiver and processes as run.sh.
#
#   bench/proxy/cpu.sh                      # sizes 1k 64k 64k-random, 20,000 requests a cell
#   SIZES="1k" REQUESTS=50000 bench/proxy/cpu.sh
#   PROFILE=64k-random bench/proxy/cpu.sh   # also a perf CPU profile of the capture proxy during
#                                           # that size's cell (OUT=dir for the perf.data, default /tmp)
#   NO_BUILD=1 bench/proxy/cpu.sh           # skip the Release build and the AOT publish
#   AGENT_JIT=1 bench/proxy/cpu.sh          # the JIT build (dotnet sp.dll) instead of the AOT sp-agent
#
# For each size and process: a warm-up, then a fixed number of requests (wrk with -c$CONNS at a
# modest pace, so the proxy is busy but not starved); CPU = utime + stime from /proc/PID/stat,
# before and after, divided by the requests wrk completed. The exporter's work for those exchanges
# (redaction happens on the request path; encoding and posting on the export loop) lands inside the
# window because the export loop flushes at least once a second and the script waits for the
# exported-span counter to catch up before reading the CPU clock.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REQUESTS=${REQUESTS:-20000}
CONNS=${CONNS:-8}
BASE_PORT=${BASE_PORT:-18280}
UPSTREAM_PORT=$((BASE_PORT + 1))
RECEIVER_PORT=$((BASE_PORT + 2))
YARP_PORT=$((BASE_PORT + 4))
CAPTURE_PORT=$((BASE_PORT + 5))
ADMIN_PORT=$((BASE_PORT + 6))
read -r -a SIZES <<<"${SIZES:-1k 64k 64k-random}"
PROFILE=${PROFILE:-}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

[[ -n ${NO_BUILD:-} ]] || dotnet build -c Release -v q -nologo "$ROOT/bench/ProxyBench/ProxyBench.csproj" >/dev/null
BENCH="$ROOT/bench/ProxyBench/bin/Release/net10.0/ProxyBench.dll"

# shellcheck source=bench/proxy/lib.sh
source "$ROOT/bench/proxy/lib.sh"
# The agent as the image ships it (Native AOT sp-agent; AGENT_JIT=1 for sp.dll).
agent_command
start_nginx 1 1024
clear_runtime_overrides
start yarp "${AGENT[@]}" agent proxy --listen "127.0.0.1:$YARP_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" --no-capture --ignore-env
YARP_PID=${PIDS[-1]}
# PROFILE: the AOT binary's frames are named from its symbols; under AGENT_JIT=1 perf resolves
# JIT-compiled frames through the runtime's perf map (/tmp/perf-PID.map), with W^X off (with it on,
# JIT code runs from a double mapping perf cannot name).
[[ -z $PROFILE ]] || export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
start capture "${AGENT[@]}" agent proxy --listen "127.0.0.1:$CAPTURE_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" --ignore-env --set "sp_backend_url=http://127.0.0.1:$RECEIVER_PORT" --set public_key=bench --set service_name=bench
CAPTURE_PID=${PIDS[-1]}
for port in "$UPSTREAM_PORT" "$RECEIVER_PORT" "$YARP_PORT" "$CAPTURE_PORT" "$ADMIN_PORT"; do wait_port "$port"; done

metric() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v m="$1" 'index($0, m) == 1 { n += $NF } END { printf "%.0f", n }'; }
# Every span the exporter handled (sent, failed or dropped), so its work is inside the window.
exported() { echo $(( $(metric 'sp_export_spans_total') + $(metric 'sp_export_dropped_total') )); }
gc_counts() { # "gen0 gen1 gen2 allocated-bytes" of the capture proxy
  echo "$(metric 'dotnet_gc_collections_total{generation="0"}') $(metric 'dotnet_gc_collections_total{generation="1"}') $(metric 'dotnet_gc_collections_total{generation="2"}') $(metric 'dotnet_gc_allocated_bytes_total')"
}
requests_seen() { metric 'sp_requests_total{direction="inbound",outcome="captured"}'; }

# wrk has no request count: run it for long enough, then count what it did. DURATION per cell
# derived from a first short run's rate.
run_cell() { # url pid -> "requests cpu-µs/request"
  local url=$1 pid=$2 secs
  wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null # warm-up
  local rate
  rate=$(wrk -t1 -c"$CONNS" -d1s "$url" | awk '/Requests\/sec:/ {print int($2)}')
  secs=$(( REQUESTS / (rate > 0 ? rate : 1) + 1 ))
  (( secs <= 60 )) || secs=60
  if [[ $pid == "$CAPTURE_PID" ]]; then
    # let the exporter drain what the warm-up queued
    local e0=-1 e1; e1=$(exported)
    while [[ $e0 != "$e1" ]]; do e0=$e1; sleep 1.2; e1=$(exported); done
  fi
  local before after out n exp_before perf_pid= gc_before=
  exp_before=$([[ $pid == "$CAPTURE_PID" ]] && exported || echo 0)
  [[ $pid != "$CAPTURE_PID" ]] || gc_before=$(gc_counts)
  before=$(cpu_ticks "$pid")
  if [[ -n $PROFILE && $pid == "$CAPTURE_PID" && $url == */$PROFILE ]]; then
    perf record -F 499 -g -p "$pid" -o "${OUT:-/tmp}/capture-$PROFILE.perf.data" -- sleep "$secs" >"${OUT:-/tmp}/perf.log" 2>&1 &
    perf_pid=$!
  fi
  out=$(wrk -t1 -c"$CONNS" -d"${secs}s" "$url")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  if [[ $pid == "$CAPTURE_PID" ]]; then
    # wait until the exporter handled every exchange of the window (or 20 s)
    for _ in $(seq 1 40); do (( $(exported) - exp_before >= n )) && break; sleep 0.5; done
  fi
  after=$(cpu_ticks "$pid")
  [[ -z $perf_pid ]] || wait "$perf_pid" || true
  awk -v n="$n" -v t="$((after - before))" -v hz="$CLK_TCK" -v r="$(awk '/Requests\/sec:/ {print int($2)}' <<<"$out")" \
    'BEGIN { printf "%d requests, %d req/s, %.0f CPU-µs/request", n, r, t * 1e6 / hz / n }'
  if [[ -n $gc_before ]]; then
    # GCs per 1,000 requests by generation, and managed bytes allocated per request.
    awk -v n="$n" -v b="$gc_before" -v a="$(gc_counts)" 'BEGIN { split(b, x); split(a, y)
      printf "; gen0/1/2 per 1k requests %.1f/%.1f/%.1f, %.0f KiB allocated/request", (y[1]-x[1])*1000/n, (y[2]-x[2])*1000/n, (y[3]-x[3])*1000/n, (y[4]-x[4])/1024/n }'
  fi
}

# Idle RSS as run.sh takes it: after one request of each size, so the code paths are loaded.
for size in "${SIZES[@]}"; do curl -s -o /dev/null "http://127.0.0.1:$CAPTURE_PORT/$size"; done
IDLE_RSS=$(rss_mib "$CAPTURE_PID" VmRSS)
echo "agent: ${AGENT[*]}"
echo "CPU per request (process utime+stime / requests; load average $(cut -d' ' -f1-3 /proc/loadavg))"
for size in "${SIZES[@]}"; do
  echo "  $size yarp:    $(run_cell "http://127.0.0.1:$YARP_PORT/$size" "$YARP_PID")"
  echo "  $size capture: $(run_cell "http://127.0.0.1:$CAPTURE_PORT/$size" "$CAPTURE_PID")"
done
echo "  capture: dropped $(metric 'sp_export_dropped_total'), exported spans $(exported); load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  capture proxy RSS: idle $IDLE_RSS MiB, peak (VmHWM) $(rss_mib "$CAPTURE_PID" VmHWM) MiB; YARP passthrough: $(rss_mib "$YARP_PID" VmRSS) / $(rss_mib "$YARP_PID" VmHWM) MiB (targets <= 60 / <= 150)"
[[ -z $PROFILE ]] || echo "  profile: perf report -i ${OUT:-/tmp}/capture-$PROFILE.perf.data --no-children --sort symbol"
