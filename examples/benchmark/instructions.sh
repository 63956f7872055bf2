#!/usr/bin/env bash
# Deterministic companion to run.sh: user-space instructions per request, counted by valgrind's
# callgrind, for the bare Pingora passthrough and for strangler (one route, weight 10). Timing on
# a shared machine drifts by +-10% between runs; instruction counts do not.
#
# Each proxy is run twice under callgrind, serving N1 and N2 keep-alive requests from `ab`; the
# difference divided by N2 - N1 removes start-up and shutdown. Kernel work (syscalls, TCP) is not
# counted: it is the same for both, so the ratio here is an upper bound of the CPU ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
N1=${N1:-2000}
N2=${N2:-6000}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
need=()
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
command -v ab >/dev/null 2>&1 || need+=(apache2-utils)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq && $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x target/release/strangler ] && [ -x target/release/examples/bare_pingora ] ||
  cargo build --release --bin strangler --example bare_pingora

UP_LEGACY=23000 UP_NEW=23001 P_BARE=23081 P_STRANGLER=23082 P_ADMIN=23090
work=$(mktemp -d)
trap '[ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/up.conf" <<CONF
worker_processes 1; pid $work/up.pid; daemon on; error_log $work/error.log warn; events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work; uwsgi_temp_path $work; scgi_temp_path $work;
  server { listen 127.0.0.1:$UP_LEGACY; location / { return 200 "hello\n"; } }
  server { listen 127.0.0.1:$UP_NEW;    location / { return 200 "hello\n"; } }
}
CONF
cat > "$work/strangler.toml" <<CONF
[server]
listen = ["127.0.0.1:$P_STRANGLER"]
threads = 1
upgrade_sock = "$work/upgrade.sock"
[admin]
listen = "127.0.0.1:$P_ADMIN"
[log]
level = "warn"
access_log = false
[upstreams.legacy]
addresses = ["127.0.0.1:$UP_LEGACY"]
[upstreams.new]
addresses = ["127.0.0.1:$UP_NEW"]
[[routes]]
name = "bench"
legacy = "legacy"
new = "new"
weight = 10.0
CONF
"$NGINX" -c "$work/up.conf" -p "$work"

# count PORT N CMD...: total instructions of CMD after serving N requests
count() {
  local port=$1 n=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" 2>/dev/null &
  local pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  ab -q -k -n "$n" -c 8 "http://127.0.0.1:$port/" > "$work/ab.out" 2>&1
  grep -q "Non-2xx" "$work/ab.out" && { echo "non-2xx answers from port $port" >&2; exit 1; }
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  awk '/^totals:/ { print $2 }' "$work/cg.out"
}
per_request() {
  local port=$1; shift
  local a b
  a=$(count "$port" "$N1" "$@")
  b=$(count "$port" "$N2" "$@")
  echo $(( (b - a) / (N2 - N1) ))
}
bare=$(per_request "$P_BARE" target/release/examples/bare_pingora "127.0.0.1:$P_BARE" "127.0.0.1:$UP_LEGACY" 1)
strangler=$(per_request "$P_STRANGLER" target/release/strangler run -c "$work/strangler.toml")
echo "user-space instructions per request (callgrind, ab -k -c 8, $N1 vs $N2 requests):"
printf "  %-26s %8d\n" "bare Pingora passthrough" "$bare" "strangler (weight 10)" "$strangler"
awk -v s="$strangler" -v b="$bare" 'BEGIN { printf "  strangler / bare Pingora = %.3f\n", s / b }'
