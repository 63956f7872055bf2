#!/usr/bin/env bash
# The fleet's figures: propagation of a weight change to three instances, etcd traffic per idle
# instance, CPU per request in a fleet against on a file. Debian's etcd on loopback, temporary data.
set -euo pipefail
cd "$(dirname "$0")/../.."
. "$(dirname "$0")/lib.sh"
install_tools etcd:etcd-server etcdctl:etcd-client

cargo build --release --bin strangler --example fleet_bench 2>&1 | tail -1
./target/release/examples/fleet_bench ./target/release/strangler
