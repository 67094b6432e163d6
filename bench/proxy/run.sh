#!/usr/bin/env bash
# Capture-proxy load benchmark: one command, every baseline measured in the same run.
#
#   bench/proxy/run.sh            # 10 s per cell (+3 s warm-up), wrk -t2 -c32
#   DURATION=30 bench/proxy/run.sh
#
# Targets (issue 4): capture >= 0.80x YARP passthrough throughput; p99 <= 1.25x at equal
# offered load. Cells: direct to the upstream, nginx reverse proxy, YARP passthrough
# (`sp agent proxy --no-capture`), and `sp agent proxy` capturing and exporting to a local
# OTLP receiver; 1 KiB and 64 KiB responses.
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

echo "building Release"
dotnet build -c Release -v q -nologo "$ROOT/src/Cli/Cli.csproj" >/dev/null
dotnet build -c Release -v q -nologo "$ROOT/bench/ProxyBench/ProxyBench.csproj" >/dev/null
SP="$ROOT/src/Cli/bin/Release/net10.0/sp.dll"
BENCH="$ROOT/bench/ProxyBench/bin/Release/net10.0/ProxyBench.dll"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

start() { # name, command...
  local name=$1; shift
  "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
}

wait_port() { # port
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "nothing listening on port $1; logs in $TMP" >&2
  cat "$TMP"/*.log >&2
  exit 1
}

start upstream dotnet "$BENCH" upstream "$UPSTREAM_PORT"
start receiver dotnet "$BENCH" receiver "$RECEIVER_PORT"

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
start nginx "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"

# The baseline is the same binary, Kestrel settings, YARP forwarder and upstream client as the
# capture cell, with only the capture path switched off, so the ratio is the cost of capture.
# Both sp processes run with the runtime settings the image and the manifests ship (Dockerfile ENV).
export DOTNET_gcServer=0 DOTNET_gcConcurrent=0 DOTNET_GCgen0size=0x400000 DOTNET_GCConserveMemory=5
start yarp dotnet "$SP" agent proxy --listen "127.0.0.1:$YARP_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" --no-capture --ignore-env
start capture dotnet "$SP" agent proxy --listen "127.0.0.1:$CAPTURE_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" --ignore-env --set "sp_backend_url=http://127.0.0.1:$RECEIVER_PORT" --set public_key=bench --set service_name=bench
CAPTURE_PID=${PIDS[-1]}

for port in "$UPSTREAM_PORT" "$RECEIVER_PORT" "$NGINX_PORT" "$YARP_PORT" "$CAPTURE_PORT"; do wait_port "$port"; done

# wrk's delay() hook: each connection pauses WRK_DELAY_MS between requests, which caps the
# offered load at CONNS * 1000 / WRK_DELAY_MS req/s whatever the target (wrk2 is not packaged).
cat >"$TMP/rate.lua" <<'LUA'
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
function delay() return pause end
LUA

to_ms() { # "1.23ms" | "850.00us" | "1.02s" -> ms
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

# run_wrk URL [extra wrk args...] -> "rps p50ms p99ms"
run_wrk() {
  local url=$1; shift
  wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$@" "$url" >/dev/null
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url")
  local rps p50 p99
  rps=$(awk '/Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    grep "Non-2xx\|Socket errors" <<<"$out" | sed "s|^|  $url: |" >&2
  fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

declare -A RESULT
cells=(direct nginx yarp capture)
port_of() { case $1 in direct) echo "$UPSTREAM_PORT";; nginx) echo "$NGINX_PORT";; yarp) echo "$YARP_PORT";; capture) echo "$CAPTURE_PORT";; esac; }

echo "measuring: wrk -t$THREADS -c$CONNS, ${WARMUP}s warm-up + ${DURATION}s per cell"
for size in 1k 64k; do
  for cell in "${cells[@]}"; do
    RESULT[$size,$cell,open]=$(run_wrk "http://127.0.0.1:$(port_of "$cell")/$size")
    echo "  $size $cell (open loop): ${RESULT[$size,$cell,open]}"
  done
  # Equal offered load: half of what YARP passthrough sustained, the same for every cell.
  yarp_rps=$(cut -d' ' -f1 <<<"${RESULT[$size,yarp,open]}")
  delay_ms=$(awk -v r="$yarp_rps" -v c="$CONNS" 'BEGIN { d = c * 1000 / (r / 2); printf "%d", (d < 1 ? 1 : d) }')
  for cell in yarp capture; do
    RESULT[$size,$cell,rated]=$(WRK_DELAY_MS=$delay_ms run_wrk "http://127.0.0.1:$(port_of "$cell")/$size" -s "$TMP/rate.lua")
    echo "  $size $cell (rate-capped, ${delay_ms} ms between requests per connection): ${RESULT[$size,$cell,rated]}"
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "Open loop (wrk -t$THREADS -c$CONNS -d${DURATION}s): throughput and latency at saturation"
printf '| %-4s | %-28s | %10s | %9s | %9s | %13s | %10s |\n' size target "req/s" "p50 ms" "p99 ms" "req/s / YARP" "p99 / YARP"
printf '|------|------------------------------|-----------:|----------:|----------:|--------------:|-----------:|\n'
for size in 1k 64k; do
  read -r yrps _ yp99 <<<"${RESULT[$size,yarp,open]}"
  for cell in "${cells[@]}"; do
    read -r rps p50 p99 <<<"${RESULT[$size,$cell,open]}"
    case $cell in
      direct) name="direct to upstream";;
      nginx) name="nginx reverse proxy";;
      yarp) name="YARP passthrough (no capture)";;
      capture) name="sp agent proxy (capture)";;
    esac
    printf '| %-4s | %-28s | %10.0f | %9.3f | %9.3f | %13s | %10s |\n' "$size" "$name" "$rps" "$p50" "$p99" "$(ratio "$rps" "$yrps")" "$(ratio "$p99" "$yp99")"
  done
done

echo
echo "Equal offered load (each connection paced so the load is capped at half of YARP's open-loop req/s)"
printf '| %-4s | %-28s | %10s | %9s | %9s | %10s |\n' size target "req/s" "p50 ms" "p99 ms" "p99 / YARP"
printf '|------|------------------------------|-----------:|----------:|----------:|-----------:|\n'
for size in 1k 64k; do
  read -r _ _ yp99 <<<"${RESULT[$size,yarp,rated]}"
  for cell in yarp capture; do
    read -r rps p50 p99 <<<"${RESULT[$size,$cell,rated]}"
    name=$([[ $cell == yarp ]] && echo "YARP passthrough (no capture)" || echo "sp agent proxy (capture)")
    printf '| %-4s | %-28s | %10.0f | %9.3f | %9.3f | %10s |\n' "$size" "$name" "$rps" "$p50" "$p99" "$(ratio "$p99" "$yp99")"
  done
done

echo
echo "capture proxy peak RSS (VmHWM): $(awk '/^VmHWM:/ {printf "%.1f MiB", $2 / 1024}' "/proc/$CAPTURE_PID/status")"
echo "  (machine shared with other work? then every figure above is noisy: say so with them)"

echo
echo "capture proxy counters (captured and exported, or dropped at the bounded export queue):"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^sp_(requests_total\{direction="inbound",outcome="(captured|dropped)"\}|export_spans_total|export_dropped_total)' | sed 's/^/  /'
