#!/usr/bin/env bash
# `make demo`: start the demo legacy and new services and strangler on a copy of conf/demo.toml,
# send traffic, raise the weight by editing the file, send traffic again, show what the shadow
# comparison found (real differences) and learned (noise), then change a weight through the admin
# API and show the live status table. KEEP=1 leaves it all running, with traffic, for the console
# at http://127.0.0.1:19090/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/debug
work=$(mktemp -d)
cp conf/demo.toml "$work/strangler.toml"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$BIN/examples/demo_service" --flavor legacy --listen 127.0.0.1:13000 2>/dev/null & pids+=($!)
"$BIN/examples/demo_service" --flavor new --listen 127.0.0.1:13001 2>/dev/null & pids+=($!)
"$BIN/strangler" run -c "$work/strangler.toml" 2>"$work/strangler.log" & pids+=($!)

for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/19090) 2>/dev/null; then break; fi
  sleep 0.1
done
sleep 0.5

echo
echo "== strangler check"
"$BIN/strangler" check -c "$work/strangler.toml"
echo
echo "== traffic at orders=10%, users=50% (sticky per x-user-id)"
"$BIN/examples/demo_traffic" http://127.0.0.1:18080

echo
echo "== editing the file: orders 10% -> 50% (no restart)"
sed -i 's/^weight = 10.0/weight = 50.0/' "$work/strangler.toml"
sleep 1
"$BIN/examples/demo_traffic" http://127.0.0.1:18080

get() {
  exec 3<>/dev/tcp/127.0.0.1/18080
  printf 'GET %s HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n' "$1" >&3
  cat <&3 >/dev/null
  sleep 0.2
}

echo
echo "== shadow comparison on orders: what new does differently (strangler diffs orders --limit 2)"
get /orders/abc
get /orders
"$BIN/strangler" diffs orders --limit 2 -c "$work/strangler.toml" | sed 's/^/  /'

echo
echo "== the cutover report: is new ready, endpoint by endpoint? (strangler report orders)"
"$BIN/strangler" report orders -c "$work/strangler.toml" | sed 's/^/  /'

echo
echo "== runtime change through the admin API, written back to the file: strangler weight users 80"
"$BIN/strangler" weight users 80 -c "$work/strangler.toml" | sed 's/^/  /'
grep -n '^weight' "$work/strangler.toml" | sed 's/^/  file: /'

echo
echo "== strangler status (the last minute, per side)"
"$BIN/strangler" status -c "$work/strangler.toml" | sed 's/^/  /'

echo
echo "== metrics (http://127.0.0.1:19090/metrics)"
exec 3<>/dev/tcp/127.0.0.1/19090
printf 'GET /metrics HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n' >&3
grep -E '^strangler_(requests_total|route_weight_percent|config_reloads_total|shadow_total|shadow_mismatches_total|noise_fields)' <&3 | sort
echo
echo "== strangler log"
grep -E 'config reloaded|starting' "$work/strangler.log" | sed 's/^/  /'

echo
echo "== the console: the same figures as a web page, on the admin listener (http://127.0.0.1:19090/)"
exec 4<>/dev/tcp/127.0.0.1/19090
printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&4
tr -d '\r' <&4 | grep -iE '^HTTP/|^content-length|<title>' | sed 's/^/  /'
if [ -n "${KEEP:-}" ]; then
  echo "  KEEP is set: strangler and the demo services keep running; open http://127.0.0.1:19090/"
  echo "  in a browser on this host (traffic goes on), and press Ctrl-C to stop them"
  (while true; do "$BIN/examples/demo_traffic" http://127.0.0.1:18080 >/dev/null 2>&1; sleep 1; done) &
  pids+=($!)
  wait "${pids[0]}"
fi
