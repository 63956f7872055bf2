# `make demo` and `make test` work on a fresh machine with only the Rust toolchain: the build
# dependencies are installed here when missing.

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build demo demo-fleet test lint check-configs check-alerts browser docs deb check-deb bench bench-shadow proofs soak verify-unit clean

all: build

# Pingora builds zlib-ng, which needs cmake; etcd-client's gRPC code is generated with protoc
# (and protobuf's own .proto files);
# the cluster tests and `make demo-fleet` run Debian's etcd.
deps:
	@command -v cmake >/dev/null 2>&1 && command -v protoc >/dev/null 2>&1 && command -v etcd >/dev/null 2>&1 \
		&& [ -f /usr/include/google/protobuf/descriptor.proto ] || { \
		echo "installing cmake, protobuf-compiler, libprotobuf-dev and etcd-server (build and cluster-test dependencies)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			cmake protobuf-compiler libprotobuf-dev etcd-server etcd-client >/dev/null; }

build: deps
	$(CARGO) build --bins --examples

demo: build
	./examples/demo.sh

# Three instances sharing one routing document on etcd (installed by deps when missing).
demo-fleet: build
	./examples/demo_fleet.sh

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

check-configs: build
	@for f in conf/*.toml; do ./target/debug/strangler check -c "$$f" || exit 1; done

# The shipped Prometheus alerts: valid, and each fires on the series it should (promtool, from
# Debian's prometheus package, installed when missing). tests/monitoring.rs checks that the
# alerts and the Grafana dashboard use only metrics strangler exports.
check-alerts:
	@command -v promtool >/dev/null 2>&1 || { \
		echo "installing prometheus (for promtool)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	promtool check rules examples/prometheus/alerts.yml
	cd examples/prometheus && promtool test rules alerts_test.yml

# The console's tests (tests/console.rs) drive a real headless Chromium over WebDriver:
# Debian's chromium and chromium-driver, installed when missing.
browser:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
		echo "installing chromium and chromium-driver (for the console's browser tests)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# The book in docs/ (mdBook, from crates.io, installed when missing), built into target/book.
# Its links and config examples are checked by tests/docs.rs, in `cargo test`.
MDBOOK := $(or $(shell command -v mdbook 2>/dev/null),$(or $(CARGO_HOME),$(HOME)/.cargo)/bin/mdbook)
docs:
	@[ -x "$(MDBOOK)" ] || { \
		echo "installing mdbook (for the book in docs/)"; \
		$(CARGO) install mdbook --locked --no-default-features --version 0.5.4; }
	$(MDBOOK) build docs

# The Debian package (cargo-deb, from crates.io, installed when missing): the release binary,
# the hardened unit (systemd/strangler.service with the package's paths), the commented
# default config as the conffile /etc/strangler/strangler.toml, the system user made by
# packaging/debian/postinst, and the man pages generated from the command line's definitions.
CARGO_DEB := $(or $(shell command -v cargo-deb 2>/dev/null),$(or $(CARGO_HOME),$(HOME)/.cargo)/bin/cargo-deb)
deb: deps
	@[ -x "$(CARGO_DEB)" ] || { \
		echo "installing cargo-deb (for the Debian package)"; \
		$(CARGO) install cargo-deb --locked --version 3.8.0; }
	$(CARGO) build --release --bin strangler
	rm -rf target/deb && mkdir -p target/deb/units target/deb/man
	sed 's|/usr/local/bin/strangler|/usr/bin/strangler|g' systemd/strangler.service > target/deb/units/strangler.service
	./target/release/strangler man target/deb/man
	gzip -9n target/deb/man/*.1
	$(CARGO_DEB) --no-build --strip --output target/debian/strangler.deb

# The package, unpacked into a throwaway root: its files, modes and conffile, `strangler check`
# on the shipped config, the unit verified, the maintainer scripts parsed, and lintian (Debian's
# package checker, installed when missing) with no error.
check-deb: deb
	@command -v lintian >/dev/null 2>&1 || { \
		echo "installing lintian (for the Debian package)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null; }
	./packaging/check-deb.sh target/debian/strangler.deb

test: lint check-configs check-alerts browser docs check-deb
	$(CARGO) test

# Peer benchmarks (install nginx and wrk from Debian packages when missing): the proxy's own cost,
# then what shadowing costs the client, next to nginx's mirror, then the memory clients dripping
# endless headers can make it hold, and the cutover evidence's under an attack; then the
# console's page weight and time to first render in headless Chromium; then the fleet's
# propagation and etcd traffic.
bench: deps
	./examples/benchmark/run.sh
	./examples/benchmark/shadow.sh
	./examples/benchmark/header_drip.sh
	./examples/benchmark/evidence.sh
	./examples/benchmark/console.sh
	./examples/benchmark/fleet.sh

bench-shadow: deps
	./examples/benchmark/shadow.sh

# Under load: weight changes, reloads and binary upgrades with zero failed requests.
proofs: deps
	./examples/benchmark/proofs.sh

# 30 minutes at a moderate rate with shadowing on: resident memory after warm-up, peak, end.
soak: deps
	./examples/benchmark/soak.sh

# The systemd unit as systemd reads it (needs systemd-analyze), against the built binary.
verify-unit: build
	sed "s|/usr/local/bin/strangler|$(CURDIR)/target/debug/strangler|g" systemd/strangler.service > target/strangler.service
	systemd-analyze verify target/strangler.service
	systemd-analyze security --offline=true target/strangler.service | tail -1

clean:
	$(CARGO) clean
