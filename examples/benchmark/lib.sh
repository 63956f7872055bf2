# Shared by run.sh and instructions.sh: tool installation and the configs both benchmarks use.

# install_tools CMD:PACKAGE... installs the Debian package of each missing command.
install_tools() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    local sudo; sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    echo "installing ${need[*]}"
    $sudo apt-get update -qq && $sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

NGINX_TEMP_PATHS() { echo "client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;"; }

# upstream_conf DIR LEGACY_PORT NEW_PORT: nginx answering a small fixed body on two ports.
upstream_conf() {
  cat > "$1/upstream.conf" <<CONF
worker_processes 1; pid $1/up.pid; daemon on; error_log $1/error.log warn; events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; $(NGINX_TEMP_PATHS "$1")
  server { listen 127.0.0.1:$2; location / { return 200 "legacy says hello\n"; } }
  server { listen 127.0.0.1:$3; location / { return 200 "new says hello\n"; } }
}
CONF
}

# strangler_conf DIR PORT ADMIN_PORT LEGACY_PORT NEW_PORT THREADS: one route at weight 10.
strangler_conf() {
  cat > "$1/strangler.toml" <<CONF
[server]
listen = ["127.0.0.1:$2"]
threads = $6
grace_period = "1s"
upgrade_sock = "$1/upgrade.sock"
[admin]
listen = "127.0.0.1:$3"
[log]
level = "warn"
access_log = false
[upstreams.legacy]
addresses = ["127.0.0.1:$4"]
[upstreams.new]
addresses = ["127.0.0.1:$5"]
[[routes]]
name = "bench"
path_prefix = "/"
legacy = "legacy"
new = "new"
weight = 10.0
CONF
}
