#!/usr/bin/env bash
# Soak: a moderate constant load for a long time with shadowing on (every request copied to the
# other side and compared; every pair mismatches, so the recent-diffs store is busy too), then
# quiet. Resident memory is sampled every 5 s: after warm-up (WARMUP s), at its peak, and at the
# end (SETTLE s after the load stops). The promise: the end is within 10% of the warm-up figure.
#
# Knobs: DURATION (1800 s), RATE (200 requests/s), WARMUP (60 s), SETTLE (30 s); KEEP_RSS=FILE
# keeps the samples (seconds, RSS KiB, open sockets).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-1800}
RATE=${RATE:-200}
WARMUP=${WARMUP:-60}
SETTLE=${SETTLE:-30}
. "$(dirname "$0")/lib.sh"
install_tools nginx:nginx-light

UP_LEGACY=22100 UP_NEW=22101 PORT=22180 ADMIN=22190
start_stack "$UP_LEGACY" "$UP_NEW" "$PORT" "$ADMIN" 50 \
  "$(printf '[routes.shadow]\nsample = 100\n[routes.compare]\nnoise_sample = 1\nkeep_diffs = 100')"
spid=$(cat "$work/s.pid")

rss() { awk '/VmRSS/ { print $2 }' "/proc/$spid/status"; }
# Open sockets of strangler (client and upstream connections, listeners): memory follows them.
socks() { find "/proc/$spid/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
sample() { echo "$(( $(date +%s) - start )) $(rss) $(socks)" >> "$work/rss"; }
"$BIN/examples/steady_load" "http://127.0.0.1:$PORT/" "$RATE" "$DURATION" > "$work/load.out" &
load=$!
start=$(date +%s)
echo "t_s rss_kib sockets" > "$work/rss"
while kill -0 "$load" 2>/dev/null; do
  sample
  sleep 5
done
wait "$load"
sleep "$SETTLE"
sample

warm=$(awk -v w="$WARMUP" 'NR > 1 && $1 >= w { print $2; exit }' "$work/rss")
peak=$(awk 'NR > 1 && $2 > m { m = $2 } END { print m }' "$work/rss")
end=$(tail -1 "$work/rss" | awk '{ print $2 }')
echo "soak: ${DURATION}s at $RATE requests/s, shadow on, $(nproc) cores"
echo "load: $(cat "$work/load.out")"
metrics "$ADMIN" '^strangler_shadow_total' | sed 's/^/  /'
echo "rss every minute (KiB): $(awk 'NR > 1 && $1 % 60 < 5 { printf "%s ", $2 }' "$work/rss")"
echo "sockets every minute: $(awk 'NR > 1 && $1 % 60 < 5 { printf "%s ", $3 }' "$work/rss"), at the end: $(tail -1 "$work/rss" | awk '{ print $3 }')"
[ -z "${KEEP_RSS:-}" ] || cp "$work/rss" "$KEEP_RSS"
echo "rss after ${WARMUP}s warm-up: $warm KiB   peak: $peak KiB   end (${SETTLE}s after the load): $end KiB"
awk -v w="$warm" -v e="$end" 'BEGIN { printf "end / warm-up = %.3f (target <= 1.10)\n", e / w }'
