//! The validated configuration the proxy runs on. Built only through [`Config::from_file`], which
//! checks everything and collects every problem, so a `Config` value is always usable as a whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::file::{FileConfig, RouteSection, UpstreamSection};
use super::rollout::{build_health, build_rollout, Health, Rollout};
use super::shadow::Shadow;
use super::units::{parse_duration, parse_size};
use super::Problem;

/// Weights are kept in hundredths of a percent: 0..=10000.
pub const WEIGHT_SCALE: u32 = 10_000;

/// Environment variable that overrides `admin.token`.
pub const TOKEN_ENV: &str = "STRANGLER_ADMIN_TOKEN";

/// Which service answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Legacy,
    New,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::New => "new",
        }
    }
}

/// A complete, validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file this came from; runtime weight changes are written back to it.
    pub path: PathBuf,
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// In file order.
    pub routes: Vec<Arc<Route>>,
    /// The certificate for TLS listeners, when any.
    pub tls: Option<Tls>,
    pub limits: Limits,
}

/// `[server.limits]`. The connection-level ones (`max_connections`, `header_timeout`) are bound at
/// start-up; the others apply to the next request after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Plain HTTP listeners (TLS ones when `[server.tls]` has no `listen` of its own).
    pub listen: Vec<SocketAddr>,
    pub threads: usize,
    pub grace_period: Duration,
    pub upgrade_sock: String,
    pub ca_file: Option<PathBuf>,
    /// Which listeners terminate TLS; the certificate itself is in [`Config::tls`].
    pub tls_listen: TlsListen,
    pub h2c: bool,
    pub huge_pages: bool,
}

/// Which proxy listeners terminate TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsListen {
    None,
    /// Every `server.listen` address.
    All,
    /// These, besides the plain `server.listen` ones.
    Extra(Vec<SocketAddr>),
}

/// The proxy's TLS certificate, as loaded (and re-loaded on every reload).
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub certified: Arc<pingora::tls::sign::CertifiedKey>,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// `None` when no token is configured (only allowed on loopback).
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
    pub access_log: bool,
    /// Every shadow mismatch is appended here as one JSON line.
    pub diffs_file: Option<PathBuf>,
}

/// A named pool of upstream addresses, as the file declares it. What the process learns about
/// the addresses (health, round-robin position) lives in [`crate::upstream::Pool`].
#[derive(Debug, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    pub tls: bool,
    pub sni: String,
    pub host_header: Option<HeaderValue>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// HTTP/2 to the upstream.
    pub http2: bool,
    pub health: Health,
}

/// How a request's sticky key is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    Cookie(String),
    Header(HeaderName),
    ClientIp,
}

impl Sticky {
    pub fn describe(&self) -> String {
        match self {
            Sticky::Cookie(c) => format!("cookie:{c}"),
            Sticky::Header(h) => format!("header:{h}"),
            Sticky::ClientIp => "client_ip".to_string(),
        }
    }
}

/// A request header that forces a side, for QA.
#[derive(Debug, Clone)]
pub struct Override {
    pub header: HeaderName,
    pub token: Option<String>,
}

/// A host pattern of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `api.example.com`
    Exact(String),
    /// `*.example.com`, stored as `.example.com`
    Suffix(String),
}

impl HostPattern {
    /// `host` without a port, in any case (patterns are stored lowercase).
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(s) => {
                let (host, s) = (host.as_bytes(), s.as_bytes());
                host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }

    /// Higher is more specific: exact names beat wildcards, longer wildcards beat shorter ones.
    pub fn specificity(&self) -> usize {
        match self {
            HostPattern::Exact(_) => usize::MAX,
            HostPattern::Suffix(s) => s.len(),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(e) => f.write_str(e),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

/// One route: which requests it takes and how it splits them.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Empty = any host.
    pub hosts: Vec<HostPattern>,
    pub path_prefix: String,
    pub legacy: Arc<Upstream>,
    pub new: Arc<Upstream>,
    /// Share of requests served by `new`, in hundredths of a percent (0..=10000).
    pub weight: u32,
    pub sticky: Option<Sticky>,
    pub override_: Option<Override>,
    pub expose_side: bool,
    /// Largest request body, in bytes.
    pub max_request_body: usize,
    /// Shadow copies and their comparison; `None` when the route has no `[routes.shadow]`.
    pub shadow: Option<Shadow>,
    /// Automatic progressive delivery; `None` when the weight is only set by hand.
    pub rollout: Option<Rollout>,
    /// Retry on legacy what new could not take.
    pub failover: bool,
}

impl Route {
    pub fn upstream(&self, side: Side) -> &Arc<Upstream> {
        match side {
            Side::Legacy => &self.legacy,
            Side::New => &self.new,
        }
    }

    pub fn weight_percent(&self) -> f64 {
        f64::from(self.weight) / 100.0
    }
}

// === validation ===

/// Collects problems while validating, so `check` can show all of them at once.
#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, value: impl std::fmt::Display, message: impl Into<String>) {
        self.0.push(Problem::new(key, Some(value.to_string()), message));
    }

    /// A size such as `"64KiB"`, above zero; `example` shows a valid one in the message.
    pub(super) fn size(&mut self, key: &str, value: &str, example: &str) -> usize {
        match parse_size(value) {
            Ok(n) if n > 0 => n,
            Ok(_) => {
                self.add(key, quote(value), format!("must be greater than zero, e.g. \"{example}\""));
                1
            }
            Err(msg) => {
                self.add(key, quote(value), msg);
                1
            }
        }
    }

    pub(super) fn duration(&mut self, key: &str, value: &str) -> Duration {
        match parse_duration(value) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.add(key, quote(value), "must be greater than zero, e.g. \"1s\"");
                Duration::from_secs(1)
            }
            Err(msg) => {
                self.add(key, quote(value), msg);
                Duration::from_secs(1)
            }
        }
    }
}

pub(super) fn quote(s: &str) -> String {
    format!("{s:?}")
}

impl Config {
    /// Validate a parsed file into a model, or return every problem found.
    pub fn from_file(file: FileConfig, path: &Path) -> Result<Config, Vec<Problem>> {
        let mut p = Problems::default();

        let server = {
            let s = &file.server;
            if s.listen.is_empty() {
                p.0.push(Problem::new(
                    "server.listen",
                    Some("[]".into()),
                    "needs at least one address, e.g. [\"0.0.0.0:8080\"]",
                ));
            }
            let listen = s
                .listen
                .iter()
                .enumerate()
                .filter_map(|(i, a)| parse_listen(&mut p, &format!("server.listen[{i}]"), a))
                .collect();
            let threads = match s.threads {
                Some(0) => {
                    p.add("server.threads", 0, "must be at least 1 (or removed to use one thread per core)");
                    1
                }
                Some(n) => n,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            if s.upgrade_sock.is_empty() {
                p.add(
                    "server.upgrade_sock",
                    "\"\"",
                    "must be a path for a unix socket, e.g. \"/tmp/strangler_upgrade.sock\"",
                );
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
                        .filter_map(|(i, a)| parse_listen(&mut p, &format!("server.tls.listen[{i}]"), a))
                        .collect(),
                ),
            };
            ServerSettings {
                ca_file,
                listen,
                threads,
                grace_period: p.duration("server.grace_period", &s.grace_period),
                upgrade_sock: s.upgrade_sock.clone(),
                tls_listen,
                h2c: s.h2c,
                huge_pages: s.huge_pages,
            }
        };
        let tls = file.server.tls.as_ref().and_then(|t| super::tls::load(&mut p, t));
        let limits = {
            let l = &file.server.limits;
            for (key, v) in
                [("server.limits.max_headers", l.max_headers), ("server.limits.max_connections", l.max_connections)]
            {
                if v == 0 {
                    p.add(key, 0, "must be at least 1");
                }
            }
            Limits {
                header_timeout: p.duration("server.limits.header_timeout", &l.header_timeout),
                idle_timeout: p.duration("server.limits.idle_timeout", &l.idle_timeout),
                body_timeout: p.duration("server.limits.body_timeout", &l.body_timeout),
                max_header_bytes: p.size("server.limits.max_header_bytes", &l.max_header_bytes, "64KiB"),
                max_headers: l.max_headers,
                max_connections: l.max_connections,
            }
        };

        let admin = {
            let a = &file.admin;
            let listen = parse_listen(&mut p, "admin.listen", &a.listen);
            let token = std::env::var(TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty())
                .or_else(|| Some(a.token.clone()).filter(|t| !t.is_empty()));
            if let Some(addr) = listen {
                if !addr.ip().is_loopback() && token.is_none() {
                    p.add(
                        "admin.token",
                        "\"\"",
                        format!("a token is required when admin.listen ({addr}) is not a loopback address: set admin.token or {TOKEN_ENV}, or listen on 127.0.0.1"),
                    );
                }
            }
            AdminSettings { listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090))), token }
        };

        let log = {
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
                    p.add(
                        "log.diffs_file",
                        quote(&f.display().to_string()),
                        format!("{why}; give a writable file path"),
                    );
                }
            }
            LogSettings { level: l.level.clone(), format, access_log: l.access_log, diffs_file }
        };

        let upstreams: BTreeMap<String, Arc<Upstream>> = file
            .upstreams
            .iter()
            .filter_map(|(name, u)| build_upstream(&mut p, name, u).map(|u| (name.clone(), Arc::new(u))))
            .collect();

        let mut names = HashSet::new();
        for (i, r) in file.routes.iter().enumerate() {
            if !names.insert(r.name.as_str()) {
                p.add(
                    format!("routes[{i}].name"),
                    quote(&r.name),
                    "is used by an earlier route; route names must be unique",
                );
            }
        }
        check_overlaps(&mut p, &file.routes);
        let routes = file
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| build_route(&mut p, &format!("routes[{i}]"), r, &file.upstreams, &upstreams))
            .map(Arc::new)
            .collect();

        if p.0.is_empty() {
            Ok(Config { path: path.to_path_buf(), server, admin, log, upstreams, routes, tls, limits })
        } else {
            Err(p.0)
        }
    }

    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.name == name)
    }
}

/// Two routes claiming the same host + prefix would make matching depend on file order.
fn check_overlaps(p: &mut Problems, routes: &[RouteSection]) {
    let mut claimed: HashMap<(Option<String>, &str), &str> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        let hosts: Vec<Option<String>> = match &r.hosts {
            Some(h) if !h.is_empty() => h.iter().map(|h| Some(h.to_ascii_lowercase())).collect(),
            _ => vec![None],
        };
        for h in hosts {
            let label = h.as_ref().map_or("any host".to_string(), |h| format!("host {h}"));
            match claimed.get(&(h.clone(), r.path_prefix.as_str())) {
                Some(other) => p.add(
                    format!("routes[{i}].path_prefix"),
                    quote(&r.path_prefix),
                    format!("route {other:?} already serves {label} with this prefix; give one of them another prefix or hosts"),
                ),
                None => {
                    claimed.insert((h, r.path_prefix.as_str()), r.name.as_str());
                }
            }
        }
    }
}

fn parse_listen(p: &mut Problems, key: &str, value: &str) -> Option<SocketAddr> {
    match value.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(key, quote(value), "must be an IP address and port, e.g. \"0.0.0.0:8080\" or \"[::1]:8080\"");
            None
        }
    }
}

fn valid_name(name: &str, extra: &[char]) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || extra.contains(&c))
}

fn build_upstream(p: &mut Problems, name: &str, u: &UpstreamSection) -> Option<Upstream> {
    let key = format!("upstreams.{name}");
    let before = p.0.len();
    if !valid_name(name, &['_', '.']) {
        p.add(&key, quote(name), "upstream names use lowercase letters, digits, '-', '_' and '.'");
    }
    if u.addresses.is_empty() {
        p.add(format!("{key}.addresses"), "[]", "needs at least one \"host:port\" address");
    }
    let mut addrs = Vec::new();
    let mut first_host = None;
    for (i, a) in u.addresses.iter().enumerate() {
        let akey = format!("{key}.addresses[{i}]");
        let Some((host, port)) = a.rsplit_once(':') else {
            p.add(akey, quote(a), "must be \"host:port\", e.g. \"127.0.0.1:3000\"");
            continue;
        };
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            p.add(akey, quote(a), "the port must be a number from 1 to 65535");
            continue;
        }
        // Names are resolved once per load (and again on every reload), never per request.
        match a.to_socket_addrs() {
            Ok(resolved) => {
                let before = addrs.len();
                addrs.extend(resolved);
                if addrs.len() == before {
                    p.add(akey, quote(a), "resolves to no address");
                }
            }
            Err(e) => {
                p.add(akey, quote(a), format!("cannot be resolved ({e}); use an IP address or a resolvable host name"))
            }
        }
        if first_host.is_none() {
            first_host = Some(host.trim_start_matches('[').trim_end_matches(']').to_string());
        }
    }
    let host_header = match &u.host_header {
        Some(h) => match HeaderValue::from_str(h) {
            Ok(v) if !h.is_empty() => Some(v),
            _ => {
                p.add(
                    format!("{key}.host_header"),
                    quote(h),
                    "must be a non-empty host name such as \"orders.internal\"",
                );
                None
            }
        },
        None => None,
    };
    let connect_timeout = p.duration(&format!("{key}.connect_timeout"), &u.connect_timeout);
    let read_timeout = p.duration(&format!("{key}.read_timeout"), &u.read_timeout);
    let health = build_health(p, &key, &u.health);
    if p.0.len() > before {
        return None;
    }
    Some(Upstream {
        name: name.to_string(),
        addrs,
        tls: u.tls,
        sni: u.sni.clone().or(first_host).unwrap_or_default(),
        host_header,
        connect_timeout,
        read_timeout,
        http2: u.http2,
        health,
    })
}

fn build_route(
    p: &mut Problems,
    key: &str,
    r: &RouteSection,
    declared: &BTreeMap<String, UpstreamSection>,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
) -> Option<Route> {
    let before = p.0.len();
    if !valid_name(&r.name, &[]) {
        p.add(
            format!("{key}.name"),
            quote(&r.name),
            "route names use only lowercase letters, digits and '-' ([a-z0-9-]+)",
        );
    }

    let hosts = match &r.hosts {
        None => Vec::new(),
        Some(list) if list.is_empty() => {
            p.add(format!("{key}.hosts"), "[]", "list at least one host, or remove the key to match any host");
            Vec::new()
        }
        Some(list) => {
            list.iter().enumerate().filter_map(|(i, h)| parse_host(p, &format!("{key}.hosts[{i}]"), h)).collect()
        }
    };

    if !r.path_prefix.starts_with('/') {
        p.add(
            format!("{key}.path_prefix"),
            quote(&r.path_prefix),
            "must start with '/', e.g. \"/orders\" (\"/\" matches everything)",
        );
    }

    let mut pool = |field: &str, name: &str| -> Option<Arc<Upstream>> {
        if let Some(u) = upstreams.get(name) {
            return Some(u.clone());
        }
        if !declared.contains_key(name) {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            p.add(
                format!("{key}.{field}"),
                quote(name),
                format!(
                    "no such upstream; declare [upstreams.{name}] or use one of: {}",
                    if known.is_empty() { "(none declared)".to_string() } else { known.join(", ") }
                ),
            );
        }
        // Declared but invalid: its own problems are already reported.
        None
    };
    let legacy = pool("legacy", &r.legacy);
    let new = pool("new", &r.new);

    let weight = parse_weight(p, &format!("{key}.weight"), r.weight);
    let sticky = r.sticky.as_ref().and_then(|v| parse_sticky(p, &format!("{key}.sticky"), v));
    let override_ = r.override_.as_ref().and_then(|o| {
        let okey = format!("{key}.override");
        let header = match HeaderName::from_bytes(o.header.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                p.add(
                    format!("{okey}.header"),
                    quote(&o.header),
                    "must be a valid header name such as \"x-strangler-target\"",
                );
                None
            }
        };
        if o.token.as_deref() == Some("") {
            p.add(format!("{okey}.token"), "\"\"", "must not be empty; remove it to accept the header without a token");
        }
        header.map(|header| Override { header, token: o.token.clone() })
    });

    let shadow = super::shadow::build(p, key, r.shadow.as_ref(), r.compare.as_ref());
    let max_request_body = p.size(&format!("{key}.max_request_body"), &r.max_request_body, "64MiB");

    let rollout = r.rollout.as_ref().map(|ro| build_rollout(p, key, ro, shadow.is_some()));

    if p.0.len() > before {
        return None;
    }
    Some(Route {
        name: r.name.clone(),
        hosts,
        path_prefix: r.path_prefix.clone(),
        legacy: legacy?,
        new: new?,
        weight,
        sticky,
        override_,
        expose_side: r.expose_side,
        max_request_body,
        shadow,
        rollout,
        failover: r.failover,
    })
}

/// A weight in percent -> hundredths of a percent. Rejects anything that would be rounded.
pub fn parse_weight_percent(w: f64) -> Result<u32, String> {
    parse_percent(w, "weights")
}

/// A percentage -> hundredths of a percent; `what` names the values in the error ("weights").
pub fn parse_percent(w: f64, what: &str) -> Result<u32, String> {
    if !w.is_finite() || !(0.0..=100.0).contains(&w) {
        return Err("must be a percentage from 0 to 100".to_string());
    }
    let scaled = w * 100.0;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return Err(format!("has more than two decimals; {what} go in steps of 0.01 (e.g. 12.5 or 0.25)"));
    }
    Ok(rounded as u32)
}

fn parse_weight(p: &mut Problems, key: &str, w: f64) -> u32 {
    parse_weight_percent(w).unwrap_or_else(|msg| {
        p.add(key, w, msg);
        0
    })
}

fn parse_host(p: &mut Problems, key: &str, h: &str) -> Option<HostPattern> {
    let lower = h.to_ascii_lowercase();
    let (pattern, name) = match lower.strip_prefix("*.") {
        Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest),
        None => (HostPattern::Exact(lower.clone()), lower.as_str()),
    };
    let ok = !name.is_empty()
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok {
        Some(pattern)
    } else {
        p.add(key, quote(h), "must be a host name such as \"api.example.com\" or a wildcard such as \"*.example.com\" (no port, no path)");
        None
    }
}

fn parse_sticky(p: &mut Problems, key: &str, v: &toml::Value) -> Option<Sticky> {
    const HINT: &str = "must be { cookie = \"NAME\" }, { header = \"NAME\" } or \"client_ip\"";
    match v {
        toml::Value::String(s) if s == "client_ip" => Some(Sticky::ClientIp),
        toml::Value::Table(t) if t.len() == 1 => {
            let (kind, name) = t.iter().next()?;
            let Some(name) = name.as_str().filter(|n| !n.is_empty()) else {
                p.add(format!("{key}.{kind}"), name, "must be a non-empty string");
                return None;
            };
            match kind.as_str() {
                "cookie" if name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) => {
                    Some(Sticky::Cookie(name.to_string()))
                }
                "cookie" => {
                    p.add(format!("{key}.cookie"), quote(name), "is not a valid cookie name");
                    None
                }
                "header" => match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(h) => Some(Sticky::Header(h)),
                    Err(_) => {
                        p.add(format!("{key}.header"), quote(name), "is not a valid header name");
                        None
                    }
                },
                _ => {
                    p.add(key, v, HINT);
                    None
                }
            }
        }
        _ => {
            p.add(key, v, HINT);
            None
        }
    }
}
