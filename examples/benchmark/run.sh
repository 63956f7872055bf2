#!/usr/bin/env bash
# Peer benchmark, all on this machine in one run:
#   upstream   nginx serving a fixed small body (two ports: "legacy" and "new")
#   bare       a bare Pingora passthrough built from the same Pingora (examples/benchmark/bare_pingora.rs)
#   duties     the same Pingora doing strangler's per-request duties: idle, body, connect and upstream
#              read timeouts, X-Forwarded-For/-Proto (bare_pingora.rs with `duties`)
#   strangler  one route at weight 10, metrics on, access log off
#   nginx      split_clients sending 10% to "new", keep-alive to the upstreams
# Each proxy is driven by wrk with the same connections and duration, ROUNDS times in turn; the
# median round is printed: requests/s, p99, and the proxy's CPU time per request (from /proc).
#
# Each proxy runs pinned to CPU 0, wrk and the upstream nginx to CPU 1, so the proxies do not fight
# the load generator for a core and CPU per request is comparable between them.
#
# Knobs: DURATION (10s), CONNS (32), THREADS (proxy worker threads, 1), ROUNDS (5).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-5}
. "$(dirname "$0")/lib.sh"
install_tools nginx:nginx-light wrk:wrk taskset:util-linux

cargo build --release --bin strangler --example bare_pingora 2>&1 | tail -1

UP_LEGACY=21000 UP_NEW=21001 P_NGINX=21080 P_BARE=21081 P_STRANGLER=21082 P_DUTIES=21083 P_ADMIN=21090
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  [ -f "$work/px.pid" ] && kill "$(cat "$work/px.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

upstream_conf "$work" "$UP_LEGACY" "$UP_NEW"
cat > "$work/proxy.conf" <<CONF
worker_processes $THREADS; pid $work/px.pid; daemon on; error_log $work/error.log warn; events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; $(NGINX_TEMP_PATHS "$work")
  upstream legacy { server 127.0.0.1:$UP_LEGACY; keepalive 128; }
  upstream new    { server 127.0.0.1:$UP_NEW;    keepalive 128; }
  split_clients "\${request_id}" \$side { 10% new; * legacy; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / { proxy_pass http://\$side; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
strangler_conf "$work" "$P_STRANGLER" "$P_ADMIN" "$UP_LEGACY" "$UP_NEW" "$THREADS"

PROXY_CPU=0 LOAD_CPU=$(( $(nproc) > 1 ? 1 : 0 ))
taskset -c "$LOAD_CPU" "$NGINX" -c "$work/upstream.conf" -p "$work"
taskset -c "$PROXY_CPU" "$NGINX" -c "$work/proxy.conf" -p "$work"
taskset -c "$PROXY_CPU" target/release/examples/bare_pingora "127.0.0.1:$P_BARE" "127.0.0.1:$UP_LEGACY" "$THREADS" 2>"$work/bare.log" & pids+=($!)
bare_pid=$!
taskset -c "$PROXY_CPU" target/release/examples/bare_pingora "127.0.0.1:$P_DUTIES" "127.0.0.1:$UP_LEGACY" "$THREADS" duties 2>"$work/duties.log" & pids+=($!)
duties_pid=$!
taskset -c "$PROXY_CPU" target/release/strangler run -c "$work/strangler.toml" 2>"$work/strangler.log" & pids+=($!)
strangler_pid=$!
sleep 1.5
nginx_pids() { echo "$(cat "$work/px.pid") $(pgrep -P "$(cat "$work/px.pid")" | tr '\n' ' ')"; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "load: wrk -t1 -c$CONNS -d$DURATION on CPU $LOAD_CPU (with the upstream), proxies on CPU $PROXY_CPU with $THREADS worker(s), $ROUNDS rounds"
# The order rotates every round so slow drifts of a shared machine do not favour one proxy; the
# ratios are taken within each round and their median is reported.
printf "%-6s %28s %28s %28s %28s\n" "round" "bare: rps / p99 ms / us/req" "duties" "strangler" "nginx"
for r in $(seq "$ROUNDS"); do
  order=("bare $P_BARE $bare_pid" "duties $P_DUTIES $duties_pid" "strangler $P_STRANGLER $strangler_pid" "nginx $P_NGINX")
  for i in $(seq 0 $(( (r - 1) % 4 - 1 ))); do order=("${order[@]:1}" "${order[0]}"); done
  for entry in "${order[@]}"; do
    read -r name port pid <<<"$entry"
    # shellcheck disable=SC2046
    if [ "$name" = nginx ]; then measure nginx "$port" $(nginx_pids); else measure "$name" "$port" "$pid"; fi
  done
  fig() { tail -1 "$work/$1" | awk '{printf "%9.0f / %5.2f / %6.2f", $1, $2, $3}'; }
  printf "%-6s %28s %28s %28s %28s\n" "$r" "$(fig bare)" "$(fig duties)" "$(fig strangler)" "$(fig nginx)"
done

# Per-round ratios of CPU per request, then medians.
paste "$work/bare" "$work/strangler" "$work/nginx" "$work/duties" | awk '{ print $7 / $3, $7 / $11, $7 / $15 }' > "$work/ratios"
echo
printf "%-34s %12s %10s %14s\n" "median" "requests/s" "p99 ms" "CPU us/req"
printf "%-34s %12.0f %10s %14s\n" "bare Pingora passthrough" "$(col bare 1)" "$(col bare 2)" "$(col bare 3)"
printf "%-34s %12.0f %10s %14s\n" "Pingora with strangler's duties" "$(col duties 1)" "$(col duties 2)" "$(col duties 3)"
printf "%-34s %12.0f %10s %14s\n" "strangler (weight 10)" "$(col strangler 1)" "$(col strangler 2)" "$(col strangler 3)"
printf "%-34s %12.0f %10s %14s\n" "nginx split_clients (10%)" "$(col nginx 1)" "$(col nginx 2)" "$(col nginx 3)"
echo
echo "CPU per request, median of per-round ratios:"
echo "  strangler / bare Pingora                 = $(col ratios 1)"
echo "  strangler / Pingora with strangler's duties = $(col ratios 3)  (target <= 1.05)"
echo "  strangler / nginx                        = $(col ratios 2)"
split=$(metrics "$P_ADMIN" '^strangler_requests_total' | awk '{ if ($1 ~ /side="new"/) n += $2; t += $2 } END { printf "%.2f%% of %d", n * 100 / t, t }')
echo "strangler sent $split requests to new (weight 10)"

echo
"$(dirname "$0")/instructions.sh"
