//! Runtime control of route weights: by hand (admin API, CLI) and by the progressive rollout
//! controller. Both change a weight the same way, through [`Reloader::change`]: edit the file,
//! validate, write atomically, swap the snapshot. One lock orders them, so the controller never
//! advances over an operator's change.
//!
//! A route with `[routes.rollout]` walks its steps: at each step it holds for `hold`, and passes
//! once the new side served `min_requests` and its error rate, shadow mismatch rate and p99
//! against legacy (all since the step began) are within the limits. A gate that is certain to
//! fail trips at once (`on_failure`). What to do is the pure [`machine`](super::machine)'s
//! decision; this controller reads the world for it (weights, counters, the clock) and writes
//! each move through a [`ProgressStore`]: a state file beside the config alone, so a restart
//! resumes at the same step; etcd in a fleet.
//!
//! In a fleet, only the elected leader drives rollouts, on the fleet's figures (every
//! instance's counters summed); progress (step, hold clock, the counters the step's window
//! starts from) lives in etcd under `PREFIX/rollout/ROUTE`. A step's weight and its progress are
//! written in one transaction, fenced on the leader's term: a new leader resumes from exactly
//! what the old one wrote, and a deposed one writes nothing. Operators' actions (from any
//! instance) are compare-and-swaps on the same key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::json;

use super::machine::{self, Decision, Event, Move, Now, Progress, RolloutAction, RolloutStatus};
use super::progress::{EtcdStore, FileStore, ProgressStore, Revision, Tracked};
use super::reload::{ChangeError, Reloader};
use crate::compare::findings::Significant;
use crate::config::operations::NoticeKind;
use crate::config::rollout::Rollout;
use crate::config::schedule::rfc3339;
use crate::core::Percent;
use crate::live::{Tally, Window};
use crate::metrics::METRICS;
use crate::notifications::{self, Notice};
use crate::route::Matched;
use crate::snapshot::Shared;

/// How often rollouts are evaluated.
pub const TICK: Duration = Duration::from_millis(100);
/// How often in a fleet, where the figures of the other instances arrive every two seconds.
pub const FLEET_TICK: Duration = Duration::from_millis(500);

/// What time it is, in Unix milliseconds: the system's, or a test's.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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

/// A route's rollout as the API shows it: what is tracked, the step's window, and why it waits.
pub struct RolloutState {
    pub tracked: Tracked,
    pub window: Window,
    pub waiting: Option<String>,
    pub now_ms: u64,
}

pub struct Control {
    reloader: Arc<Reloader>,
    shared: Arc<Shared>,
    store: Box<dyn ProgressStore>,
    clock: Arc<dyn Clock>,
    /// Held across a whole tick or change, weight writes included: they never interleave.
    rollouts: tokio::sync::Mutex<BTreeMap<String, Tracked>>,
    /// A copy of `rollouts` as of the last change, for the API: reading it never waits on a
    /// tick that holds the lock through a weight write (an fsync).
    published: ArcSwap<BTreeMap<String, Tracked>>,
}

impl Control {
    /// The controller of this process: its progress in the state file, or in a fleet in etcd;
    /// every rollout taken up where it was.
    pub fn new(reloader: Arc<Reloader>, shared: Arc<Shared>) -> Arc<Self> {
        let store: Box<dyn ProgressStore> = match reloader.fleet() {
            Some(fleet) => Box::new(EtcdStore::new(reloader.clone(), fleet.clone())),
            None => Box::new(FileStore::new(reloader.clone())),
        };
        Self::with(reloader, shared, store, Arc::new(SystemClock))
    }

    /// A controller on a given store and clock.
    pub fn with(
        reloader: Arc<Reloader>,
        shared: Arc<Shared>,
        store: Box<dyn ProgressStore>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let now = shared.load();
        let rollouts: BTreeMap<String, Tracked> = store
            .load()
            .into_iter()
            .filter(|(name, _)| now.table.get(name).is_some_and(|m| m.route.rollout.is_some()))
            .map(|(name, p)| (name, Tracked::new(p, Revision::Unwritten)))
            .collect();
        let published = ArcSwap::from_pointee(rollouts.clone());
        Arc::new(Control { reloader, shared, store, clock, rollouts: tokio::sync::Mutex::new(rollouts), published })
    }

    pub fn in_fleet(&self) -> bool {
        self.store.shared()
    }

    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    fn now<'a>(&self, m: &Matched, tally: &'a Tally) -> Now<'a> {
        // Re-read: a change written during this tick is in the newest snapshot.
        let weight = self.shared.load().table.get(&m.route.name).map_or(m.route.weight, |m| m.route.weight);
        Now { weight, tally, ms: self.clock.now_ms(), shadowed: m.shadow.is_some() && m.route.shadow.is_some() }
    }

    /// Write `mv` through the store and make it the route's progress; logged once written.
    async fn commit(&self, route: &str, t: &mut Tracked, mv: Move, by_leader: bool) -> Result<(), ChangeError> {
        match self.store.commit(route, t.revision, &mv.progress, mv.weight, by_leader).await {
            Ok(revision) => {
                t.progress = mv.progress;
                t.revision = revision;
                t.last_error = None;
                log(route, &mv.event);
                notifications::send(rollout_notice(route, &mv.event));
                Ok(())
            }
            Err(e) => {
                if self.store.shared() {
                    // Read it again from etcd before the next move.
                    t.revision = Revision::Stale;
                }
                Err(e)
            }
        }
    }

    fn current(&self, route: &str) -> Result<Matched, ControlError> {
        self.shared.load().table.get(route).cloned().ok_or_else(|| ControlError::NoRoute(route.to_string()))
    }

    /// Keep the progress, and show it to the API.
    async fn save(&self, rollouts: &BTreeMap<String, Tracked>) {
        self.published.store(Arc::new(rollouts.clone()));
        self.store.save(rollouts).await;
    }

    // === by hand ===

    /// Set a route's weight from the admin API. A running rollout on the route is paused: the
    /// operator wins.
    pub async fn set_weight(&self, route: &str, weight: Percent, who: &By) -> Result<WeightChange, ControlError> {
        let mut rollouts = self.rollouts.lock().await;
        let old = self.current(route)?.route.weight;
        if old != weight {
            self.reloader.set_weight(route, weight).await?;
            notifications::send(Notice::weight(route, old, weight, who.via.as_str(), Some(&who.peer)));
        }
        tracing::info!(
            target: "strangler::admin",
            peer = who.peer.as_str(),
            via = who.via.as_str(),
            route,
            old = old.as_f64(),
            new = weight.as_f64(),
            "weight set"
        );
        self.store.sync(&mut rollouts);
        let mut rollout_paused = false;
        if let Some(t) = rollouts.get_mut(route) {
            if let Some(mv) = machine::weight_set_by_hand(&t.progress, weight, &who.to_string(), self.clock.now_ms()) {
                if let Err(e) = self.commit(route, t, mv, false).await {
                    // The leader pauses it anyway when it sees a weight that is not the step's.
                    tracing::warn!(route, "the pause is left to the leader: {e}");
                }
                rollout_paused = true;
                self.save(&rollouts).await;
            }
        }
        Ok(WeightChange { old: old.as_f64(), new: weight.as_f64(), rollout_paused })
    }

    /// Pause, resume or abort a route's rollout.
    pub async fn act(&self, route: &str, action: RolloutAction, who: &By) -> Result<(), ControlError> {
        let who = &who.to_string();
        let mut rollouts = self.rollouts.lock().await;
        let m = self.current(route)?;
        let cfg = m.route.rollout.clone().ok_or_else(|| ControlError::NoRollout(route.to_string()))?;
        // In a fleet the leader may move the same rollout meanwhile: a lost race is read again.
        let tries = if self.store.shared() { 3 } else { 1 };
        let mut result = Ok(());
        for _ in 0..tries {
            self.store.refresh(route, &mut rollouts).await?;
            let mut t = match rollouts.remove(route) {
                Some(t) => t,
                None => self.adopt(&m, &cfg, None, false).await,
            };
            let tally = self.store.tally(&m);
            result = match machine::act(&t.progress, &cfg, action, &self.now(&m, &tally), who) {
                Err(why) => Err(ControlError::Conflict(format!("the rollout of {route:?} {why}"))),
                Ok(None) => Ok(()),
                Ok(Some(mv)) => self.commit(route, &mut t, mv, false).await.map_err(ControlError::from),
            };
            publish_step(route, &t.progress);
            rollouts.insert(route.to_string(), t);
            if !matches!(result, Err(ControlError::Change(ChangeError::Conflict(_)))) {
                break;
            }
        }
        self.save(&rollouts).await;
        result
    }

    // === the controller ===

    /// Start tracking a route under rollout (see [`machine::adopt`]). `previous`: what was
    /// tracked under other steps (its pause is kept, its revision replaced).
    async fn adopt(&self, m: &Matched, cfg: &Rollout, previous: Option<&Tracked>, by_leader: bool) -> Tracked {
        let tally = self.store.tally(m);
        let mv = machine::adopt(cfg, &self.now(m, &tally), previous.map(|t| &t.progress));
        let progress = mv.progress.clone();
        let mut t = Tracked::new(progress.clone(), previous.map_or(Revision::Unwritten, |old| old.revision));
        if let Err(e) = self.commit(&m.route.name, &mut t, mv, by_leader).await {
            t.progress = machine::cannot_start(&progress, &e.to_string(), self.clock.now_ms());
        }
        t
    }

    /// One evaluation of every rollout.
    pub async fn tick(&self) {
        let mut rollouts = self.rollouts.lock().await;
        let changed = self.store.sync(&mut rollouts);
        if !self.store.leads() {
            // Not the leader: show what the leader writes, drive nothing.
            if changed {
                rollouts.iter().for_each(|(route, t)| publish_step(route, &t.progress));
                self.published.store(Arc::new(rollouts.clone()));
            }
            return;
        }
        let by_leader = self.store.shared();
        let snap = self.shared.load_full();
        // The fleet's figures are read only while a rollout runs (or is about to be taken up).
        if rollouts.values().any(|t| t.progress.status == RolloutStatus::Running)
            || snap.config.routes.iter().any(|r| r.rollout.is_some() && !rollouts.contains_key(&r.name))
        {
            self.store.refresh_figures().await;
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
        // A rollout taken out of the config leaves no progress behind: put back later, it
        // starts from its weight.
        if !gone.is_empty() {
            self.store.forget(gone).await;
        }
        for route in &snap.config.routes {
            let (Some(cfg), Some(m)) = (&route.rollout, snap.table.get(&route.name)) else { continue };
            let mut t = match rollouts.remove(&route.name) {
                Some(t) if t.progress.steps == cfg.steps => t,
                old => {
                    // New steps: take the rollout up again from the weight, keeping a pause.
                    dirty = true;
                    self.adopt(m, cfg, old.as_ref(), by_leader).await
                }
            };
            let before = (t.progress.step, t.progress.status, t.progress.reason.clone());
            let error_before = t.last_error.clone();
            self.drive(m, cfg, &mut t, by_leader).await;
            dirty |= before != (t.progress.step, t.progress.status, t.progress.reason.clone());
            shown |= error_before != t.last_error;
            publish_step(&route.name, &t.progress);
            rollouts.insert(route.name.clone(), t);
        }
        if dirty {
            self.save(&rollouts).await;
        } else if shown {
            self.published.store(Arc::new(rollouts.clone()));
        }
    }

    async fn drive(&self, m: &Matched, cfg: &Rollout, t: &mut Tracked, by_leader: bool) {
        if t.revision == Revision::Stale {
            return;
        }
        let route = m.route.name.as_str();
        let tally = self.store.tally(m);
        let now = self.now(m, &tally);
        let mut decision = machine::next(&t.progress, cfg, &now, None);
        if let Decision::AskReadiness = decision {
            let mut differing: Vec<String> = self.significant(m).await.into_iter().map(|s| s.endpoint).collect();
            differing.dedup();
            decision = machine::next(&t.progress, cfg, &now, Some(&differing));
        }
        let Decision::Move(mv) = decision else { return };
        if let Err(e) = self.commit(route, t, *mv, by_leader).await {
            // A rollback that could not be written stays running: the gate trips again on the
            // next tick and the rollback is retried.
            let msg = e.to_string();
            if t.last_error.as_deref() != Some(msg.as_str()) {
                tracing::error!(route, "rollout cannot change the weight: {msg}");
            }
            t.last_error = Some(msg);
        }
    }

    /// A shadowed route's findings that count now (every instance's, in a fleet); none for a
    /// route that does not compare.
    pub async fn significant(&self, m: &Matched) -> Vec<Significant> {
        match (&m.shadow, &m.route.shadow) {
            (Some(state), Some(shadow)) => self.store.significant(&m.route.name, state, &shadow.compare.rules).await,
            _ => Vec::new(),
        }
    }

    /// Whether this instance drives the rollouts (always, alone; the elected one, in a fleet).
    pub fn leads(&self) -> bool {
        self.store.leads()
    }

    // === what the API shows ===

    /// Where a route's rollout stands, for the API; `None` when it has no rollout, or the
    /// controller has not taken it up yet (after a start or a reload). Never waits on a tick.
    pub fn state(&self, m: &Matched) -> Option<RolloutState> {
        let cfg = m.route.rollout.as_ref()?;
        let t = self.published.load().get(&m.route.name).cloned()?;
        let p = &t.progress;
        let window = p.window(&self.store.tally(m));
        let waiting = (p.status == RolloutStatus::Running)
            .then(|| {
                super::gates::waiting(cfg, &window).or_else(|| match self.store.shared() {
                    // The leader judges on the fleet's pooled report and says so in the reason.
                    true => p.reason.clone().filter(|r| r.starts_with(machine::NOT_READY)),
                    false => {
                        let (state, shadow) = (m.shadow.as_ref()?, m.route.shadow.as_ref()?);
                        machine::not_ready(cfg, p.step, &state.findings().differing(&shadow.compare.rules))
                    }
                })
            })
            .flatten();
        Some(RolloutState { tracked: t, window, waiting, now_ms: self.clock.now_ms() })
    }
}

/// Who changed something by hand: the peer's address and the tool it used.
#[derive(Debug, Clone)]
pub struct By {
    pub peer: String,
    pub via: Via,
}

/// The tool behind an admin API request, from its `X-Strangler-Client` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Api,
    Cli,
    Console,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Cli => "cli",
            Via::Console => "console",
        }
    }
}

/// `127.0.0.1:50312 via cli`.
impl std::fmt::Display for By {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", self.peer, self.via.as_str())
    }
}

/// A rollout's event, for the notifications: its words as the log has them, and its figures.
fn rollout_notice(route: &str, event: &Event) -> Notice {
    let pct = |p: &Percent| p.as_f64();
    let (name, details) = match event {
        Event::TakenUp { step, weight } => ("started", json!({ "step": step, "weight": pct(weight) })),
        Event::StepPassed { step, from, to, figures } => {
            ("step_passed", json!({ "step": step, "from": pct(from), "to": pct(to), "figures": figures }))
        }
        Event::Completed { step, figures } => ("completed", json!({ "step": step, "figures": figures })),
        Event::RolledBack { step, weight, failure } => {
            ("rolled_back", json!({ "step": step, "weight": pct(weight), "gate": failure }))
        }
        Event::Held { step, weight, failure } => {
            ("held", json!({ "step": step, "weight": pct(weight), "gate": failure }))
        }
        Event::Waiting { step, reason } => ("waiting", json!({ "step": step, "reason": reason })),
        Event::Scheduled { step, closed, until } => (
            "outside_schedule",
            json!({ "step": step, "closed": closed.to_string(), "next_opening": until.map(rfc3339) }),
        ),
        Event::WeightChangedOutside { step, weight, expected } => (
            "paused",
            json!({ "step": step, "weight": pct(weight), "expected": pct(expected), "why": "weight changed outside the rollout" }),
        ),
        Event::WeightSetByHand { weight, who } => {
            ("paused", json!({ "weight": pct(weight), "by": who, "why": "weight set by hand" }))
        }
        Event::ByHand { action, who } => {
            let name = match action {
                RolloutAction::Pause => "paused",
                RolloutAction::Resume => "resumed",
                RolloutAction::Abort => "aborted",
            };
            (name, json!({ "by": who }))
        }
    };
    Notice::new(NoticeKind::Rollout, name, Some(route), event.to_string(), details)
}

/// The log line of a rollout's event, at the level it deserves.
fn log(route: &str, event: &Event) {
    match event {
        Event::RolledBack { .. }
        | Event::Held { .. }
        | Event::WeightChangedOutside { .. }
        | Event::WeightSetByHand { .. } => {
            tracing::warn!(route, "{event}")
        }
        Event::ByHand { action, who } => {
            tracing::info!(target: "strangler::admin", peer = who.as_str(), route, action = action.as_str(), "{event}")
        }
        _ => tracing::info!(route, "{event}"),
    }
}

fn publish_step(route: &str, p: &Progress) {
    let step = match p.status {
        RolloutStatus::RolledBack | RolloutStatus::Aborted => 0,
        _ => p.step as i64 + 1,
    };
    METRICS.rollout_step.with_label_values(&[route]).set(step);
}

/// The background task that drives rollouts.
pub struct RolloutService {
    control: Arc<Control>,
}

impl RolloutService {
    pub fn new(control: Arc<Control>) -> Self {
        RolloutService { control }
    }

    /// Tick until `shutdown` says stop.
    pub async fn run(&self, mut shutdown: ShutdownWatch) {
        let period = if self.control.in_fleet() { FLEET_TICK } else { TICK };
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = every.tick() => self.control.tick().await,
            }
        }
    }
}

#[async_trait]
impl BackgroundService for RolloutService {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.run(shutdown).await;
    }
}
