//! The config file as operators write it. Every struct denies unknown keys so a typo is an error,
//! not a silently ignored setting. Values that need parsing (durations, addresses, weights) stay as
//! written here; [`super::model`] validates them and reports every problem at once.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Proxy process settings.
    #[serde(default)]
    pub server: ServerSection,
    /// The admin listener: health, metrics and the JSON API.
    #[serde(default)]
    pub admin: AdminSection,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
    /// Named upstream pools, referenced by routes.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSection>,
    /// Routes, each splitting its traffic between a legacy and a new pool.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    /// A fleet: the routing config (upstreams and routes) lives in etcd, shared by every
    /// instance; absent, this file is the whole config.
    #[serde(default)]
    pub cluster: Option<ClusterSection>,
    /// Webhooks told about weight changes, rollouts, findings and the fleet.
    #[serde(default)]
    pub notify: Vec<NotifySection>,
    /// OpenTelemetry traces, exported over OTLP/HTTP.
    #[serde(default)]
    pub telemetry: Option<TelemetrySection>,
}

/// `[telemetry]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// The collector's OTLP/HTTP base URL; spans go to `<it>/v1/traces`.
    pub otlp_endpoint: String,
    /// Percent of requests that start a trace; a sampled `traceparent` is always followed.
    #[serde(default = "default_trace_sample")]
    pub sample: f64,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn default_trace_sample() -> f64 {
    1.0
}
fn default_service_name() -> String {
    "strangler".into()
}

/// `[[notify]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// Where to POST, `http://` or `https://`.
    pub url: String,
    /// Shown in logs and metrics instead of the URL (which may hold a secret, as Slack's do);
    /// default: the URL's host.
    #[serde(default)]
    pub name: Option<String>,
    /// Which events: "weight", "rollout", "finding", "fleet"; default: every one.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// "json" (strangler's own document) or "slack" (an incoming-webhook message).
    #[serde(default = "default_notify_format")]
    pub format: String,
    /// When set, each POST carries `X-Strangler-Signature: sha256=<HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Time for one attempt.
    #[serde(default = "default_notify_timeout")]
    pub timeout: String,
}

fn default_notify_format() -> String {
    "json".into()
}
fn default_notify_timeout() -> String {
    "5s".into()
}

/// `[cluster]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// etcd v3 endpoints, "http://127.0.0.1:2379".
    #[serde(default)]
    pub etcd: Vec<String>,
    /// Every key of the fleet lives under this prefix.
    #[serde(default = "default_cluster_prefix")]
    pub prefix: String,
    /// This instance's name in the fleet; default: the host name.
    #[serde(default)]
    pub instance: String,
    /// Lease of this instance's registration: how long it outlives a crash.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: String,
    /// The last routing document applied, kept on local disk for a start while etcd is away;
    /// default: next to this file, `NAME.cluster-cache.toml`.
    #[serde(default)]
    pub cache: String,
    /// With `https://` endpoints: the CA that signed etcd's certificate (PEM file).
    #[serde(default)]
    pub tls_ca: String,
    /// This instance's client certificate and key (PEM files), when etcd asks for one.
    #[serde(default)]
    pub tls_cert: String,
    #[serde(default)]
    pub tls_key: String,
}

fn default_cluster_prefix() -> String {
    "/strangler".to_string()
}

fn default_lease_ttl() -> String {
    "10s".to_string()
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Proxy listeners (`host:port`). Changing them needs a restart.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Worker threads for the proxy; default: the number of cores.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Threads of their own for shadow work (sending the copies, comparing, recording), run
    /// at the lowest CPU priority so a primary request never waits behind a shadow; 0 shares
    /// the proxy's workers. Needs a restart to change.
    #[serde(default)]
    pub shadow_threads: usize,
    /// How long SIGTERM waits for in-flight requests before exiting.
    #[serde(default = "default_grace_period")]
    pub grace_period: String,
    /// Unix socket used to hand listeners to a new binary on upgrade (SIGQUIT + `--upgrade`).
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    /// PEM bundle of the CAs that sign TLS upstreams' certificates; default: the system's
    /// (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured). Needs a restart to change.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// TLS termination (rustls; HTTP/2 offered by ALPN). Certificate and key are re-read on
    /// every reload.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Accept HTTP/2 without TLS (prior knowledge, as gRPC clients inside a cluster use).
    #[serde(default)]
    pub h2c: bool,
    /// Let the kernel back memory with transparent huge pages: a few percent less CPU per
    /// request, but memory a burst took is not given back (read at start-up only).
    #[serde(default)]
    pub huge_pages: bool,
    /// Limits against abusive or broken clients.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Peers (CIDRs such as "10.0.0.0/8") whose forwarding headers are believed: their
    /// `x-forwarded-for` is appended to and their `forwarded`, `x-real-ip`,
    /// `x-forwarded-host` and `x-strangler-shadow` pass. From anyone else they are replaced or
    /// removed. Empty by default: strangler is the edge.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// `[server.limits]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// A new connection must complete its first request header within this (slowloris).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: String,
    /// An idle keep-alive connection is closed after this.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: String,
    /// Time allowed between two reads of a request body (slow POST); past it, 408.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: String,
    /// Largest request header (request line and all header lines).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: String,
    /// Bytes all connections together may hold in request headers not yet complete, beyond the
    /// first 4 KiB of each. Default: 4 MiB, or `max_header_bytes` when that is larger.
    #[serde(default)]
    pub max_pending_header_bytes: Option<String>,
    /// Most header lines in a request.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Most client connections open at once; more are closed at accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_header_timeout() -> String {
    "10s".to_string()
}
fn default_idle_timeout() -> String {
    "60s".to_string()
}
fn default_body_timeout() -> String {
    "30s".to_string()
}
fn default_max_header_bytes() -> String {
    "64KiB".to_string()
}
fn default_max_headers() -> usize {
    100
}
fn default_max_connections() -> usize {
    10_000
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            body_timeout: default_body_timeout(),
            max_header_bytes: default_max_header_bytes(),
            max_pending_header_bytes: None,
            max_headers: default_max_headers(),
            max_connections: default_max_connections(),
        }
    }
}

/// `[server.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Addresses served with TLS. Absent: every `server.listen` address is TLS; present: these
    /// are TLS and `server.listen` stays plain HTTP.
    #[serde(default)]
    pub listen: Option<Vec<String>>,
}

fn default_listen() -> Vec<String> {
    vec!["0.0.0.0:8080".to_string()]
}
fn default_grace_period() -> String {
    "10s".to_string()
}
fn default_upgrade_sock() -> String {
    "/tmp/strangler_upgrade.sock".to_string()
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            threads: None,
            shadow_threads: 0,
            grace_period: default_grace_period(),
            upgrade_sock: default_upgrade_sock(),
            ca_file: None,
            tls: None,
            h2c: false,
            huge_pages: false,
            limits: LimitsSection::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the admin listener.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token for mutations; `STRANGLER_ADMIN_TOKEN` overrides. Mandatory off loopback.
    #[serde(default)]
    pub token: String,
    /// Host names the API answers to besides IP addresses and `localhost` (a name an operator
    /// types, "strangler.internal"): any other `Host` is refused, which stops DNS rebinding.
    #[serde(default)]
    pub hosts: Vec<String>,
}

fn default_admin_listen() -> String {
    "127.0.0.1:9090".to_string()
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection { listen: default_admin_listen(), token: String::new(), hosts: Vec::new() }
    }
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Filter directive (`info`, `debug`, `strangler=debug,pingora=warn`); `RUST_LOG` overrides.
    #[serde(default = "default_level")]
    pub level: String,
    /// `text` or `json`.
    #[serde(default = "default_format")]
    pub format: String,
    /// One line per request.
    #[serde(default = "default_true")]
    pub access_log: bool,
    /// Append every shadow mismatch to this file as one JSON line.
    #[serde(default)]
    pub diffs_file: Option<String>,
    /// Past this size the diffs file is renamed to `FILE.1` (replacing the previous one) and a
    /// new one is started.
    #[serde(default = "default_diffs_file_max")]
    pub diffs_file_max: String,
}

fn default_diffs_file_max() -> String {
    "64MiB".to_string()
}

fn default_level() -> String {
    "info".to_string()
}
fn default_format() -> String {
    "text".to_string()
}
fn default_true() -> bool {
    true
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: default_level(),
            format: default_format(),
            access_log: true,
            diffs_file: None,
            diffs_file_max: default_diffs_file_max(),
        }
    }
}

/// `[upstreams.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `host:port` addresses, used round robin.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// HTTPS to the upstream.
    #[serde(default)]
    pub tls: bool,
    /// TLS server name; default: the host part of the first address.
    #[serde(default)]
    pub sni: Option<String>,
    /// Replace the client's Host header with this value.
    #[serde(default)]
    pub host_header: Option<String>,
    /// Time allowed to establish a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// Time allowed between reads from the upstream.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: String,
    /// Speak HTTP/2 to the upstream (needed for gRPC): negotiated by ALPN over TLS, prior
    /// knowledge (h2c) in plain text.
    #[serde(default)]
    pub http2: bool,
    /// Active health checks of every address; on by default (TCP connect every 5 s).
    #[serde(default)]
    pub health: HealthSection,
}

/// `[upstreams.NAME.health]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// Turn the checks off: every address is then always used.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Time between two checks of an address.
    #[serde(default = "default_health_interval")]
    pub interval: String,
    /// Time allowed for one check.
    #[serde(default = "default_health_timeout")]
    pub timeout: String,
    /// `GET` this path and expect a 2xx; absent: a TCP (or TLS) connect is the check.
    #[serde(default)]
    pub path: Option<String>,
    /// Consecutive failed checks before an address is skipped.
    #[serde(default = "default_health_fails")]
    pub fails: u32,
    /// Consecutive passed checks before a skipped address is used again.
    #[serde(default = "default_health_passes")]
    pub passes: u32,
}

fn default_health_interval() -> String {
    "5s".to_string()
}
fn default_health_timeout() -> String {
    "1s".to_string()
}
fn default_health_fails() -> u32 {
    2
}
fn default_health_passes() -> u32 {
    1
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            enabled: true,
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            path: None,
            fails: default_health_fails(),
            passes: default_health_passes(),
        }
    }
}

fn default_connect_timeout() -> String {
    "1s".to_string()
}
fn default_read_timeout() -> String {
    "30s".to_string()
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Unique name, `[a-z0-9-]+`.
    pub name: String,
    /// Hosts this route answers for (`api.example.com`, `*.example.com`); absent = any host.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// Path prefix; the longest match wins. `/` is a catch-all.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Upstream pool of the legacy service.
    pub legacy: String,
    /// Upstream pool of the new service.
    pub new: String,
    /// Percent of requests served by `new`, 0..=100 in steps of 0.01.
    #[serde(default)]
    pub weight: f64,
    /// `{ cookie = "sid" }`, `{ header = "x-user-id" }` or `"client_ip"`; absent = random.
    #[serde(default)]
    pub sticky: Option<toml::Value>,
    /// Let a request header force a side.
    #[serde(default, rename = "override")]
    pub override_: Option<OverrideSection>,
    /// Add `x-strangler-side` to responses.
    #[serde(default)]
    pub expose_side: bool,
    /// Largest request body; a larger declared one gets 413 before any upstream is contacted.
    #[serde(default = "default_max_request_body")]
    pub max_request_body: String,
    /// Copy requests to the side that did not serve them.
    #[serde(default)]
    pub shadow: Option<ShadowSection>,
    /// How shadow pairs are compared.
    #[serde(default)]
    pub compare: Option<CompareSection>,
    /// Automatic progressive delivery: walk the weight through steps, gated by live figures.
    #[serde(default)]
    pub rollout: Option<RolloutSection>,
    /// Retry on legacy a request that `new` could not take (connect failure; 502/503/504 for
    /// idempotent requests with a replayable body).
    #[serde(default)]
    pub failover: bool,
}

/// `[routes.rollout]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSection {
    /// Weights (percent) to walk through, increasing.
    #[serde(default = "default_steps")]
    pub steps: Vec<f64>,
    /// Time spent at each step before it can pass.
    #[serde(default = "default_hold")]
    pub hold: String,
    /// Requests the new side must serve during a step before it can pass.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Highest percent of new-side requests that fail (5xx, connect failures).
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// Highest percent of shadow comparisons that differ in a significant finding; needs
    /// `[routes.shadow]`. On a shadowed route it defaults to 1; `"off"` turns the gate off.
    #[serde(default)]
    pub max_mismatch_rate: Option<RateOrOff>,
    /// Comparisons a step needs before the mismatch gate decides anything, pass or fail.
    #[serde(default = "default_min_comparisons")]
    pub min_comparisons: u64,
    /// Highest new p99 / legacy p99 over the step.
    #[serde(default = "default_max_latency_ratio")]
    pub max_latency_ratio: f64,
    /// New's p99 may exceed legacy's by up to this ("20ms") whatever the ratio: the latency
    /// gate passes when either holds.
    #[serde(default)]
    pub max_latency_added: Option<String>,
    /// `"rollback"` (weight 0, paused) or `"hold"` (paused at the current step).
    #[serde(default = "default_on_failure")]
    pub on_failure: String,
    /// Hold before the last step while an endpoint's cutover verdict is `differs`.
    #[serde(default)]
    pub require_ready: bool,
    /// When steps may pass, e.g. `"Mon-Fri 09:00-17:00 Europe/Berlin"`; none: at any time.
    #[serde(default)]
    pub windows: Vec<String>,
    /// Periods in which no step passes, e.g. `"2026-12-20/2027-01-04"`.
    #[serde(default)]
    pub freeze: Vec<String>,
}

/// A gate's limit, or the word `"off"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RateOrOff {
    Rate(f64),
    Word(String),
}

fn default_min_comparisons() -> u64 {
    100
}
fn default_steps() -> Vec<f64> {
    vec![1.0, 10.0, 50.0, 100.0]
}
fn default_hold() -> String {
    "30m".to_string()
}
fn default_min_requests() -> u64 {
    500
}
fn default_max_error_rate() -> f64 {
    1.0
}
fn default_max_latency_ratio() -> f64 {
    1.5
}
fn default_on_failure() -> String {
    "rollback".to_string()
}

fn default_max_request_body() -> String {
    "64MiB".to_string()
}

fn default_prefix() -> String {
    "/".to_string()
}

/// `override = { header = "...", token = "..." }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSection {
    /// Request header that names the side: `legacy`, `new`, or `new;token=...`.
    pub header: String,
    /// When set, the header must carry `;token=THIS` to be honoured.
    #[serde(default)]
    pub token: Option<String>,
}

/// `[routes.shadow]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSection {
    /// Turn shadowing off without deleting the section.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `"other"` (the side that did not serve), `"new"` or `"legacy"`.
    #[serde(default = "default_shadow_target")]
    pub target: String,
    /// Percent of eligible requests shadowed.
    #[serde(default = "default_hundred")]
    pub sample: f64,
    /// Methods shadowed; writes only when listed.
    #[serde(default = "default_shadow_methods")]
    pub methods: Vec<String>,
    /// Larger request or response bodies: the shadow is skipped.
    #[serde(default = "default_max_body")]
    pub max_body: String,
    /// Shadows in flight per route; more are dropped, never queued.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Time allowed for the whole shadow exchange.
    #[serde(default = "default_shadow_timeout")]
    pub timeout: String,
}

fn default_shadow_target() -> String {
    "other".to_string()
}
fn default_hundred() -> f64 {
    100.0
}
fn default_shadow_methods() -> Vec<String> {
    ["GET", "HEAD", "OPTIONS"].map(String::from).to_vec()
}
fn default_max_body() -> String {
    "1MiB".to_string()
}
fn default_max_in_flight() -> usize {
    256
}
fn default_shadow_timeout() -> String {
    "5s".to_string()
}

/// `[routes.compare]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareSection {
    /// Response headers never compared (case-insensitive).
    #[serde(default = "default_ignore_headers")]
    pub ignore_headers: Vec<String>,
    /// JSON paths never compared: `$.meta.generated_at`, `$.items[*].etag`.
    #[serde(default)]
    pub ignore_json_paths: Vec<String>,
    /// Percent of compared requests also sent a second time to the serving side to learn noise.
    #[serde(default = "default_noise_sample")]
    pub noise_sample: f64,
    /// Recent mismatches kept per route.
    #[serde(default = "default_keep_diffs")]
    pub keep_diffs: usize,
    /// Bytes of recent mismatches kept per route at most (with `keep_diffs`).
    #[serde(default = "default_keep_diffs_bytes")]
    pub keep_diffs_bytes: String,
    /// Headers whose values are replaced by `[redacted]` wherever diffs are stored or shown,
    /// besides the defaults (authorization, proxy-authorization, cookie, set-cookie, x-api-key).
    #[serde(default)]
    pub redact_headers: Vec<String>,
    /// Words that make a query parameter or a JSON key secret, besides the defaults (token,
    /// password, secret, api_key, apikey, authorization).
    #[serde(default)]
    pub redact_query: Vec<String>,
    /// JSON paths whose values are redacted (`$.card.number`, `$.users[*].email`).
    #[serde(default)]
    pub redact_json_paths: Vec<String>,
    /// Path templates (`/orders/{id}`) requests are counted under, before inferred ones.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Endpoints tracked per route; requests of more are counted under `{other}`.
    #[serde(default = "default_max_endpoints")]
    pub max_endpoints: usize,
    /// Bytes the route's cutover evidence (endpoints, fields, examples, templates) holds at
    /// most; past it new endpoints count under `{other}` and new fields and examples are
    /// counted, not kept.
    #[serde(default = "default_max_evidence")]
    pub max_evidence: String,
    /// Same-side samples older than this no longer count as noise.
    #[serde(default = "default_noise_max_age")]
    pub noise_max_age: String,
    /// Percentage points a field's legacy/new rate must exceed its noise rate by to be a finding.
    #[serde(default = "default_finding_absolute")]
    pub finding_absolute: f64,
    /// Percent of its noise rate a field's legacy/new rate must exceed it by to be a finding.
    #[serde(default = "default_finding_relative")]
    pub finding_relative: f64,
    /// Comparisons an endpoint needs before it can be `ready`.
    #[serde(default = "default_ready_after")]
    pub ready_after: u64,
    /// How particular fields are compared.
    #[serde(default)]
    pub matchers: Vec<MatcherSection>,
    /// Mismatching requests kept per route for `strangler replay`; 0 keeps none.
    #[serde(default = "default_keep_replays")]
    pub keep_replays: usize,
    /// Keep requests of unsafe methods (POST, PUT, ...) for replay too: replaying sends them to
    /// both sides again.
    #[serde(default)]
    pub replay_unsafe: bool,
}

fn default_keep_replays() -> usize {
    50
}

/// `[[routes.compare.matchers]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatcherSection {
    /// `header:NAME` or `json:$.path`.
    pub field: String,
    /// `METHOD /template` or `/template`; every endpoint when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub absolute: Option<f64>,
    /// Percent.
    #[serde(default)]
    pub relative: Option<f64>,
    #[serde(default)]
    pub pattern: Option<String>,
}

fn default_max_evidence() -> String {
    "4MiB".into()
}
fn default_noise_max_age() -> String {
    "1h".into()
}
fn default_max_endpoints() -> usize {
    100
}
fn default_finding_absolute() -> f64 {
    0.05
}
fn default_finding_relative() -> f64 {
    100.0
}
fn default_ready_after() -> u64 {
    100
}

fn default_ignore_headers() -> Vec<String> {
    ["date"].map(String::from).to_vec()
}
fn default_noise_sample() -> f64 {
    1.0
}
fn default_keep_diffs() -> usize {
    100
}
fn default_keep_diffs_bytes() -> String {
    "1MiB".to_string()
}

impl Default for CompareSection {
    fn default() -> Self {
        CompareSection {
            ignore_headers: default_ignore_headers(),
            ignore_json_paths: Vec::new(),
            noise_sample: default_noise_sample(),
            keep_diffs: default_keep_diffs(),
            keep_diffs_bytes: default_keep_diffs_bytes(),
            redact_headers: Vec::new(),
            redact_query: Vec::new(),
            redact_json_paths: Vec::new(),
            endpoints: Vec::new(),
            max_endpoints: default_max_endpoints(),
            max_evidence: default_max_evidence(),
            noise_max_age: default_noise_max_age(),
            finding_absolute: default_finding_absolute(),
            finding_relative: default_finding_relative(),
            ready_after: default_ready_after(),
            matchers: Vec::new(),
            keep_replays: default_keep_replays(),
            replay_unsafe: false,
        }
    }
}
