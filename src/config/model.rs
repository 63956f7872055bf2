//! The validated configuration the proxy runs on. Built only through [`Config::from_file`], which
//! checks everything and collects every problem, so a `Config` value is always usable as a whole.

use super::operations::{NotifyTarget, Telemetry};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::problems::Problem;
use super::rollout::Rollout;
use super::shadow::Shadow;
pub use crate::core::{Percent, Side, WEIGHT_SCALE};

/// Environment variable that overrides `admin.token`.
pub const TOKEN_ENV: &str = "STRANGLER_ADMIN_TOKEN";

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
    /// `server.trusted_proxies`: applied on reload.
    pub trusted_proxies: Vec<Cidr>,
    /// `[cluster]`: the routing config comes from etcd.
    pub cluster: Option<ClusterSettings>,
    /// `[[notify]]`: webhooks, in file order.
    pub notify: Vec<NotifyTarget>,
    /// `[telemetry]`: OpenTelemetry traces; `None`, none.
    pub telemetry: Option<Telemetry>,
}

/// `[cluster]`, validated. The credentials come from the environment only
/// (`STRANGLER_ETCD_USER`, `STRANGLER_ETCD_PASSWORD`), never from a file that may be shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub instance: String,
    pub lease_ttl: std::time::Duration,
    pub cache: PathBuf,
    pub user: Option<(String, String)>,
    /// With `https://` endpoints.
    pub tls: Option<ClusterTls>,
}

/// TLS to etcd: the CA to verify its members by and, when etcd checks clients, this instance's
/// certificate and key; read (PEM) when the config is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    pub ca: Vec<u8>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl Config {
    /// What is valid but likely not meant: `check` prints these and still passes.
    pub fn warnings(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let shadowed = r.shadow.as_ref().is_some_and(|s| s.enabled);
            if shadowed && r.rollout.as_ref().is_some_and(|ro| ro.max_mismatch_rate.is_none()) {
                out.push(Problem::new(
                    format!("routes[{i}].rollout.max_mismatch_rate"),
                    Some("\"off\"".to_string()),
                    format!(
                        "the route is shadowed but its rollout ignores every difference the comparisons find: \
                         steps pass while new answers differently; remove the line to gate at {}%",
                        super::rollout::DEFAULT_MAX_MISMATCH_RATE
                    ),
                ));
            }
        }
        out
    }

    /// Whether `peer` is a proxy whose forwarding headers are believed.
    pub fn trusts(&self, peer: Option<std::net::IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|c| c.contains(ip)))
    }
}

/// An address range, `10.0.0.0/8` or `fd00::/8` (a bare address is the range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: std::net::IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a.parse::<std::net::IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (s.parse().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { network: addr, bits })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let (net, ip, width) = match (self.network, ip) {
            (V4(n), V4(i)) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
            (V6(n), V6(i)) => (u128::from(n), u128::from(i), 128),
            (V4(n), V6(i)) => match i.to_ipv4_mapped() {
                Some(i) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
                None => return false,
            },
            (V6(_), V4(_)) => return false,
        };
        let host_bits = width - u32::from(self.bits);
        host_bits >= width || (net >> host_bits) == (ip >> host_bits)
    }
}

/// `[server.limits]`. The connection-level ones (`max_connections`, `header_timeout`) are bound at
/// start-up; the others apply to the next request after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_header_bytes: usize,
    /// Incomplete headers of all connections together, beyond the first 4 KiB of each.
    pub max_pending_header_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Plain HTTP listeners (TLS ones when `[server.tls]` has no `listen` of its own).
    pub listen: Vec<SocketAddr>,
    pub threads: usize,
    /// Threads of the shadow runtime; 0: shadows run on the proxy's workers.
    pub shadow_threads: usize,
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
    /// Lowercase host names (no port) the API answers to besides IP literals and `localhost`.
    pub hosts: Vec<String>,
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
    /// Past this size the diffs file is rotated to `FILE.1`.
    pub diffs_file_max: usize,
}

/// A named pool of upstream addresses, as the file declares it. What the process learns about
/// the addresses (health, round-robin position) lives in [`crate::upstream::Pool`].
/// Active health checks of an upstream pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
    /// HTTP path to `GET`; `None` = a connect is the check.
    pub path: Option<String>,
    pub fails: u32,
    pub passes: u32,
}

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
    /// Share of requests served by `new`.
    pub weight: Percent,
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
    /// Every route's override header: removed from what this route forwards.
    pub strip_headers: Vec<HeaderName>,
}

impl Route {
    pub fn upstream(&self, side: Side) -> &Arc<Upstream> {
        match side {
            Side::Legacy => &self.legacy,
            Side::New => &self.new,
        }
    }

    pub fn weight_percent(&self) -> f64 {
        self.weight.as_f64()
    }
}

impl Config {
    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.name == name)
    }
}
