#!/usr/bin/env bash
# Where the primary's tail comes from when every request is shadowed to a slow side: the p99 at a
# fixed rate (steady_load, open loop) through five strangler instances on one core, in rotating
# order, each against the one with shadowing off:
#   workers   shadows on the proxy's workers (the default)
#   quiet-up  the same, with the shadow upstream at idle priority, so its CPU cannot slow the
#             load generator or legacy sharing its core
#   idle      shadows on a thread of their own at idle priority (server.shadow_threads = 1)
#   dropped   max_in_flight = 1: nearly every shadow dropped, so only the request path's own
#             share (the tee, the slot, the drop count) is left
# Knobs: ROUNDS (7), RATE (2000), SECS (10), DELAY (200ms).
set -euo pipefail
cd "$(dirname "$0")/../.."
. "$(dirname "$0")/lib.sh"
install_tools nginx:nginx-light taskset:util-linux chrt:util-linux
cargo build --release --bin strangler --example slow_upstream --example steady_load 2>&1 | tail -1
ROUNDS=${ROUNDS:-7} RATE=${RATE:-2000} SECS=${SECS:-10} DELAY=${DELAY:-200ms}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
UP_LEGACY=24000 UP_SLOW=24002 UP_QUIET=24003
upstream_conf "$work" "$UP_LEGACY" 24001
CASES=(off workers quiet-up idle dropped)
declare -A PORT=([off]=24080 [workers]=24081 [quiet-up]=24082 [idle]=24083 [dropped]=24084)
strangler_conf "$work" 24080 24090 "$UP_LEGACY" "$UP_SLOW" 1 off 0.0
strangler_conf "$work" 24081 24091 "$UP_LEGACY" "$UP_SLOW" 1 workers 0.0 "$(shadow_all 256)"
strangler_conf "$work" 24082 24092 "$UP_LEGACY" "$UP_QUIET" 1 quiet-up 0.0 "$(shadow_all 256)"
strangler_conf "$work" 24083 24093 "$UP_LEGACY" "$UP_SLOW" 1 idle 0.0 "$(shadow_all 256)"
strangler_conf "$work" 24084 24094 "$UP_LEGACY" "$UP_SLOW" 1 dropped 0.0 "$(shadow_all 1)"
own_shadow_threads "$work/idle.toml"
PROXY_CPU=0 LOAD_CPU=$(( $(nproc) > 1 ? 1 : 0 ))
taskset -c "$LOAD_CPU" "$NGINX" -c "$work/upstream.conf" -p "$work"
taskset -c "$LOAD_CPU" target/release/examples/slow_upstream "127.0.0.1:$UP_SLOW" "$DELAY" & pids+=($!)
taskset -c "$LOAD_CPU" chrt --idle 0 target/release/examples/slow_upstream "127.0.0.1:$UP_QUIET" "$DELAY" & pids+=($!)
for name in "${CASES[@]}"; do
  taskset -c "$PROXY_CPU" target/release/strangler run -c "$work/$name.toml" 2>"$work/$name.log" & pids+=($!)
done
for name in "${CASES[@]}"; do wait_port "${PORT[$name]}"; done
wait_port "$UP_SLOW" && wait_port "$UP_QUIET"
echo "open loop: $RATE requests/s for $SECS s per case, $ROUNDS rounds, proxies on CPU $PROXY_CPU, shadow side $DELAY"
for r in $(seq "$ROUNDS"); do
  for name in $(rotated "$r" "${CASES[@]}"); do open_p99 "$name" "${PORT[$name]}" "$RATE" "$SECS"; done
done
echo "primary p99 against shadow off (median of per-round ratios, lowest-highest):"
for name in "${CASES[@]:1}"; do
  paste "$work/open-off" "$work/open-$name" | awk '{ print $2 / $1 }' > "$work/ratios"
  printf "  %-9s %s\n" "$name" "$(spread "$work/ratios")"
done
echo "  shadow off p99: $(med < "$work/open-off") ms"
