//! Progressive rollout, driven by the real binary's controller with millisecond holds: walking
//! every step, each gate tripping on its own, surviving a SIGKILL, and the operator's controls.
//!
//! Loopback mocks answer in microseconds, where a p99 is one scheduler hiccup; tests that are
//! not about latency set `max_latency_ratio` high so only the gate under test can trip.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use strangler::api::{GateFailure, RolloutActed, RolloutStatus, RolloutView};

fn route(legacy: &MockUpstream, new: &MockUpstream, extra: &str, rollout: &str) -> String {
    format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n{extra}\n[routes.rollout]\n{rollout}\n",
        pools(legacy, new)
    )
}

/// strangler before a legacy and a new that answer different bodies (each names itself), shadowing
/// every request: every comparison mismatches. `rollout` is the route's rollout section.
async fn differing(rollout: &str) -> (Strangler, (MockUpstream, MockUpstream)) {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let shadow =
        "[routes.shadow]\nsample = 100\n[routes.compare]\nignore_headers = [\"x-upstream\", \"date\"]\nnoise_sample = 0\n";
    let s = Strangler::start(&route(&legacy, &new, shadow, rollout)).await;
    (s, (legacy, new))
}

/// Requests from a few tasks until dropped.
struct Traffic(Arc<AtomicBool>);

impl Traffic {
    fn start(s: &Strangler) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..4 {
            let (stop, url, c) = (stop.clone(), s.url("/orders/1"), client());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = c.get(&url).send().await.and_then(|r| r.error_for_status());
                }
            });
        }
        Traffic(stop)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn rollout(s: &Strangler) -> RolloutView {
    s.rollout("orders").await
}

/// Wait until the rollout's state satisfies `done`.
async fn wait_rollout(s: &Strangler, what: &str, done: impl Fn(&RolloutView) -> bool) -> RolloutView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = rollout(s).await;
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "rollout never {what}: {r:?}\nlog:\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A new side that answers 200 until the flag is set, then 500.
async fn failable_new() -> (MockUpstream, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let new = MockUpstream::builder("new")
        .no_record()
        .reply(move |_| {
            let code = if f.load(Ordering::Relaxed) { 500 } else { 200 };
            (code, vec![], Bytes::from_static(b"new"))
        })
        .start()
        .await;
    (new, failing)
}

fn file_weight(s: &Strangler) -> f64 {
    let text = std::fs::read_to_string(&s.config).expect("read");
    let parsed: toml::Table = text.parse().expect("TOML");
    parsed["routes"]
        .as_array()
        .and_then(|r| r[0].get("weight"))
        .and_then(|w| w.as_float().or(w.as_integer().map(|i| i as f64)))
        .expect("weight")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_new_service_walks_every_step_to_100() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let body = route(
        &legacy,
        &new,
        "",
        "steps = [10, 50, 100]\nhold = \"300ms\"\nmin_requests = 20\nmax_latency_ratio = 1000",
    );
    let s = Strangler::start(&body).await;
    let _traffic = Traffic::start(&s);

    let r = wait_rollout(&s, "complete", |r| r.status == RolloutStatus::Complete).await;
    assert_eq!(r.step, Some(3));
    assert_eq!(s.route("orders").await.weight, 100.0);
    assert_eq!(file_weight(&s), 100.0, "every step goes through the file");
    assert_eq!(s.metric("strangler_rollout_step{route=\"orders\"}").await, Some(3.0));
    let log = s.log();
    for step in ["rollout step 1 passed", "rollout step 2 passed", "rollout complete"] {
        assert!(log.contains(step), "{step:?} not logged:\n{log}");
    }
    let state = std::fs::read_to_string(s.dir.path().join("strangler.rollout.json")).expect("state file");
    assert!(state.contains("\"complete\""), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_service_failing_at_step_2_is_rolled_back_to_0_and_paused() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let (new, failing) = failable_new().await;
    let body =
        route(&legacy, &new, "", "steps = [10, 50, 100]\nhold = \"1s\"\nmin_requests = 20\nmax_latency_ratio = 1000");
    let s = Strangler::start(&body).await;
    let _traffic = Traffic::start(&s);

    wait_rollout(&s, "at step 2", |r| r.step == Some(2)).await;
    failing.store(true, Ordering::Relaxed);
    let r = wait_rollout(&s, "rolled back", |r| r.status == RolloutStatus::RolledBack).await;
    assert!(matches!(r.failed_gate, Some(GateFailure::ErrorRate { .. })), "{r:?}");
    let reason = r.reason.clone().expect("a reason");
    assert!(reason.starts_with("rolled back at step 2 (50%): new error rate"), "{reason}");
    assert_eq!(s.route("orders").await.weight, 0.0);
    assert_eq!(file_weight(&s), 0.0);
    assert_eq!(s.metric("strangler_rollout_step{route=\"orders\"}").await, Some(0.0));
    assert!(s.log().contains("rollout rolled back at step 2"), "the log says why:\n{}", s.log());

    assert!(r.stopped_at.is_some(), "a stopped rollout says since when: {r:?}");

    // Paused: it stays at 0 however long the traffic goes on, and its clock stopped with it.
    let later = wait_rollout(&s, "stopped 1.5 s ago", |r| r.stopped_ms_ago.is_some_and(|ms| ms >= 1500)).await;
    assert_eq!(later.status, RolloutStatus::RolledBack);
    assert_eq!(later.held_ms, r.held_ms, "a stopped step holds no longer");
    assert_eq!(later.stopped_at, r.stopped_at);
    assert!(later.stopped_ms_ago.expect("since") >= 1500, "{later:?}");
    assert_eq!(s.route("orders").await.weight, 0.0);
    let (ok, out, _) = s.cli(&["status"]);
    assert!(ok);
    assert!(out.contains("rolled_back") && out.contains("error rate"), "status shows it:\n{out}");
    let since = format!("rollout rolled_back since {}", r.stopped_at.as_deref().expect("stopped_at"));
    assert!(out.contains(&since), "status says since when ({since}):\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_mismatch_gate_trips_on_its_own_and_hold_keeps_the_step() {
    let (s, _upstreams) = differing(
        "steps = [10, 50, 100]\nhold = \"300ms\"\nmin_requests = 20\nmax_mismatch_rate = 5\n\
         max_latency_ratio = 1000\non_failure = \"hold\"",
    )
    .await;
    let _traffic = Traffic::start(&s);

    let r = wait_rollout(&s, "held", |r| r.status == RolloutStatus::Paused).await;
    assert!(matches!(r.failed_gate, Some(GateFailure::MismatchRate { .. })), "only the mismatch gate: {r:?}");
    let reason = r.reason.clone().expect("a reason");
    assert!(reason.starts_with("held at step 1 (10%): shadow mismatch rate"), "{reason}");
    assert_eq!(s.route("orders").await.weight, 10.0, "hold keeps the step's weight");
    assert_eq!(s.metric("strangler_rollout_step{route=\"orders\"}").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_latency_gate_trips_on_its_own_before_the_hold_ends() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().delay(Duration::from_millis(40)).start().await;
    let body = route(&legacy, &new, "", "steps = [50, 100]\nhold = \"1h\"\nmin_requests = 20\nmax_latency_ratio = 1.5");
    let s = Strangler::start(&body).await;
    let _traffic = Traffic::start(&s);

    let r = wait_rollout(&s, "rolled back", |r| r.status == RolloutStatus::RolledBack).await;
    match &r.failed_gate {
        Some(GateFailure::Latency { limit_ratio, limit_added_ms: None, ratio, .. }) => {
            assert!(*limit_ratio == 1.5 && *ratio > 1.5, "{r:?}")
        }
        other => panic!("only the latency gate: {other:?}"),
    }
    assert_eq!(s.route("orders").await.weight, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_binary_resumes_at_the_same_step() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let body = route(
        &legacy,
        &new,
        "",
        "steps = [10, 50, 100]\nhold = \"300ms\"\nmin_requests = 20\nmax_latency_ratio = 1000",
    );
    let mut s = Strangler::start(&body).await;

    // Small batches, so step 2 cannot collect its 20 new requests before the kill.
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rollout(&s).await.step != Some(2) {
        assert!(Instant::now() < deadline, "never reached step 2: {}", s.log());
        for _ in 0..8 {
            c.get(s.url("/orders/1")).send().await.expect("send");
        }
    }
    let before = rollout(&s).await;
    assert_eq!(before.status, RolloutStatus::Running);
    wait_rollout(&s, "held 400 ms", |r| r.held_ms.is_some_and(|h| h >= 400)).await;

    s.restart().await;
    let after = rollout(&s).await;
    assert_eq!(after.status, RolloutStatus::Running, "{after:?}");
    assert_eq!(after.step, Some(2), "resumed at the same step, not from the start: {after:?}");
    assert_eq!(s.route("orders").await.weight, 50.0);
    assert!(after.held_ms.unwrap() >= 400, "the step's hold kept its start: {after:?}");

    let _traffic = Traffic::start(&s);
    wait_rollout(&s, "complete", |r| r.status == RolloutStatus::Complete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_wins_pause_resume_abort() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = route(&legacy, &new, "", "steps = [10, 50, 100]\nhold = \"1h\"");
    let s = Strangler::start(&body).await;
    wait_rollout(&s, "started", |r| r.status == RolloutStatus::Running).await;
    assert_eq!(s.route("orders").await.weight, 10.0, "a new rollout starts at step 1");

    // A weight set by hand pauses the rollout, and says so.
    let (ok, out, err) = s.cli(&["weight", "orders", "30"]);
    assert!(ok, "{err}");
    assert!(out.contains("rollout is paused"), "{out}");
    let r = rollout(&s).await;
    assert_eq!(r.status, RolloutStatus::Paused);
    assert!(r.reason.clone().expect("a reason").contains("by hand"), "{r:?}");
    wait_rollout(&s, "paused 300 ms", |r| r.stopped_ms_ago.is_some_and(|ms| ms >= 300)).await;
    assert_eq!(s.route("orders").await.weight, 30.0, "the controller leaves it alone");

    // Resume continues from the step at or below the weight.
    let (ok, out, err) = s.cli(&["rollout", "orders", "resume"]);
    assert!(ok, "{err}");
    assert!(out.contains("running at step 1 of 3 (10%)"), "{out}");
    assert_eq!(s.route("orders").await.weight, 10.0);

    let (ok, _, err) = s.cli(&["rollout", "orders", "pause"]);
    assert!(ok, "{err}");
    assert_eq!(rollout(&s).await.status, RolloutStatus::Paused);
    let (ok, _, _) = s.cli(&["rollout", "orders", "pause"]);
    assert!(ok, "pausing a paused rollout is not an error");

    let (ok, out, err) = s.cli(&["rollout", "orders", "abort", "--json"]);
    assert!(ok, "{err}");
    let v: RolloutActed = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v.rollout.status, RolloutStatus::Aborted);
    assert_eq!(s.route("orders").await.weight, 0.0);
    assert_eq!(s.metric("strangler_rollout_step{route=\"orders\"}").await, Some(0.0));

    let (ok, _, err) = s.cli(&["rollout", "orders", "pause"]);
    assert!(!ok);
    assert!(err.contains("409") && err.contains("aborted"), "{err}");
    let bad = client()
        .post(s.admin_url("/api/routes/orders/rollout/restart"))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 404);
    let get = client().get(s.admin_url("/api/routes/orders/rollout/pause")).send().await.expect("get");
    assert_eq!(get.status(), 405);

    let (ok, _, err) = s.cli(&["rollout", "orders", "resume"]);
    assert!(ok, "{err}");
    assert_eq!(rollout(&s).await.status, RolloutStatus::Running);
    assert_eq!(s.route("orders").await.weight, 10.0);
}

/// Requests forced by the override header are QA, not the split: a tester hammering a broken
/// page on new cannot trip a rollback. They still count in `requests_total` and in their own
/// `override_requests_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forced_requests_do_not_move_the_gates() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new")
        .no_record()
        .reply(|r| {
            let code = if r.path.starts_with("/orders/qa") { 500 } else { 200 };
            (code, vec![], Bytes::from_static(b"new"))
        })
        .start()
        .await;
    let body = route(
        &legacy,
        &new,
        "override = { header = \"x-strangler-target\" }\npath_prefix = \"/orders\"",
        "steps = [10, 50, 100]\nhold = \"1h\"\nmin_requests = 20\nmax_latency_ratio = 1000",
    );
    let s = Strangler::start(&body).await;
    wait_rollout(&s, "started", |r| r.status == RolloutStatus::Running).await;
    let c = client();
    for _ in 0..50 {
        let r = c.get(s.url("/orders/qa")).header("x-strangler-target", "new").send().await.expect("send");
        assert_eq!(r.status(), 500);
    }
    // Counted as forced (the answers are recorded), and not in the window the gates read.
    s.wait_metric("strangler_override_requests_total{route=\"orders\",side=\"new\"}", 50.0).await;
    let r = rollout(&s).await;
    assert_eq!(r.status, RolloutStatus::Running, "{r:?}");
    assert_eq!(r.window.as_ref().map(|w| w.new_requests), Some(0), "{r:?}");
    assert_eq!(s.metric("strangler_override_requests_total{route=\"orders\",side=\"new\"}").await, Some(50.0));
    assert_eq!(s.metric("strangler_requests_total{code=\"500\",route=\"orders\",side=\"new\"}").await, Some(50.0));
}

/// A step with a mismatch gate cannot pass on zero comparisons: it holds, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_cannot_pass_without_comparisons() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let body = route(
        &legacy,
        &new,
        "[routes.shadow]\nsample = 0.0",
        "steps = [10, 50, 100]\nhold = \"100ms\"\nmin_requests = 5\nmax_mismatch_rate = 1\nmax_latency_ratio = 1000",
    );
    let s = Strangler::start(&body).await;
    let _traffic = Traffic::start(&s);
    let r = wait_rollout(&s, "waiting for comparisons", |r| {
        r.waiting.as_deref().is_some_and(|w| w.contains("comparisons"))
    })
    .await;
    assert!(r.window.as_ref().is_some_and(|w| w.new_requests >= 5), "{r:?}");
    // Held six times its hold, with requests enough: it would have passed by now.
    let r = wait_rollout(&s, "held past its hold", |r| r.held_ms.is_some_and(|h| h >= 600) || r.step != Some(1)).await;
    assert_eq!((r.status, r.step), (RolloutStatus::Running, Some(1)), "held well past its hold: {r:?}");
    assert_eq!(s.route("orders").await.weight, 10.0);
}

/// With require_ready, the last step waits while an endpoint of the cutover report differs, and
/// says which; once the evidence is reset (new was fixed) and the report is clean, it completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn require_ready_holds_the_last_step_until_no_endpoint_differs() {
    let price = |new: bool| {
        move |r: &Received| {
            let p = if new && r.path == "/orders/7" { 11 } else { 10 };
            (200, Vec::new(), Bytes::from(format!(r#"{{"price":{p}}}"#)))
        }
    };
    let legacy = MockUpstream::builder("legacy").reply(price(false)).start().await;
    let new = MockUpstream::builder("new").reply(price(true)).start().await;
    let body = route(
        &legacy,
        &new,
        "[routes.shadow]\n[routes.compare]\nignore_headers = [\"date\", \"x-upstream\"]\nready_after = 5",
        "steps = [50, 100]\nhold = \"200ms\"\nmin_requests = 10\nmax_latency_ratio = 1000\nrequire_ready = true",
    );
    let s = Strangler::start(&body).await;
    assert_eq!(client().get(s.url("/orders/7")).send().await.expect("request").status(), 200);
    let _traffic = Traffic::start(&s);
    let r = wait_rollout(&s, "held by the report", |r| {
        r.waiting.as_deref().is_some_and(|w| w.contains("GET /orders/{id} differs"))
    })
    .await;
    assert_eq!((r.status, r.step), (RolloutStatus::Running, Some(1)));
    // Held three times its hold with every other gate passing: the report alone holds it.
    let r = wait_rollout(&s, "held past its hold", |r| r.held_ms.is_some_and(|h| h >= 600) || r.step != Some(1)).await;
    assert_eq!(r.step, Some(1), "the last step was taken with an endpoint differing");
    assert_eq!(s.route("orders").await.weight, 50.0);

    let (ok, out, err) = s.cli(&["report", "orders", "--reset"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("route orders: "), "{out}");
    wait_rollout(&s, "complete", |r| r.status == RolloutStatus::Complete).await;
    assert_eq!(s.route("orders").await.weight, 100.0);
}

/// A shadowed route's rollout judges differences without being told to: a rewrite that answers
/// differently every time is rolled back on the default mismatch gate, once enough pairs were
/// compared to say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_gate_rolls_back_a_rewrite_that_differs_on_every_comparison() {
    let (s, _upstreams) =
        differing("steps = [10, 50, 100]\nhold = \"300ms\"\nmin_requests = 20\nmax_latency_ratio = 1000").await;
    let view = rollout(&s).await;
    assert_eq!((view.limits.max_mismatch_rate, view.limits.min_comparisons), (Some(1.0), 100), "{view:?}");
    let _traffic = Traffic::start(&s);

    let r = wait_rollout(&s, "rolled back", |r| r.status == RolloutStatus::RolledBack).await;
    let reason = r.reason.clone().expect("a reason");
    assert!(reason.starts_with("rolled back at step 1 (10%): shadow mismatch rate"), "{reason}");
    // Never decided on fewer comparisons than the minimum.
    match r.failed_gate {
        Some(GateFailure::MismatchRate { comparisons, .. }) => assert!(comparisons >= 100, "{comparisons}: {reason}"),
        other => panic!("the mismatch gate: {other:?}"),
    }
    assert_eq!(s.route("orders").await.weight, 0.0);
}

/// `max_latency_added`: a rewrite a fixed 15 ms slower passes every step though its p99 is
/// several times legacy's; one three times slower by more than the allowance is rolled back.
/// The allowance is 40 ms, not the 20 a team might write: a loopback p99 under a debug build
/// on two shared cores jitters by 10-15 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_absolute_latency_allowance_lets_a_slightly_slower_rewrite_through() {
    let rollout_with = "steps = [50, 100]\nhold = \"1s\"\nmin_requests = 20\nmax_latency_ratio = 1.5\n\
                        max_latency_added = \"40ms\"";
    let run = |legacy_ms: u64, new_ms: u64| async move {
        let legacy = MockUpstream::builder("legacy").no_record().delay(Duration::from_millis(legacy_ms)).start().await;
        let new = MockUpstream::builder("new").no_record().delay(Duration::from_millis(new_ms)).start().await;
        let s = Strangler::start(&route(&legacy, &new, "", rollout_with)).await;
        let traffic = Traffic::start(&s);
        let r =
            wait_rollout(&s, "done", |r| matches!(r.status, RolloutStatus::Complete | RolloutStatus::RolledBack)).await;
        drop(traffic);
        (r, s, legacy, new)
    };

    let (r, _s, _l, _n) = run(2, 17).await;
    assert_eq!(r.status, RolloutStatus::Complete, "15 ms slower is within 40 ms: {r:?}");
    assert_eq!(r.limits.max_latency_added_ms, Some(40));

    let (r, s, _l, _n) = run(30, 90).await;
    assert_eq!(r.status, RolloutStatus::RolledBack, "60 ms and 3x slower: {r:?}");
    assert!(matches!(r.failed_gate, Some(GateFailure::Latency { limit_added_ms: Some(40), .. })), "{r:?}");
    let reason = r.reason.clone().expect("a reason");
    assert!(reason.contains("limit 1.5x or 40 ms more"), "{reason}");
    assert_eq!(s.route("orders").await.weight, 0.0);
}

/// Office hours: a freeze holds a healthy step past its hold, says until when (API and `status`),
/// and a failing new side is still rolled back inside it. A window that is open now lets the
/// step pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_freeze_holds_every_step_but_never_a_rollback() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let (new, failing) = failable_new().await;
    let frozen = "steps = [10, 50, 100]\nhold = \"300ms\"\nmin_requests = 20\nmax_latency_ratio = 1000\n\
                  freeze = [\"2026-01-01/2099-12-31 Europe/Berlin\"]";
    let s = Strangler::start(&route(&legacy, &new, "", frozen)).await;
    let _traffic = Traffic::start(&s);

    let r = wait_rollout(&s, "held by the freeze", |r| {
        r.reason.as_deref().is_some_and(|why| why.contains("frozen"))
            && r.window.as_ref().is_some_and(|w| w.new_requests >= 20)
    })
    .await;
    assert_eq!((r.status, r.step), (RolloutStatus::Running, Some(1)), "{r:?}");
    assert_eq!(r.next_step_at.as_deref(), Some("2099-12-31T23:00:00Z"), "midnight in Berlin: {r:?}");
    assert!(r.schedule.as_deref().is_some_and(|s| s.starts_with("frozen (2026-01-01/2099-12-31")), "{r:?}");
    assert_eq!(r.limits.freeze, ["2026-01-01/2099-12-31 Europe/Berlin"]);
    assert!(r.held_ms.expect("held") >= 300);
    assert_eq!(s.route("orders").await.weight, 10.0);
    let (ok, out, _) = s.cli(&["status"]);
    assert!(ok);
    assert!(out.contains("orders: next step not before 2099-12-31T23:00:00Z (frozen"), "{out}");
    assert!(s.log().contains("rollout step 1 may pass but is frozen"), "{}", s.log());

    failing.store(true, Ordering::Relaxed);
    let r = wait_rollout(&s, "rolled back", |r| r.status == RolloutStatus::RolledBack).await;
    assert!(matches!(r.failed_gate, Some(GateFailure::ErrorRate { .. })), "{r:?}");
    assert_eq!(s.route("orders").await.weight, 0.0);
    assert_eq!(r.next_step_at, None, "a stopped rollout has no next step");

    // Every day, all day: open now, so the steps pass.
    failing.store(false, Ordering::Relaxed);
    let open = "steps = [10, 100]\nhold = \"300ms\"\nmin_requests = 20\nmax_latency_ratio = 1000\n\
                windows = [\"daily 00:00-24:00 Pacific/Auckland\"]";
    let s = Strangler::start(&route(&legacy, &new, "", open)).await;
    let _traffic = Traffic::start(&s);
    let r = wait_rollout(&s, "complete", |r| r.status == RolloutStatus::Complete).await;
    assert_eq!(r.limits.windows, ["daily 00:00-24:00 Pacific/Auckland"]);
}
