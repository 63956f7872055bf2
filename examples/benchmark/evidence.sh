#!/usr/bin/env bash
# The cutover evidence under attack: CLIENTS clients send REQUESTS requests to distinct paths with
# a QUERY_BYTES query, every one shadowed, legacy and new differing in 50 fields of 2 KB. Prints
# the route's evidence against its budget (max_evidence, default 4 MiB), the report's size and the
# proxy's resident memory before and after. Target: the evidence within its budget, the report
# under 1 MiB, the process's growth a small multiple of the budget.
#
# Knobs: REQUESTS (2000), CLIENTS (16), QUERY_BYTES (60000), BUDGET ("4MiB").
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS=${REQUESTS:-2000}
CLIENTS=${CLIENTS:-16}
QUERY_BYTES=${QUERY_BYTES:-60000}
BUDGET=${BUDGET:-4MiB}
. "$(dirname "$0")/lib.sh"
install_tools python3:python3

cargo build --release --bin strangler 2>&1 | tail -1

UP_LEGACY=21300 UP_NEW=21301 P_STRANGLER=21382 P_ADMIN=21390
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

strangler_conf "$work" "$P_STRANGLER" "$P_ADMIN" "$UP_LEGACY" "$UP_NEW" 2 strangler 0 \
  "[routes.shadow]
max_in_flight = 4096
[routes.compare]
max_evidence = \"$BUDGET\""
target/release/strangler run -c "$work/strangler.toml" 2>"$work/strangler.log" & pids+=($!)
proxy=${pids[-1]}
wait_port "$P_STRANGLER"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$proxy/status"; }
before=$(rss)
answered=$(python3 "$(dirname "$0")/evidence_attack.py" "$P_STRANGLER" "$UP_LEGACY" "$UP_NEW" "$REQUESTS" "$CLIENTS" "$QUERY_BYTES")
compared() { metrics "$P_ADMIN" '^strangler_shadow_total\{.*result="(match|mismatch|error|skipped|dropped)"' | awk '{ s += $2 } END { print s + 0 }'; }
for _ in $(seq 100); do [ "$(compared)" -ge "$REQUESTS" ] && break; sleep 0.1; done
after=$(rss)
evidence=$(metrics "$P_ADMIN" '^strangler_evidence_bytes' | awk '{ print $2 }')
report=$(python3 -c "import urllib.request; print(len(urllib.request.urlopen('http://127.0.0.1:$P_ADMIN/api/v1/routes/bench/report').read()))")
budget=$(python3 -c "import re,sys; n,u=re.match(r'([0-9.]+)([KMG]?i?B?)','$BUDGET').groups(); print(int(float(n)*{'':1,'B':1,'KiB':1024,'MiB':1<<20,'GiB':1<<30}[u]))")
echo "evidence under attack: $REQUESTS requests ($CLIENTS clients, ${QUERY_BYTES}-byte queries, 50 differing fields), answers by status: $answered"
awk -v e="$evidence" -v b="$budget" -v r="$report" -v x="$before" -v y="$after" 'BEGIN {
  printf "  evidence %.0f KiB of a %.0f KiB budget (%s); report %.0f KiB; RSS %.1f -> %.1f MiB (+%.1f MiB)\n",
    e / 1024, b / 1024, (e <= b ? "within" : "OVER"), r / 1024, x / 1024, y / 1024, (y - x) / 1024 }'
