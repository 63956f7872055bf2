//! The API's views of the running state: a route with its pools, shadow and rollout, as
//! `GET /api/v1/routes` shows them. Built from the domain's types; only the admin side does.

use std::time::Duration;

use crate::api::{self, Side};
use crate::config::schedule::rfc3339;
use crate::config::shadow::Shadow;
use crate::control::reload::Refused;
use crate::control::rollout::Control;
use crate::live::Window;
use crate::route::Matched;
use crate::shadow::state::ShadowState;
use crate::upstream::Pool;

pub fn route_view(m: &Matched, control: &Control) -> api::RouteView {
    let route = &m.route;
    api::RouteView {
        name: route.name.clone(),
        hosts: route.hosts.iter().map(|h| h.to_string()).collect(),
        path_prefix: route.path_prefix.clone(),
        weight: route.weight_percent(),
        sticky: route.sticky.as_ref().map(|s| s.describe()),
        override_: route
            .override_
            .as_ref()
            .map(|o| api::OverrideView { header: o.header.as_str().to_string(), token: o.token.is_some() }),
        expose_side: route.expose_side,
        failover: route.failover,
        sides: api::Sides { legacy: pool_view(m.pool(Side::Legacy)), new: pool_view(m.pool(Side::New)) },
        new_pool_down: m.pool(Side::New).all_down(),
        live: m.stats.live.last_minute(&m.reading()).summary(),
        shadow: route.shadow.as_ref().zip(m.shadow.as_ref()).map(|(s, state)| shadow_view(s, state)),
        rollout: rollout_view(m, control),
    }
}

fn shadow_view(s: &Shadow, state: &ShadowState) -> api::ShadowView {
    let names = |list: &[http::HeaderName]| list.iter().map(|h| h.as_str().to_string()).collect::<Vec<_>>();
    api::ShadowView {
        enabled: s.enabled,
        target: s.target.as_str().to_string(),
        sample: s.sample.as_f64(),
        methods: s.methods.iter().map(|m| m.as_str().to_string()).collect(),
        max_body: s.max_body,
        max_in_flight: s.max_in_flight,
        in_flight: state.in_flight(),
        timeout_ms: s.timeout.as_millis() as u64,
        compare: api::CompareView {
            ignore_headers: names(&s.compare.ignore_headers),
            ignore_json_paths: s.compare.ignore_json_paths.iter().map(|p| p.to_string()).collect(),
            noise_sample: s.compare.noise_sample.as_f64(),
            keep_diffs: s.compare.keep_diffs,
            redact_headers: names(&s.compare.redaction.headers),
        },
        counts: state.counts(),
        noise: state.noise_fields(),
    }
}

fn pool_view(pool: &Pool) -> api::PoolView {
    let u = &pool.config;
    api::PoolView {
        upstream: u.name.clone(),
        addresses: u
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| api::AddressView { address: a.to_string(), healthy: pool.is_healthy(i) })
            .collect(),
        healthy: pool.healthy_count(),
        tls: u.tls,
        health_check: u.health.enabled.then(|| match &u.health.path {
            Some(p) => format!("GET {p} every {:?}", u.health.interval),
            None => format!("connect every {:?}", u.health.interval),
        }),
    }
}

/// A route's rollout: its limits, and where it stands; `None` when it has no rollout.
pub fn rollout_view(m: &Matched, control: &Control) -> Option<api::RolloutView> {
    let cfg = m.route.rollout.as_ref()?;
    let limits = api::RolloutLimits {
        hold_ms: cfg.hold.as_millis() as u64,
        min_requests: cfg.min_requests,
        max_error_rate: cfg.max_error_rate,
        max_mismatch_rate: cfg.max_mismatch_rate,
        min_comparisons: cfg.min_comparisons,
        max_latency_ratio: cfg.max_latency_ratio,
        max_latency_added_ms: cfg.max_latency_added.map(|d| d.as_millis() as u64),
        on_failure: cfg.on_failure.as_str().to_string(),
        windows: cfg.schedule.windows.iter().map(|w| w.text().to_string()).collect(),
        freeze: cfg.schedule.freeze.iter().map(|f| f.text().to_string()).collect(),
    };
    let mut view = api::RolloutView {
        status: api::RolloutStatus::Starting,
        step: None,
        steps: cfg.steps.iter().map(|s| s.as_f64()).collect(),
        step_weight: None,
        held_ms: None,
        stopped_at: None,
        stopped_ms_ago: None,
        reason: None,
        failed_gate: None,
        error: None,
        waiting: None,
        next_step_at: None,
        schedule: None,
        limits,
        window: None,
    };
    // Not taken up yet: `starting`, without step or window.
    let Some(state) = control.state(m) else { return Some(view) };
    let (t, w) = (&state.tracked, &state.window);
    let p = &t.progress;
    view.status = p.status;
    view.step = Some(p.step + 1);
    view.step_weight = Some(cfg.steps.get(p.step).copied().unwrap_or_default().as_f64());
    let now = state.now_ms;
    // A stopped rollout's clock stopped with it: what it held until then, and since when.
    let until = p.stopped_ms.unwrap_or(now);
    view.held_ms = Some(until.saturating_sub(p.step_started_ms));
    if let Some(stopped) = p.stopped_ms {
        view.stopped_at =
            Some(humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(stopped)).to_string());
        view.stopped_ms_ago = Some(now.saturating_sub(stopped));
    }
    view.reason = p.reason.clone();
    view.failed_gate = p.failed_gate.clone();
    view.error = t.last_error.clone();
    view.waiting = state.waiting;
    if p.status == api::RolloutStatus::Running && p.step + 1 < cfg.steps.len() {
        let held = p.step_started_ms.saturating_add(cfg.hold.as_millis() as u64).max(now);
        view.next_step_at = cfg.schedule.next_open(held).map(rfc3339);
        view.schedule = cfg.schedule.closed(now).map(|c| c.to_string());
    }
    view.window = Some(gate_window(w));
    Some(view)
}

fn gate_window(w: &Window) -> api::GateWindow {
    use crate::control::gates::{latency_added_ms, latency_ratio};
    let new = w.side(Side::New);
    api::GateWindow {
        new_requests: new.requests,
        error_rate: new.error_rate(),
        mismatch_rate: w.mismatch_rate(),
        latency_ratio: latency_ratio(w),
        latency_added_ms: latency_added_ms(w),
    }
}

/// A refused reload, as `GET /api/v1/routes` shows it until a good one lands.
pub fn refused_view(r: &Refused) -> api::RefusedReload {
    api::RefusedReload {
        at: humantime::format_rfc3339_seconds(r.at).to_string(),
        trigger: r.trigger.as_str().to_string(),
        file: r.error.file.display().to_string(),
        problems: r
            .error
            .problems
            .iter()
            .map(|p| api::ConfigProblem {
                key: p.key.clone(),
                value: p.value.clone(),
                message: p.message.clone(),
                line: p.location.map(|(line, _)| line),
            })
            .collect(),
    }
}
