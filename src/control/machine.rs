//! The rollout as a pure machine: given a route's progress, its `[routes.rollout]`, its weight,
//! its counters and the time, what happens next. No I/O and no clock: the controller
//! ([`super::rollout`]) reads those, asks [`next`] (or [`act`], [`adopt`], [`weight_set_by_hand`])
//! and writes the [`Move`] it gets through its [`super::progress::ProgressStore`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::gates::{figures, judge, waiting, GateFailure};
use crate::config::rollout::{OnFailure, Rollout};
use crate::config::schedule::{rfc3339, Closed};
use crate::core::Percent;
use crate::live::{tally_window, Tally, Window};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Configured, not yet taken up by the controller (the first tick after start or reload).
    Starting,
    Running,
    Paused,
    RolledBack,
    Aborted,
    Complete,
}

impl RolloutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Starting => "starting",
            RolloutStatus::Running => "running",
            RolloutStatus::Paused => "paused",
            RolloutStatus::RolledBack => "rolled_back",
            RolloutStatus::Aborted => "aborted",
            RolloutStatus::Complete => "complete",
        }
    }
}

/// An operator's action on a rollout: `POST /api/v1/routes/{name}/rollout/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    Pause,
    Resume,
    Abort,
}

impl RolloutAction {
    pub const ALL: [RolloutAction; 3] = [RolloutAction::Pause, RolloutAction::Resume, RolloutAction::Abort];

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Abort => "abort",
        }
    }

    pub fn parse(s: &str) -> Option<RolloutAction> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A route's rollout progress, as the state file and etcd keep it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// The steps `step` indexes (in the file: hundredths of a percent); a config with other
    /// steps re-derives the step from the weight.
    pub steps: Vec<Percent>,
    /// Index into `steps`.
    pub step: usize,
    /// Unix milliseconds when the current step began: the hold survives restarts.
    pub step_started_ms: u64,
    pub status: RolloutStatus,
    pub reason: Option<String>,
    /// The counters (of every instance, in a fleet) when the step's window began.
    #[serde(default)]
    pub baseline: Tally,
    /// Unix milliseconds when the rollout stopped (paused, rolled back, aborted, complete);
    /// `None` while it runs. A stopped rollout's step holds no longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_ms: Option<u64>,
    /// The gate that stopped it, when one did (rolled back, or held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_gate: Option<GateFailure>,
}

/// The latest moment a stored step may have begun: 9999-12-31, in Unix milliseconds.
const LATEST_MS: u64 = 253_402_300_799_000;
/// The longest reason kept with a stored progress.
const MAX_REASON: usize = 4096;

impl Progress {
    /// What a stored progress (from the state file or etcd alike) must be to be taken up: a step
    /// that exists, steps that rise within 0..=100%, a time before year 10000 and a reason of
    /// reasonable length.
    pub fn check(&self) -> Result<(), String> {
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

    /// Read a stored progress and check it ([`Progress::check`]).
    pub fn parse(text: &str) -> Result<Progress, String> {
        let p: Progress = serde_json::from_str(text).map_err(|e| e.to_string())?;
        p.check()?;
        Ok(p)
    }

    /// What happened on the route since its step began, from its counters `now`.
    pub fn window(&self, now: &Tally) -> Window {
        tally_window(now, &self.baseline)
    }

    /// `self` as the successor of `before`: when it stops, the moment it did (kept across
    /// changes that leave it stopped); when it runs, no such moment.
    fn stamped(mut self, before: &Progress, now_ms: u64) -> Progress {
        self.stopped_ms = match self.status {
            RolloutStatus::Running | RolloutStatus::Starting => None,
            _ if before.status == self.status => before.stopped_ms.or(Some(now_ms)),
            _ => Some(now_ms),
        };
        self
    }

    fn with(&self, status: RolloutStatus, reason: String) -> Progress {
        Progress { status, reason: Some(reason), ..self.clone() }
    }
}

/// What the machine reads of the world at one moment.
pub struct Now<'a> {
    /// The route's weight as served now.
    pub weight: Percent,
    /// The route's counters now (every instance's, in a fleet).
    pub tally: &'a Tally,
    /// Unix milliseconds.
    pub ms: u64,
    /// The route shadows and compares: its cutover report can hold the last step.
    pub shadowed: bool,
}

/// A rollout's next progress, the weight to move to with it (if it moves), and what happened.
#[derive(Debug, Clone)]
pub struct Move {
    pub progress: Progress,
    pub weight: Option<Percent>,
    pub event: Event,
}

/// What happened to a rollout, for the log (and whoever else listens).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The controller started tracking it, at this step (1-based).
    TakenUp {
        step: usize,
        weight: Percent,
    },
    StepPassed {
        step: usize,
        from: Percent,
        to: Percent,
        figures: String,
    },
    Completed {
        step: usize,
        figures: String,
    },
    RolledBack {
        step: usize,
        weight: Percent,
        failure: GateFailure,
    },
    Held {
        step: usize,
        weight: Percent,
        failure: GateFailure,
    },
    /// Held before the last step by the cutover report.
    Waiting {
        step: usize,
        reason: String,
    },
    /// The step held and passed its gates, but the schedule holds it until `until` (Unix ms;
    /// `None`: no opening in sight).
    Scheduled {
        step: usize,
        closed: Closed,
        until: Option<u64>,
    },
    /// The weight is not the step's: someone changed it outside the rollout.
    WeightChangedOutside {
        step: usize,
        weight: Percent,
        expected: Percent,
    },
    /// The weight was set by hand through strangler (API, CLI, console).
    WeightSetByHand {
        weight: Percent,
        who: String,
    },
    ByHand {
        action: RolloutAction,
        who: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::TakenUp { step, weight } => write!(f, "rollout taken up at step {step} ({}%)", weight.as_f64()),
            Event::StepPassed { step, from, to, figures } => write!(
                f,
                "rollout step {step} passed ({figures}); now step {} ({}% -> {}%)",
                step + 1,
                from.as_f64(),
                to.as_f64()
            ),
            Event::Completed { step, figures } => {
                write!(f, "rollout complete: every step passed, the last ({step}) with {figures}")
            }
            Event::RolledBack { step, weight, failure } => {
                write!(f, "rollout rolled back at step {step} ({}%): {failure}; weight 0, paused", weight.as_f64())
            }
            Event::Held { step, weight, failure } => {
                write!(f, "rollout held at step {step} ({}%): {failure}; paused", weight.as_f64())
            }
            Event::Waiting { reason, .. } => write!(f, "rollout holds before the last step: {reason}"),
            Event::Scheduled { step, closed, until } => {
                write!(f, "rollout step {step} may pass but is {closed}")?;
                match until {
                    Some(ms) => write!(f, "; next opening {}", rfc3339(*ms)),
                    None => write!(f, "; no opening in sight"),
                }
            }
            Event::WeightChangedOutside { step, weight, expected } => write!(
                f,
                "weight changed to {}% outside the rollout (step {step} is {}%); paused, resume to continue",
                weight.as_f64(),
                expected.as_f64()
            ),
            Event::WeightSetByHand { weight, who } => {
                write!(f, "weight set to {}% by hand (from {who}); rollout paused", weight.as_f64())
            }
            Event::ByHand { action, who } => write!(f, "rollout {} by hand (from {who})", action.past()),
        }
    }
}

impl RolloutAction {
    fn past(self) -> &'static str {
        match self {
            RolloutAction::Pause => "paused",
            RolloutAction::Resume => "resumed",
            RolloutAction::Abort => "aborted",
        }
    }
}

/// What one evaluation of a running rollout decides.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Nothing to write.
    Stay,
    Move(Box<Move>),
    /// The step would pass to the last one, which `require_ready` holds until the cutover
    /// report has no endpoint that differs: ask again with the endpoints that do.
    AskReadiness,
}

/// The step at or below `weight`; the first step when below them all.
pub fn step_for(steps: &[Percent], weight: Percent) -> usize {
    steps.iter().rposition(|s| *s <= weight).unwrap_or(0)
}

/// How [`not_ready`]'s reason begins: in a fleet, followers recognise the leader's by it.
pub const NOT_READY: &str = "waiting for the cutover report to be free of differences";

/// Why the step after `step` cannot be taken yet, when it is the last one and `differing` (the
/// endpoints whose verdict is `differs`) is not empty; only with `require_ready`.
pub fn not_ready(cfg: &Rollout, step: usize, differing: &[String]) -> Option<String> {
    if !cfg.require_ready || step + 2 != cfg.steps.len() || differing.is_empty() {
        return None;
    }
    Some(format!(
        "{NOT_READY} before the last step ({}%): {} differ{}",
        cfg.steps[step + 1].as_f64(),
        differing.join(", "),
        if differing.len() == 1 { "s" } else { "" }
    ))
}

/// One evaluation of a rollout: pause it when its weight is not its step's, stop it when a gate
/// fails, pass the step once it held and every gate passed. `differing` is what
/// [`Decision::AskReadiness`] asked for, `None` until asked.
pub fn next(p: &Progress, cfg: &Rollout, now: &Now, differing: Option<&[String]>) -> Decision {
    if p.status != RolloutStatus::Running {
        return Decision::Stay;
    }
    let step = p.step;
    // Checked when taken up, and steps that differ from the config's are re-derived.
    let Some(&expected) = cfg.steps.get(step) else { return Decision::Stay };
    let stop = |status, event: Event| {
        let failed_gate = match &event {
            Event::RolledBack { failure, .. } | Event::Held { failure, .. } => Some(failure.clone()),
            _ => None,
        };
        let progress = Progress { failed_gate, ..p.with(status, reason_of(&event)) }.stamped(p, now.ms);
        let weight = matches!(event, Event::RolledBack { .. }).then_some(Percent::ZERO);
        Decision::Move(Box::new(Move { progress, weight, event }))
    };
    if now.weight != expected {
        let event = Event::WeightChangedOutside { step: step + 1, weight: now.weight, expected };
        return stop(RolloutStatus::Paused, event);
    }
    let window = p.window(now.tally);
    let held = now.ms.saturating_sub(p.step_started_ms) >= cfg.hold.as_millis() as u64;
    let last = held && waiting(cfg, &window).is_none();
    if let Err(failure) = judge(cfg, &window, last) {
        return match cfg.on_failure {
            OnFailure::Rollback => {
                stop(RolloutStatus::RolledBack, Event::RolledBack { step: step + 1, weight: expected, failure })
            }
            OnFailure::Hold => stop(RolloutStatus::Paused, Event::Held { step: step + 1, weight: expected, failure }),
        };
    }
    if !last {
        return Decision::Stay;
    }
    if step + 1 == cfg.steps.len() {
        let event = Event::Completed { step: step + 1, figures: figures(cfg, &window) };
        let progress = p.with(RolloutStatus::Complete, "every step passed".to_string()).stamped(p, now.ms);
        return Decision::Move(Box::new(Move { progress, weight: None, event }));
    }
    if cfg.require_ready && now.shadowed && step + 2 == cfg.steps.len() {
        let Some(differing) = differing else { return Decision::AskReadiness };
        if let Some(why) = not_ready(cfg, step, differing) {
            if p.reason.as_deref() == Some(why.as_str()) {
                return Decision::Stay;
            }
            let event = Event::Waiting { step: step + 1, reason: why.clone() };
            return Decision::Move(Box::new(Move {
                progress: Progress { reason: Some(why), ..p.clone() },
                weight: None,
                event,
            }));
        }
    }
    // Office hours and freezes hold an advance, never a rollback (judged above) or completion.
    if let Some(closed) = cfg.schedule.closed(now.ms) {
        let event = Event::Scheduled { step: step + 1, closed, until: cfg.schedule.next_open(now.ms) };
        let why = event.to_string();
        if p.reason.as_deref() == Some(why.as_str()) {
            return Decision::Stay;
        }
        return Decision::Move(Box::new(Move {
            progress: Progress { reason: Some(why), ..p.clone() },
            weight: None,
            event,
        }));
    }
    let to = cfg.steps[step + 1];
    let progress =
        Progress { step: step + 1, step_started_ms: now.ms, reason: None, baseline: now.tally.clone(), ..p.clone() };
    let event = Event::StepPassed { step: step + 1, from: expected, to, figures: figures(cfg, &window) };
    Decision::Move(Box::new(Move { progress, weight: Some(to), event }))
}

/// The reason a stopped rollout keeps: what stopped it, in the words the API and `status` show.
fn reason_of(event: &Event) -> String {
    match event {
        Event::RolledBack { step, weight, failure } => {
            format!("rolled back at step {step} ({}%): {failure}", weight.as_f64())
        }
        Event::Held { step, weight, failure } => format!("held at step {step} ({}%): {failure}", weight.as_f64()),
        Event::ByHand { action, who } => format!(
            "{} by hand (from {who}){}",
            action.past(),
            if *action == RolloutAction::Abort { "; weight 0" } else { "" }
        ),
        other => other.to_string(),
    }
}

/// Start tracking a route under rollout: at the step at or below its weight (the first step
/// when below them all), moved to that step's weight. `previous`: what was tracked under other
/// steps, whose pause is kept.
pub fn adopt(cfg: &Rollout, now: &Now, previous: Option<&Progress>) -> Move {
    let step = step_for(&cfg.steps, now.weight);
    let mut progress = Progress {
        steps: cfg.steps.clone(),
        step,
        step_started_ms: now.ms,
        status: RolloutStatus::Running,
        reason: None,
        baseline: now.tally.clone(),
        stopped_ms: None,
        failed_gate: None,
    };
    let mut weight = None;
    if now.weight > cfg.steps[cfg.steps.len() - 1] {
        progress.status = RolloutStatus::Complete;
        progress.reason = Some(format!("weight {}% is beyond the last step", now.weight.as_f64()));
    } else if now.weight != cfg.steps[step] {
        weight = Some(cfg.steps[step]);
    }
    if let Some(old) = previous.filter(|old| old.status != RolloutStatus::Running) {
        progress.status = old.status;
        progress.reason = old.reason.clone();
        progress.stopped_ms = old.stopped_ms;
        progress.failed_gate = old.failed_gate.clone();
        weight = None;
    }
    let progress = progress.clone().stamped(&progress, now.ms);
    Move { progress, weight, event: Event::TakenUp { step: step + 1, weight: cfg.steps[step] } }
}

/// A rollout that could not be taken up (its first weight could not be written): paused, with why.
pub fn cannot_start(progress: &Progress, why: &str, now_ms: u64) -> Progress {
    Progress {
        status: RolloutStatus::Paused,
        stopped_ms: Some(now_ms),
        reason: Some(format!("cannot start: {why}")),
        ..progress.clone()
    }
}

/// An operator's action. `Ok(None)`: nothing to do (pausing a paused rollout, resuming a running
/// one); `Err`: the action makes no sense in this state, and why.
pub fn act(p: &Progress, cfg: &Rollout, action: RolloutAction, now: &Now, who: &str) -> Result<Option<Move>, String> {
    let event = Event::ByHand { action, who: who.to_string() };
    let (progress, weight) = match (action, p.status) {
        (RolloutAction::Pause, RolloutStatus::Running) => (p.with(RolloutStatus::Paused, reason_of(&event)), None),
        (RolloutAction::Pause, RolloutStatus::Paused) | (RolloutAction::Resume, RolloutStatus::Running) => {
            return Ok(None)
        }
        (RolloutAction::Pause, other) | (RolloutAction::Resume, other @ RolloutStatus::Complete) => {
            return Err(format!("is {}; nothing to {}", other.as_str(), action.as_str()))
        }
        (RolloutAction::Resume, _) => {
            // Continue from the step at or below the current weight (step 1 after a rollback or
            // an abort), at that step's weight.
            let step = step_for(&cfg.steps, now.weight);
            let progress = Progress {
                steps: cfg.steps.clone(),
                step,
                step_started_ms: now.ms,
                status: RolloutStatus::Running,
                reason: Some(reason_of(&event)),
                baseline: now.tally.clone(),
                stopped_ms: None,
                failed_gate: None,
            };
            (progress, (now.weight != cfg.steps[step]).then(|| cfg.steps[step]))
        }
        (RolloutAction::Abort, _) => {
            (p.with(RolloutStatus::Aborted, reason_of(&event)), (!now.weight.is_zero()).then_some(Percent::ZERO))
        }
    };
    Ok(Some(Move { progress: progress.stamped(p, now.ms), weight, event }))
}

/// The weight was set by hand: a running rollout pauses (the operator wins).
pub fn weight_set_by_hand(p: &Progress, weight: Percent, who: &str, now_ms: u64) -> Option<Move> {
    if p.status != RolloutStatus::Running {
        return None;
    }
    let event = Event::WeightSetByHand { weight, who: who.to_string() };
    let progress = p.with(RolloutStatus::Paused, event.to_string()).stamped(p, now_ms);
    Some(Move { progress, weight: None, event })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::Side;
    use crate::live::{Counted, Live};

    const MIN: u64 = 60_000;

    fn cfg() -> Rollout {
        Rollout {
            steps: vec![Percent::from_hundredths(1000), Percent::from_hundredths(5000), Percent::FULL],
            hold: Duration::from_millis(MIN),
            min_requests: 100,
            max_error_rate: 1.0,
            max_mismatch_rate: None,
            min_comparisons: 100,
            max_latency_ratio: 1.5,
            max_latency_added: None,
            on_failure: OnFailure::Rollback,
            require_ready: false,
            schedule: Default::default(),
        }
    }

    /// Counters after `new` requests to new (of which `errors` failed) and as many to legacy,
    /// all 10 ms.
    fn tally(new: u64, errors: u64) -> Tally {
        let live = Live::new();
        for i in 0..new {
            live.record(Side::New, i < errors, Some(Duration::from_millis(10)));
            live.record(Side::Legacy, false, Some(Duration::from_millis(10)));
        }
        [(String::new(), Counted { boot: 1, reading: live.read(0, 0) })].into()
    }

    /// Running at `step` (0-based) since t = 0, from zero counters.
    fn running(step: usize) -> Progress {
        Progress {
            steps: cfg().steps,
            step,
            step_started_ms: 0,
            status: RolloutStatus::Running,
            reason: None,
            baseline: tally(0, 0),
            stopped_ms: None,
            failed_gate: None,
        }
    }

    fn at(weight: u32, tally: &Tally, ms: u64) -> Now<'_> {
        Now { weight: Percent::from_hundredths(weight), tally, ms, shadowed: true }
    }

    fn moved(d: Decision) -> Move {
        match d {
            Decision::Move(m) => *m,
            other => panic!("expected a move, got {other:?}"),
        }
    }

    #[test]
    fn each_evaluation_decides_as_the_table_says() {
        let (quiet, healthy, failing) = (tally(0, 0), tally(200, 0), tally(200, 20));
        // (what, progress, config, weight, counters, now ms, status after (None: stays), weight written)
        type Case<'a> = (&'a str, Progress, Rollout, u32, &'a Tally, u64, Option<RolloutStatus>, Option<u32>);
        let hold = Rollout { on_failure: OnFailure::Hold, ..cfg() };
        let cases: Vec<Case> = vec![
            ("healthy, not held yet", running(0), cfg(), 1000, &healthy, MIN - 1, None, None),
            ("held, too few requests", running(0), cfg(), 1000, &quiet, MIN, None, None),
            (
                "held and healthy: next step",
                running(0),
                cfg(),
                1000,
                &healthy,
                MIN,
                Some(RolloutStatus::Running),
                Some(5000),
            ),
            ("the last step passed", running(2), cfg(), 10_000, &healthy, MIN, Some(RolloutStatus::Complete), None),
            (
                "10% errors: rolled back at once",
                running(0),
                cfg(),
                1000,
                &failing,
                1,
                Some(RolloutStatus::RolledBack),
                Some(0),
            ),
            ("10% errors, on_failure hold", running(0), hold, 1000, &failing, 1, Some(RolloutStatus::Paused), None),
            ("weight moved by someone else", running(0), cfg(), 2500, &healthy, MIN, Some(RolloutStatus::Paused), None),
            (
                "a paused rollout is left alone",
                Progress { status: RolloutStatus::Paused, ..running(0) },
                cfg(),
                1000,
                &failing,
                MIN,
                None,
                None,
            ),
        ];
        for (what, p, c, weight, t, ms, status, written) in cases {
            match (next(&p, &c, &at(weight, t, ms), None), status) {
                (Decision::Stay, None) => {}
                (Decision::Move(m), Some(status)) => {
                    assert_eq!(m.progress.status, status, "{what}: {}", m.event);
                    assert_eq!(m.weight.map(Percent::hundredths), written, "{what}");
                    let stopped = !matches!(status, RolloutStatus::Running);
                    assert_eq!(m.progress.stopped_ms.is_some(), stopped, "{what}: stopped_ms");
                }
                (other, _) => panic!("{what}: expected {status:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_passed_step_starts_its_window_and_clock_afresh() {
        let now = tally(200, 0);
        let m = moved(next(&running(0), &cfg(), &at(1000, &now, MIN + 5), None));
        assert_eq!((m.progress.step, m.progress.step_started_ms, m.progress.reason.clone()), (1, MIN + 5, None));
        assert_eq!(m.progress.window(&now).side(Side::New).requests, 0, "the new step counts from now");
        assert!(matches!(m.event, Event::StepPassed { step: 1, .. }), "{:?}", m.event);
    }

    #[test]
    fn a_failed_gate_is_kept_typed_with_its_figures() {
        let m = moved(next(&running(1), &cfg(), &at(5000, &tally(200, 20), 7), None));
        match &m.progress.failed_gate {
            Some(GateFailure::ErrorRate { errors: 20, requests: 200, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(m.progress.stopped_ms, Some(7));
        let reason = m.progress.reason.unwrap_or_default();
        assert!(reason.starts_with("rolled back at step 2 (50%): new error rate 10.00%"), "{reason}");
    }

    #[test]
    fn the_last_step_waits_for_a_report_free_of_differences() {
        let ready = Rollout { require_ready: true, ..cfg() };
        let now = tally(200, 0);
        let when = at(5000, &now, MIN);
        assert!(matches!(next(&running(1), &ready, &when, None), Decision::AskReadiness));
        let differs = ["GET /orders/{id}".to_string()];
        let m = moved(next(&running(1), &ready, &when, Some(&differs)));
        assert_eq!((m.progress.status, m.weight), (RolloutStatus::Running, None));
        let reason = m.progress.reason.clone().unwrap_or_default();
        assert!(reason.starts_with(NOT_READY) && reason.contains("GET /orders/{id} differs"), "{reason}");
        assert!(matches!(next(&m.progress, &ready, &when, Some(&differs)), Decision::Stay), "said once");
        let m = moved(next(&running(1), &ready, &when, Some(&[])));
        assert_eq!(m.weight, Some(Percent::FULL), "no differences: the last step");
        let unshadowed = Now { shadowed: false, ..at(5000, &now, MIN) };
        assert_eq!(moved(next(&running(1), &ready, &unshadowed, None)).weight, Some(Percent::FULL));
        assert!(matches!(next(&running(0), &ready, &at(1000, &now, MIN), None), Decision::Move(_)), "not the last");
    }

    #[test]
    fn a_schedule_holds_advances_and_never_a_rollback() {
        use crate::config::schedule::{Freeze, Schedule, Window};
        // 2026-03-27 is a Friday; Berlin changes to summer time on the Sunday after.
        let friday_evening = 1_774_629_000_000; // 2026-03-27T16:30:00Z, 17:30 in Berlin
        let monday_nine = 1_774_854_000_000; // 2026-03-30T07:00:00Z, 09:00 CEST
        let office = Rollout {
            schedule: Schedule {
                windows: vec![Window::parse("Mon-Fri 09:00-17:00 Europe/Berlin").expect("window")],
                freeze: vec![],
            },
            ..cfg()
        };
        let started = Progress { step_started_ms: friday_evening - MIN, ..running(0) };
        let (healthy, failing) = (tally(200, 0), tally(200, 20));
        let m = moved(next(&started, &office, &at(1000, &healthy, friday_evening), None));
        assert_eq!((m.progress.step, m.weight, m.progress.status), (0, None, RolloutStatus::Running));
        assert!(
            matches!(&m.event, Event::Scheduled { until: Some(t), .. } if *t == monday_nine),
            "the next opening is Monday 09:00 in Berlin, after the change to summer time: {}",
            m.event
        );
        assert!(m.event.to_string().contains("next opening 2026-03-30T07:00:00Z"), "{}", m.event);
        // Said once; evaluated again on Sunday, it stays.
        assert!(matches!(
            next(&m.progress, &office, &at(1000, &healthy, monday_nine - 3_600_000), None),
            Decision::Stay
        ));
        // A failing gate rolls back outside the window all the same.
        let back = moved(next(&m.progress, &office, &at(1000, &failing, friday_evening + 1), None));
        assert_eq!((back.progress.status, back.weight), (RolloutStatus::RolledBack, Some(Percent::ZERO)));
        // At the opening the step passes.
        let passed = moved(next(&m.progress, &office, &at(1000, &healthy, monday_nine), None));
        assert_eq!(
            (passed.progress.step, passed.weight, passed.progress.reason),
            (1, Some(Percent::from_hundredths(5000)), None)
        );
        // A freeze holds inside the window too, and the last step still completes (no weight moves).
        let frozen = Rollout {
            schedule: Schedule {
                windows: vec![],
                freeze: vec![Freeze::parse("2026-03-30/2026-04-05").expect("freeze")],
            },
            ..cfg()
        };
        let m = moved(next(&started, &frozen, &at(1000, &healthy, monday_nine), None));
        assert!(matches!(&m.event, Event::Scheduled { until: Some(1_775_433_600_000), .. }), "{}", m.event);
        let last = Progress { step: 2, ..started };
        let done = moved(next(&last, &frozen, &at(10_000, &healthy, monday_nine), None));
        assert_eq!(done.progress.status, RolloutStatus::Complete);
    }

    #[test]
    fn an_operator_acts_as_the_table_says() {
        let now = tally(0, 0);
        let stopped = |status| Progress { status, stopped_ms: Some(1), ..running(1) };
        // (what, progress, action, weight, Ok(status after) / Ok(None) nothing to do / Err, weight written)
        type Case = (&'static str, Progress, RolloutAction, u32, Result<Option<RolloutStatus>, ()>, Option<u32>);
        let cases: Vec<Case> = vec![
            ("pause a running one", running(1), RolloutAction::Pause, 5000, Ok(Some(RolloutStatus::Paused)), None),
            ("pause a paused one", stopped(RolloutStatus::Paused), RolloutAction::Pause, 5000, Ok(None), None),
            ("pause a complete one", stopped(RolloutStatus::Complete), RolloutAction::Pause, 10_000, Err(()), None),
            ("resume a running one", running(1), RolloutAction::Resume, 5000, Ok(None), None),
            ("resume a complete one", stopped(RolloutStatus::Complete), RolloutAction::Resume, 10_000, Err(()), None),
            (
                "resume after a rollback: step 1 at its weight",
                stopped(RolloutStatus::RolledBack),
                RolloutAction::Resume,
                0,
                Ok(Some(RolloutStatus::Running)),
                Some(1000),
            ),
            (
                "resume a pause at its own step's weight",
                stopped(RolloutStatus::Paused),
                RolloutAction::Resume,
                5000,
                Ok(Some(RolloutStatus::Running)),
                None,
            ),
            ("abort: weight 0", running(1), RolloutAction::Abort, 5000, Ok(Some(RolloutStatus::Aborted)), Some(0)),
            (
                "abort at 0",
                stopped(RolloutStatus::RolledBack),
                RolloutAction::Abort,
                0,
                Ok(Some(RolloutStatus::Aborted)),
                None,
            ),
        ];
        for (what, p, action, weight, want, written) in cases {
            let got = act(&p, &cfg(), action, &at(weight, &now, 50), "10.0.0.1");
            match (got, want) {
                (Ok(None), Ok(None)) | (Err(_), Err(())) => {}
                (Ok(Some(m)), Ok(Some(status))) => {
                    assert_eq!(m.progress.status, status, "{what}");
                    assert_eq!(m.weight.map(Percent::hundredths), written, "{what}");
                    assert!(m.progress.reason.unwrap_or_default().contains("by hand (from 10.0.0.1)"), "{what}");
                }
                (other, _) => panic!("{what}: expected {want:?}, got {:?}", other.map(|m| m.map(|m| m.event))),
            }
        }
    }

    #[test]
    fn a_rollout_is_taken_up_at_the_step_its_weight_is_at() {
        let now = tally(0, 0);
        let m = adopt(&cfg(), &at(0, &now, 9), None);
        assert_eq!(
            (m.progress.step, m.weight, m.progress.step_started_ms),
            (0, Some(Percent::from_hundredths(1000)), 9)
        );
        let m = adopt(&cfg(), &at(6000, &now, 9), None);
        assert_eq!((m.progress.step, m.weight), (1, Some(Percent::from_hundredths(5000))), "down to the step below");
        let m = adopt(&Rollout { steps: vec![Percent::from_hundredths(1000)], ..cfg() }, &at(2000, &now, 9), None);
        assert_eq!((m.progress.status, m.weight), (RolloutStatus::Complete, None), "beyond the last step");
        let paused = Progress { status: RolloutStatus::Paused, reason: Some("by hand".into()), ..running(0) };
        let m = adopt(&cfg(), &at(0, &now, 9), Some(&paused));
        assert_eq!((m.progress.status, m.weight), (RolloutStatus::Paused, None), "a pause is kept, nothing moves");
    }

    #[test]
    fn a_weight_set_by_hand_pauses_only_a_running_rollout() {
        let m = weight_set_by_hand(&running(0), Percent::from_hundredths(2500), "cli", 3).expect("paused");
        assert_eq!((m.progress.status, m.progress.stopped_ms), (RolloutStatus::Paused, Some(3)));
        assert_eq!(m.progress.reason.as_deref(), Some("weight set to 25% by hand (from cli); rollout paused"));
        let complete = Progress { status: RolloutStatus::Complete, ..running(2) };
        assert!(weight_set_by_hand(&complete, Percent::ZERO, "cli", 3).is_none());
    }

    #[test]
    fn a_stopped_rollout_keeps_the_moment_it_stopped() {
        let paused = Progress { status: RolloutStatus::Paused, stopped_ms: Some(5), ..running(0) };
        assert_eq!(paused.with(RolloutStatus::Paused, "again".into()).stamped(&paused, 99).stopped_ms, Some(5));
        assert_eq!(paused.with(RolloutStatus::Aborted, "now".into()).stamped(&paused, 99).stopped_ms, Some(99));
        assert_eq!(running(0).stamped(&paused, 99).stopped_ms, None);
    }
}
