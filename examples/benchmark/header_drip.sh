#!/usr/bin/env bash
# Slow-header memory: 500 connections each dripping a never-ending 1 MB request header (4 KiB
# every 50 ms), against each proxy started fresh with its defaults:
#   strangler  the release build (header cap and pending-header budget of [server.limits])
#   bare       a bare Pingora passthrough from the same Pingora: what Pingora alone buffers
#   nginx      the peer (large_client_header_buffers 4 8k)
# Prints, per proxy, how many connections it cut and its resident memory before, at the peak and
# at the end. Target: strangler's peak grows by less than 50 MiB.
#
# Knobs: CONNECTIONS (500), MEGABYTES (1).
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNECTIONS=${CONNECTIONS:-500}
MEGABYTES=${MEGABYTES:-1}
. "$(dirname "$0")/lib.sh"
install_tools nginx:nginx-light python3:python3

cargo build --release --bin strangler --example bare_pingora 2>&1 | tail -1

UP_LEGACY=21200 UP_NEW=21201 P_NGINX=21280 P_BARE=21281 P_STRANGLER=21282 P_ADMIN=21290
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$work/up.pid" "$work/px.pid"; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 8192

upstream_conf "$work" "$UP_LEGACY" "$UP_NEW"
"$NGINX" -c "$work/upstream.conf" -p "$work"
cat > "$work/proxy.conf" <<CONF
worker_processes 1; pid $work/px.pid; daemon on; error_log $work/error.log crit; events { worker_connections 4096; }
http {
  access_log off; $(NGINX_TEMP_PATHS "$work")
  server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://127.0.0.1:$UP_LEGACY; } }
}
CONF
strangler_conf "$work" "$P_STRANGLER" "$P_ADMIN" "$UP_LEGACY" "$UP_NEW" 2

drip() { python3 "$(dirname "$0")/header_drip.py" "$1" "$2" "$CONNECTIONS" "$MEGABYTES"; }

echo "$CONNECTIONS connections, each dripping a ${MEGABYTES} MB header (4 KiB every 50 ms):"
target/release/strangler run -c "$work/strangler.toml" 2>"$work/strangler.log" & pids+=($!)
wait_port "$P_STRANGLER"
sleep 0.5
s_line=$(drip "$P_STRANGLER" "${pids[-1]}")
printf "  %-10s %s\n" strangler "$s_line"
metrics "$P_ADMIN" '^strangler_limits_total\{limit="header_' | sed 's/^/             /'

target/release/examples/bare_pingora "127.0.0.1:$P_BARE" "127.0.0.1:$UP_LEGACY" 2 2>"$work/bare.log" & pids+=($!)
wait_port "$P_BARE"
sleep 0.5
printf "  %-10s %s\n" bare "$(drip "$P_BARE" "${pids[-1]}")"

"$NGINX" -c "$work/proxy.conf" -p "$work"
wait_port "$P_NGINX"
printf "  %-10s %s\n" nginx "$(drip "$P_NGINX" "$(pgrep -P "$(cat "$work/px.pid")" | head -1)")"

growth=$(sed -E 's/.*\(\+([0-9]+)\).*/\1/' <<<"$s_line")
echo "strangler's peak growth: $((growth / 1024)) MiB (target < 50 MiB)"
