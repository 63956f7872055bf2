//! The rollout controller in process, on tokio's paused clock: the same task the binary runs,
//! driving a real config file, with counters fed straight into the route's live figures. A
//! minute's hold takes no wall-clock time, and every wait is for a condition.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strangler::control::machine::{Progress, RolloutStatus};
use strangler::control::progress::FileStore;
use strangler::control::reload::Reloader;
use strangler::control::rollout::{Clock, Control, RolloutService};
use strangler::core::Side;
use strangler::snapshot::Shared;
use tokio::time::Instant;

/// Unix milliseconds that advance with tokio's (paused) clock from `base`, which a test may
/// move (over a weekend, say).
struct PausedClock {
    start: Instant,
    base: AtomicU64,
}

impl PausedClock {
    fn at(base_ms: u64) -> Arc<PausedClock> {
        Arc::new(PausedClock { start: Instant::now(), base: AtomicU64::new(base_ms) })
    }

    /// Jump to `ms` (Unix milliseconds) now.
    fn set(&self, ms: u64) {
        self.base.store(ms - self.start.elapsed().as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for PausedClock {
    fn now_ms(&self) -> u64 {
        self.base.load(Ordering::SeqCst) + self.start.elapsed().as_millis() as u64
    }
}

/// Unix milliseconds of an RFC 3339 time.
fn unix_ms(rfc3339: &str) -> u64 {
    let t: std::time::SystemTime = humantime::parse_rfc3339(rfc3339).expect("a time");
    t.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[upstreams.legacy]
addresses = ["127.0.0.1:9"]
[upstreams.new]
addresses = ["127.0.0.1:9"]
[[routes]]
name = "orders"
legacy = "legacy"
new = "new"
weight = 0
[routes.rollout]
steps = [10, 50, 100]
hold = "1m"
min_requests = 20
max_error_rate = 5
max_latency_ratio = 100
"#;

struct Rig {
    dir: Option<tempfile::TempDir>,
    file: PathBuf,
    shared: Arc<Shared>,
    control: Arc<Control>,
    stop: tokio::sync::watch::Sender<bool>,
    clock: Arc<PausedClock>,
}

impl Rig {
    fn start(config: &str) -> Rig {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("strangler.toml"), config).expect("the config written");
        Rig::open(dir)
    }

    /// As [`Rig::start`], with the clock at `ms` (Unix milliseconds).
    fn start_at(config: &str, ms: u64) -> Rig {
        let rig = Rig::start(config);
        rig.clock.set(ms);
        rig
    }

    /// A controller, as a process starting on the files in `dir` would have.
    fn open(dir: tempfile::TempDir) -> Rig {
        let file = dir.path().join("strangler.toml");
        let shared = Shared::new(strangler::config::load(&file).expect("a valid config"));
        let reloader = Arc::new(Reloader::new(file.clone(), shared.clone()));
        let store = Box::new(FileStore::new(reloader.clone()));
        let clock = PausedClock::at(1_800_000_000_000);
        let control = Control::with(reloader, shared.clone(), store, clock.clone());
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let service = RolloutService::new(control.clone());
        tokio::spawn(async move { service.run(shutdown).await });
        Rig { dir: Some(dir), file, shared, control, stop, clock }
    }

    fn weight(&self) -> f64 {
        self.shared.load().config.routes[0].weight_percent()
    }

    fn progress(&self) -> Progress {
        let snap = self.shared.load();
        let state = self.control.state(snap.table.get("orders").expect("the route")).expect("a rollout taken up");
        state.tracked.progress
    }

    fn status(&self) -> Option<(RolloutStatus, usize)> {
        let snap = self.shared.load();
        let t = self.control.state(snap.table.get("orders")?)?.tracked;
        Some((t.progress.status, t.progress.step + 1))
    }

    /// Stop this controller, keeping its files.
    fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.send(true);
        self.dir.take().expect("the files")
    }

    /// `n` answers from each side; `errors` of new's are 5xx.
    fn traffic(&self, n: u64, errors: u64) {
        let snap = self.shared.load();
        let live = &snap.table.get("orders").expect("the route").stats.live;
        for i in 0..n {
            live.record(Side::New, i < errors, Some(Duration::from_millis(5)));
            live.record(Side::Legacy, false, Some(Duration::from_millis(5)));
        }
    }

    /// Wait (in paused time) until `done`, for at most `within`.
    async fn until(&self, within: Duration, what: &str, done: impl Fn(&Rig) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; at {:?}, weight {}",
                self.status(),
                self.weight()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[tokio::test(start_paused = true)]
async fn a_healthy_rollout_passes_each_step_when_its_hold_is_over_and_not_before() {
    let rig = Rig::start(CONFIG);
    rig.until(Duration::from_secs(1), "taken up at step 1", |r| r.weight() == 10.0).await;
    assert_eq!(rig.status(), Some((RolloutStatus::Running, 1)));
    let started = Instant::now();
    rig.traffic(50, 0);
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert_eq!((rig.status(), rig.weight()), (Some((RolloutStatus::Running, 1)), 10.0), "held less than a minute");
    rig.until(Duration::from_secs(10), "step 2 after the hold", |r| r.weight() == 50.0).await;
    assert!(started.elapsed() >= Duration::from_secs(59), "passed after {:?}", started.elapsed());
    assert_eq!(rig.status(), Some((RolloutStatus::Running, 2)));
    let text = std::fs::read_to_string(&rig.file).expect("the config");
    assert!(text.contains("weight = 50"), "the step's weight is written back:\n{text}");
    // The second step counts from its own start: the first step's answers do not pass it.
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert_eq!(rig.weight(), 50.0, "no answers in step 2 yet: it waits for min_requests");
    rig.traffic(50, 0);
    rig.until(Duration::from_secs(2), "step 3", |r| r.weight() == 100.0).await;
    rig.traffic(50, 0);
    rig.until(Duration::from_secs(70), "complete", |r| r.status() == Some((RolloutStatus::Complete, 3))).await;
    let state = std::fs::read_to_string(rig.file.with_extension("rollout.json")).expect("the state file");
    assert!(state.contains("\"complete\""), "{state}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_gate_rolls_back_at_once_without_waiting_for_the_hold() {
    let rig = Rig::start(CONFIG);
    rig.until(Duration::from_secs(1), "taken up", |r| r.weight() == 10.0).await;
    let started = Instant::now();
    rig.traffic(20, 5);
    rig.until(Duration::from_secs(1), "rolled back", |r| r.weight() == 0.0).await;
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(rig.status(), Some((RolloutStatus::RolledBack, 1)));
    let snap = rig.shared.load();
    let state = rig.control.state(snap.table.get("orders").expect("the route")).map(|s| s.tracked);
    let failed = state.and_then(|t| t.progress.failed_gate);
    assert!(
        matches!(failed, Some(strangler::api::GateFailure::ErrorRate { errors: 5, requests: 20, .. })),
        "{failed:?}"
    );
    // Stopped: a minute later nothing moved.
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!((rig.weight(), rig.status()), (0.0, Some((RolloutStatus::RolledBack, 1))));
}

#[tokio::test(start_paused = true)]
async fn a_restart_resumes_the_step_and_its_hold_from_the_state_file() {
    let rig = Rig::start(CONFIG);
    rig.until(Duration::from_secs(1), "taken up", |r| r.weight() == 10.0).await;
    rig.traffic(50, 0);
    rig.until(Duration::from_secs(65), "step 2", |r| r.weight() == 50.0).await;
    let began = rig.progress().step_started_ms;
    tokio::time::sleep(Duration::from_secs(30)).await;
    // A new controller on the same files: at step 2, its hold counted from when step 2 began.
    let again = Rig::open(rig.stop());
    again.until(Duration::from_secs(1), "taken up again", |r| r.status().is_some()).await;
    assert_eq!((again.status(), again.weight()), (Some((RolloutStatus::Running, 2)), 50.0));
    assert_eq!(again.progress().step_started_ms, began, "the hold goes on");
}

#[tokio::test(start_paused = true)]
async fn a_rollout_paused_by_hand_stays_where_the_operator_left_it() {
    let rig = Rig::start(CONFIG);
    rig.until(Duration::from_secs(1), "taken up", |r| r.weight() == 10.0).await;
    rig.control.set_weight("orders", strangler::core::Percent::from_hundredths(3000), &by_test()).await.expect("set");
    assert_eq!((rig.status(), rig.weight()), (Some((RolloutStatus::Paused, 1)), 30.0));
    // Every gate would pass, for ten holds: nothing moves.
    rig.traffic(500, 0);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!((rig.status(), rig.weight()), (Some((RolloutStatus::Paused, 1)), 30.0));
    let reason = rig.progress().reason.unwrap_or_default();
    assert_eq!(reason, "weight set to 30% by hand (from test via api); rollout paused");
}

/// Office hours in Berlin across the change to summer time: a step whose hold ends after 17:00
/// on Friday waits over the weekend and passes at 09:00 on Monday, which is 07:00 UTC after the
/// change (08:00 the week before). The clock jumps over the weekend; the controller is the one
/// the binary runs.
#[tokio::test(start_paused = true)]
async fn a_step_held_outside_office_hours_passes_when_the_window_opens_after_a_dst_change() {
    let config = CONFIG.replace(
        "max_latency_ratio = 100",
        "max_latency_ratio = 100\nwindows = [\"Mon-Fri 09:00-17:00 Europe/Berlin\"]",
    );
    // Friday 16:59:30 in Berlin (CET).
    let rig = Rig::start_at(&config, unix_ms("2026-03-27T15:59:30Z"));
    rig.until(Duration::from_secs(1), "taken up at step 1", |r| r.weight() == 10.0).await;
    rig.traffic(50, 0);
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!((rig.status(), rig.weight()), (Some((RolloutStatus::Running, 1)), 10.0), "held after 17:00");
    let reason = rig.progress().reason.unwrap_or_default();
    assert!(
        reason.contains("outside the rollout windows") && reason.contains("next opening 2026-03-30T07:00:00Z"),
        "{reason}"
    );

    // Monday 08:59 in Berlin, summer time (CEST): a minute early.
    rig.clock.set(unix_ms("2026-03-30T06:59:00Z"));
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert_eq!(rig.weight(), 10.0, "not before 09:00");
    rig.until(Duration::from_secs(10), "step 2 at 09:00", |r| r.weight() == 50.0).await;
    let passed = rig.progress().step_started_ms;
    let opening = unix_ms("2026-03-30T07:00:00Z");
    assert!((opening..opening + 2_000).contains(&passed), "passed at {passed}, the window opens at {opening}");
}

fn by_test() -> strangler::control::rollout::By {
    strangler::control::rollout::By { peer: "test".into(), via: strangler::control::rollout::Via::Api }
}
