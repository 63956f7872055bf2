#!/usr/bin/env bash
# The console's figures: page weight, time to first render of the overview with 50 routes in
# headless Chromium (cold and warm), the bytes of one poll; then screenshots of the overview and
# of a shadowed route after SECONDS (90) of traffic, under target/console/.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_OF_TRAFFIC=${SECONDS_OF_TRAFFIC:-90}
. "$(dirname "$0")/lib.sh"
install_tools chromium:chromium chromedriver:chromium-driver

cargo build --release --bin strangler --example console_bench 2>&1 | tail -1
./target/release/examples/console_bench ./target/release/strangler "$SECONDS_OF_TRAFFIC"
