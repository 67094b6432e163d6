#!/usr/bin/env bash
# Process CPU per gRPC call of the capture proxy and of YARP h2c passthrough: the measure that holds
# on a shared (loaded) machine, where calls/s is noise. Same upstream (ProxyBench grpc-server), proxies
# and receiver as run.sh's gRPC cells.
#
#   bench/proxy/grpc-cpu.sh                    # 10 s per cell, 16 unary 1 KiB calls in flight
#   SECONDS_PER_CELL=20 CONCURRENCY=32 bench/proxy/grpc-cpu.sh
#   SIZE=64k-random bench/proxy/grpc-cpu.sh    # the payload (ProxyBench's PAYLOAD: 1k, 64k, 64k-random)
#   PROFILE=1 bench/proxy/grpc-cpu.sh          # also a perf CPU profile of the capture proxy
#                                              # (OUT=dir for capture-grpc.perf.data, default /tmp)
#   NO_BUILD=1 bench/proxy/grpc-cpu.sh         # skip the Release build
#
# For each proxy: a warm-up run, then a measured run; CPU = utime + stime from /proc/PID/stat before
# and after, divided by the calls the load generator completed. For the capture proxy the window
# closes only once the exporter has handled every call of it, so redaction, encoding and posting are
# charged too. ROUNDS alternates the two proxies that many times (default 2) and prints every round.
# At the end, the capture proxy's bytes allocated and garbage collections per captured call (its
# own dotnet_gc_* metrics): exact, so two builds compare on a loaded machine where CPU does not.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_PER_CELL=${SECONDS_PER_CELL:-10}
CONCURRENCY=${CONCURRENCY:-16}
SIZE=${SIZE:-1k}
ROUNDS=${ROUNDS:-2}
BASE_PORT=${BASE_PORT:-18380}
UPSTREAM_PORT=$((BASE_PORT + 1))
RECEIVER_PORT=$((BASE_PORT + 2))
GRPC_UPSTREAM_PORT=$((BASE_PORT + 7))
YARP_GRPC_PORT=$((BASE_PORT + 8))
CAPTURE_GRPC_PORT=$((BASE_PORT + 9))
ADMIN_GRPC_PORT=$((BASE_PORT + 10))
PROFILE=${PROFILE:-}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

[[ -n ${NO_BUILD:-} ]] || dotnet build -c Release -v q -nologo "$ROOT/bench/ProxyBench/ProxyBench.csproj" >/dev/null
BENCH="$ROOT/bench/ProxyBench/bin/Release/net10.0/ProxyBench.dll"

# shellcheck source=bench/proxy/lib.sh
source "$ROOT/bench/proxy/lib.sh"
# The agent as the image ships it (Native AOT sp-agent; AGENT_JIT=1 for sp.dll).
agent_command
start_nginx 1 1024
start grpc-upstream dotnet "$BENCH" grpc-server "$GRPC_UPSTREAM_PORT"
clear_runtime_overrides
start yarp-grpc "${AGENT[@]}" agent proxy --listen 127.0.0.1:0 --grpc-listen "127.0.0.1:$YARP_GRPC_PORT" \
  --upstream "http://127.0.0.1:$GRPC_UPSTREAM_PORT" --no-capture --ignore-env
YARP_PID=${PIDS[-1]}
[[ -z $PROFILE ]] || export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
start capture-grpc "${AGENT[@]}" agent proxy --listen 127.0.0.1:0 --grpc-listen "127.0.0.1:$CAPTURE_GRPC_PORT" \
  --upstream "http://127.0.0.1:$GRPC_UPSTREAM_PORT" --admin "127.0.0.1:$ADMIN_GRPC_PORT" --ignore-env \
  --set "sp_backend_url=http://127.0.0.1:$RECEIVER_PORT" --set public_key=bench --set service_name=bench
CAPTURE_PID=${PIDS[-1]}
for port in "$RECEIVER_PORT" "$GRPC_UPSTREAM_PORT" "$YARP_GRPC_PORT" "$CAPTURE_GRPC_PORT" "$ADMIN_GRPC_PORT"; do wait_port "$port"; done

metric() { curl -s "http://127.0.0.1:$ADMIN_GRPC_PORT/metrics" | awk -v m="$1" 'index($0, m) == 1 { n += $NF } END { printf "%.0f", n }'; }
exported() { echo $(( $(metric 'sp_export_spans_total') + $(metric 'sp_export_dropped_total') )); }
captured() { metric 'sp_requests_total{direction="inbound",outcome="captured"}'; }
drain() { local e0=-1 e1; e1=$(exported); while [[ $e0 != "$e1" ]]; do e0=$e1; sleep 1.2; e1=$(exported); done; }

run_cell() { # port pid -> "calls calls/s CPU-µs/call"
  local port=$1 pid=$2 out rate calls before after exp_before cap_before perf_pid=
  dotnet "$BENCH" grpc-load "http://127.0.0.1:$port" 3 "$CONCURRENCY" 0 "$SIZE" >/dev/null # warm-up
  [[ $pid != "$CAPTURE_PID" ]] || drain
  exp_before=$([[ $pid == "$CAPTURE_PID" ]] && exported || echo 0)
  cap_before=$([[ $pid == "$CAPTURE_PID" ]] && captured || echo 0)
  before=$(cpu_ticks "$pid")
  if [[ -n $PROFILE && $pid == "$CAPTURE_PID" && -z ${PROFILED:-} ]]; then
    PROFILED=1
    perf record -F 499 -g -p "$pid" -o "${OUT:-/tmp}/capture-grpc.perf.data" -- sleep "$SECONDS_PER_CELL" >"${OUT:-/tmp}/perf-grpc.log" 2>&1 &
    perf_pid=$!
  fi
  out=$(dotnet "$BENCH" grpc-load "http://127.0.0.1:$port" "$SECONDS_PER_CELL" "$CONCURRENCY" 0 "$SIZE")
  rate=$(cut -d' ' -f1 <<<"$out")
  calls=$(awk -v r="$rate" -v s="$SECONDS_PER_CELL" 'BEGIN { printf "%d", r * s }')
  if [[ $pid == "$CAPTURE_PID" ]]; then
    # Every call captured in the window exported (or dropped): calls/s x seconds is rounded and can
    # exceed the captures by a few, which held the window open to its bound on the idle agent's CPU.
    for _ in $(seq 1 40); do (( $(exported) - exp_before >= $(captured) - cap_before )) && break; sleep 0.5; done
  fi
  after=$(cpu_ticks "$pid")
  [[ -z $perf_pid ]] || wait "$perf_pid" || true
  awk -v n="$calls" -v r="$rate" -v t="$((after - before))" -v hz="$CLK_TCK" \
    'BEGIN { printf "%d calls, %d calls/s, %.0f CPU-µs/call", n, r, t * 1e6 / hz / n }'
}

echo "gRPC unary $SIZE, $CONCURRENCY in flight, ${SECONDS_PER_CELL}s a cell (load average $(cut -d' ' -f1-3 /proc/loadavg))"
for round in $(seq 1 "$ROUNDS"); do
  echo "  round $round yarp h2c: $(run_cell "$YARP_GRPC_PORT" "$YARP_PID")"
  echo "  round $round capture:  $(run_cell "$CAPTURE_GRPC_PORT" "$CAPTURE_PID")"
done
# Allocations and collections per captured call: exact, so they compare builds on a loaded machine too.
calls=$(captured)
echo "  capture: $(( $(metric 'dotnet_gc_allocated_bytes_total') / (calls > 0 ? calls : 1) )) B allocated and $(awk -v g="$(metric 'dotnet_gc_collections_total')" -v n="$calls" 'BEGIN { printf "%.2f", (n > 0 ? g * 1000 / n : 0) }') collections per 1,000 calls ($calls calls, warm-ups included)"
echo "  capture: dropped $(metric 'sp_export_dropped_total'), exported spans $(exported), RSS $(awk '$1 == "VmRSS:" {print $2}' "/proc/$CAPTURE_PID/status") kB; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -z $PROFILE ]] || echo "  profile: perf report -i ${OUT:-/tmp}/capture-grpc.perf.data --no-children --sort symbol"
