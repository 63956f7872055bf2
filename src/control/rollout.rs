//! Runtime control of route weights: by hand (admin API, CLI) and by the progressive rollout
//! controller. Both change a weight the same way, through [`Reloader::change`]: edit the file,
//! validate, write atomically, swap the snapshot. One lock orders them, so the controller never
//! advances over an operator's change.
//!
//! A route with `[routes.rollout]` walks its steps: at each step it holds for `hold`, and passes
//! once the new side served `min_requests` and its error rate, shadow mismatch rate and p99 ratio
//! against legacy (all since the step began) are within the limits. A gate that is certain to
//! fail trips at once (`on_failure`). Progress is kept in `<config>.rollout.json` beside the
//! config, so a restart resumes at the same step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::{Deserialize, Serialize};

use crate::api::{GateWindow, RolloutAction, RolloutLimits, RolloutStatus, RolloutView};
use crate::config::persist::{self, PersistError};
use crate::config::rollout::{OnFailure, Rollout};
use crate::config::{Percent, Side};
use crate::control::gates::{figures, judge, latency_ratio, waiting};
use crate::control::reload::{ChangeError, Reloader};
use crate::live::Reading;
use crate::metrics::METRICS;
use crate::route::Matched;
use crate::snapshot::Shared;

/// How often rollouts are evaluated.
pub const TICK: Duration = Duration::from_millis(100);

/// What the state file keeps per route.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    /// The steps `step` indexes (in the file: hundredths of a percent); a config with other
    /// steps re-derives the step from the weight.
    steps: Vec<Percent>,
    /// Index into `steps`.
    step: usize,
    /// Unix milliseconds when the current step began: the hold survives restarts.
    step_started_ms: u64,
    status: RolloutStatus,
    reason: Option<String>,
}

#[derive(Clone)]
struct Tracked {
    progress: Progress,
    /// Counters when the step's window began.
    baseline: Reading,
    /// The last failure to persist a weight, logged once.
    last_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no route named {0:?}")]
    NoRoute(String),
    #[error("route {0:?} has no [routes.rollout] section")]
    NoRollout(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Change(#[from] ChangeError),
}

/// The result of a weight change by hand.
pub struct WeightChange {
    pub old: f64,
    pub new: f64,
    /// Set when the change paused the route's rollout.
    pub rollout_paused: bool,
}

pub struct Control {
    reloader: Arc<Reloader>,
    shared: Arc<Shared>,
    state_file: PathBuf,
    rollouts: Mutex<BTreeMap<String, Tracked>>,
    /// A copy of `rollouts` as of the last change, for the API: reading it never waits on a
    /// tick that holds the lock through a weight write (an fsync).
    published: ArcSwap<BTreeMap<String, Tracked>>,
}

/// `conf/strangler.toml` -> `conf/strangler.rollout.json`.
pub fn state_file_for(config: &Path) -> PathBuf {
    config.with_extension("rollout.json")
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Control {
    /// Load the rollout state file (if any) and take up every rollout where it was.
    pub fn new(reloader: Arc<Reloader>, shared: Arc<Shared>) -> Arc<Self> {
        let state_file = state_file_for(reloader.path());
        let saved: BTreeMap<String, Progress> = match std::fs::read_to_string(&state_file) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::error!("{}: not a rollout state file ({e}); rollouts start over", state_file.display());
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        let now = shared.load();
        let rollouts: BTreeMap<String, Tracked> = saved
            .into_iter()
            .filter_map(|(name, progress)| {
                let m = now.table.get(&name)?;
                m.route.rollout.as_ref()?;
                if progress.step >= progress.steps.len() {
                    tracing::error!(
                        route = name,
                        "{}: step {} of a rollout with {} steps does not exist; this rollout starts over from the weight",
                        state_file.display(),
                        progress.step + 1,
                        progress.steps.len()
                    );
                    return None;
                }
                let tracked = Tracked { progress, baseline: m.reading(), last_error: None };
                Some((name, tracked))
            })
            .collect();
        let published = ArcSwap::from_pointee(rollouts.clone());
        Arc::new(Control { reloader, shared, state_file, rollouts: Mutex::new(rollouts), published })
    }

    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Tracked>> {
        self.rollouts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persist and apply a weight (hundredths of a percent).
    fn write_weight(&self, route: &str, weight: Percent) -> Result<(), ChangeError> {
        let path = self.reloader.path().to_path_buf();
        self.reloader.change(|text| persist::set_weight(text, &path, route, weight.as_f64()))
    }

    // === by hand ===

    /// Set a route's weight from the admin API. A running rollout on the route is paused: the
    /// operator wins.
    pub fn set_weight(&self, route: &str, weight: Percent, who: &str) -> Result<WeightChange, ControlError> {
        let mut rollouts = self.lock();
        let old = self.current(route)?.route.weight;
        if old != weight {
            self.write_weight(route, weight)?;
        }
        tracing::info!(target: "strangler::admin", peer = who, route, old = old.as_f64(), new = weight.as_f64(), "weight set");
        let mut rollout_paused = false;
        if let Some(t) = rollouts.get_mut(route).filter(|t| t.progress.status == RolloutStatus::Running) {
            let reason = format!("weight set to {}% by hand (from {who}); rollout paused", weight.as_f64());
            tracing::warn!(route, "{reason}");
            t.progress.status = RolloutStatus::Paused;
            t.progress.reason = Some(reason);
            rollout_paused = true;
            self.save(&rollouts);
        }
        Ok(WeightChange { old: old.as_f64(), new: weight.as_f64(), rollout_paused })
    }

    fn current(&self, route: &str) -> Result<Matched, ControlError> {
        self.shared.load().table.get(route).cloned().ok_or_else(|| ControlError::NoRoute(route.to_string()))
    }

    /// Pause, resume or abort a route's rollout.
    pub fn act(&self, route: &str, action: RolloutAction, who: &str) -> Result<RolloutView, ControlError> {
        let mut rollouts = self.lock();
        let m = self.current(route)?;
        let cfg = m.route.rollout.clone().ok_or_else(|| ControlError::NoRollout(route.to_string()))?;
        let mut t = match rollouts.remove(route) {
            Some(t) => t,
            None => self.adopt(&m, &cfg),
        };
        let result = self.apply_action(&m, &cfg, &mut t, action, who);
        Self::publish_step(route, &t.progress);
        rollouts.insert(route.to_string(), t);
        self.save(&rollouts);
        result?;
        self.describe_locked(&rollouts, &m).ok_or_else(|| ControlError::NoRollout(route.to_string()))
    }

    fn apply_action(
        &self,
        m: &Matched,
        cfg: &Rollout,
        t: &mut Tracked,
        action: RolloutAction,
        who: &str,
    ) -> Result<(), ControlError> {
        let route = m.route.name.as_str();
        let p = &mut t.progress;
        match (action, p.status) {
            (RolloutAction::Pause, RolloutStatus::Running) => {
                p.status = RolloutStatus::Paused;
                p.reason = Some(format!("paused by hand (from {who})"));
            }
            (RolloutAction::Pause, RolloutStatus::Paused) => {}
            (RolloutAction::Pause, other) | (RolloutAction::Resume, other @ RolloutStatus::Complete) => {
                return Err(ControlError::Conflict(format!(
                    "the rollout of {route:?} is {}; nothing to {}",
                    other.as_str(),
                    if action == RolloutAction::Pause { "pause" } else { "resume" }
                )))
            }
            (RolloutAction::Resume, RolloutStatus::Running) => {}
            (RolloutAction::Resume, _) => {
                // Continue from the step at or below the current weight (step 1 after a
                // rollback or an abort), at that step's weight.
                let step = step_for(&cfg.steps, m.route.weight);
                if m.route.weight != cfg.steps[step] {
                    self.write_weight(route, cfg.steps[step])?;
                }
                *p = Progress {
                    steps: cfg.steps.clone(),
                    step,
                    step_started_ms: now_ms(),
                    status: RolloutStatus::Running,
                    reason: Some(format!("resumed by hand (from {who})")),
                };
                t.baseline = m.reading();
            }
            (RolloutAction::Abort, _) => {
                if !m.route.weight.is_zero() {
                    self.write_weight(route, Percent::ZERO)?;
                }
                p.status = RolloutStatus::Aborted;
                p.reason = Some(format!("aborted by hand (from {who}); weight 0"));
            }
        }
        tracing::info!(target: "strangler::admin", peer = who, route, action = ?action, status = t.progress.status.as_str(), "rollout");
        Ok(())
    }

    // === the controller ===

    /// Start tracking a route under rollout: at the step at or below its weight (the first step
    /// when below it), moved to that step's weight.
    fn adopt(&self, m: &Matched, cfg: &Rollout) -> Tracked {
        let weight = m.route.weight;
        let step = step_for(&cfg.steps, weight);
        let mut progress = Progress {
            steps: cfg.steps.clone(),
            step,
            step_started_ms: now_ms(),
            status: RolloutStatus::Running,
            reason: None,
        };
        if weight > cfg.steps[cfg.steps.len() - 1] {
            progress.status = RolloutStatus::Complete;
            progress.reason = Some(format!("weight {}% is beyond the last step", weight.as_f64()));
        } else if weight != cfg.steps[step] {
            if let Err(e) = self.write_weight(&m.route.name, cfg.steps[step]) {
                progress.status = RolloutStatus::Paused;
                progress.reason = Some(format!("cannot start: {e}"));
            }
        }
        tracing::info!(
            route = m.route.name,
            step = step + 1,
            weight = cfg.steps[step].as_f64(),
            status = progress.status.as_str(),
            "rollout taken up"
        );
        Tracked { progress, baseline: m.reading(), last_error: None }
    }

    /// One evaluation of every rollout.
    pub fn tick(&self) {
        let mut rollouts = self.lock();
        let snap = self.shared.load();
        let mut dirty = false;
        // Something the API shows changed without a change to keep (a weight write failing).
        let mut shown = false;
        rollouts.retain(|name, _| {
            let keep = snap.config.route(name).is_some_and(|r| r.rollout.is_some());
            if !keep {
                let _ = METRICS.rollout_step.remove_label_values(&[name]);
                dirty = true;
            }
            keep
        });
        for route in &snap.config.routes {
            let (Some(cfg), Some(m)) = (&route.rollout, snap.table.get(&route.name)) else { continue };
            let mut t = match rollouts.remove(&route.name) {
                Some(t) if t.progress.steps == cfg.steps => t,
                Some(old) => {
                    // New steps: take the rollout up again from the weight, keeping a pause.
                    let mut t = self.adopt(m, cfg);
                    if old.progress.status != RolloutStatus::Running {
                        t.progress.status = old.progress.status;
                        t.progress.reason = old.progress.reason;
                    }
                    dirty = true;
                    t
                }
                None => {
                    dirty = true;
                    self.adopt(m, cfg)
                }
            };
            let before = (t.progress.step, t.progress.status);
            let error_before = t.last_error.clone();
            self.drive(m, cfg, &mut t);
            dirty |= before != (t.progress.step, t.progress.status);
            shown |= error_before != t.last_error;
            Self::publish_step(&route.name, &t.progress);
            rollouts.insert(route.name.clone(), t);
        }
        if dirty {
            self.save(&rollouts);
        } else if shown {
            self.published.store(Arc::new(rollouts.clone()));
        }
    }

    fn drive(&self, m: &Matched, cfg: &Rollout, t: &mut Tracked) {
        if t.progress.status != RolloutStatus::Running {
            return;
        }
        let route = m.route.name.as_str();
        let step = t.progress.step;
        let expected = cfg.steps[step];
        // Re-read: a change written during this tick is in the newest snapshot.
        let weight = self.shared.load().table.get(route).map_or(m.route.weight, |m| m.route.weight);
        if weight != expected {
            let reason = format!(
                "weight changed to {}% outside the rollout (step {} is {}%); paused, resume to continue",
                weight.as_f64(),
                step + 1,
                expected.as_f64()
            );
            tracing::warn!(route, "{reason}");
            t.progress.status = RolloutStatus::Paused;
            t.progress.reason = Some(reason);
            return;
        }
        let window = m.reading().since(&t.baseline);
        let held = now_ms().saturating_sub(t.progress.step_started_ms) >= cfg.hold.as_millis() as u64;
        let last = held && waiting(cfg, &window).is_none();
        if let Err(why) = judge(cfg, &window, last) {
            self.fail(route, cfg, t, &why);
            return;
        }
        if !last {
            return;
        }
        if step + 1 == cfg.steps.len() {
            tracing::info!(route, step = step + 1, "rollout complete: every step passed ({})", figures(cfg, &window));
            t.progress.status = RolloutStatus::Complete;
            t.progress.reason = Some("every step passed".to_string());
            return;
        }
        if let Some(why) = not_ready(m, cfg, step) {
            if t.progress.reason.as_deref() != Some(why.as_str()) {
                tracing::info!(route, step = step + 1, "rollout holds before the last step: {why}");
                t.progress.reason = Some(why);
            }
            return;
        }
        let next = cfg.steps[step + 1];
        match self.write_weight(route, next) {
            Ok(()) => {
                tracing::info!(
                    route,
                    from = expected.as_f64(),
                    to = next.as_f64(),
                    "rollout step {} passed ({}); now step {}",
                    step + 1,
                    figures(cfg, &window),
                    step + 2
                );
                t.progress.step = step + 1;
                t.progress.step_started_ms = now_ms();
                t.progress.reason = None;
                t.baseline = m.reading();
                t.last_error = None;
            }
            Err(e) => self.persist_failed(route, t, &e),
        }
    }

    fn fail(&self, route: &str, cfg: &Rollout, t: &mut Tracked, why: &str) {
        let step = t.progress.step + 1;
        match cfg.on_failure {
            OnFailure::Rollback => match self.write_weight(route, Percent::ZERO) {
                Ok(()) => {
                    let reason = format!("rolled back at step {step} ({}%): {why}", cfg.steps[step - 1].as_f64());
                    tracing::warn!(route, "rollout {reason}; weight 0, paused");
                    t.progress.status = RolloutStatus::RolledBack;
                    t.progress.reason = Some(reason);
                }
                // Still running: the gate trips again on the next tick and the rollback is retried.
                Err(e) => self.persist_failed(route, t, &e),
            },
            OnFailure::Hold => {
                let reason = format!("held at step {step} ({}%): {why}", cfg.steps[step - 1].as_f64());
                tracing::warn!(route, "rollout {reason}; paused");
                t.progress.status = RolloutStatus::Paused;
                t.progress.reason = Some(reason);
            }
        }
    }

    fn persist_failed(&self, route: &str, t: &mut Tracked, e: &ChangeError) {
        let msg = e.to_string();
        if t.last_error.as_deref() != Some(msg.as_str()) {
            tracing::error!(route, "rollout cannot change the weight: {msg}");
        }
        t.last_error = Some(msg);
    }

    fn publish_step(route: &str, p: &Progress) {
        let step = match p.status {
            RolloutStatus::RolledBack | RolloutStatus::Aborted => 0,
            _ => p.step as i64 + 1,
        };
        METRICS.rollout_step.with_label_values(&[route]).set(step);
    }

    /// Keep the progress in the state file, and show it to the API.
    fn save(&self, rollouts: &BTreeMap<String, Tracked>) {
        self.published.store(Arc::new(rollouts.clone()));
        let state: BTreeMap<&String, &Progress> = rollouts.iter().map(|(k, t)| (k, &t.progress)).collect();
        let mut text = serde_json::to_string_pretty(&state).unwrap_or_default();
        text.push('\n');
        if let Err(e) = persist::write_atomic(&self.state_file, &text) {
            let e: PersistError = e;
            tracing::error!("cannot keep rollout progress, a restart would start over: {e}");
        }
    }

    // === what the API shows ===

    /// The rollout state of a route, for the API; `None` when it has no rollout.
    pub fn describe(&self, m: &Matched) -> Option<RolloutView> {
        self.describe_locked(&self.published.load(), m)
    }

    fn describe_locked(&self, rollouts: &BTreeMap<String, Tracked>, m: &Matched) -> Option<RolloutView> {
        let cfg = m.route.rollout.as_ref()?;
        let limits = RolloutLimits {
            hold_ms: cfg.hold.as_millis() as u64,
            min_requests: cfg.min_requests,
            max_error_rate: cfg.max_error_rate,
            max_mismatch_rate: cfg.max_mismatch_rate,
            max_latency_ratio: cfg.max_latency_ratio,
            on_failure: cfg.on_failure.as_str().to_string(),
        };
        let mut view = RolloutView {
            status: RolloutStatus::Starting,
            step: None,
            steps: cfg.steps.iter().map(|s| s.as_f64()).collect(),
            step_weight: None,
            held_ms: None,
            reason: None,
            error: None,
            waiting: None,
            limits,
            window: None,
        };
        let Some(t) = rollouts.get(&m.route.name) else { return Some(view) };
        let p = &t.progress;
        let w = m.reading().since(&t.baseline);
        let new = w.side(Side::New);
        view.status = p.status;
        view.step = Some(p.step + 1);
        view.step_weight = Some(cfg.steps.get(p.step).copied().unwrap_or_default().as_f64());
        view.held_ms = Some(now_ms().saturating_sub(p.step_started_ms));
        view.reason = p.reason.clone();
        view.error = t.last_error.clone();
        view.waiting = (p.status == RolloutStatus::Running)
            .then(|| waiting(cfg, &w).or_else(|| not_ready(m, cfg, p.step)))
            .flatten();
        view.window = Some(GateWindow {
            new_requests: new.requests,
            error_rate: new.error_rate(),
            mismatch_rate: w.mismatch_rate(),
            latency_ratio: latency_ratio(&w),
        });
        Some(view)
    }
}

/// With `require_ready`, why the step after `step` cannot be taken yet when it is the last one:
/// the endpoints whose cutover verdict is `differs`, with their findings.
fn not_ready(m: &Matched, cfg: &Rollout, step: usize) -> Option<String> {
    if !cfg.require_ready || step + 2 != cfg.steps.len() {
        return None;
    }
    let (state, shadow) = (m.shadow.as_ref()?, m.route.shadow.as_ref()?);
    let differing = state.findings().differing(&shadow.compare.rules);
    if differing.is_empty() {
        return None;
    }
    Some(format!(
        "waiting for the cutover report to be free of differences before the last step ({}%): {} differ{}",
        cfg.steps[step + 1].as_f64(),
        differing.join(", "),
        if differing.len() == 1 { "s" } else { "" }
    ))
}

/// The step at or below `weight`; the first step when below them all.
fn step_for(steps: &[Percent], weight: Percent) -> usize {
    steps.iter().rposition(|s| *s <= weight).unwrap_or(0)
}

/// The background task that drives rollouts.
pub struct RolloutService {
    control: Arc<Control>,
}

impl RolloutService {
    pub fn new(control: Arc<Control>) -> Self {
        RolloutService { control }
    }
}

#[async_trait]
impl BackgroundService for RolloutService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = every.tick() => self.control.tick(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_is_at_or_below_the_weight() {
        let steps = [100, 1000, 5000, 10_000].map(Percent::from_hundredths);
        let step_for = |steps: &[Percent], w: u32| step_for(steps, Percent::from_hundredths(w));
        assert_eq!(step_for(&steps, 0), 0);
        assert_eq!(step_for(&steps, 100), 0);
        assert_eq!(step_for(&steps, 3000), 1);
        assert_eq!(step_for(&steps, 5000), 2);
        assert_eq!(step_for(&steps, 10_000), 3);
    }
}
