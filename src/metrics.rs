//! Every metric strangler exports, in one place. Names carry the `strangler_` prefix; requests
//! that match no route use the route label `-`.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

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
    /// `config_reloads_total{result}`
    pub config_reloads: IntCounterVec,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("strangler")
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
        let request_duration = HistogramVec::new(
            HistogramOpts::from(opts(
                "request_duration_seconds",
                "Time from request to the end of the response, by route and side.",
            ))
            .buckets(exponential_buckets(0.0005, 2.0, 16)?),
            &["route", "side"],
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
        let config_reloads =
            IntCounterVec::new(opts("config_reloads_total", "Config reloads, by result (ok, error)."), &["result"])?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(route_weight.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(override_rejected.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            route_weight,
            upstream_errors,
            override_rejected,
            config_reloads,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}
