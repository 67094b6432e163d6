#!/usr/bin/env bash
# A/B of two sp-agent builds as gRPC capture proxies (unary, SIZE payload, as grpc-cpu.sh): the same
# upstream, receiver and YARP h2c cell, the two capture cells alternated, so both builds see the
# same minutes of a loaded machine. Per cell: CPU-µs a call, and allocations and collections per
# captured call, also less the agent's idle allocation (measured first, scraped the same way), and
# the bytes each build exported a captured call (its own receiver's access log).
#
#   bench/proxy/grpc-ab.sh OLD/sp-agent NEW/sp-agent        # e.g. two `dotnet publish` outputs
#   SECONDS_PER_CELL=20 ROUNDS=3 PROFILE=B bench/proxy/grpc-ab.sh A B   # perf of B: $OUT/prof-B.data
#   SIZE=64k-random bench/proxy/grpc-ab.sh A B   # the payload (default 1k; ProxyBench's PAYLOAD)
#   OPEN=1 bench/proxy/grpc-ab.sh A B    # open loop instead (run.sh's grpc-open cells), see below
#
# OPEN=1: each round sends ProxyBench grpc-open at OPEN_RATE calls/s (default: half of what YARP
# sustains with 64 calls in flight, run.sh's default, measured once first, as run.sh does) through
# YARP, A and B in turn, and prints each cell's p99 (and its ratio to the round's YARP cell), CPU-µs,
# bytes and collections a call, and the tail's attribution: the generator reads each proxy's
# /metrics every 100 ms (YARP gets an admin port for it too) and compares the 100 ms buckets where
# the calls of p99 or longer were due with the others (collections, ms paused, export batches, CPU);
# the per-bucket timelines are kept in $OUT/timeline-<cell>-<round>.txt. Reading /metrics is not
# free: each read allocates ~160 KB in the agent (1.6 MB/s, ~0.4 collections a second at the 4 MiB
# gen0 budget, in every cell alike), so these p99s are for attribution, not run.sh's figure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp}
A=$1; B=$2
SECONDS_PER_CELL=${SECONDS_PER_CELL:-8}; CONCURRENCY=${CONCURRENCY:-16}; ROUNDS=${ROUNDS:-3}; SIZE=${SIZE:-1k}
BASE_PORT=${BASE_PORT:-18780}
UPSTREAM_PORT=$((BASE_PORT+1)); RECEIVER_PORT=$((BASE_PORT+2)); GRPC_UPSTREAM_PORT=$((BASE_PORT+7))
YARP_PORT=$((BASE_PORT+8)); CA=$((BASE_PORT+9)); ADMA=$((BASE_PORT+10)); CB=$((BASE_PORT+11)); ADMB=$((BASE_PORT+12))
RECA=$((BASE_PORT+13)); RECB=$((BASE_PORT+14)); ADMY=$((BASE_PORT+15))
OPEN=${OPEN:-0}; GRPC_WARMUP=${GRPC_WARMUP:-2}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -n ${NO_BUILD:-} ]] || dotnet build -c Release -v q -nologo "$ROOT/bench/ProxyBench/ProxyBench.csproj" >/dev/null
BENCH=$ROOT/bench/ProxyBench/bin/Release/net10.0/ProxyBench.dll
# shellcheck source=bench/proxy/lib.sh
source "$ROOT/bench/proxy/lib.sh"
# Each capture build exports to a receiver of its own (lib.sh's receiver_server) that logs every
# export's Content-Length (the body as sent, compressed if it was): the bytes exported a call beside
# the CPU.
receivers="log_format sent '\$content_length';"
for x in A B; do
  receivers+=$'\n'$(receiver_server "$([[ $x == A ]] && echo $RECA || echo $RECB)" "access_log $TMP/nginx/exports-$x.log sent;")
done
start_nginx 1 1024 "$receivers"
start grpc-upstream dotnet "$BENCH" grpc-server "$GRPC_UPSTREAM_PORT"
clear_runtime_overrides
yarp_admin=(); [[ $OPEN != 1 ]] || yarp_admin=(--admin "127.0.0.1:$ADMY")
start yarp "$A" agent proxy --listen 127.0.0.1:0 --grpc-listen "127.0.0.1:$YARP_PORT" --upstream "http://127.0.0.1:$GRPC_UPSTREAM_PORT" --no-capture --ignore-env "${yarp_admin[@]}"
YPID=${PIDS[-1]}
for x in A B; do
  bin=$([[ $x == A ]] && echo "$A" || echo "$B"); port=$([[ $x == A ]] && echo $CA || echo $CB); adm=$([[ $x == A ]] && echo $ADMA || echo $ADMB)
  start cap$x "$bin" agent proxy --listen 127.0.0.1:0 --grpc-listen "127.0.0.1:$port" --upstream "http://127.0.0.1:$GRPC_UPSTREAM_PORT" --admin "127.0.0.1:$adm" --ignore-env \
    --set "sp_backend_url=http://127.0.0.1:$([[ $x == A ]] && echo $RECA || echo $RECB)" --set public_key=bench --set service_name=bench
  eval "PID_$x=${PIDS[-1]}"
done
for p in $RECEIVER_PORT $RECA $RECB $GRPC_UPSTREAM_PORT $YARP_PORT $CA $CB $ADMA $ADMB; do wait_port $p; done
[[ $OPEN != 1 ]] || wait_port $ADMY
sent_bytes() { awk '{ n += $1 } END { printf "%.0f", n }' "$TMP/nginx/exports-${1#cap}.log" 2>/dev/null || echo 0; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m) == 1 { n += $NF } END { printf "%.0f", n }'; }
exported() { echo $(( $(metric $1 'sp_export_spans_total') + $(metric $1 'sp_export_dropped_total') )); }
captured() { metric $1 'sp_requests_total{direction="inbound",outcome="captured"}'; }
drain() { local e0=-1 e1; e1=$(exported $1); while [[ $e0 != "$e1" ]]; do e0=$e1; sleep 1.2; e1=$(exported $1); done; }
cell() { # port pid adm|- label
  local port=$1 pid=$2 adm=$3 label=$4 out rate calls before after e0 a0 g0 c0 s0 perf_pid=
  dotnet "$BENCH" grpc-load "http://127.0.0.1:$port" 3 "$CONCURRENCY" 0 "$SIZE" >/dev/null
  if [[ $adm != - ]]; then drain $adm; e0=$(exported $adm); a0=$(metric $adm dotnet_gc_allocated_bytes_total); g0=$(metric $adm dotnet_gc_collections_total); c0=$(captured $adm); s0=$(sent_bytes $label); fi
  local t0; t0=$(date +%s.%N)
  before=$(cpu_ticks $pid)
  if [[ -n ${PROFILE:-} && $label == "cap${PROFILE}" && -z ${PROFILED:-} ]]; then
    PROFILED=1; perf record -F 999 -g -p "$pid" -o "$OUT/prof-$PROFILE.data" -- sleep "$SECONDS_PER_CELL" >"$OUT/perf-ab.log" 2>&1 & perf_pid=$!
  fi
  out=$(dotnet "$BENCH" grpc-load "http://127.0.0.1:$port" "$SECONDS_PER_CELL" "$CONCURRENCY" 0 "$SIZE")
  rate=$(cut -d' ' -f1 <<<"$out"); calls=$(awk -v r="$rate" -v s="$SECONDS_PER_CELL" 'BEGIN { printf "%d", r * s }')
  # The window closes once every call captured in it was exported (or dropped). Not "calls": the
  # generator's calls/s is rounded, so calls/s x seconds can exceed the captures by a few, and the
  # window then stayed open to the 30 s bound, charging the idle agent's CPU to the cell.
  if [[ $adm != - ]]; then for _ in $(seq 1 60); do (( $(exported $adm) - e0 >= $(captured $adm) - c0 )) && break; sleep 0.5; done; fi
  after=$(cpu_ticks $pid)
  [[ -z $perf_pid ]] || wait $perf_pid || true
  local extra=""
  if [[ $adm != - ]]; then
    local c1 a1 g1 s1; c1=$(captured $adm); a1=$(metric $adm dotnet_gc_allocated_bytes_total); g1=$(metric $adm dotnet_gc_collections_total); s1=$(sent_bytes $label)
    local t1; t1=$(date +%s.%N); local bg; bg=$([[ $label == capA ]] && echo $BG_A || echo $BG_B)
    extra=$(awk -v n=$((c1-c0)) -v a=$((a1-a0)) -v g=$((g1-g0)) -v s=$((s1-s0)) -v bg=$bg -v dt=$(awk -v a=$t0 -v b=$t1 'BEGIN{print b-a}') 'BEGIN { printf ", %d captured, %d B/call (%d less idle %d B/s over %.0f s), %.2f GC/1k, %d B exported/call", n, a/n, (a-bg*dt)/n, bg, dt, g*1000/n, s/n }')
  fi
  echo "$label: $(awk -v n="$calls" -v r="$rate" -v t="$((after - before))" -v hz="$CLK_TCK" 'BEGIN { printf "%d calls, %d calls/s, %.0f CPU-us/call", n, r, t * 1e6 / hz / n }')$extra"
}
idle() { # adm -> bytes/s allocated with no load, scraped as the cells scrape
  local a0 a1 t0 t1; a0=$(metric $1 dotnet_gc_allocated_bytes_total); t0=$(date +%s.%N)
  for _ in $(seq 1 20); do exported $1 >/dev/null; sleep 0.5; done
  a1=$(metric $1 dotnet_gc_allocated_bytes_total); t1=$(date +%s.%N)
  awk -v a=$((a1-a0)) -v x=$t0 -v y=$t1 'BEGIN { printf "%.0f", a/(y-x) }'
}
dotnet "$BENCH" grpc-load "http://127.0.0.1:$CA" 3 "$CONCURRENCY" 0 "$SIZE" >/dev/null; dotnet "$BENCH" grpc-load "http://127.0.0.1:$CB" 3 "$CONCURRENCY" 0 "$SIZE" >/dev/null
drain $ADMA; drain $ADMB
BG_A=$(idle $ADMA); BG_B=$(idle $ADMB); echo "idle allocation: A $BG_A B/s, B $BG_B B/s"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
open_cell() { # port pid adm label round -> p99 in $P99
  local port=$1 pid=$2 adm=$3 label=$4 round=$5 out before after e0 c0 a0 g0 d0 n
  drain $adm; e0=$(exported $adm); c0=$(captured $adm); a0=$(metric $adm dotnet_gc_allocated_bytes_total); g0=$(metric $adm 'dotnet_gc_collections_total{generation="0"}'); d0=$(metric $adm sp_export_dropped_total)
  before=$(cpu_ticks $pid)
  out=$(OPEN_LOOP_TIMELINE="$OUT/timeline-$label-$round.txt" OPEN_LOOP_METRICS="http://127.0.0.1:$adm/metrics" \
    dotnet "$BENCH" grpc-open "http://127.0.0.1:$port" "$OPEN_RATE" "$SECONDS_PER_CELL" "$GRPC_WARMUP" "$SIZE" 2>"$OUT/open-$label-$round.err")
  if [[ $label != yarp ]]; then for _ in $(seq 1 60); do (( $(exported $adm) - e0 >= $(captured $adm) - c0 )) && break; sleep 0.5; done; fi
  after=$(cpu_ticks $pid)
  # Calls of the window, warm-up included (the CPU and allocation windows hold it too).
  n=$(awk -v r="$OPEN_RATE" -v s="$SECONDS_PER_CELL" -v w="$GRPC_WARMUP" 'BEGIN { printf "%d", r * (s + w) }')
  P99=$(cut -d' ' -f5 <<<"$out")
  echo "$label: offered/achieved $(cut -d' ' -f1-2 <<<"$out"), p50 $(cut -d' ' -f3 <<<"$out"), p99 $P99 ms ($(awk -v a="$P99" -v y="${YP99:-$P99}" 'BEGIN { printf "%.2f", a / y }')x YARP), errors $(cut -d' ' -f8 <<<"$out"), dropped $(( $(metric $adm sp_export_dropped_total) - d0 )); \
$(awk -v t="$((after - before))" -v hz="$CLK_TCK" -v n="$n" -v a=$(( $(metric $adm dotnet_gc_allocated_bytes_total) - a0 )) -v g=$(( $(metric $adm 'dotnet_gc_collections_total{generation="0"}') - g0 )) 'BEGIN { printf "%.0f CPU-us/call, %d B/call, %.2f GC/1k", t * 1e6 / hz / n, a / n, g * 1000 / n }')"
  grep -h '^tail:\|^failed\|^errors\|^metrics' "$OUT/open-$label-$round.err" | sed 's/^/    /' || true
}
if [[ $OPEN == 1 ]]; then
  if [[ -z ${OPEN_RATE:-} ]]; then
    dotnet "$BENCH" grpc-load "http://127.0.0.1:$YARP_PORT" 3 64 0 "$SIZE" >/dev/null
    OPEN_RATE=$(dotnet "$BENCH" grpc-load "http://127.0.0.1:$YARP_PORT" "$SECONDS_PER_CELL" 64 0 "$SIZE" | awk '{ printf "%d", $1 / 2 }')
  fi
  echo "open loop at $OPEN_RATE calls/s, ${GRPC_WARMUP}s + ${SECONDS_PER_CELL}s a cell; load $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in $(seq 1 $ROUNDS); do
    echo "round $r"
    YP99=; open_cell $YARP_PORT $YPID $ADMY yarp $r; YP99=$P99
    if (( r % 2 )); then open_cell $CA $PID_A $ADMA capA $r; open_cell $CB $PID_B $ADMB capB $r; else open_cell $CB $PID_B $ADMB capB $r; open_cell $CA $PID_A $ADMA capA $r; fi
  done
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
for r in $(seq 1 $ROUNDS); do
  echo "round $r"
  cell $YARP_PORT $YPID - yarp
  if (( r % 2 )); then cell $CA $PID_A $ADMA capA; cell $CB $PID_B $ADMB capB; else cell $CB $PID_B $ADMB capB; cell $CA $PID_A $ADMA capA; fi
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
# Dropped: exchanges refused at the exporter's byte budget; cut: bodies cut short because the budget was full when they came.
for x in A B; do adm=$([[ $x == A ]] && echo $ADMA || echo $ADMB); echo "cap$x dropped $(metric $adm sp_export_dropped_total), cut $(metric $adm sp_capture_budget_exceeded_total)"; done
