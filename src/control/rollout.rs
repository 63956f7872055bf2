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
//!
//! In a fleet, only the elected leader drives rollouts, on the fleet's figures (every
//! instance's counters summed); progress (step, hold clock, the counters the step's window
//! starts from) lives in etcd under `PREFIX/rollout/ROUTE`. A step's weight and its progress are
//! written in one transaction, fenced on the leader's term: a new leader resumes from exactly
//! what the old one wrote, and a deposed one writes nothing. Operators' actions (from any
//! instance) are compare-and-swaps on the same key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::{Deserialize, Serialize};

use crate::api::{GateWindow, ReportRules, RolloutAction, RolloutLimits, RolloutStatus, RolloutView};
use crate::cluster::fleet::Fleet;
use crate::config::persist::{self, PersistError};
use crate::config::rollout::{OnFailure, Rollout};
use crate::config::{Percent, Side};
use crate::control::gates::{figures, judge, latency_added_ms, latency_ratio, waiting};
use crate::control::reload::{ChangeError, Reloader};
use crate::live::{tally_window, Counted, Tally, Window};
use crate::metrics::METRICS;
use crate::route::Matched;
use crate::shadow::state::ShadowState;
use crate::snapshot::Shared;

/// How often rollouts are evaluated.
pub const TICK: Duration = Duration::from_millis(100);
/// How often in a fleet, where the figures of the other instances arrive every two seconds.
pub const FLEET_TICK: Duration = Duration::from_millis(500);
/// How old the other instances' figures may be when the leader judges a step: they are
/// published every 2 s.
const FIGURES_MAX_AGE: Duration = Duration::from_secs(2);

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
    /// The counters (of every instance, in a fleet) when the step's window began.
    #[serde(default)]
    baseline: Tally,
    /// Unix milliseconds when the rollout stopped (paused, rolled back, aborted, complete);
    /// `None` while it runs. A stopped rollout's step holds no longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stopped_ms: Option<u64>,
}

#[derive(Clone)]
struct Tracked {
    progress: Progress,
    /// The last failure to persist a weight, logged once.
    last_error: Option<String>,
    /// In a fleet: the `mod_revision` of the route's progress in etcd (0: not written yet).
    revision: i64,
}

/// The latest moment a stored step may have begun: 9999-12-31, in Unix milliseconds.
const LATEST_MS: u64 = 253_402_300_799_000;
/// The longest reason kept with a stored progress.
const MAX_REASON: usize = 4096;

impl Progress {
    /// What a stored progress (from the state file or etcd alike) must be to be taken up: a step
    /// that exists, steps that rise within 0..=100%, a time before year 10000 and a reason of
    /// reasonable length.
    fn check(&self) -> Result<(), String> {
        if self.step >= self.steps.len() {
            return Err(format!("step {} of a rollout with {} steps does not exist", self.step + 1, self.steps.len()));
        }
        if self.steps.iter().any(|s| s.hundredths() > Percent::FULL.hundredths()) {
            return Err("a step above 100%".into());
        }
        if self.steps.windows(2).any(|w| w[0] >= w[1]) {
            return Err("steps that do not rise".into());
        }
        if self.step_started_ms > LATEST_MS {
            return Err(format!("a step begun at {} ms, past year 9999", self.step_started_ms));
        }
        if self.stopped_ms.is_some_and(|ms| ms > LATEST_MS) {
            return Err("a rollout stopped past year 9999".into());
        }
        if self.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
            return Err(format!("a reason over {MAX_REASON} bytes"));
        }
        crate::live::check_tally(&self.baseline)
    }

    /// `self` as the successor of `before`: when it stops, the moment it did (kept across
    /// changes that leave it stopped); when it runs, no such moment.
    fn stamped(mut self, before: &Progress, now: u64) -> Progress {
        self.stopped_ms = match self.status {
            RolloutStatus::Running | RolloutStatus::Starting => None,
            _ if before.status == self.status => before.stopped_ms.or(Some(now)),
            _ => Some(now),
        };
        self
    }

    /// Read a stored progress and check it ([`Progress::check`]).
    fn parse(text: &str) -> Result<Progress, String> {
        let p: Progress = serde_json::from_str(text).map_err(|e| e.to_string())?;
        p.check()?;
        Ok(p)
    }
}

impl Tracked {
    /// A route's progress as etcd holds it, checked as the state file's is.
    fn from_stored(s: &crate::cluster::store::Stored) -> Result<Tracked, String> {
        Ok(Tracked { progress: Progress::parse(&s.json)?, last_error: None, revision: s.revision })
    }
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
    fleet: Option<Arc<Fleet>>,
    /// The fleet's mirror of progress as last taken up (its change count).
    synced: Mutex<u64>,
}

/// The key of this process's counters in a tally outside a fleet.
const LOCAL: &str = "";

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
        let fleet = reloader.fleet().cloned();
        let file = if fleet.is_some() { Err(()) } else { std::fs::read_to_string(&state_file).map_err(|_| ()) };
        let saved: BTreeMap<String, serde_json::Value> = match file {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::error!("{}: not a rollout state file ({e}); rollouts start over", state_file.display());
                BTreeMap::new()
            }),
            Err(()) => BTreeMap::new(),
        };
        let now = shared.load();
        let rollouts: BTreeMap<String, Tracked> = saved
            .into_iter()
            .filter_map(|(name, value)| {
                let m = now.table.get(&name)?;
                m.route.rollout.as_ref()?;
                match Progress::parse(&value.to_string()) {
                    Ok(progress) => Some((name, Tracked { progress, last_error: None, revision: 0 })),
                    Err(e) => {
                        tracing::error!(
                            route = name,
                            "{}: {e}; this rollout starts over from the weight",
                            state_file.display()
                        );
                        None
                    }
                }
            })
            .collect();
        let published = ArcSwap::from_pointee(rollouts.clone());
        Arc::new(Control {
            reloader,
            shared,
            state_file,
            rollouts: Mutex::new(rollouts),
            published,
            fleet,
            synced: Mutex::new(0),
        })
    }

    pub fn in_fleet(&self) -> bool {
        self.fleet.is_some()
    }

    /// A route's counters now: this process's, or in a fleet every instance's.
    fn tally(&self, m: &Matched) -> Tally {
        match &self.fleet {
            Some(f) => f.tally(&m.route.name, m.reading()),
            None => [(LOCAL.to_string(), Counted { boot: crate::live::boot_id(), reading: m.reading() })].into(),
        }
    }

    /// What happened on the route since its step began.
    fn window(&self, m: &Matched, p: &Progress) -> Window {
        tally_window(&self.tally(m), &p.baseline)
    }

    /// Make `next` the route's progress, moving its weight to `weight` first if given. Alone,
    /// the weight is written to the file (the progress with the next save); in a fleet both go
    /// to etcd in one transaction, fenced on the leader's term when `by_leader`.
    fn commit(
        &self,
        route: &str,
        t: &mut Tracked,
        next: Progress,
        weight: Option<Percent>,
        by_leader: bool,
    ) -> Result<(), ChangeError> {
        let next = next.stamped(&t.progress, now_ms());
        let Some(fleet) = &self.fleet else {
            if let Some(w) = weight {
                self.write_weight(route, w)?;
            }
            t.progress = next;
            return Ok(());
        };
        let term = match by_leader {
            true => Some(fleet.term().ok_or_else(|| {
                ChangeError::Conflict("this instance no longer leads the fleet's rollouts".to_string())
            })?),
            false => None,
        };
        let json = serde_json::to_string(&next).map_err(|e| ChangeError::Conflict(e.to_string()))?;
        let weight = weight.map(|w| (route, w.as_f64()));
        match self.reloader.commit_rollout(fleet, weight, term, (route.to_string(), t.revision, json)) {
            Ok(revision) => {
                t.progress = next;
                t.revision = revision;
                Ok(())
            }
            Err(e) => {
                // Read it again from etcd before the next move.
                t.revision = -1;
                Err(e)
            }
        }
    }

    /// Take up what etcd holds of every route's progress, where it is newer than what this
    /// instance tracks.
    fn sync(&self, fleet: &Fleet, rollouts: &mut BTreeMap<String, Tracked>) -> bool {
        let (version, stored) = fleet.rollouts();
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        let stale = rollouts.values().any(|t| t.revision < 0);
        if *synced == version && !stale {
            return false;
        }
        *synced = version;
        // Gone from etcd (deleted by hand), or a first write that lost: forgotten here too, and
        // taken up again.
        rollouts.retain(|name, t| t.revision == 0 || stored.contains_key(name));
        for (name, s) in stored {
            if rollouts.get(&name).is_some_and(|t| t.revision >= s.revision) {
                continue;
            }
            match Tracked::from_stored(&s) {
                Ok(t) => {
                    Self::publish_step(&name, &t.progress);
                    rollouts.insert(name, t);
                }
                Err(e) => crate::cluster::store::refused(
                    crate::metrics::Refused::Rollout,
                    &fleet.keys.rollout(&name),
                    s.revision,
                    &e,
                ),
            }
        }
        true
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
        if let Some(fleet) = &self.fleet {
            self.sync(fleet, &mut rollouts);
        }
        if let Some(t) = rollouts.get_mut(route).filter(|t| t.progress.status == RolloutStatus::Running) {
            let reason = format!("weight set to {}% by hand (from {who}); rollout paused", weight.as_f64());
            tracing::warn!(route, "{reason}");
            let next = Progress { status: RolloutStatus::Paused, reason: Some(reason), ..t.progress.clone() };
            if let Err(e) = self.commit(route, t, next, None, false) {
                // The leader pauses it anyway when it sees a weight that is not the step's.
                tracing::warn!(route, "the pause is left to the leader: {e}");
            }
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
        // In a fleet the leader may move the same rollout meanwhile: a lost race is read again.
        let tries = if self.fleet.is_some() { 3 } else { 1 };
        let mut result = Ok(());
        for _ in 0..tries {
            if let Some(fleet) = &self.fleet {
                self.refresh(fleet, route, &mut rollouts)?;
            }
            let mut t = match rollouts.remove(route) {
                Some(t) => t,
                None => self.adopt(&m, &cfg, None, false),
            };
            result = self.apply_action(&m, &cfg, &mut t, action, who);
            Self::publish_step(route, &t.progress);
            rollouts.insert(route.to_string(), t);
            if !matches!(result, Err(ControlError::Change(ChangeError::Conflict(_)))) {
                break;
            }
        }
        self.save(&rollouts);
        result?;
        let m = self.current(route)?;
        self.describe_locked(&rollouts, &m).ok_or_else(|| ControlError::NoRollout(route.to_string()))
    }

    /// Read a route's progress from etcd now (an operator acts on what is, not on the mirror).
    fn refresh(
        &self,
        fleet: &Arc<Fleet>,
        route: &str,
        rollouts: &mut BTreeMap<String, Tracked>,
    ) -> Result<(), ControlError> {
        let name = route.to_string();
        let stored = fleet
            .call(move |s| {
                let name = name.clone();
                Box::pin(async move { s.rollout(&name).await })
            })
            .map_err(|e| ControlError::Change(ChangeError::Unavailable(e.to_string())))?;
        match stored {
            Some(s) => match Tracked::from_stored(&s) {
                Ok(t) => {
                    rollouts.insert(route.to_string(), t);
                }
                Err(e) => {
                    return Err(ControlError::Conflict(format!(
                        "the rollout progress of {route:?} in etcd is unreadable ({e}); abort or delete it"
                    )))
                }
            },
            None => {
                rollouts.remove(route);
            }
        }
        Ok(())
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
        let p = t.progress.clone();
        match (action, p.status) {
            (RolloutAction::Pause, RolloutStatus::Running) => {
                let next = Progress {
                    status: RolloutStatus::Paused,
                    reason: Some(format!("paused by hand (from {who})")),
                    ..p
                };
                self.commit(route, t, next, None, false)?;
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
                let next = Progress {
                    steps: cfg.steps.clone(),
                    step,
                    step_started_ms: now_ms(),
                    status: RolloutStatus::Running,
                    reason: Some(format!("resumed by hand (from {who})")),
                    baseline: self.tally(m),
                    stopped_ms: None,
                };
                let weight = (m.route.weight != cfg.steps[step]).then(|| cfg.steps[step]);
                self.commit(route, t, next, weight, false)?;
            }
            (RolloutAction::Abort, _) => {
                let next = Progress {
                    status: RolloutStatus::Aborted,
                    reason: Some(format!("aborted by hand (from {who}); weight 0")),
                    ..p
                };
                let weight = (!m.route.weight.is_zero()).then_some(Percent::ZERO);
                self.commit(route, t, next, weight, false)?;
            }
        }
        tracing::info!(target: "strangler::admin", peer = who, route, action = ?action, status = t.progress.status.as_str(), "rollout");
        Ok(())
    }

    // === the controller ===

    /// Start tracking a route under rollout: at the step at or below its weight (the first step
    /// when below it), moved to that step's weight. `previous`: what was tracked under other
    /// steps (its pause is kept, its etcd revision replaced).
    fn adopt(&self, m: &Matched, cfg: &Rollout, previous: Option<&Tracked>, by_leader: bool) -> Tracked {
        let weight = m.route.weight;
        let step = step_for(&cfg.steps, weight);
        let mut progress = Progress {
            steps: cfg.steps.clone(),
            step,
            step_started_ms: now_ms(),
            status: RolloutStatus::Running,
            reason: None,
            baseline: self.tally(m),
            stopped_ms: None,
        };
        let mut move_to = None;
        if weight > cfg.steps[cfg.steps.len() - 1] {
            progress.status = RolloutStatus::Complete;
            progress.reason = Some(format!("weight {}% is beyond the last step", weight.as_f64()));
        } else if weight != cfg.steps[step] {
            move_to = Some(cfg.steps[step]);
        }
        if let Some(old) = previous.filter(|old| old.progress.status != RolloutStatus::Running) {
            progress.status = old.progress.status;
            progress.reason = old.progress.reason.clone();
            progress.stopped_ms = old.progress.stopped_ms;
            move_to = None;
        }
        let mut t =
            Tracked { progress: progress.clone(), last_error: None, revision: previous.map_or(0, |old| old.revision) };
        if let Err(e) = self.commit(&m.route.name, &mut t, progress, move_to, by_leader) {
            t.progress.status = RolloutStatus::Paused;
            t.progress.stopped_ms = Some(now_ms());
            t.progress.reason = Some(format!("cannot start: {e}"));
        }
        let progress = &t.progress;
        tracing::info!(
            route = m.route.name,
            step = step + 1,
            weight = cfg.steps[step].as_f64(),
            status = progress.status.as_str(),
            "rollout taken up"
        );
        t
    }

    /// One evaluation of every rollout.
    pub fn tick(&self) {
        let mut rollouts = self.lock();
        if let Some(fleet) = &self.fleet {
            let changed = self.sync(fleet, &mut rollouts);
            if fleet.term().is_none() {
                // Not the leader: show what the leader writes, drive nothing.
                if changed {
                    self.published.store(Arc::new(rollouts.clone()));
                }
                return;
            }
        }
        let by_leader = self.fleet.is_some();
        let snap = self.shared.load();
        // The fleet's figures are read only while a rollout runs (or is about to be taken up).
        if let Some(fleet) = &self.fleet {
            if rollouts.values().any(|t| t.progress.status == RolloutStatus::Running)
                || snap.config.routes.iter().any(|r| r.rollout.is_some() && !rollouts.contains_key(&r.name))
            {
                fleet.refresh_figures_blocking(FIGURES_MAX_AGE);
            }
        }
        let mut dirty = false;
        // Something the API shows changed without a change to keep (a weight write failing).
        let mut shown = false;
        let mut gone = Vec::new();
        rollouts.retain(|name, t| {
            let keep = snap.config.route(name).is_some_and(|r| r.rollout.is_some());
            if !keep {
                let _ = METRICS.rollout_step.remove_label_values(&[name]);
                dirty = true;
                gone.push((name.clone(), t.revision));
            }
            keep
        });
        // A rollout taken out of the fleet's document leaves no progress behind in etcd (as it
        // leaves none in the state file): put back later, it starts from its weight.
        if let Some((fleet, term)) = self.fleet.as_ref().filter(|_| !gone.is_empty()).and_then(|f| Some((f, f.term()?)))
        {
            for (route, revision) in gone.into_iter().filter(|(_, r)| *r > 0) {
                let key = (route.clone(), revision);
                let done = fleet.call(move |s| {
                    let (route, revision) = key.clone();
                    Box::pin(async move { s.forget_rollout(&route, revision, term).await })
                });
                if let Err(e) = done {
                    tracing::warn!(route, "the progress of a removed rollout stays in etcd: {e}");
                }
            }
        }
        for route in &snap.config.routes {
            let (Some(cfg), Some(m)) = (&route.rollout, snap.table.get(&route.name)) else { continue };
            let mut t = match rollouts.remove(&route.name) {
                Some(t) if t.progress.steps == cfg.steps => t,
                Some(old) => {
                    // New steps: take the rollout up again from the weight, keeping a pause.
                    dirty = true;
                    self.adopt(m, cfg, Some(&old), by_leader)
                }
                None => {
                    dirty = true;
                    self.adopt(m, cfg, None, by_leader)
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
        if t.progress.status != RolloutStatus::Running || t.revision < 0 {
            return;
        }
        let by_leader = self.fleet.is_some();
        let route = m.route.name.as_str();
        let step = t.progress.step;
        // Checked when taken up, and steps that differ from the config's are re-derived.
        let Some(&expected) = cfg.steps.get(step) else { return };
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
            let next = Progress { status: RolloutStatus::Paused, reason: Some(reason), ..t.progress.clone() };
            if let Err(e) = self.commit(route, t, next, None, by_leader) {
                self.persist_failed(route, t, &e);
            }
            return;
        }
        let window = self.window(m, &t.progress);
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
            let next = Progress {
                status: RolloutStatus::Complete,
                reason: Some("every step passed".to_string()),
                ..t.progress.clone()
            };
            if let Err(e) = self.commit(route, t, next, None, by_leader) {
                self.persist_failed(route, t, &e);
            }
            return;
        }
        let differing = |state: &ShadowState, rules: &ReportRules| match &self.fleet {
            Some(f) => f.pooled_findings_blocking(&m.route.name, state.findings().clone()).differing(rules),
            None => state.findings().differing(rules),
        };
        if let Some(why) = not_ready(m, cfg, step, differing) {
            if t.progress.reason.as_deref() != Some(why.as_str()) {
                tracing::info!(route, step = step + 1, "rollout holds before the last step: {why}");
                let next = Progress { reason: Some(why), ..t.progress.clone() };
                if let Err(e) = self.commit(route, t, next, None, by_leader) {
                    self.persist_failed(route, t, &e);
                }
            }
            return;
        }
        let next = cfg.steps[step + 1];
        let progress = Progress {
            step: step + 1,
            step_started_ms: now_ms(),
            reason: None,
            baseline: self.tally(m),
            ..t.progress.clone()
        };
        match self.commit(route, t, progress, Some(next), by_leader) {
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
                t.last_error = None;
            }
            Err(e) => self.persist_failed(route, t, &e),
        }
    }

    fn fail(&self, route: &str, cfg: &Rollout, t: &mut Tracked, why: &str) {
        let step = t.progress.step + 1;
        let by_leader = self.fleet.is_some();
        match cfg.on_failure {
            OnFailure::Rollback => {
                let reason = format!("rolled back at step {step} ({}%): {why}", cfg.steps[step - 1].as_f64());
                let next =
                    Progress { status: RolloutStatus::RolledBack, reason: Some(reason.clone()), ..t.progress.clone() };
                match self.commit(route, t, next, Some(Percent::ZERO), by_leader) {
                    Ok(()) => tracing::warn!(route, "rollout {reason}; weight 0, paused"),
                    // Still running: the gate trips again on the next tick and the rollback is retried.
                    Err(e) => self.persist_failed(route, t, &e),
                }
            }
            OnFailure::Hold => {
                let reason = format!("held at step {step} ({}%): {why}", cfg.steps[step - 1].as_f64());
                tracing::warn!(route, "rollout {reason}; paused");
                let next = Progress { status: RolloutStatus::Paused, reason: Some(reason), ..t.progress.clone() };
                if let Err(e) = self.commit(route, t, next, None, by_leader) {
                    self.persist_failed(route, t, &e);
                }
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
        if self.fleet.is_some() {
            // In etcd already, written move by move.
            return;
        }
        let state: BTreeMap<&String, &Progress> = rollouts.iter().map(|(k, t)| (k, &t.progress)).collect();
        let mut text = serde_json::to_string_pretty(&state).unwrap_or_default();
        text.push('\n');
        if let Err(e) = persist::write_atomic(&self.state_file, &text, persist::Contents::Plain) {
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
            min_comparisons: cfg.min_comparisons,
            max_latency_ratio: cfg.max_latency_ratio,
            max_latency_added_ms: cfg.max_latency_added.map(|d| d.as_millis() as u64),
            on_failure: cfg.on_failure.as_str().to_string(),
        };
        let mut view = RolloutView {
            status: RolloutStatus::Starting,
            step: None,
            steps: cfg.steps.iter().map(|s| s.as_f64()).collect(),
            step_weight: None,
            held_ms: None,
            stopped_at: None,
            stopped_ms_ago: None,
            reason: None,
            error: None,
            waiting: None,
            limits,
            window: None,
        };
        let Some(t) = rollouts.get(&m.route.name) else { return Some(view) };
        let p = &t.progress;
        let w = self.window(m, p);
        let new = w.side(Side::New);
        view.status = p.status;
        view.step = Some(p.step + 1);
        view.step_weight = Some(cfg.steps.get(p.step).copied().unwrap_or_default().as_f64());
        let now = now_ms();
        // A stopped rollout's clock stopped with it: what it held until then, and since when.
        let until = p.stopped_ms.unwrap_or(now);
        view.held_ms = Some(until.saturating_sub(p.step_started_ms));
        if let Some(stopped) = p.stopped_ms {
            view.stopped_at = Some(
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(stopped)).to_string(),
            );
            view.stopped_ms_ago = Some(now.saturating_sub(stopped));
        }
        view.reason = p.reason.clone();
        view.error = t.last_error.clone();
        view.waiting = (p.status == RolloutStatus::Running)
            .then(|| {
                waiting(cfg, &w).or_else(|| match self.fleet {
                    // The leader judges on the fleet's pooled report and says so in the reason.
                    Some(_) => p.reason.clone().filter(|r| r.starts_with(NOT_READY)),
                    None => not_ready(m, cfg, p.step, |state, rules| state.findings().differing(rules)),
                })
            })
            .flatten();
        view.window = Some(GateWindow {
            new_requests: new.requests,
            error_rate: new.error_rate(),
            mismatch_rate: w.mismatch_rate(),
            latency_ratio: latency_ratio(&w),
            latency_added_ms: latency_added_ms(&w),
        });
        Some(view)
    }
}

/// How [`not_ready`]'s reason begins: in a fleet, followers recognise the leader's by it.
const NOT_READY: &str = "waiting for the cutover report to be free of differences";

/// With `require_ready`, why the step after `step` cannot be taken yet when it is the last one:
/// the endpoints whose cutover verdict is `differs`, as `differing` finds them (in the route's
/// own findings; in a fleet, the leader's pooled from every instance).
fn not_ready(
    m: &Matched,
    cfg: &Rollout,
    step: usize,
    differing: impl FnOnce(&ShadowState, &ReportRules) -> Vec<String>,
) -> Option<String> {
    if !cfg.require_ready || step + 2 != cfg.steps.len() {
        return None;
    }
    let (state, shadow) = (m.shadow.as_ref()?, m.route.shadow.as_ref()?);
    let differing = differing(state, &shadow.compare.rules);
    if differing.is_empty() {
        return None;
    }
    Some(format!(
        "{NOT_READY} before the last step ({}%): {} differ{}",
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
        let fleet = self.control.in_fleet();
        let mut every = tokio::time::interval(if fleet { FLEET_TICK } else { TICK });
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = every.tick() => match fleet {
                    // etcd calls block: off the runtime.
                    true => {
                        let control = self.control.clone();
                        // A panic in the tick is this task's: the supervisor counts it and
                        // starts the task again.
                        if let Err(e) = tokio::task::spawn_blocking(move || control.tick()).await {
                            if e.is_panic() {
                                std::panic::resume_unwind(e.into_panic());
                            }
                            tracing::error!("a rollout tick did not complete: {e}");
                        }
                    }
                    false => self.control.tick(),
                },
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
