#!/usr/bin/env bash
# Deterministic companion to run.sh: user-space instructions per request, counted by valgrind's
# callgrind, for the bare Pingora passthrough, for Pingora with the same duties as strangler
# (timeouts, X-Forwarded-*: see bare_pingora.rs) and for strangler (one route, weight 10). Timing on
# a shared machine drifts by +-10% between runs; instruction counts do not.
#
# Each proxy is run twice under callgrind, serving N1 and N2 keep-alive requests from `ab`; the
# difference divided by N2 - N1 removes start-up and shutdown. Kernel work (syscalls, TCP) is not
# counted: it is the same for both, so the ratio here is an upper bound of the CPU ratio.
# KEEP_CG=DIR keeps the profiles, to see where the difference goes with callgrind_annotate.
# BREAKDOWN=1 also prints what each of the duties costs the Pingora peer (about 2 minutes more).
#
# The same runs simulate the caches (callgrind --cache-sim, with this machine's cache sizes) and
# print the level-1 instruction cache misses per request: a proxy's per-request code does not
# fit that cache, so each line of code it runs is fetched again on every request, and a path
# that runs more distinct code costs more time than its instruction count says.
set -euo pipefail
cd "$(dirname "$0")/../.."
N1=${N1:-2000}
N2=${N2:-6000}
. "$(dirname "$0")/lib.sh"
install_tools nginx:nginx-light valgrind:valgrind ab:apache2-utils
[ -x target/release/strangler ] && [ -x target/release/examples/bare_pingora ] ||
  cargo build --release --bin strangler --example bare_pingora

UP_LEGACY=23000 UP_NEW=23001 UP_SAME=23002 P_BARE=23081 P_STRANGLER=23082 P_DUTIES=23083 P_ADMIN=23090
work=$(mktemp -d)
trap '[ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null; rm -rf "$work"' EXIT
upstream_conf "$work" "$UP_LEGACY" "$UP_NEW" "$UP_SAME"
strangler_conf "$work" "$P_STRANGLER" "$P_ADMIN" "$UP_LEGACY" "$UP_NEW" 1
"$NGINX" -c "$work/upstream.conf" -p "$work"

# count PORT N CMD...: total instructions and instruction cache misses of CMD after serving N requests
count() {
  local port=$1 n=$2; shift 2
  valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$work/cg.out" "$@" 2>/dev/null &
  local pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  ab -q -k -n "$n" -c 8 "http://127.0.0.1:$port/" > "$work/ab.out" 2>&1
  grep -q "Non-2xx" "$work/ab.out" && { echo "non-2xx answers from port $port" >&2; exit 1; }
  # SHADOW_ADMIN=PORT: a shadowing strangler is stopped only once every request's shadow has a
  # result (stopped earlier, the shadows still in flight would go uncounted); each must have
  # been compared, not dropped.
  if [ -n "${SHADOW_ADMIN:-}" ]; then
    local done=0 results
    for _ in $(seq 600); do
      results=$(metrics "$SHADOW_ADMIN" '^strangler_shadow_total')
      done=$(echo "$results" | awk '{ s += $NF } END { print s + 0 }')
      [ "$done" -ge "$n" ] && break
      sleep 0.1
    done
    echo "$results" | awk -v n="$n" '/result="(dropped|skipped|error)"/ && $NF > 0 {
      print "  warning: " $NF " of " n " shadows not compared (" $1 ")" > "/dev/stderr" }'
    [ "$done" -ge "$n" ] || echo "  warning: $done of $n shadows had a result when the count stopped" >&2
  fi
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  # The events are Ir Dr Dw I1mr ...: instructions and I1 misses.
  awk '/^totals:/ { print $2, $5 }' "$work/cg.out"
  # KEEP_CG=DIR keeps each profile (for callgrind_annotate) as DIR/PORT-N.out.
  [ -z "${KEEP_CG:-}" ] || cp "$work/cg.out" "$KEEP_CG/$port-$n.out"
}
# per_request PORT CMD...: "instructions I1-misses" per request
per_request() {
  local port=$1; shift
  local a b
  a=$(count "$port" "$N1" "$@")
  b=$(count "$port" "$N2" "$@")
  paste -d' ' <(echo "$a") <(echo "$b") | awk -v n=$((N2 - N1)) '{ printf "%d %d\n", ($3 - $1) / n, ($4 - $2) / n }'
}
read -r bare bare_i1 < <(per_request "$P_BARE" target/release/examples/bare_pingora "127.0.0.1:$P_BARE" "127.0.0.1:$UP_LEGACY" 1)
read -r duties duties_i1 < <(per_request "$P_DUTIES" target/release/examples/bare_pingora "127.0.0.1:$P_DUTIES" "127.0.0.1:$UP_LEGACY" 1 duties)
read -r strangler strangler_i1 < <(per_request "$P_STRANGLER" target/release/strangler run -c "$work/strangler.toml")
i1=$(awk '/desc: I1 cache:/ { printf "%d KiB", $4 / 1024 }' "$work/cg.out")
echo "user-space instructions and level-1 instruction cache misses (simulated, $i1) per request"
echo "(callgrind, ab -k -c 8, $N1 vs $N2 requests):"
printf "  %-34s %12s %10s\n" "" instructions "I1 misses"
printf "  %-34s %12d %10d\n" "bare Pingora passthrough" "$bare" "$bare_i1" "Pingora with strangler's duties" "$duties" \
  "$duties_i1" "strangler (weight 10)" "$strangler" "$strangler_i1"
awk -v s="$strangler" -v b="$bare" -v d="$duties" -v si="$strangler_i1" -v bi="$bare_i1" -v di="$duties_i1" 'BEGIN {
  printf "  strangler / bare Pingora              = %.3f %10.3f\n", s / b, si / bi
  printf "  strangler / Pingora with its duties   = %.3f %10.3f\n", s / d, si / di }'

# BREAKDOWN=1: what each duty costs in plain Pingora, as the difference leaving it out makes.
if [ -n "${BREAKDOWN:-}" ]; then
  echo "what each duty costs Pingora (instructions per request: the peer with all of them minus the"
  echo "peer without that one):"
  for duty in "idle:keep-alive idle timeout" "read:upstream read timeout" "forwarded:X-Forwarded-For, -Proto" \
    "body:request body read timeout" "connect:upstream connect timeout"; do
    read -r without _ < <(per_request "$P_DUTIES" target/release/examples/bare_pingora "127.0.0.1:$P_DUTIES" \
      "127.0.0.1:$UP_LEGACY" 1 "duties-except=${duty%%:*}")
    printf "  %-34s %12d\n" "${duty#*:}" $((duties - without))
  done
fi

# What tracing costs: the same strangler with [telemetry] at 1% and 100% of requests sampled,
# its spans exported to a collector that takes them (nginx answering 200 to the OTLP POSTs), the
# export thread included. Without [telemetry] it is the strangler line above. TELEMETRY=0 skips.
if [ "${TELEMETRY:-1}" != 0 ]; then
  P_COLLECTOR=23100 P_TRACED=23084 P_TRACED_ADMIN=23091
  cat > "$work/collector.conf" <<CONF
worker_processes 1; pid $work/collector.pid; daemon on; error_log $work/collector.log warn; events { worker_connections 1024; }
http { access_log off; $(NGINX_TEMP_PATHS "$work") client_max_body_size 64m;
  server { listen 127.0.0.1:$P_COLLECTOR; location / { return 200; } } }
CONF
  "$NGINX" -c "$work/collector.conf" -p "$work"
  trap '[ -f "$work/up.pid" ] && kill "$(cat "$work/up.pid")" 2>/dev/null; [ -f "$work/collector.pid" ] && kill "$(cat "$work/collector.pid")" 2>/dev/null; rm -rf "$work"' EXIT
  echo "with [telemetry] (spans exported over OTLP/HTTP to a collector that takes them):"
  for sample in 1 100; do
    strangler_conf "$work" "$P_TRACED" "$P_TRACED_ADMIN" "$UP_LEGACY" "$UP_NEW" 1 "traced-$sample" 10.0 \
      "[telemetry]
otlp_endpoint = \"http://127.0.0.1:$P_COLLECTOR\"
sample = $sample"
    read -r traced traced_i1 < <(per_request "$P_TRACED" target/release/strangler run -c "$work/traced-$sample.toml")
    awk -v t="$traced" -v ti="$traced_i1" -v s="$strangler" -v d="$duties" -v label="strangler, $sample% sampled" 'BEGIN {
      printf "  %-34s %12d %10d   %.3f of strangler without, %.3f of Pingora with its duties\n", label, t, ti, t / s, t / d }'
  done
fi

# What shadowing costs per request: the same strangler with every request (served by legacy)
# shadowed to new. Twice: to a new whose answer differs from legacy's, so each pair is compared,
# counted in the findings and kept as a mismatch; and to a new that answers as legacy does, the
# state a migration works towards, where each pair is byte-equal and nothing is kept. The shadow
# task's thread is counted with the rest. SHADOW=0 skips.
if [ "${SHADOW:-1}" != 0 ]; then
  P_SHADOWED=23085 P_SHADOWED_ADMIN=23092
  echo "with every request shadowed (to a fast upstream):"
  for case in "differs:$UP_NEW:answering differently" "same:$UP_SAME:answering as legacy"; do
    IFS=: read -r name port label <<< "$case"
    strangler_conf "$work" "$P_SHADOWED" "$P_SHADOWED_ADMIN" "$UP_LEGACY" "$port" 1 "shadowed-$name" 0.0 \
      '[routes.shadow]
sample = 100.0
max_in_flight = 256
[routes.compare]
noise_sample = 0.0'
    read -r shadowed shadowed_i1 < <(SHADOW_ADMIN=$P_SHADOWED_ADMIN per_request "$P_SHADOWED" \
      target/release/strangler run -c "$work/shadowed-$name.toml")
    awk -v t="$shadowed" -v ti="$shadowed_i1" -v s="$strangler" -v label="$label" 'BEGIN {
      printf "  %-34s %12d %10d   %.3f of strangler without (target <= 1.6)\n", label, t, ti, t / s }'
  done
fi
