#!/usr/bin/env bash
# `make demo-fleet`: etcd (Debian's, on loopback, temporary data), the demo services and three
# strangler instances sharing one routing document. A weight set on one instance is shown served
# by all three with the revision each serves; then etcd goes away and comes back while they serve;
# then a progressive rollout, driven by the elected leader on the fleet's figures, survives the
# leader being killed mid-step.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/debug
work=$(mktemp -d)
pids=()
etcd_pid=
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_etcd() {
  etcd --name demo --data-dir "$work/etcd" \
    --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
    --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
    --initial-cluster demo=http://127.0.0.1:12380 >"$work/etcd.log" 2>&1 &
  etcd_pid=$!
  for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:12379 endpoint health >/dev/null 2>&1 && return; sleep 0.1; done
  echo "etcd did not start:" >&2; cat "$work/etcd.log" >&2; exit 1
}

instance() { # NAME PROXY_PORT ADMIN_PORT
  cat >"$work/$1.toml" <<CONF
[server]
listen = ["127.0.0.1:$2"]
threads = 1
grace_period = "1s"
upgrade_sock = "$work/$1.sock"
[admin]
listen = "127.0.0.1:$3"
[log]
level = "warn"
access_log = false
[cluster]
etcd = ["http://127.0.0.1:12379"]
prefix = "/strangler-demo"
instance = "$1"
lease_ttl = "3s"
CONF
}

get() { # ADMIN_PORT PATH: the body of a GET on an admin listener, without its white space
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
  tr -d '\r' <&3 | sed '1,/^$/d' | tr -d ' \n'
}

admin_port() { case $1 in a) echo 19191 ;; b) echo 19192 ;; c) echo 19193 ;; esac; }

leader() { # the name of the instance that leads, among those still running
  for n in "$@"; do
    get "$(admin_port "$n")" /api/v1/cluster 2>/dev/null | grep -q '"leads":true' && { echo "$n"; return; }
  done
  echo none
}

step() { # ADMIN_PORT: the users rollout's step and status, as that instance shows them
  get "$1" /api/v1/routes/users 2>/dev/null | grep -o '"rollout":{"status":"[a-z_]*","step":[0-9]*' | sed 's/.*"status":"\([a-z_]*\)","step":\([0-9]*\)/step \2 (\1)/'
}

start_etcd
"$BIN/examples/demo_service" --flavor legacy --listen 127.0.0.1:13100 2>/dev/null & pids+=($!)
"$BIN/examples/demo_service" --flavor new --listen 127.0.0.1:13101 2>/dev/null & pids+=($!)
cat >"$work/routes.toml" <<'CONF'
# The fleet's routes: the same for every instance.
[upstreams.orders-legacy]
addresses = ["127.0.0.1:13100"]
[upstreams.orders-new]
addresses = ["127.0.0.1:13101"]

[[routes]]
name = "orders"
path_prefix = "/orders"
legacy = "orders-legacy"
new = "orders-new"
weight = 10 # ramping up
sticky = { header = "x-user-id" }
expose_side = true
CONF
cp "$work/routes.toml" "$work/routes-rollout.toml"
cat >>"$work/routes-rollout.toml" <<'CONF'

[[routes]]
name = "users"
path_prefix = "/users"
legacy = "orders-legacy"
new = "orders-new"
weight = 0
expose_side = true
[routes.rollout]
steps = [10, 50, 100]
hold = "5s"
min_requests = 20
max_latency_ratio = 10
CONF
instance a 18181 19191; instance b 18182 19192; instance c 18183 19193

echo "== strangler cluster push: validate the routes as every instance will, upload them to etcd"
"$BIN/strangler" cluster push "$work/routes.toml" -c "$work/a.toml" | sed 's/^/  /'
for n in a b c; do "$BIN/strangler" run -c "$work/$n.toml" 2>"$work/$n.log" & pids+=($!); done
for port in 19191 19192 19193; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
sleep 1.5

sides() { # PROXY_PORT: the side each of 20 users gets
  local out=""
  for u in $(seq 20); do
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET /orders/1 HTTP/1.1\r\nHost: demo\r\nx-user-id: user-%s\r\nConnection: close\r\n\r\n' "$u" >&3
    out+=$(tr -d '\r' <&3 | awk -F': ' 'tolower($1) == "x-strangler-side" { printf "%s", substr($2, 1, 1) }')
  done
  echo "$out"
}
echo
echo "== 20 sticky users through each instance (l = legacy, n = new): the same on all three"
for p in 18181 18182 18183; do echo "  instance on :$p  $(sides $p)"; done

echo
echo "== strangler weight orders 50, on instance a only"
"$BIN/strangler" weight orders 50 -c "$work/a.toml" | sed 's/^/  /'
sleep 0.5
echo
echo "== strangler status on instance c: the routes, then every instance and the revision it serves"
"$BIN/strangler" status -c "$work/c.toml" | sed 's/^/  /'
echo
echo "== the same users now: raised to 50%, nobody moved back to legacy"
for p in 18181 18182 18183; do echo "  instance on :$p  $(sides $p)"; done

echo
echo "== etcd stopped: every instance keeps serving; a change is refused with a reason"
kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true; etcd_pid=
sleep 1.5
for p in 18181 18182 18183; do echo "  instance on :$p  $(sides $p)"; done
"$BIN/strangler" weight orders 80 -c "$work/b.toml" 2>&1 | sed 's/^/  /' || true

echo
echo "== etcd back: the instances reconnect and carry on (strangler status on b)"
start_etcd
sleep 3
"$BIN/strangler" status -c "$work/b.toml" | sed -n '/^fleet/,$p' | sed 's/^/  /'

echo
echo "== a progressive rollout of users (10% -> 50% -> 100%, 5 s per step), pushed to the fleet;"
echo "   traffic through b and c only: the leader judges each step on the whole fleet's figures"
"$BIN/strangler" cluster push "$work/routes-rollout.toml" -c "$work/a.toml" | sed 's/^/  /'
(while true; do for p in 18182 18183; do "$BIN/examples/demo_traffic" "http://127.0.0.1:$p" >/dev/null 2>&1 || sleep 0.2; done; done) &
traffic=$!; pids+=("$traffic")
first=$(leader a b c)
rest=()
for n in a b c; do [ "$n" != "$first" ] && rest+=("$n"); done
# Watched on an instance that stays.
other=$(admin_port "${rest[0]}")
for _ in $(seq 150); do [ "$(step "$other")" = "step 2 (running)" ] && break; sleep 0.2; done
echo "  instance ${rest[0]} shows $(step "$other") of users; instance $first leads"
echo
echo "== SIGKILL the leader ($first) in the middle of step 2"
pid=$(pgrep -f "strangler run -c $work/$first.toml" | head -1)
killed_at=$(date +%s%N)
kill -9 "$pid"
for _ in $(seq 200); do next=$(leader "${rest[@]}"); [ "$next" != none ] && break; sleep 0.05; done
echo "  $next took over after $(( ($(date +%s%N) - killed_at) / 1000000 )) ms (lease_ttl 3 s), at $(step "$other") as $first left it"
for _ in $(seq 200); do [ "$(step "$other")" = "step 3 (complete)" ] && break; sleep 0.2; done
echo
echo "== the rollout went on under $next to the end: strangler status on ${rest[0]}"
"$BIN/strangler" status -c "$work/${rest[0]}.toml" | sed 's/^/  /'
kill "$traffic" 2>/dev/null || true
echo
echo "  (the console shows the same fleet table on each admin listener: http://127.0.0.1:$other/)"
