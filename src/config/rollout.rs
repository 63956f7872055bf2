//! `[routes.rollout]`, validated.

use std::time::Duration;

use super::file::{RateOrOff, RolloutSection};
use super::problems::{quote, Problems};
use super::schedule::{Freeze, Schedule, Window};
use crate::core::Percent;

/// The mismatch gate of a shadowed route's rollout when the file sets none: percent of
/// comparisons that may differ in a significant finding.
pub const DEFAULT_MAX_MISMATCH_RATE: f64 = 1.0;

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
    /// Weights, strictly increasing, each above 0.
    pub steps: Vec<Percent>,
    pub hold: Duration,
    pub min_requests: u64,
    /// Percent.
    pub max_error_rate: f64,
    /// Percent; `None` = no mismatch gate.
    pub max_mismatch_rate: Option<f64>,
    /// Comparisons before the mismatch gate decides.
    pub min_comparisons: u64,
    pub max_latency_ratio: f64,
    /// How much slower than legacy's p99 new's may be whatever the ratio; `None`: only the ratio.
    pub max_latency_added: Option<Duration>,
    pub on_failure: OnFailure,
    /// The last step waits until no endpoint of the route `differs`.
    pub require_ready: bool,
    /// When a step may pass (a rollback never waits).
    pub schedule: Schedule,
}

pub(super) fn build_rollout(p: &mut Problems, key: &str, r: &RolloutSection, shadows: bool) -> Rollout {
    let key = format!("{key}.rollout");
    let mut steps = Vec::new();
    if r.steps.is_empty() {
        p.add(format!("{key}.steps"), "[]", "list at least one weight, e.g. [1, 10, 50, 100]");
    }
    for (i, w) in r.steps.iter().enumerate() {
        match Percent::parse(*w, "steps") {
            Ok(v) if v.is_zero() => {
                p.add(format!("{key}.steps[{i}]"), w, "must be above 0: a step at 0% sends nothing to new")
            }
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
    let max_mismatch_rate = match &r.max_mismatch_rate {
        // A shadowed route's rollout judges its differences unless told not to.
        None => shadows.then_some(DEFAULT_MAX_MISMATCH_RATE),
        Some(RateOrOff::Word(w)) if w == "off" => None,
        Some(RateOrOff::Word(w)) => {
            p.add(format!("{key}.max_mismatch_rate"), quote(w), "must be a percentage from 0 to 100, or \"off\"");
            None
        }
        Some(RateOrOff::Rate(m)) => {
            rate("max_mismatch_rate", *m);
            if !shadows {
                p.add(
                    format!("{key}.max_mismatch_rate"),
                    m,
                    "needs [routes.shadow] to measure mismatches; add a shadow section or remove this gate",
                );
            }
            Some(*m)
        }
    };
    if r.min_comparisons == 0 {
        p.add(format!("{key}.min_comparisons"), 0, "must be at least 1: a gate never decides on no evidence");
    }
    let max_latency_added = r.max_latency_added.as_ref().map(|d| p.duration(&format!("{key}.max_latency_added"), d));
    if r.require_ready && !shadows {
        p.add(
            format!("{key}.require_ready"),
            true,
            "needs [routes.shadow]: the verdicts come from shadow comparisons; add a shadow section or remove it",
        );
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
    let mut schedule = Schedule::default();
    for (i, text) in r.windows.iter().enumerate() {
        match Window::parse(text) {
            Ok(w) => schedule.windows.push(w),
            Err(msg) => p.add(format!("{key}.windows[{i}]"), quote(text), msg),
        }
    }
    for (i, text) in r.freeze.iter().enumerate() {
        match Freeze::parse(text) {
            Ok(f) => schedule.freeze.push(f),
            Err(msg) => p.add(format!("{key}.freeze[{i}]"), quote(text), msg),
        }
    }
    Rollout {
        steps,
        hold,
        min_requests: r.min_requests,
        max_error_rate: r.max_error_rate,
        max_mismatch_rate,
        min_comparisons: r.min_comparisons,
        max_latency_ratio: r.max_latency_ratio,
        max_latency_added,
        on_failure,
        require_ready: r.require_ready,
        schedule,
    }
}
