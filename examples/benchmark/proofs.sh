#!/usr/bin/env bash
# Under-load proofs: a constant load at a fixed rate (open loop: a request every 1/RATE s whatever
# the answers take) through strangler while
#   (a) the weight changes 100 times: 50 edits of the file, 50 calls of the admin API,
#   (b) the config is reloaded 100 times (SIGHUP),
#   (c) the binary is upgraded 3 times (a new `strangler run --upgrade`, SIGQUIT to the old one),
#   (d) and 3 times more with one signal (SIGUSR2: the process starts its successor itself).
# Each prints requests sent, failed (non-2xx, connection errors, other) and latency. The promise:
# zero failed requests and zero connection errors in every case.
#
# Knobs: RATE (500 requests/s), PROOF_SECONDS per proof (15).
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-500}
SECONDS_EACH=${PROOF_SECONDS:-15}
. "$(dirname "$0")/lib.sh"
install_tools nginx:nginx-light

UP_LEGACY=22000 UP_NEW=22001 PORT=22080 ADMIN=22090
start_stack "$UP_LEGACY" "$UP_NEW" "$PORT" "$ADMIN" 10

# proof LABEL ACTION...: the load for SECONDS_EACH, with ACTION running from its first second.
proof() {
  local label=$1; shift
  "$BIN/examples/steady_load" "http://127.0.0.1:$PORT/" "$RATE" "$SECONDS_EACH" > "$work/load.out" &
  local load=$!
  sleep 1
  "$@"
  wait "$load"
  printf '%-34s %s\n' "$label" "$(cat "$work/load.out")"
}

weights() {
  for i in $(seq 1 50); do
    # An editor's save: write a temp file, rename it over; spaced past the watcher's debounce.
    sed "s/^weight = .*/weight = $(( (i * 7) % 101 ))/" "$CONF" > "$work/edit.tmp" && mv "$work/edit.tmp" "$CONF"
    sleep 0.2
  done
  for i in $(seq 1 50); do
    "$BIN/strangler" weight bench "$(( (i * 13) % 101 ))" -c "$CONF" >/dev/null
    sleep 0.02
  done
}

reloads() {
  for _ in $(seq 1 100); do
    kill -HUP "$(cat "$work/s.pid")"
    sleep 0.05
  done
}

upgrades() {
  for _ in 1 2 3; do
    local old; old=$(cat "$work/s.pid")
    "$BIN/strangler" run --upgrade -c "$CONF" 2>>"$work/strangler.log" &
    echo $! > "$work/s.pid"
    sleep 0.5
    kill -QUIT "$old"
    while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
    sleep 0.5
  done
}

# The successor is the old process's child; it becomes the one to signal next.
usr2_upgrades() {
  for _ in 1 2 3; do
    local old new=""; old=$(cat "$work/s.pid")
    kill -USR2 "$old"
    while [ -z "$new" ]; do sleep 0.05; new=$(pgrep -P "$old" strangler || true); done
    echo "$new" > "$work/s.pid"
    while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
    sleep 0.5
  done
}

echo "machine: $(nproc) cores; load: $RATE requests/s for ${SECONDS_EACH}s per proof, open loop"
reload_count() { metrics "$ADMIN" '^strangler_config_reloads_total' | tr '\n' ' '; }
proof "baseline (nothing happening)" true
proof "100 weight changes (file + API)" weights
echo "  after: $(reload_count)weight in the file: $(grep '^weight' "$CONF")"
proof "100 reloads (SIGHUP)" reloads
echo "  after: $(reload_count)"
proof "3 binary upgrades (SIGQUIT)" upgrades
echo "  after: serving pid $(cat "$work/s.pid"), the original exited"
proof "3 one-signal upgrades (SIGUSR2)" usr2_upgrades
echo "  after: serving pid $(cat "$work/s.pid"), started by its predecessor"
