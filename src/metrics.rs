//! Every metric strangler exports, in one place. Names carry the `strangler_` prefix; requests
//! that match no route use the route label `-`.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus::{
    exponential_buckets, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::core::{BySide, Side};
use crate::live::Live;

/// Route label for requests that matched no route.
pub const NO_ROUTE: &str = "-";

pub struct Metrics {
    registry: Registry,
    /// `requests_total{route,side,code}`
    pub requests: IntCounterVec,
    /// `request_duration_seconds{route,side}`
    pub request_duration: HistogramVec,
    /// `route_weight_percent{route}`
    pub route_weight: GaugeVec,
    /// `upstream_errors_total{route,side,kind}`
    pub upstream_errors: IntCounterVec,
    /// `override_rejected_total{route}`: override headers ignored for a bad value or token.
    pub override_rejected: IntCounterVec,
    /// `override_requests_total{route,side}`: requests forced to a side by the override header
    /// (also in `requests_total`; left out of the live figures and the rollout gates).
    pub override_requests: IntCounterVec,
    /// `config_reloads_total{result}`
    pub config_reloads: IntCounterVec,
    /// `shadow_total{route,result}`: match, mismatch, error, dropped, skipped.
    pub shadow: IntCounterVec,
    /// `shadow_mismatches_total{route,where}`: status, header, body.
    pub shadow_mismatches: IntCounterVec,
    /// `shadow_duration_seconds{route,side}`: both answers of every compared pair.
    pub shadow_duration: HistogramVec,
    /// `noise_fields{route}`: fields learned as noise.
    pub noise_fields: IntGaugeVec,
    /// `noise_samples_total{route,result}`: same-side repeats: `learned` (counted in the noise
    /// window), `late` (left after the primary's answer arrived: not counted), `failed`.
    pub noise_samples: IntCounterVec,
    /// `evidence_bytes{route}`: estimated bytes of the route's cutover evidence, against
    /// `max_evidence`.
    pub evidence_bytes: IntGaugeVec,
    /// `failovers_total{route}`: requests new could not take, retried on legacy.
    pub failovers: IntCounterVec,
    /// `rollout_step{route}`: 1-based step of a route under rollout; 0 when rolled back or aborted.
    pub rollout_step: IntGaugeVec,
    /// `upstream_healthy{upstream,address}`: 1 while health checks pass, 0 while skipped.
    pub upstream_healthy: IntGaugeVec,
    /// `new_pool_down{route}`: 1 while every address of the route's new pool is down and all
    /// its traffic goes to legacy.
    pub new_pool_down: IntGaugeVec,
    /// `limits_total{limit}`: requests and connections refused by a limit.
    pub limits: IntCounterVec,
    /// `diffs_file_dropped_total`: mismatches not written to `log.diffs_file` because its writer
    /// fell behind.
    pub diffs_file_dropped: IntCounter,
    /// `background_restarts_total{task}`: background tasks started again after a panic.
    pub background_restarts: IntCounterVec,
    /// `notifications_total{target,result}`: webhook notifications `sent`, `failed` (after
    /// every retry), `dropped` (the target's queue was full), and `retried` attempts.
    pub notifications: IntCounterVec,
    /// `telemetry_spans_total{result}`: spans `exported`, `dropped` (the export queue was full)
    /// or `failed` (the collector did not take them).
    pub telemetry_spans: IntCounterVec,
    /// `cluster_connected`: 1 while etcd answers (exported with `[cluster]` only).
    pub cluster_connected: IntGauge,
    /// `cluster_revision`: the etcd revision of the routing document being served.
    pub cluster_revision: IntGauge,
    /// `cluster_stale`: 1 while serving the locally cached document, not yet confirmed by etcd.
    pub cluster_stale: IntGauge,
    /// `cluster_leader`: 1 while this instance is the fleet's elected rollout controller.
    pub cluster_leader: IntGauge,
    /// `cluster_refused_total{key}`: documents read from etcd and refused (the last good state
    /// kept), by kind of key: config, rollout, figures, findings, instances.
    pub cluster_refused: IntCounterVec,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("strangler")
}

/// A `{route,side}` latency histogram: 0.5 ms to 16 s, doubling, the same buckets everywhere so
/// request and shadow durations can be read side by side.
fn seconds_by_side(name: &str, help: &str) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(
        HistogramOpts::from(opts(name, help)).buckets(exponential_buckets(0.0005, 2.0, 16)?),
        &["route", "side"],
    )
}

impl Metrics {
    fn new() -> Self {
        // Names and labels are constants: a failure here is a programming error any test catches.
        Self::build().expect("metric definitions are valid")
    }

    fn build() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            opts("requests_total", "Requests answered, by route, serving side and status code."),
            &["route", "side", "code"],
        )?;
        let request_duration = seconds_by_side(
            "request_duration_seconds",
            "Time from request to the end of the response, by route and side.",
        )?;
        let route_weight = GaugeVec::new(
            opts("route_weight_percent", "Percent of a route's requests sent to the new service."),
            &["route"],
        )?;
        let upstream_errors = IntCounterVec::new(
            opts("upstream_errors_total", "Failures talking to an upstream, by route, side and kind."),
            &["route", "side", "kind"],
        )?;
        let override_rejected = IntCounterVec::new(
            opts("override_rejected_total", "Override headers ignored because of a bad value or token."),
            &["route"],
        )?;
        let override_requests = IntCounterVec::new(
            opts(
                "override_requests_total",
                "Requests forced to a side by the override header; not counted by the rollout gates.",
            ),
            &["route", "side"],
        )?;
        registry.register(Box::new(override_requests.clone()))?;
        let config_reloads =
            IntCounterVec::new(opts("config_reloads_total", "Config reloads, by result (ok, error)."), &["result"])?;
        let notifications = IntCounterVec::new(
            opts(
                "notifications_total",
                "Webhook notifications by target and result: sent, failed (after every retry), dropped (queue full), retried (attempts after the first).",
            ),
            &["target", "result"],
        )?;
        registry.register(Box::new(notifications.clone()))?;
        let telemetry_spans = IntCounterVec::new(
            opts(
                "telemetry_spans_total",
                "Trace spans by result: exported, dropped (the export queue was full), failed (the collector did not take them).",
            ),
            &["result"],
        )?;
        for result in ["exported", "dropped", "failed"] {
            telemetry_spans.with_label_values(&[result]);
        }
        registry.register(Box::new(telemetry_spans.clone()))?;
        let shadow = IntCounterVec::new(
            opts("shadow_total", "Shadowed requests by result: match, mismatch, error, dropped, skipped."),
            &["route", "result"],
        )?;
        let shadow_mismatches = IntCounterVec::new(
            opts("shadow_mismatches_total", "Mismatching shadow pairs by where they differ: status, header, body."),
            &["route", "where"],
        )?;
        let shadow_duration = seconds_by_side(
            "shadow_duration_seconds",
            "Answer time of each side on the same shadowed requests, by route and side.",
        )?;
        let noise_fields =
            IntGaugeVec::new(opts("noise_fields", "Response fields learned as noise and ignored."), &["route"])?;
        let noise_samples = IntCounterVec::new(
            opts("noise_samples_total", "Same-side repeats for noise learning: learned, late (not counted), failed."),
            &["route", "result"],
        )?;
        let evidence_bytes = IntGaugeVec::new(
            opts("evidence_bytes", "Estimated bytes of a route's cutover evidence (bounded by max_evidence)."),
            &["route"],
        )?;
        let failovers = IntCounterVec::new(
            opts("failovers_total", "Requests new could not take (connect failure, 502/503/504), retried on legacy."),
            &["route"],
        )?;
        let rollout_step = IntGaugeVec::new(
            opts("rollout_step", "Current step (1-based) of a route's rollout; 0 after a rollback or abort."),
            &["route"],
        )?;
        let upstream_healthy = IntGaugeVec::new(
            opts("upstream_healthy", "1 while an upstream address passes its health checks, 0 while it is skipped."),
            &["upstream", "address"],
        )?;
        let new_pool_down = IntGaugeVec::new(
            opts("new_pool_down", "1 while every address of a route's new pool is down (all traffic to legacy)."),
            &["route"],
        )?;
        let limits = IntCounterVec::new(
            opts(
                "limits_total",
                "Requests and connections refused by a limit: connections, header_timeout, header_bytes, header_count, body.",
            ),
            &["limit"],
        )?;
        // Series that count refusals and reload results exist from the start, at 0: a dashboard's
        // rate() sees the first one, and "none yet" reads as 0, not as a missing series.
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        for limit in Limit::ALL {
            limits.with_label_values(&[limit.as_str()]);
        }
        let diffs_file_dropped = IntCounter::with_opts(opts(
            "diffs_file_dropped_total",
            "Mismatches not written to log.diffs_file because its writer fell behind.",
        ))?;
        registry.register(Box::new(diffs_file_dropped.clone()))?;
        let background_restarts = IntCounterVec::new(
            opts(
                "background_restarts_total",
                "Background tasks (reload, health, rollout, live) started again after a panic.",
            ),
            &["task"],
        )?;
        for task in ["reload", "health", "rollout", "live"] {
            background_restarts.with_label_values(&[task]);
        }
        registry.register(Box::new(background_restarts.clone()))?;
        registry.register(Box::new(limits.clone()))?;
        registry.register(Box::new(failovers.clone()))?;
        registry.register(Box::new(rollout_step.clone()))?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        registry.register(Box::new(new_pool_down.clone()))?;
        registry.register(Box::new(shadow.clone()))?;
        registry.register(Box::new(shadow_mismatches.clone()))?;
        registry.register(Box::new(shadow_duration.clone()))?;
        registry.register(Box::new(noise_fields.clone()))?;
        registry.register(Box::new(noise_samples.clone()))?;
        registry.register(Box::new(evidence_bytes.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(route_weight.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(override_rejected.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        let cluster_connected = IntGauge::with_opts(opts("cluster_connected", "1 while etcd answers this instance."))?;
        let cluster_revision =
            IntGauge::with_opts(opts("cluster_revision", "etcd revision of the routing document being served."))?;
        let cluster_stale = IntGauge::with_opts(opts(
            "cluster_stale",
            "1 while serving the locally cached routing document, not yet confirmed by etcd.",
        ))?;
        let cluster_leader = IntGauge::with_opts(opts(
            "cluster_leader",
            "1 while this instance is the fleet's elected rollout controller.",
        ))?;
        let cluster_refused = IntCounterVec::new(
            opts(
                "cluster_refused_total",
                "Documents read from etcd and refused, by kind of key; the last good state is kept.",
            ),
            &["key"],
        )?;
        Ok(Metrics {
            cluster_leader,
            cluster_refused,
            cluster_connected,
            cluster_revision,
            cluster_stale,
            registry,
            requests,
            request_duration,
            route_weight,
            upstream_errors,
            override_rejected,
            override_requests,
            config_reloads,
            shadow,
            shadow_mismatches,
            shadow_duration,
            noise_fields,
            noise_samples,
            evidence_bytes,
            failovers,
            rollout_step,
            upstream_healthy,
            new_pool_down,
            limits,
            diffs_file_dropped,
            background_restarts,
            notifications,
            telemetry_spans,
        })
    }

    /// Export the fleet's metrics: only an instance with `[cluster]` has them.
    pub fn enable_cluster(&self) {
        for g in [&self.cluster_connected, &self.cluster_revision, &self.cluster_stale, &self.cluster_leader] {
            if let Err(e) = self.registry.register(Box::new(g.clone())) {
                tracing::debug!("cluster metric already registered: {e}");
            }
        }
        if let Err(e) = self.registry.register(Box::new(self.cluster_refused.clone())) {
            tracing::debug!("cluster metric already registered: {e}");
        }
        for kind in Refused::ALL {
            self.cluster_refused.with_label_values(&[kind.as_str()]);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}

/// The kinds of etcd key whose documents can be refused (`cluster_refused_total{key}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Config,
    Rollout,
    Figures,
    Findings,
    Instances,
}

impl Refused {
    pub const ALL: [Refused; 5] =
        [Refused::Config, Refused::Rollout, Refused::Figures, Refused::Findings, Refused::Instances];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Config => "config",
            Refused::Rollout => "rollout",
            Refused::Figures => "figures",
            Refused::Findings => "findings",
            Refused::Instances => "instances",
        }
    }
}

// === per-route handles ===

/// Status codes cached per side: 100..=599.
const CODES: usize = 500;

/// One route's request metrics, resolved once instead of by label lookup on every request. Kept
/// across reloads for a route of the same name; the underlying series live in the registry.
pub struct RouteStats {
    route: String,
    /// The same requests as live figures: the last minute, rollout steps.
    pub live: Live,
    duration: BySide<Histogram>,
    /// `requests_total` handles by side and status code, filled on first use.
    codes: BySide<Box<[OnceLock<IntCounter>]>>,
}

impl RouteStats {
    pub fn new(route: &str) -> Self {
        let duration = BySide::from_fn(|s| METRICS.request_duration.with_label_values(&[route, s.as_str()]));
        let codes = BySide::from_fn(|_| (0..CODES).map(|_| OnceLock::new()).collect());
        // Pools start up (health checks take them down), so "new pool down" is 0 from the start,
        // not absent until the health task's first pass.
        METRICS.new_pool_down.with_label_values(&[route]).set(0);
        RouteStats { route: route.to_string(), live: Live::new(), duration, codes }
    }

    /// Count one request and its duration. `upstream` is the live figures' part (`None` for a
    /// request forced by the override header, which the rollout gates must not see: it is QA,
    /// not the split): how long the upstream took to start answering, if it did.
    pub fn record(
        &self,
        side: Side,
        status: Option<http::StatusCode>,
        elapsed: Duration,
        upstream: Option<Option<Duration>>,
    ) {
        self.duration[side].observe(elapsed.as_secs_f64());
        let code = status.map_or(0, |s| s.as_u16());
        match upstream {
            Some(latency) => self.live.record(side, code >= 500, latency),
            None => METRICS.override_requests.with_label_values(&[&self.route, side.as_str()]).inc(),
        }
        let lookup = || METRICS.requests.with_label_values(&[&self.route, side.as_str(), &code.to_string()]);
        match (code as usize).checked_sub(100).filter(|i| *i < CODES) {
            Some(i) => self.codes[side][i].get_or_init(lookup).inc(),
            None => lookup().inc(),
        }
    }
}

/// A limit a request or connection can be refused by, as counted in `strangler_limits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_connections`: the connection was closed at once.
    Connections,
    /// The request header did not arrive within `header_timeout`.
    HeaderTimeout,
    /// A header over `max_header_bytes`.
    HeaderBytes,
    /// A header that would take incomplete headers past `max_pending_header_bytes`.
    HeaderMemory,
    HeaderCount,
    /// A body over the route's `max_request_body`.
    Body,
    /// A request body that stopped coming (`body_timeout`).
    BodyTimeout,
    /// Framing a proxy must not guess about (400).
    Framing,
    /// A path the upstream could read two ways (400), see [`crate::route::path`].
    Path,
    /// An HTTP/1.1 request without exactly one `Host` (400, RFC 9112 §3.2).
    Host,
}

impl Limit {
    pub const ALL: [Limit; 10] = [
        Limit::Connections,
        Limit::HeaderTimeout,
        Limit::HeaderBytes,
        Limit::HeaderMemory,
        Limit::HeaderCount,
        Limit::Body,
        Limit::BodyTimeout,
        Limit::Framing,
        Limit::Path,
        Limit::Host,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::HeaderTimeout => "header_timeout",
            Limit::HeaderBytes => "header_bytes",
            Limit::HeaderMemory => "header_memory",
            Limit::HeaderCount => "header_count",
            Limit::Body => "body",
            Limit::BodyTimeout => "body_timeout",
            Limit::Framing => "framing",
            Limit::Path => "path",
            Limit::Host => "host",
        }
    }

    /// Count one refusal.
    pub fn count(self) {
        METRICS.limits.with_label_values(&[self.as_str()]).inc();
    }
}
