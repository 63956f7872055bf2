//! `[routes.rollout]` and `[upstreams.NAME.health]`, validated.

use std::time::Duration;

use super::file::{HealthSection, RolloutSection};
use super::model::{parse_percent, quote, Problems};

/// What a rollout does when a gate is violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Weight back to 0, rollout paused.
    Rollback,
    /// Rollout paused at the current step, weight unchanged.
    Hold,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Hold => "hold",
        }
    }
}

/// A route's automatic progressive delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Weights in hundredths of a percent, strictly increasing, each above 0.
    pub steps: Vec<u32>,
    pub hold: Duration,
    pub min_requests: u64,
    /// Percent.
    pub max_error_rate: f64,
    /// Percent; `None` = no mismatch gate.
    pub max_mismatch_rate: Option<f64>,
    pub max_latency_ratio: f64,
    pub on_failure: OnFailure,
}

pub(super) fn build_rollout(p: &mut Problems, key: &str, r: &RolloutSection, shadows: bool) -> Rollout {
    let key = format!("{key}.rollout");
    let mut steps = Vec::new();
    if r.steps.is_empty() {
        p.add(format!("{key}.steps"), "[]", "list at least one weight, e.g. [1, 10, 50, 100]");
    }
    for (i, w) in r.steps.iter().enumerate() {
        match parse_percent(*w, "steps") {
            Ok(0) => p.add(format!("{key}.steps[{i}]"), w, "must be above 0: a step at 0% sends nothing to new"),
            Ok(v) if steps.last().is_some_and(|prev| v <= *prev) => {
                p.add(format!("{key}.steps[{i}]"), w, "steps must increase, e.g. [1, 10, 50, 100]")
            }
            Ok(v) => steps.push(v),
            Err(msg) => p.add(format!("{key}.steps[{i}]"), w, msg),
        }
    }
    let hold = p.duration(&format!("{key}.hold"), &r.hold);
    let mut rate = |field: &str, v: f64| {
        if !v.is_finite() || !(0.0..=100.0).contains(&v) {
            p.add(format!("{key}.{field}"), v, "must be a percentage from 0 to 100");
        }
    };
    rate("max_error_rate", r.max_error_rate);
    if let Some(m) = r.max_mismatch_rate {
        rate("max_mismatch_rate", m);
        if !shadows {
            p.add(
                format!("{key}.max_mismatch_rate"),
                m,
                "needs [routes.shadow] to measure mismatches; add a shadow section or remove this gate",
            );
        }
    }
    if !r.max_latency_ratio.is_finite() || r.max_latency_ratio <= 0.0 {
        p.add(
            format!("{key}.max_latency_ratio"),
            r.max_latency_ratio,
            "must be a positive ratio of new p99 to legacy p99, e.g. 1.5",
        );
    }
    let on_failure = match r.on_failure.as_str() {
        "rollback" => OnFailure::Rollback,
        "hold" => OnFailure::Hold,
        other => {
            p.add(format!("{key}.on_failure"), quote(other), "must be \"rollback\" or \"hold\"");
            OnFailure::Rollback
        }
    };
    Rollout {
        steps,
        hold,
        min_requests: r.min_requests,
        max_error_rate: r.max_error_rate,
        max_mismatch_rate: r.max_mismatch_rate,
        max_latency_ratio: r.max_latency_ratio,
        on_failure,
    }
}

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

pub(super) fn build_health(p: &mut Problems, key: &str, h: &HealthSection) -> Health {
    let key = format!("{key}.health");
    if let Some(path) = &h.path {
        if !path.starts_with('/') || path.parse::<http::Uri>().is_err() {
            p.add(format!("{key}.path"), quote(path), "must be a request path such as \"/healthz\"");
        }
    }
    for (field, v) in [("fails", h.fails), ("passes", h.passes)] {
        if v == 0 {
            p.add(format!("{key}.{field}"), 0, "must be at least 1 consecutive check");
        }
    }
    Health {
        enabled: h.enabled,
        interval: p.duration(&format!("{key}.interval"), &h.interval),
        timeout: p.duration(&format!("{key}.timeout"), &h.timeout),
        path: h.path.clone(),
        fails: h.fails,
        passes: h.passes,
    }
}
