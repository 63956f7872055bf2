//! The process-local sections, validated: `[server]` (with `[server.limits]`), `[admin]` and
//! `[log]`. They describe this process, not the routing: several instances of a fleet share
//! routes but each has its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::file::FileConfig;
use super::model::{AdminSettings, Cidr, Limits, LogFormat, LogSettings, ServerSettings, TlsListen, TOKEN_ENV};
use super::problems::Problem;
use super::problems::{bounded, parse_listen, quote, Problems};

/// `[server]`, but its `[server.tls]` certificate and `[server.limits]`.
pub(super) fn build_server(p: &mut Problems, file: &FileConfig) -> ServerSettings {
    let s = &file.server;
    if s.listen.is_empty() {
        p.push(Problem::new("server.listen", Some("[]".into()), "needs at least one address, e.g. [\"0.0.0.0:8080\"]"));
    }
    let listen =
        s.listen.iter().enumerate().filter_map(|(i, a)| parse_listen(p, &format!("server.listen[{i}]"), a)).collect();
    let threads = match s.threads {
        Some(n) => bounded(p, "server.threads", n, 1, 1024),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if s.upgrade_sock.is_empty() {
        p.add("server.upgrade_sock", "\"\"", "must be a path for a unix socket, e.g. \"/tmp/strangler_upgrade.sock\"");
    }
    let ca_file = s.ca_file.as_ref().map(PathBuf::from);
    if let Some(ca) = &ca_file {
        match std::fs::read_to_string(ca) {
            Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
            Ok(_) => p.add(
                "server.ca_file",
                quote(&ca.display().to_string()),
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ),
            Err(e) => p.add(
                "server.ca_file",
                quote(&ca.display().to_string()),
                format!("cannot be read ({e}); give the path of a PEM CA bundle"),
            ),
        }
    }
    let tls_listen = match s.tls.as_ref().map(|t| &t.listen) {
        None => TlsListen::None,
        Some(None) => TlsListen::All,
        Some(Some(list)) => TlsListen::Extra(
            list.iter()
                .enumerate()
                .filter_map(|(i, a)| parse_listen(p, &format!("server.tls.listen[{i}]"), a))
                .collect(),
        ),
    };
    ServerSettings {
        ca_file,
        listen,
        threads,
        shadow_threads: bounded(p, "server.shadow_threads", s.shadow_threads, 0, 256),
        grace_period: p.duration("server.grace_period", &s.grace_period),
        upgrade_sock: s.upgrade_sock.clone(),
        tls_listen,
        h2c: s.h2c,
        huge_pages: s.huge_pages,
    }
}

/// `[server.limits]`.
pub(super) fn build_limits(p: &mut Problems, file: &FileConfig) -> Limits {
    let l = &file.server.limits;
    for (key, v) in [("server.limits.max_headers", l.max_headers), ("server.limits.max_connections", l.max_connections)]
    {
        if v == 0 {
            p.add(key, 0, "must be at least 1");
        }
    }
    let max_header_bytes = p.size("server.limits.max_header_bytes", &l.max_header_bytes, "64KiB");
    let max_pending_header_bytes = match &l.max_pending_header_bytes {
        None => max_header_bytes.max(4 << 20),
        Some(v) => p.size("server.limits.max_pending_header_bytes", v, "4MiB"),
    };
    if let Some(v) = l.max_pending_header_bytes.as_ref().filter(|_| max_pending_header_bytes < max_header_bytes) {
        p.add(
            "server.limits.max_pending_header_bytes",
            quote(v),
            format!(
                "must be at least max_header_bytes ({}), or a single header of the largest size allowed \
                 could never be read",
                l.max_header_bytes
            ),
        );
    }
    Limits {
        header_timeout: p.duration("server.limits.header_timeout", &l.header_timeout),
        idle_timeout: p.duration("server.limits.idle_timeout", &l.idle_timeout),
        body_timeout: p.duration("server.limits.body_timeout", &l.body_timeout),
        max_header_bytes,
        max_pending_header_bytes,
        max_headers: l.max_headers,
        max_connections: l.max_connections,
    }
}

/// `[admin]`; the token may come from the environment.
pub(super) fn build_admin(p: &mut Problems, file: &FileConfig) -> AdminSettings {
    let a = &file.admin;
    let listen = parse_listen(p, "admin.listen", &a.listen);
    // Surrounding white space is never part of a token: `echo TOKEN > file` and a secret mounted
    // from a file end with a newline that would otherwise lock everyone out.
    let token = std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| Some(a.token.trim().to_string()).filter(|t| !t.is_empty()));
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() && token.is_none() {
            p.add(
                    "admin.token",
                    "\"\"",
                    format!("a token is required when admin.listen ({addr}) is not a loopback address: set admin.token or {TOKEN_ENV}, or listen on 127.0.0.1"),
                );
        }
    }
    let hosts = a
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let name = h.trim().to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if !valid {
                p.add(
                    format!("admin.hosts[{i}]"),
                    quote(h),
                    "must be a host name such as \"strangler.internal\" (no port)",
                );
            }
            valid.then_some(name)
        })
        .collect();
    AdminSettings { listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090))), token, hosts }
}

/// `[log]`.
pub(super) fn build_log(p: &mut Problems, file: &FileConfig) -> LogSettings {
    let l = &file.log;
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&l.level) {
        p.add("log.level", quote(&l.level), format!("not a valid log filter ({e}); use error, warn, info, debug, trace or directives like \"strangler=debug,pingora=warn\""));
    }
    let format = match l.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            p.add("log.format", quote(other), "must be \"text\" or \"json\"");
            LogFormat::Text
        }
    };
    let diffs_file = l.diffs_file.as_ref().map(PathBuf::from);
    if let Some(f) = &diffs_file {
        // Checked without creating the file: `check` must not leave files behind.
        let problem = if f.exists() {
            std::fs::OpenOptions::new()
                .append(true)
                .open(f)
                .err()
                .map(|e| format!("cannot be opened for appending ({e})"))
        } else {
            let dir = f.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            (!dir.is_dir()).then(|| format!("is in {}, which is not a directory", dir.display()))
        };
        if let Some(why) = problem {
            p.add("log.diffs_file", quote(&f.display().to_string()), format!("{why}; give a writable file path"));
        }
    }
    let diffs_file_max = p.size("log.diffs_file_max", &l.diffs_file_max, "64MiB");
    LogSettings { level: l.level.clone(), format, access_log: l.access_log, diffs_file, diffs_file_max }
}

/// `server.trusted_proxies`.
pub(super) fn build_trusted(p: &mut Problems, file: &FileConfig) -> Vec<Cidr> {
    let list = &file.server.trusted_proxies;
    list.iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let cidr = Cidr::parse(c.trim());
            if cidr.is_none() {
                p.add(
                    format!("server.trusted_proxies[{i}]"),
                    quote(c),
                    "must be an address or a range such as \"10.0.0.0/8\" or \"fd00::/8\"",
                );
            }
            cidr
        })
        .collect()
}

/// Environment variables holding the etcd credentials.
pub const ETCD_USER_ENV: &str = "STRANGLER_ETCD_USER";
pub const ETCD_PASSWORD_ENV: &str = "STRANGLER_ETCD_PASSWORD";

/// `[cluster]`.
pub(super) fn build_cluster(
    p: &mut Problems,
    c: &super::file::ClusterSection,
    path: &Path,
) -> super::model::ClusterSettings {
    if c.etcd.is_empty() {
        p.add(
            "cluster.etcd",
            "[]",
            "list the etcd endpoints, e.g. [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\"]",
        );
    }
    for (i, e) in c.etcd.iter().enumerate() {
        let rest = e.strip_prefix("http://").or_else(|| e.strip_prefix("https://"));
        let valid = rest.is_some_and(|r| {
            !r.is_empty()
                && !r.contains('/')
                && r.rsplit_once(':').is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok())
        });
        if !valid {
            p.add(
                format!("cluster.etcd[{i}]"),
                quote(e),
                "must be an endpoint such as \"http://10.0.0.1:2379\" (scheme, host and port)",
            );
        }
    }
    let prefix = c.prefix.trim_end_matches('/').to_string();
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.contains(char::is_whitespace) {
        p.add("cluster.prefix", quote(&c.prefix), "must be a key prefix such as \"/strangler\" or \"/strangler/prod\"");
    }
    let instance = if c.instance.is_empty() { host_name() } else { c.instance.clone() };
    let name_ok = !instance.is_empty()
        && instance.len() <= 64
        && instance.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !name_ok {
        p.add(
            "cluster.instance",
            quote(&instance),
            "must be 1 to 64 letters, digits, '-', '_' or '.' (default: the host name)",
        );
    }
    let lease_ttl = p.duration("cluster.lease_ttl", &c.lease_ttl);
    if !(std::time::Duration::from_secs(2)..=std::time::Duration::from_secs(300)).contains(&lease_ttl) {
        p.add(
            "cluster.lease_ttl",
            quote(&c.lease_ttl),
            "must be from 2s to 5m: how long a crashed instance (or leader) keeps its keys",
        );
    }
    let cache = if c.cache.is_empty() {
        let stem = path.file_stem().map_or("strangler".into(), |s| s.to_string_lossy().into_owned());
        path.with_file_name(format!("{stem}.cluster-cache.toml"))
    } else {
        PathBuf::from(&c.cache)
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let user = match (env(ETCD_USER_ENV), env(ETCD_PASSWORD_ENV)) {
        (Some(u), Some(pw)) => Some((u, pw)),
        (None, None) => None,
        _ => {
            p.add(
                "cluster",
                "",
                format!("set both {ETCD_USER_ENV} and {ETCD_PASSWORD_ENV} in the environment, or neither"),
            );
            None
        }
    };
    let tls = build_cluster_tls(p, c);
    super::model::ClusterSettings { endpoints: c.etcd.clone(), prefix, instance, lease_ttl, cache, user, tls }
}

/// `cluster.tls_*`: required with `https://` endpoints, refused with `http://` ones.
fn build_cluster_tls(p: &mut Problems, c: &super::file::ClusterSection) -> Option<super::model::ClusterTls> {
    let https = c.etcd.iter().filter(|e| e.starts_with("https://")).count();
    if https > 0 && https < c.etcd.len() {
        p.add("cluster.etcd", "", "mixes http:// and https:// endpoints: one etcd cluster speaks one of them");
        return None;
    }
    let any = !(c.tls_ca.is_empty() && c.tls_cert.is_empty() && c.tls_key.is_empty());
    if https == 0 {
        if any {
            p.add(
                "cluster.tls_ca",
                quote(&c.tls_ca),
                "TLS files are set but the endpoints are http://: list them as https://HOST:PORT",
            );
        }
        return None;
    }
    let read = |p: &mut Problems, key: &str, file: &str, what: &str| -> Option<Vec<u8>> {
        match std::fs::read(file) {
            Ok(bytes) if String::from_utf8_lossy(&bytes).contains("-----BEGIN ") => Some(bytes),
            Ok(_) => {
                p.add(key, quote(file), format!("holds no PEM {what} (-----BEGIN ...-----)"));
                None
            }
            Err(e) => {
                p.add(key, quote(file), format!("cannot read the {what}: {e}"));
                None
            }
        }
    };
    if c.tls_ca.is_empty() {
        p.add(
            "cluster.tls_ca",
            "",
            "https:// endpoints need the CA that signed etcd's certificate: tls_ca = \"/etc/strangler/etcd-ca.pem\"",
        );
        return None;
    }
    let ca = read(p, "cluster.tls_ca", &c.tls_ca, "CA certificate");
    let identity = match (c.tls_cert.is_empty(), c.tls_key.is_empty()) {
        (true, true) => None,
        (false, false) => {
            let cert = read(p, "cluster.tls_cert", &c.tls_cert, "certificate");
            let key = read(p, "cluster.tls_key", &c.tls_key, "private key");
            cert.zip(key)
        }
        _ => {
            p.add("cluster.tls_cert", quote(&c.tls_cert), "set tls_cert and tls_key together, or neither");
            None
        }
    };
    Some(super::model::ClusterTls { ca: ca?, identity })
}

/// The host name, as `uname -n` gives it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}
