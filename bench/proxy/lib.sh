# Sourced by run.sh and cpu.sh: the scratch folder, background processes, port waits, and the nginx
# that serves the upstream's static bodies and answers the agent's exports with 200, so that neither
# the upstream nor the receiver costs .NET CPU that would be charged to capture.
# Expects ROOT, BENCH (ProxyBench.dll), NGINX, UPSTREAM_PORT and RECEIVER_PORT to be set.

# The agent the way the image and the manifests ship it: the Native AOT sp-agent (src/AgentHost),
# published once per run (incremental: a second publish of unchanged sources is quick).
# AGENT_JIT=1 runs `dotnet sp.dll agent …` instead, the JIT build, to compare the two.
# Sets AGENT (the command words before "agent proxy …"); NO_BUILD=1 uses what is already there.
agent_command() {
  if [[ ${AGENT_JIT:-0} == 1 ]]; then
    [[ -n ${NO_BUILD:-} ]] || dotnet build -c Release -v q -nologo "$ROOT/src/Cli/Cli.csproj" >/dev/null
    AGENT=(dotnet "$ROOT/src/Cli/bin/Release/net10.0/sp.dll")
  else
    local rid
    case $(uname -m) in aarch64) rid=linux-arm64 ;; *) rid=linux-x64 ;; esac
    [[ -n ${NO_BUILD:-} ]] || dotnet publish -c Release -r "$rid" -v q -nologo "$ROOT/src/AgentHost/AgentHost.csproj" -o "$ROOT/src/AgentHost/bin/aot-$rid" >/dev/null
    AGENT=("$ROOT/src/AgentHost/bin/aot-$rid/sp-agent")
  fi
}

# The agents run with the runtime settings the image ships (eng/RuntimeSettings.props): no DOTNET_*
# GC or tiering variable from the caller's environment may override them.
clear_runtime_overrides() {
  local v
  for v in $(compgen -e | grep '^DOTNET_\(gc\|GC\|Tiered\|TC_\)' || true); do unset "$v"; done
}

# CPU time (user + system, clock ticks) a process has used so far: /proc/<pid>/stat fields 14 and 15
# (after the parenthesised command name, which cannot hold spaces here: "sp-agent" or "dotnet").
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

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

# rss_mib PID VmRSS|VmHWM -> MiB, one decimal (VmHWM: the peak since the process started).
rss_mib() { awk -v k="$2:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

wait_port() { # port
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "nothing listening on port $1; logs in $TMP" >&2
  cat "$TMP"/*.log >&2
  exit 1
}

# receiver_server PORT [directives] -> an nginx server block that plays the OTLP receiver: it reads
# every export whole and answers 200 with an empty (valid) response. The body is read into one
# buffer (the mirror module reads it before the mirror subrequest, which answers at once), the way
# a backend reads a request, with a few large reads. A plain `return 200` discards the body instead,
# through nginx's 4 KiB discard buffer (~16 reads a 64 KiB span): the receiver took 19-22 us a
# 64 KiB request where reading whole takes 7, and the capture proxy itself ~20 % more CPU a request
# beside it (not broken down) — receiver work run.sh charged to capture (bench/README.md, "The
# receiver reads each export whole"). A POST to a static file is refused with 405, which error_page
# turns into the 200. A batch is at most ~1 MiB (export.max_batch_bytes) and one span; a larger one
# goes to a temporary file, as nginx does with any body over its buffer.
receiver_server() {
  mkdir -p "$TMP/receiver"
  : >"$TMP/receiver/ok"
  chmod -R a+rX "$TMP/receiver"
  cat <<SERVER
  server {
    listen 127.0.0.1:$1;
    client_max_body_size 0;
    client_body_buffer_size 8m;
    client_body_in_single_buffer on;
    root $TMP/receiver;
    ${2:-}
    location / { mirror /discard; rewrite ^ /ok break; error_page 405 =200 @ok; }
    location @ok { return 200 ""; }
    location = /discard { internal; return 204; }
  }
SERVER
}

start_nginx() { # worker_processes, worker_connections, [more server/upstream blocks for the http context]
  local workers=$1 connections=$2 more=${3:-}
  dotnet "$BENCH" bodies "$TMP/www"
  # nginx's workers run unprivileged: they must be able to read the bodies.
  chmod 755 "$TMP"; chmod -R a+rX "$TMP/www"
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes $workers;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections $connections; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  keepalive_requests 10000000;
  # The upstream: static bodies.
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    root $TMP/www;
    default_type application/json;
  }
$(receiver_server "$RECEIVER_PORT")
$more
}
NGINX
  start nginx "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"
}
