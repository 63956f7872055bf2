# Shared by run.sh and instructions.sh: tool installation and the configs both benchmarks use.

# install_tools CMD:PACKAGE... installs the Debian package of each missing command.
install_tools() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    local sudo; sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    echo "installing ${need[*]}"
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

NGINX_TEMP_PATHS() { echo "client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;"; }

# upstream_conf DIR LEGACY_PORT NEW_PORT [SAME_PORT]: nginx answering a small fixed body on two
# ports, legacy's and new's, which differ; on SAME_PORT, a new that answers exactly as legacy.
upstream_conf() {
  local same=""
  [ -z "${4:-}" ] || same="server { listen 127.0.0.1:$4; location / { return 200 \"legacy says hello\\n\"; } }"
  cat > "$1/upstream.conf" <<CONF
worker_processes 1; pid $1/up.pid; daemon on; error_log $1/error.log warn; events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; $(NGINX_TEMP_PATHS "$1")
  server { listen 127.0.0.1:$2; location / { return 200 "legacy says hello\n"; } }
  server { listen 127.0.0.1:$3; location / { return 200 "new says hello\n"; } }
  $same
}
CONF
}

# strangler_conf DIR PORT ADMIN_PORT LEGACY_PORT NEW_PORT THREADS [NAME [WEIGHT [EXTRA]]]: one
# route at WEIGHT (10) with EXTRA route sections, written to DIR/NAME.toml (NAME: strangler).
strangler_conf() {
  local name=${7:-strangler}
  cat > "$1/$name.toml" <<CONF
[server]
listen = ["127.0.0.1:$2"]
threads = $6
grace_period = "1s"
upgrade_sock = "$1/$name.sock"
[admin]
listen = "127.0.0.1:$3"
[log]
level = "warn"
access_log = false
[upstreams.legacy]
addresses = ["127.0.0.1:$4"]
[upstreams.new]
addresses = ["127.0.0.1:$5"]
[[routes]]
name = "bench"
path_prefix = "/"
legacy = "legacy"
new = "new"
weight = ${8:-10.0}
${9:-}
CONF
}

# CPU ticks (user + system) of a set of pids.
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v * 1000 } }'; }
HZ=$(getconf CLK_TCK)

# measure NAME PORT PIDS...: a warm-up, then wrk for $DURATION with $CONNS connections on
# $LOAD_CPU; appends "rps p99_ms cpu_us_per_req p50_ms" to $work/NAME (CPU of PIDS only).
measure() {
  local name=$1 port=$2; shift 2
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null   # warm-up
  local c0; c0=$(ticks "$@")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/" > "$work/wrk.out"
  local c1; c1=$(ticks "$@")
  local reqs rps p50 p99 errs
  reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$work/wrk.out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$work/wrk.out")")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.out")
  [ -z "$errs" ] || echo "  $name: $errs" >&2
  echo "$rps $p99 $(awk -v c=$((c1 - c0)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.2f", c * 1e6 / hz / n }') $p50" >> "$work/$name"
}

# med < numbers: the median. col NAME N: the median of column N of $work/NAME.
med() { sort -n | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$2" '{ print $c }' "$work/$1" | med; }

# shadow_all MAX_IN_FLIGHT: route sections shadowing every request (noise repeats off), for
# strangler_conf's EXTRA. own_shadow_threads FILE: that config's shadow work on a thread of its own.
shadow_all() { printf '[routes.shadow]\nsample = 100.0\nmax_in_flight = %s\ntimeout = "5s"\n[routes.compare]\nnoise_sample = 0.0\n' "$1"; }
own_shadow_threads() { sed -i "s/^threads = .*/&\nshadow_threads = 1/" "$1"; }

# spread FILE [COLUMN]: "median (min-max over n rounds)" of a column of per-round figures.
spread() {
  awk -v c="${2:-1}" '{ print $c }' "$1" | sort -n |
    awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.2fx (%.2f-%.2f over %d rounds)", m, v[1], v[NR], NR }'
}

# rotated ROUND NAME...: the names, starting at the ROUND-th (1-based, wrapping), so a drifting
# machine favours none of them.
rotated() {
  local r=$1; shift
  local names=("$@") k=$(( ($r - 1) % $# ))
  echo "${names[@]:$k}" "${names[@]:0:$k}"
}

# open_p99 NAME PORT RATE SECONDS: one open-loop run (steady_load on $LOAD_CPU) against
# 127.0.0.1:PORT; its p99 (ms) is appended to $work/open-NAME, a failed request is reported.
open_p99() {
  taskset -c "$LOAD_CPU" target/release/examples/steady_load "http://127.0.0.1:$2/" "$3" "$4" > "$work/open.out"
  awk '{ for (i = 1; i < NF; i++) if ($i == "p99") print $(i + 1) }' "$work/open.out" >> "$work/open-$1"
  grep -q " failed 0 " "$work/open.out" || echo "  $1: $(cat "$work/open.out")" >&2
}

# wait_port PORT: until something listens there (10 s at most).
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# metrics ADMIN_PORT REGEX: matching lines of strangler's /metrics.
metrics() { (exec 3<>"/dev/tcp/127.0.0.1/$1"; printf 'GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' >&3; grep -E "$2" <&3) || true; }

# start_stack UP_LEGACY UP_NEW PORT ADMIN WEIGHT [EXTRA]: for the proofs and the soak. Builds the
# release binary and the load generator, makes $work (removed on exit, with every process killed),
# starts the nginx upstreams and strangler (2 threads, one route at WEIGHT with EXTRA sections;
# its pid in $work/s.pid, its config in $CONF) and waits for both of strangler's ports.
start_stack() {
  cargo build --release --bin strangler --example steady_load 2>&1 | tail -1
  BIN=target/release
  work=$(mktemp -d)
  trap 'for f in "$work/s.pid" "$work/up.pid"; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
  upstream_conf "$work" "$1" "$2"
  "$NGINX" -c "$work/upstream.conf"
  strangler_conf "$work" "$3" "$4" "$1" "$2" 2 strangler "$5" "${6:-}"
  CONF="$work/strangler.toml"
  "$BIN/strangler" run -c "$CONF" 2>>"$work/strangler.log" &
  echo $! > "$work/s.pid"
  wait_port "$3" && wait_port "$4"
}
