#!/usr/bin/env bash
# Shadow benchmark: what shadowing costs the client, strangler next to NGINX's `mirror`, in one run.
#   off   no shadow
#   fast  every request also shadowed to a fast upstream (nginx) whose answer differs from legacy's:
#         every pair is a mismatch, counted in the findings and kept (the worst case)
#   same  as fast, to an upstream that answers as legacy does: every pair is byte-equal (the state a
#         migration works towards)
#   slow  every request also shadowed to an upstream that answers after 200 ms
#   idle  as slow, with the shadow work on a thread of its own (server.shadow_threads = 1), which
#         the kernel runs only when the proxy's workers leave the core idle (SCHED_IDLE)
# Each is driven by wrk with the same connections and duration, ROUNDS times in turn; the median
# round is printed: requests/s, p50, p99 and the proxy's CPU per request. strangler shadows with
# max_in_flight = 256: beyond that, copies are dropped (and counted) instead of making clients wait.
# The primary's p99 with the slow shadow is compared with its own shadow-off p99 (target <= 1.2x).
#
# Then the same p99 ratio at a fixed rate (open loop: steady_load, RATE requests/s, default 2000),
# where an extra microsecond of CPU does not turn into queueing as it does under wrk. Not half of
# the saturating rate: steady_load (a task per request) shares its core with the upstream nginx and
# cannot hold ~10,000/s there; at that rate even the shadow-off p99 swung from 2 ms to 700 ms
# between runs. Then the comparison's own throughput (1 KiB and 100 KiB JSON pairs), and the
# cutover evidence figures (examples/benchmark/cutover.rs).
#
# Knobs: DURATION (8s), CONNS (32), THREADS (proxy worker threads, 1), ROUNDS (5), DELAY (200ms),
# RATE (2000), OPEN_SECONDS (10), OPEN_ROUNDS (ROUNDS + 2).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-8s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-5}
DELAY=${DELAY:-200ms}
. "$(dirname "$0")/lib.sh"
install_tools nginx:nginx-light wrk:wrk taskset:util-linux

cargo build --release --bin strangler --example slow_upstream --example json_diff --example steady_load \
  --example cutover 2>&1 | tail -1

UP_LEGACY=22000 UP_NEW=22001 UP_SLOW=22002 UP_SAME=22003
declare -A PORT=([s-off]=22080 [s-fast]=22081 [s-slow]=22082 [n-off]=22083 [n-fast]=22084 [n-slow]=22085
  [s-idle]=22086 [s-same]=22087)
declare -A ADMIN=([s-off]=22090 [s-fast]=22091 [s-slow]=22092 [s-idle]=22093 [s-same]=22094)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in up px; do [ -f "$work/$f.pid" ] && kill "$(cat "$work/$f.pid")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

upstream_conf "$work" "$UP_LEGACY" "$UP_NEW" "$UP_SAME"

# nginx: the same three cases with `mirror` (the mirror subrequest must finish before nginx moves
# on to the connection's next request).
mirror_server() {
  local port=$1 target=$2
  if [ -z "$target" ]; then
    echo "server { listen 127.0.0.1:$port; location / { proxy_pass http://legacy; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  else
    echo "server { listen 127.0.0.1:$port;
      location / { mirror /mirror; proxy_pass http://legacy; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
      location = /mirror { internal; proxy_pass http://$target\$request_uri; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  fi
}
cat > "$work/proxy.conf" <<CONF
worker_processes $THREADS; pid $work/px.pid; daemon on; error_log $work/error.log warn; events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; $(NGINX_TEMP_PATHS "$work")
  upstream legacy { server 127.0.0.1:$UP_LEGACY; keepalive 128; }
  upstream fast   { server 127.0.0.1:$UP_NEW;    keepalive 128; }
  upstream slow   { server 127.0.0.1:$UP_SLOW;   keepalive 128; }
  $(mirror_server "${PORT[n-off]}" "")
  $(mirror_server "${PORT[n-fast]}" fast)
  $(mirror_server "${PORT[n-slow]}" slow)
}
CONF

# strangler: one route, all requests served by legacy, shadowed to `new` (= the target's port).
SHADOW=$(shadow_all 256)
strangler_conf "$work" "${PORT[s-off]}" "${ADMIN[s-off]}" "$UP_LEGACY" "$UP_NEW" "$THREADS" s-off 0.0
strangler_conf "$work" "${PORT[s-fast]}" "${ADMIN[s-fast]}" "$UP_LEGACY" "$UP_NEW" "$THREADS" s-fast 0.0 "$SHADOW"
strangler_conf "$work" "${PORT[s-same]}" "${ADMIN[s-same]}" "$UP_LEGACY" "$UP_SAME" "$THREADS" s-same 0.0 "$SHADOW"
strangler_conf "$work" "${PORT[s-slow]}" "${ADMIN[s-slow]}" "$UP_LEGACY" "$UP_SLOW" "$THREADS" s-slow 0.0 "$SHADOW"
strangler_conf "$work" "${PORT[s-idle]}" "${ADMIN[s-idle]}" "$UP_LEGACY" "$UP_SLOW" "$THREADS" s-idle 0.0 "$SHADOW"
own_shadow_threads "$work/s-idle.toml"

PROXY_CPU=0 LOAD_CPU=$(( $(nproc) > 1 ? 1 : 0 ))
taskset -c "$LOAD_CPU" "$NGINX" -c "$work/upstream.conf" -p "$work"
taskset -c "$LOAD_CPU" target/release/examples/slow_upstream "127.0.0.1:$UP_SLOW" "$DELAY" & pids+=($!)
taskset -c "$PROXY_CPU" "$NGINX" -c "$work/proxy.conf" -p "$work"
declare -A PID
for name in s-off s-fast s-same s-slow s-idle; do
  taskset -c "$PROXY_CPU" target/release/strangler run -c "$work/$name.toml" 2>"$work/$name.log" & pids+=($!)
  PID[$name]=$!
done
for name in "${!PORT[@]}"; do wait_port "${PORT[$name]}"; done
wait_port "$UP_SLOW"
nginx_pids() { echo "$(cat "$work/px.pid") $(pgrep -P "$(cat "$work/px.pid")" | tr '\n' ' ')"; }

CASES=(s-off s-fast s-same s-slow s-idle n-off n-fast n-slow)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "load: wrk -t1 -c$CONNS -d$DURATION on CPU $LOAD_CPU, proxies on CPU $PROXY_CPU with $THREADS worker(s), slow shadow $DELAY, $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  # Rotate the order every round so a drifting machine does not favour one case.
  for name in $(rotated "$r" "${CASES[@]}"); do
    # shellcheck disable=SC2046
    if [[ $name == n-* ]]; then measure "$name" "${PORT[$name]}" $(nginx_pids); else measure "$name" "${PORT[$name]}" "${PID[$name]}"; fi
  done
  echo "round $r done"
done

label() {
  case $1 in
    s-off) echo "strangler, shadow off" ;; s-fast) echo "strangler, shadow 100% -> fast" ;;
    s-same) echo "strangler, shadow 100% -> fast, equal" ;;
    s-slow) echo "strangler, shadow 100% -> $DELAY" ;; n-off) echo "nginx, no mirror" ;;
    s-idle) echo "strangler, idle thread -> $DELAY" ;;
    n-fast) echo "nginx mirror -> fast" ;; n-slow) echo "nginx mirror -> $DELAY" ;;
  esac
}
echo
printf "%-34s %12s %10s %10s %12s\n" "median" "requests/s" "p50 ms" "p99 ms" "CPU us/req"
for name in "${CASES[@]}"; do
  printf "%-34s %12.0f %10s %10s %12s\n" "$(label "$name")" "$(col "$name" 1)" "$(col "$name" 4)" "$(col "$name" 2)" "$(col "$name" 3)"
done

# Per-round ratios against the same proxy with shadowing off (each round measures both), then
# the median and the spread of the rounds.
paste "$work/s-off" "$work/s-slow" "$work/s-fast" "$work/s-idle" "$work/s-same" |
  awk '{ print $6 / $2, $10 / $2, $7 / $3, $11 / $3, $14 / $2, $15 / $3, $18 / $2, $19 / $3 }' > "$work/s-ratios"
paste "$work/n-off" "$work/n-slow" | awk '{ print $6 / $2 }' > "$work/n-ratios"
echo
echo "primary p99 against the same proxy with shadowing off, closed loop (per-round ratios):"
echo "  strangler, shadow -> $DELAY: $(spread "$work/s-ratios" 1)  (target <= 1.2)"
echo "  strangler, shadow -> fast:  $(spread "$work/s-ratios" 2)"
echo "  strangler, shadow -> fast, equal answers: $(spread "$work/s-ratios" 7)"
echo "  strangler, idle thread -> $DELAY: $(spread "$work/s-ratios" 5)"
echo "  nginx, mirror -> $DELAY:     $(spread "$work/n-ratios" 1)"
echo "CPU per request against shadowing off (per-round ratios):"
echo "  strangler, shadow -> fast:  $(spread "$work/s-ratios" 4)  (target <= 1.6; every pair a kept mismatch)"
echo "  strangler, shadow -> fast, equal answers: $(spread "$work/s-ratios" 8)  (target <= 1.6)"
echo "  strangler, shadow -> $DELAY: $(spread "$work/s-ratios" 3)"
echo "  strangler, idle thread -> $DELAY: $(spread "$work/s-ratios" 6)"
echo
echo "what strangler's shadows did (all rounds):"
for name in s-fast s-same s-slow s-idle; do
  counts=$(metrics "${ADMIN[$name]}" '^strangler_shadow_total' | sed -E 's/.*result="([a-z]+)".* ([0-9]+)$/\1=\2/' | tr '\n' ' ')
  echo "  $(label "$name"): $counts"
done

# Open loop: the same requests at a fixed rate, OPEN_SECONDS per run (at 2,000/s, 10 s puts 200
# requests beyond each p99), off, slow and idle in turn, the order rotating every round, so a
# drifting machine favours none. The median of the per-round ratios, with their spread.
RATE=${RATE:-2000}
OPEN_SECONDS=${OPEN_SECONDS:-10}
OPEN_ROUNDS=${OPEN_ROUNDS:-$((ROUNDS + 2))}
echo
echo "open loop: $RATE requests/s for $OPEN_SECONDS s, $OPEN_ROUNDS rounds of off, slow and idle"
OPEN=(s-off s-slow s-idle)
# sent NAME: "SENT DROPPED", shadows sent and shadows dropped so far.
sent() {
  metrics "${ADMIN[$1]}" '^strangler_shadow_total' |
    awk '/result="dropped"/ { d += $NF; next } { s += $NF } END { printf "%d %d", s, d }'
}
declare -A BEFORE
for name in s-slow s-idle; do BEFORE[$name]=$(sent "$name"); done
for r in $(seq "$OPEN_ROUNDS"); do
  for name in $(rotated "$r" "${OPEN[@]}"); do open_p99 "$name" "${PORT[$name]}" "$RATE" "$OPEN_SECONDS"; done
done
paste "$work/open-s-off" "$work/open-s-slow" "$work/open-s-idle" | awk '{ print $2 / $1, $3 / $1 }' > "$work/open-ratios"
printf "  p99 shadow off %s ms, shadow 100%% -> %s %s ms: %s  (target <= 1.2)\n" \
  "$(med < "$work/open-s-off")" "$DELAY" "$(med < "$work/open-s-slow")" "$(spread "$work/open-ratios" 1)"
printf "  p99 shadow off %s ms, idle thread -> %s %s ms: %s  (target <= 1.2)\n" \
  "$(med < "$work/open-s-off")" "$DELAY" "$(med < "$work/open-s-idle")" "$(spread "$work/open-ratios" 2)"
for name in s-slow s-idle; do
  echo "${BEFORE[$name]} $(sent "$name")" | awk -v l="$(label "$name")" '{ s = $3 - $1; d = $4 - $2
    printf "  %s: %d shadows sent, %d dropped (%.0f%% of requests shadowed)\n", l, s, d, 100 * s / (s + d) }'
done

echo
target/release/examples/json_diff
echo
target/release/examples/cutover target/release/strangler 1000
