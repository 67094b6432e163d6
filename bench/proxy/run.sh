#!/usr/bin/env bash
# Capture-proxy load benchmark: one command, every baseline measured in the same run.
#
#   bench/proxy/run.sh            # 10 s per cell (+3 s warm-up), wrk -t2 -c32
#   DURATION=30 bench/proxy/run.sh
#   GRPC_ONLY=1 bench/proxy/run.sh   # only the gRPC cells
#   GRPC_OPEN_DURATION=8 GRPC_OPEN_MIN_CALLS=0 bench/proxy/run.sh   # the gRPC open-loop cells as before (8 s)
#   AGENT_JIT=1 bench/proxy/run.sh   # the JIT build (dotnet sp.dll) instead of the Native AOT sp-agent
#   RUNS=1 bench/proxy/run.sh        # one run instead of three
#
# A run measures every cell once, one after the other; the script makes RUNS runs (default 3, as
# issue 13 asks) and prints the median of each figure over the runs. A ratio is computed within each
# run (both cells measured minutes apart at most, under the same conditions) and its median printed
# with the per-run values beside it, so one disturbed run shows instead of moving the figure.
# Targets (issue 13): capture >= 0.80x YARP passthrough throughput at 1 KiB and >= 0.50x at 64 KiB
# (incompressible bodies); at an offered load of half of YARP's rate, zero dropped exchanges and
# p99 <= 1.25x YARP; the capture proxy <= 60 MiB RSS idle and <= 150 MiB peak.
# Cells: direct to the upstream, nginx reverse proxy, YARP passthrough (`sp agent proxy
# --no-capture`) and `sp agent proxy` capturing; 1 KiB, 64 KiB (compressible JSON) and 64 KiB random
# (base64 of random bytes) responses. nginx serves the bodies and answers the exports with 200, so
# neither the upstream nor the receiver costs .NET CPU that would be charged to capture.
# Saturation throughput comes from wrk (closed loop); the equal-load cells use an open-loop
# generator (ProxyBench load: wrk2 is not packaged, and wrk's delay() is a closed loop).
# gRPC (issue 18, same targets as HTTP): unary calls from grpc-dotnet to a Grpc.AspNetCore echo
# server (ProxyBench grpc-server), direct and through the proxy's h2c listener (--grpc-listen) with
# and without capture, for each of GRPC_SIZES (payloads: 1k zeros, 64k-random incompressible bytes):
# saturation (ProxyBench grpc-load, GRPC_CONCURRENCY calls in flight, closed loop; the ratio to the
# YARP cell is the cost of capture) and equal offered load (ProxyBench grpc-open, open loop at half
# of YARP's saturation calls/s in the same run: p99 against YARP's, and dropped exchanges; its
# client is a lean h2c one, RawGrpcClient, as the HTTP cells' is RawHttpClient). The
# upstream and the load generator are .NET on the same cores, so these cells are noisier than the
# HTTP ones; the saturation cells run GRPC_DURATION (default 8) + GRPC_WARMUP (2) seconds each to
# bound the run. The open-loop cells run GRPC_OPEN_DURATION (default 24) + GRPC_WARMUP seconds, or
# long enough for GRPC_OPEN_MIN_CALLS (20,000) calls at 64k-random's lower rate, the same for YARP
# and capture: their p99 is set by a few stalls (collections, a descheduled process), not by the
# calls' count — the calls of p99 or longer of an 8 s cell were due in 2 to 29 of its 80 100 ms
# buckets, the five worst holding 42-100 % of them (bench/README.md, 2026-11-28 grpctail) — so an
# 8 s cell's p99 was the size of its few worst stalls. Three times as long a cell averages
# three times as many; a run of three takes ~20 minutes instead of ~17.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
BASE_PORT=${BASE_PORT:-18180}
UPSTREAM_PORT=$((BASE_PORT + 1))
RECEIVER_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3))
YARP_PORT=$((BASE_PORT + 4))
CAPTURE_PORT=$((BASE_PORT + 5))
ADMIN_PORT=$((BASE_PORT + 6))
GRPC_UPSTREAM_PORT=$((BASE_PORT + 7))
YARP_GRPC_PORT=$((BASE_PORT + 8))
CAPTURE_GRPC_PORT=$((BASE_PORT + 9))
ADMIN_GRPC_PORT=$((BASE_PORT + 10))
GRPC_ONLY=${GRPC_ONLY:-0}
GRPC_CONCURRENCY=${GRPC_CONCURRENCY:-64}
read -r -a GRPC_SIZES <<<"${GRPC_SIZES:-1k 64k-random}"
GRPC_DURATION=${GRPC_DURATION:-8}
GRPC_WARMUP=${GRPC_WARMUP:-2}
# The gRPC open-loop cells measure GRPC_OPEN_DURATION seconds, and longer when that gives fewer
# than GRPC_OPEN_MIN_CALLS calls (64k-random's rate), the same for YARP and capture (same rate).
GRPC_OPEN_DURATION=${GRPC_OPEN_DURATION:-24}
GRPC_OPEN_MIN_CALLS=${GRPC_OPEN_MIN_CALLS:-20000}
RUNS=${RUNS:-3}

need_packages=()
command -v wrk >/dev/null || need_packages+=(wrk)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || need_packages+=(nginx-light)
if ((${#need_packages[@]})); then
  echo "installing ${need_packages[*]} (apt-get)"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_packages[@]}" >/dev/null
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi

SIZES=(1k 64k 64k-random)
OPEN_CONNS=${OPEN_CONNS:-64}

echo "building Release"
dotnet build -c Release -v q -nologo "$ROOT/bench/ProxyBench/ProxyBench.csproj" >/dev/null
BENCH="$ROOT/bench/ProxyBench/bin/Release/net10.0/ProxyBench.dll"

# shellcheck source=bench/proxy/lib.sh
source "$ROOT/bench/proxy/lib.sh"
# The agents' logs outlive the scratch folder: OUT (default bench/proxy/out/run-<time>/) keeps them,
# so a run whose capture cells went wrong can be read afterwards (its per-cell export state is printed).
OUT=${OUT:-$ROOT/bench/proxy/out/run-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
trap 'cp "$TMP"/*.log "$OUT"/ 2>/dev/null || true; cleanup' EXIT
echo "agent logs will be kept in $OUT"
agent_command
start_nginx auto 4096 "  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }"
start grpc-upstream dotnet "$BENCH" grpc-server "$GRPC_UPSTREAM_PORT"

# The baseline is the same binary, Kestrel settings, YARP forwarder and upstream client as the
# capture cell, with only the capture path switched off, so the ratio is the cost of capture.
# Both agent processes run as the image and the manifests ship them: the Native AOT sp-agent with the
# runtime settings of eng/RuntimeSettings.props compiled in (AGENT_JIT=1: sp.dll and its
# sp.runtimeconfig.json), so no DOTNET_* variable may override them here.
clear_runtime_overrides
start yarp "${AGENT[@]}" agent proxy --listen "127.0.0.1:$YARP_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" --no-capture --ignore-env
YARP_PID=${PIDS[-1]}
start capture "${AGENT[@]}" agent proxy --listen "127.0.0.1:$CAPTURE_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" --ignore-env --set "sp_backend_url=http://127.0.0.1:$RECEIVER_PORT" --set public_key=bench --set service_name=bench
CAPTURE_PID=${PIDS[-1]}
# gRPC: the same two proxies, their h2c listener in front of the gRPC upstream (the HTTP/1.1 port is unused).
start yarp-grpc "${AGENT[@]}" agent proxy --listen 127.0.0.1:0 --grpc-listen "127.0.0.1:$YARP_GRPC_PORT" \
  --upstream "http://127.0.0.1:$GRPC_UPSTREAM_PORT" --no-capture --ignore-env
YARP_GRPC_PID=${PIDS[-1]}
start capture-grpc "${AGENT[@]}" agent proxy --listen 127.0.0.1:0 --grpc-listen "127.0.0.1:$CAPTURE_GRPC_PORT" \
  --upstream "http://127.0.0.1:$GRPC_UPSTREAM_PORT" --admin "127.0.0.1:$ADMIN_GRPC_PORT" --ignore-env \
  --set "sp_backend_url=http://127.0.0.1:$RECEIVER_PORT" --set public_key=bench --set service_name=bench
CAPTURE_GRPC_PID=${PIDS[-1]}

for port in "$UPSTREAM_PORT" "$RECEIVER_PORT" "$NGINX_PORT" "$YARP_PORT" "$CAPTURE_PORT" \
  "$GRPC_UPSTREAM_PORT" "$YARP_GRPC_PORT" "$CAPTURE_GRPC_PORT"; do wait_port "$port"; done

to_ms() { # "1.23ms" | "850.00us" | "1.02s" -> ms
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

# cpu_us_per_request PID TICKS_BEFORE REQUESTS -> process CPU-µs per request since TICKS_BEFORE.
# Unlike req/s this holds on a loaded machine: it is the work the proxy did, not how fast it got CPU.
cpu_us_per_request() {
  awk -v t="$(( $(cpu_ticks "$1") - $2 ))" -v hz="$CLK_TCK" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print "-" }'
}

# run_wrk URL PID [extra wrk args...] -> "rps p50ms p99ms cpu-µs/request" (PID: the process whose CPU
# is charged, "-" for none)
run_wrk() {
  local url=$1 pid=$2; shift 2
  wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$@" "$url" >/dev/null
  local out before=0
  [[ $pid == - ]] || before=$(cpu_ticks "$pid")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url")
  local rps p50 p99 requests cpu=-
  rps=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  [[ $pid == - ]] || cpu=$(cpu_us_per_request "$pid" "$before" "$requests")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    grep "Non-2xx\|Socket errors" <<<"$out" | sed "s|^|  $url: |" >&2
  fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $cpu"
}

# run_open URL RATE -> "offered achieved p50 p90 p99 p999 max errors" (ms) and the generator's CPU-µs a request
run_open() {
  dotnet "$BENCH" load "$1" "$2" "$DURATION" "$OPEN_CONNS" "$WARMUP"
}

# Exchanges the capture proxy dropped so far (export queue or byte budget full, or a batch given
# up); [admin port]. sp_export_dropped_total alone: an exchange refused at the queue is also counted
# in sp_requests_total{outcome="dropped"}, so adding both counted it twice.
dropped() {
  curl -s "http://127.0.0.1:${1:-$ADMIN_PORT}/metrics" | awk '
    /^sp_export_dropped_total / { n += $2 }
    END { printf "%d", n }'
}

# Bodies the capture proxy cut short so far because the byte budget was full when they arrived
# (sp_capture_budget_exceeded_total): exported, but not whole, so lost data like a drop.
cut_bodies() {
  curl -s "http://127.0.0.1:${1:-$ADMIN_PORT}/metrics" | awk '
    /^sp_capture_budget_exceeded_total / { n += $2 }
    END { printf "%d", n }'
}


# export_state [admin port] -> "failed=N backend_up=N inflight_bytes=N loop_faults=N" from the capture
# proxy's /metrics at this moment: whether its exports still get through (issue 13: a proxy that
# stopped exporting after long overload kept dropping every exchange for the rest of the bench).
export_state() {
  curl -s "http://127.0.0.1:${1:-$ADMIN_PORT}/metrics" | awk '
    $1 == "sp_export_spans_total{result=\"failed\"}" { f = $2 }
    $1 == "sp_backend_up" { u = $2 }
    $1 == "sp_export_inflight_bytes" { b = $2 }
    $1 == "sp_export_loop_faults_total" { l = $2 }
    END { printf "failed=%d backend_up=%d inflight_bytes=%d loop_faults=%d", f, u, b, l }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# median VALUE... -> the median of the numeric values ("-" when there is none); the mean of the two
# middle ones for an even count.
median() {
  printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# fmt DECIMALS VALUE -> VALUE rounded to DECIMALS places, or unchanged when it is not a number ("-").
fmt() { if [[ $2 =~ ^-?[0-9.]+$ ]]; then printf "%.${1}f" "$2"; else printf '%s' "$2"; fi; }
# field N "a b c" -> the Nth space-separated field.
field() { awk -v n="$1" '{ print $n }' <<<"$2"; }
# runs_of KEY_SUFFIX FIELD ARRAY -> that field of ARRAY[$run,KEY_SUFFIX] for every run, space-separated.
runs_of() {
  local -n arr=$3
  local run out=()
  for run in $(seq 1 "$RUNS"); do out+=("$(field "$2" "${arr[$run,$1]}")"); done
  echo "${out[*]}"
}

# gRPC unary, per size: direct, YARP h2c passthrough, capture at saturation, then YARP and capture
# at half of YARP's rate. GRPC[run,size,cell] -> "calls/s p50 p99 errors cpu-µs/call";
# GRPC[run,size,cell,rated] -> "offered achieved p50 p90 p99 p999 max errors" (ms).
declare -A GRPC
grpc_port_of() { case $1 in direct) echo "$GRPC_UPSTREAM_PORT";; yarp) echo "$YARP_GRPC_PORT";; capture) echo "$CAPTURE_GRPC_PORT";; esac; }
grpc_pid_of() { case $1 in yarp) echo "$YARP_GRPC_PID";; capture) echo "$CAPTURE_GRPC_PID";; *) echo -;; esac; }
# run_grpc_load SIZE CELL -> grpc-load's line with the proxy's CPU-µs per call appended ("-" for direct)
run_grpc_load() {
  local pid out before=0 cpu=-
  pid=$(grpc_pid_of "$2")
  [[ $pid == - ]] || before=$(cpu_ticks "$pid")
  out=$(dotnet "$BENCH" grpc-load "http://127.0.0.1:$(grpc_port_of "$2")" "$GRPC_DURATION" "$GRPC_CONCURRENCY" "$GRPC_WARMUP" "$1")
  # The CPU window holds the warm-up too, so it is charged over the calls of both (the same rate).
  [[ $pid == - ]] || cpu=$(cpu_us_per_request "$pid" "$before" "$(awk -v r="$(field 1 "$out")" -v s="$GRPC_DURATION" -v w="$GRPC_WARMUP" 'BEGIN { printf "%d", r * (s + w) }')")
  echo "$out $cpu"
}
echo "measuring gRPC: unary ${GRPC_SIZES[*]}, $GRPC_CONCURRENCY calls in flight and open loop at half YARP's rate, ${GRPC_WARMUP}s warm-up + ${GRPC_DURATION}s per saturation cell, ${GRPC_OPEN_DURATION}s (at least $GRPC_OPEN_MIN_CALLS calls) per open-loop cell, $RUNS runs"
for run in $(seq 1 "$RUNS"); do
  for size in "${GRPC_SIZES[@]}"; do
    for cell in direct yarp capture; do
      before=$(dropped "$ADMIN_GRPC_PORT")
      GRPC[$run,$size,$cell]=$(run_grpc_load "$size" "$cell")
      GRPC[$run,$size,$cell,dropped]=$(( $(dropped "$ADMIN_GRPC_PORT") - before ))
      state=""
      [[ $cell == capture ]] && state=", dropped ${GRPC[$run,$size,$cell,dropped]}, at its end $(export_state "$ADMIN_GRPC_PORT")"
      echo "  $(date +%T) run $run grpc $size $cell (saturation): ${GRPC[$run,$size,$cell]}$state"
    done
    rate=$(awk -v r="$(field 1 "${GRPC[$run,$size,yarp]}")" 'BEGIN { printf "%d", r / 2 }')
    open_seconds=$(awk -v r="$rate" -v d="$GRPC_OPEN_DURATION" -v n="$GRPC_OPEN_MIN_CALLS" 'BEGIN { s = r > 0 ? n / r : d; printf "%d", (s > d ? s + 0.999 : d) }')
    for cell in yarp capture; do
      before=$(dropped "$ADMIN_GRPC_PORT")
      GRPC[$run,$size,$cell,rated]=$(dotnet "$BENCH" grpc-open "http://127.0.0.1:$(grpc_port_of "$cell")" "$rate" "$open_seconds" "$GRPC_WARMUP" "$size")
      GRPC[$run,$size,$cell,rated_dropped]=$(( $(dropped "$ADMIN_GRPC_PORT") - before ))
      state=""
      [[ $cell == capture ]] && state=", at its end $(export_state "$ADMIN_GRPC_PORT")"
      echo "  $(date +%T) run $run grpc $size $cell (open loop at $rate calls/s, ${open_seconds}s): ${GRPC[$run,$size,$cell,rated]}, dropped ${GRPC[$run,$size,$cell,rated_dropped]}$state"
    done
  done
done

# print_open TABLE YARP_NAME CAPTURE_NAME SIZE... -> the open-loop table of TABLE (RESULT or GRPC:
# TABLE[run,size,cell,rated] -> "offered achieved p50 p90 p99 p999 max errors gen-cpu"), one row a cell.
print_open() {
  local -n table=$1
  local -A names=([yarp]="$2" [capture]="$3")
  local size cell run ratios drops
  shift 3
  printf '| %-10s | %-36s | %8s | %8s | %8s | %8s | %10s | %-18s | %6s | %7s | %9s |\n' size target offered achieved "p50 ms" "p99 ms" "p99 / YARP" "per run" errors dropped "gen CPU-µs"
  printf '|------------|--------------------------------------|---------:|---------:|---------:|---------:|-----------:|--------------------|-------:|--------:|----------:|\n'
  for size in "$@"; do
    for cell in yarp capture; do
      ratios=()
      for run in $(seq 1 "$RUNS"); do
        ratios+=("$(ratio "$(field 5 "${table[$run,$size,$cell,rated]}")" "$(field 5 "${table[$run,$size,yarp,rated]}")")")
      done
      drops=-
      [[ $cell == capture ]] && drops=$(( $(runs_of "$size,capture,rated_dropped" 1 "${!table}" | tr ' ' '+') ))
      printf '| %-10s | %-36s | %8s | %8s | %8s | %8s | %10s | %-18s | %6s | %7s | %9s |\n' "$size" "${names[$cell]}" \
        "$(fmt 0 "$(median $(runs_of "$size,$cell,rated" 1 "${!table}"))")" "$(fmt 0 "$(median $(runs_of "$size,$cell,rated" 2 "${!table}"))")" \
        "$(fmt 3 "$(median $(runs_of "$size,$cell,rated" 3 "${!table}"))")" "$(fmt 3 "$(median $(runs_of "$size,$cell,rated" 5 "${!table}"))")" \
        "$(fmt 2 "$(median "${ratios[@]}")")" "${ratios[*]}" "$(( $(runs_of "$size,$cell,rated" 8 "${!table}" | tr ' ' '+') ))" "$drops" \
        "$(fmt 0 "$(median $(runs_of "$size,$cell,rated" 9 "${!table}"))")"
    done
  done
}

print_grpc() {
  local size run cell ratios name drops
  echo
  echo "gRPC unary saturation (ProxyBench grpc-load: grpc-dotnet, $GRPC_CONCURRENCY calls in flight, ${GRPC_DURATION}s; payload 1k zeros or 64k-random bytes; median of $RUNS runs, the ratio's per-run values beside it)"
  printf '| %-10s | %-36s | %10s | %9s | %9s | %14s | %-18s | %6s | %7s | %11s |\n' size target "calls/s" "p50 ms" "p99 ms" "calls/s / YARP" "per run" errors dropped "CPU-µs/call"
  printf '|------------|--------------------------------------|-----------:|----------:|----------:|---------------:|--------------------|-------:|--------:|------------:|\n'
  for size in "${GRPC_SIZES[@]}"; do
    for cell in direct yarp capture; do
      ratios=()
      for run in $(seq 1 "$RUNS"); do
        ratios+=("$(ratio "$(field 1 "${GRPC[$run,$size,$cell]}")" "$(field 1 "${GRPC[$run,$size,yarp]}")")")
      done
      case $cell in
        direct) name="direct to upstream (Grpc.AspNetCore)";;
        yarp) name="YARP h2c passthrough (no capture)";;
        capture) name="sp agent proxy --grpc-listen";;
      esac
      drops=-
      [[ $cell == capture ]] && drops=$(( $(runs_of "$size,capture,dropped" 1 GRPC | tr ' ' '+') ))
      printf '| %-10s | %-36s | %10.0f | %9.3f | %9.3f | %14s | %-18s | %6s | %7s | %11s |\n' "$size" "$name" \
        "$(median $(runs_of "$size,$cell" 1 GRPC))" "$(median $(runs_of "$size,$cell" 2 GRPC))" "$(median $(runs_of "$size,$cell" 3 GRPC))" \
        "$(fmt 2 "$(median "${ratios[@]}")")" "${ratios[*]}" "$(( $(runs_of "$size,$cell" 4 GRPC | tr ' ' '+') ))" "$drops" \
        "$(fmt 0 "$(median $(runs_of "$size,$cell" 5 GRPC))")"
    done
  done

  echo
  echo "gRPC unary at equal offered load, open loop (ProxyBench grpc-open: half of YARP's saturation calls/s in the same run, latency from each call's due time; median of $RUNS runs, dropped summed; the generator's own CPU-µs a call, on the same cores)"
  print_open GRPC "YARP h2c passthrough (no capture)" "sp agent proxy --grpc-listen" "${GRPC_SIZES[@]}"
  echo "gRPC capture proxy at the end: $(export_state "$ADMIN_GRPC_PORT")"
}

if [[ $GRPC_ONLY == 1 ]]; then
  print_grpc
  echo "  (machine shared with other work? then every figure above is noisy: say so with them)"
  exit 0
fi

# Idle: after one request of each size, so the code paths are loaded and jitted.
for size in "${SIZES[@]}"; do curl -s -o /dev/null "http://127.0.0.1:$CAPTURE_PORT/$size"; done
IDLE_RSS=$(rss_mib "$CAPTURE_PID" VmRSS)

declare -A RESULT
cells=(direct nginx yarp capture)
port_of() { case $1 in direct) echo "$UPSTREAM_PORT";; nginx) echo "$NGINX_PORT";; yarp) echo "$YARP_PORT";; capture) echo "$CAPTURE_PORT";; esac; }
pid_of() { case $1 in yarp) echo "$YARP_PID";; capture) echo "$CAPTURE_PID";; *) echo -;; esac; }

echo "measuring: wrk -t$THREADS -c$CONNS, ${WARMUP}s warm-up + ${DURATION}s per cell; open loop with $OPEN_CONNS connections; $RUNS runs"
# RESULT[run,size,cell,max] -> "req/s p50 p99 cpu-µs"; RESULT[run,size,cell,rated] -> run_open's line.
for run in $(seq 1 "$RUNS"); do
  for size in "${SIZES[@]}"; do
    for cell in "${cells[@]}"; do
      before=$(dropped)
      RESULT[$run,$size,$cell,max]=$(run_wrk "http://127.0.0.1:$(port_of "$cell")/$size" "$(pid_of "$cell")")
      RESULT[$run,$size,$cell,max_dropped]=$(( $(dropped) - before ))
      state=""
      [[ $cell == capture ]] && state=", dropped ${RESULT[$run,$size,$cell,max_dropped]}, at its end $(export_state)"
      echo "  $(date +%T) run $run $size $cell (saturation): ${RESULT[$run,$size,$cell,max]}$state"
    done
    # Equal offered load: half of what YARP passthrough sustained in this run, the same for both cells.
    rate=$(awk -v r="$(field 1 "${RESULT[$run,$size,yarp,max]}")" 'BEGIN { printf "%d", r / 2 }')
    for cell in yarp capture; do
      before=$(dropped); cut_before=$(cut_bodies)
      RESULT[$run,$size,$cell,rated]=$(run_open "http://127.0.0.1:$(port_of "$cell")/$size" "$rate")
      RESULT[$run,$size,$cell,rated_dropped]=$(( $(dropped) - before ))
      state=""
      [[ $cell == capture ]] && state=", bodies cut at the budget $(( $(cut_bodies) - cut_before )), at its end $(export_state)"
      echo "  $(date +%T) run $run $size $cell (open loop at $rate req/s): ${RESULT[$run,$size,$cell,rated]}, dropped ${RESULT[$run,$size,$cell,rated_dropped]}$state"
    done
  done
done

echo
echo "Saturation (wrk -t$THREADS -c$CONNS -d${DURATION}s; median of $RUNS runs, the ratio's per-run values beside it)"
printf '| %-10s | %-29s | %10s | %9s | %9s | %13s | %-18s | %7s | %10s |\n' size target "req/s" "p50 ms" "p99 ms" "req/s / YARP" "per run" dropped "CPU-µs/req"
printf '|------------|-------------------------------|-----------:|----------:|----------:|--------------:|--------------------|--------:|-----------:|\n'
for size in "${SIZES[@]}"; do
  for cell in "${cells[@]}"; do
    ratios=()
    for run in $(seq 1 "$RUNS"); do
      ratios+=("$(ratio "$(field 1 "${RESULT[$run,$size,$cell,max]}")" "$(field 1 "${RESULT[$run,$size,yarp,max]}")")")
    done
    case $cell in
      direct) name="direct to upstream (nginx)";;
      nginx) name="nginx reverse proxy";;
      yarp) name="YARP passthrough (no capture)";;
      capture) name="sp agent proxy (capture)";;
    esac
    drops=-
    [[ $cell == capture ]] && drops=$(( $(runs_of "$size,$cell,max_dropped" 1 RESULT | tr ' ' '+') ))
    printf '| %-10s | %-29s | %10.0f | %9.3f | %9.3f | %13s | %-18s | %7s | %10s |\n' "$size" "$name" \
      "$(median $(runs_of "$size,$cell,max" 1 RESULT))" "$(median $(runs_of "$size,$cell,max" 2 RESULT))" \
      "$(median $(runs_of "$size,$cell,max" 3 RESULT))" "$(fmt 2 "$(median "${ratios[@]}")")" "${ratios[*]}" "$drops" \
      "$(fmt 0 "$(median $(runs_of "$size,$cell,max" 4 RESULT))")"
  done
done

echo
echo "Equal offered load, open loop (ProxyBench load: half of YARP's saturation req/s in the same run, latency from each request's due time; median of $RUNS runs, dropped summed; the generator's own CPU-µs a request, on the same cores)"
print_open RESULT "YARP passthrough (no capture)" "sp agent proxy (capture)" "${SIZES[@]}"

print_grpc

echo
echo "capture proxy RSS: idle $IDLE_RSS MiB, peak (VmHWM) $(rss_mib "$CAPTURE_PID" VmHWM) MiB (targets <= 60 / <= 150)"
echo "capture proxy at the end: $(export_state); agent logs kept in $OUT"
echo "  (machine shared with other work? then every figure above is noisy: say so with them)"
