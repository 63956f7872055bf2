//! `[[notify]]` webhooks against real HTTP receivers, with the real binary: weight changes from
//! every source, rollout events, new findings, signatures; receivers that are down, slow and
//! failing; `strangler notify test`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;

/// The JSON documents a receiver got, in order.
fn documents(r: &MockUpstream) -> Vec<serde_json::Value> {
    r.received().iter().map(|x| serde_json::from_slice(&x.body).expect("a JSON body")).collect()
}

/// Wait until `r` received a document satisfying `want`; that document.
async fn wait_for(r: &MockUpstream, what: &str, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(d) = documents(r).into_iter().find(|d| want(d)) {
            return d;
        }
        assert!(Instant::now() < deadline, "{what} never reached {}: {:#?}", r.name, documents(r));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn target(r: &MockUpstream, extra: &str) -> String {
    format!("[[notify]]\nurl = \"http://{}/hooks/T0/B0/x\"\nname = \"{}\"\n{extra}\n", r.address(), r.name)
}

fn one_route(legacy: &MockUpstream, new: &MockUpstream, extra: &str) -> String {
    format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n{extra}\n",
        pools(legacy, new)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weight_changes_say_where_they_came_from_signed_and_filtered_by_event() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let hooks = MockUpstream::start("hooks").await;
    let rollouts_only = MockUpstream::start("rollouts-only").await;
    let body = format!(
        "{}{}{}",
        one_route(&legacy, &new, ""),
        target(&hooks, "secret = \"s3cret\""),
        target(&rollouts_only, "events = [\"rollout\"]\nformat = \"slack\"")
    );
    let s = Strangler::start(&body).await;

    // The CLI.
    let (ok, out, err) = s.cli(&["weight", "orders", "10"]);
    assert!(ok, "{out}{err}");
    let d = wait_for(&hooks, "the CLI's change", |d| d["details"]["to"] == 10.0).await;
    assert_eq!(
        (d["kind"].as_str(), d["event"].as_str(), d["route"].as_str()),
        (Some("weight"), Some("weight_changed"), Some("orders"))
    );
    assert_eq!(d["details"]["from"], 0.0);
    assert_eq!(d["details"]["source"], "cli");
    assert!(d["details"]["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{d}");
    assert!(d["text"].as_str().is_some_and(|t| t.starts_with("weight 0% -> 10% from cli")), "{d}");

    // Signed: HMAC-SHA256 of the exact body, under the target's secret.
    let got = hooks.received();
    let sig = got[0].headers.get("x-strangler-signature").expect("a signature").to_str().expect("ASCII");
    let hex = sig.strip_prefix("sha256=").expect("sha256=");
    let tag: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    ring::hmac::verify(&key, &got[0].body, &tag).expect("the signature verifies");
    assert_eq!(got[0].path, "/hooks/T0/B0/x");

    // The API, as any client calls it.
    let resp = client()
        .put(s.admin_url("/api/v1/routes/orders/weight"))
        .header("content-type", "application/json")
        .body(r#"{"percent": 25}"#)
        .send()
        .await
        .expect("PUT");
    assert!(resp.status().is_success());
    let d = wait_for(&hooks, "the API's change", |d| d["details"]["to"] == 25.0).await;
    assert_eq!(d["details"]["source"], "api");

    // The file, edited by hand.
    s.rewrite(&body.replace("weight = 0", "weight = 40"));
    let d = wait_for(&hooks, "the file's change", |d| d["details"]["to"] == 40.0).await;
    assert_eq!((d["details"]["source"].as_str(), d["details"]["from"].as_f64()), (Some("file"), Some(25.0)));
    assert!(d["details"]["peer"].is_null());

    // Three weight changes, none a rollout event: the rollouts-only target heard nothing.
    s.wait_metric("strangler_notifications_total{target=\"hooks\",result=\"sent\"}", 3.0).await;
    assert_eq!(rollouts_only.hits(), 0, "{:?}", rollouts_only.received());
    let log = s.log();
    assert!(!log.contains("/hooks/T0/B0/x"), "a webhook's URL is a credential, never logged:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_tells_each_step_and_slack_gets_a_message() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let slack = MockUpstream::start("slack").await;
    let rollout = "[routes.rollout]\nsteps = [50, 100]\nhold = \"300ms\"\nmin_requests = 20\nmax_latency_ratio = 1000";
    let body = format!("{}{}", one_route(&legacy, &new, rollout), target(&slack, "format = \"slack\""));
    let s = Strangler::start(&body).await;
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.rollout("orders").await.status != strangler::api::RolloutStatus::Complete {
        assert!(Instant::now() < deadline, "never complete");
        let _ = c.get(s.url("/orders/1")).send().await;
    }
    let texts = |r: &MockUpstream| -> Vec<String> {
        documents(r).iter().map(|d| d["text"].as_str().unwrap_or_default().to_string()).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !texts(&slack).iter().any(|t| t.contains("rollout complete")) {
        assert!(Instant::now() < deadline, "{:#?}", texts(&slack));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let texts = texts(&slack);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name");
    let prefix = format!("strangler on {} · route *orders*: ", host.trim());
    let order: Vec<usize> = ["rollout taken up at step 1 (50%)", "rollout step 1 passed", "rollout complete"]
        .iter()
        .map(|want| {
            texts
                .iter()
                .position(|t| t.starts_with(&prefix) && t.contains(want))
                .unwrap_or_else(|| panic!("{want:?} not told: {texts:#?}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "told in the order it happened: {texts:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_down_slow_or_failing_hold_up_nothing_and_are_counted() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let good = MockUpstream::start("good").await;
    let failing = MockUpstream::builder("failing").status(500).start().await;
    let slow = MockUpstream::builder("slow").delay(Duration::from_secs(3)).start().await;
    let down = format!("[[notify]]\nurl = \"http://127.0.0.1:{}/\"\nname = \"down\"\n", free_port());
    let body = format!(
        "{}{}{}{}{down}",
        one_route(&legacy, &new, ""),
        target(&good, ""),
        target(&failing, ""),
        target(&slow, "timeout = \"10s\"")
    );
    let s = Strangler::start(&body).await;
    let c = client();

    // 300 changes while the slow receiver holds its first for 3 s: its queue (256) overflows,
    // and the others are told of every one.
    let started = Instant::now();
    for i in 0..300 {
        let pct = if i % 2 == 0 { 10 } else { 20 };
        let resp = c
            .put(s.admin_url("/api/v1/routes/orders/weight"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"percent": {pct}}}"#))
            .send()
            .await
            .expect("PUT");
        assert!(resp.status().is_success());
    }
    let took = started.elapsed();
    s.wait_metric("strangler_notifications_total{target=\"good\",result=\"sent\"}", 300.0).await;
    assert_eq!(good.hits(), 300);
    let dropped = s.metric_value("strangler_notifications_total{target=\"slow\",result=\"dropped\"}").await;
    assert!(dropped >= 300.0 - 257.0 - 1.0, "the slow target's queue holds 256: {dropped} dropped");
    // Each failing delivery is tried five times (four retries), then counted as failed.
    s.wait_metric("strangler_notifications_total{target=\"failing\",result=\"retried\"}", 4.0).await;
    s.wait_metric("strangler_notifications_total{target=\"failing\",result=\"failed\"}", 1.0).await;
    s.wait_metric("strangler_notifications_total{target=\"down\",result=\"failed\"}", 1.0).await;
    assert!(failing.hits() >= 5, "{}", failing.hits());
    assert!(s.log().contains("notification not delivered: answered 500"), "{}", s.log());
    // What a client sees meanwhile: the proxy answers.
    let r = c.get(s.url("/orders/1")).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    println!("300 weight changes through the API took {took:?} with a slow, a failing and a dead receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_test_posts_a_sample_to_every_target_and_fails_on_any_that_refuses() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let good = MockUpstream::start("good").await;
    let broken = MockUpstream::builder("broken").status(404).start().await;
    let body = format!(
        "{}{}{}",
        one_route(&legacy, &new, ""),
        target(&good, "events = [\"finding\"]"),
        target(&broken, "format = \"slack\"")
    );
    let s = Strangler::start(&body).await;
    let (ok, out, err) = s.cli(&["notify", "test"]);
    assert!(!ok, "a target answered 404:\n{out}{err}");
    assert!(out.contains("ok      good: answered 200"), "{out}");
    assert!(out.contains("FAILED  broken: answered 404"), "{out}");
    assert!(err.contains("1 of 2 target(s) did not take the notification"), "{err}");
    let d = &documents(&good)[0];
    assert_eq!(d["event"], "test", "sent whatever events the target takes: {d}");
    assert_eq!(broken.hits(), 1, "no retries for a test");

    s.rewrite(&format!("{}{}", one_route(&legacy, &new, ""), target(&good, "")));
    let (ok, out, _) = s.cli(&["notify", "test"]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_significant_finding_is_told_once() {
    let legacy = MockUpstream::builder("legacy")
        .no_record()
        .reply(|_| {
            (
                200,
                vec![("content-type".into(), "application/json".into())],
                Bytes::from_static(br#"{"id":7,"price":10}"#),
            )
        })
        .start()
        .await;
    let new = MockUpstream::builder("new")
        .no_record()
        .reply(|_| {
            (
                200,
                vec![("content-type".into(), "application/json".into())],
                Bytes::from_static(br#"{"id":7,"price":11}"#),
            )
        })
        .start()
        .await;
    let hooks = MockUpstream::start("hooks").await;
    let shadow = "[routes.shadow]\nsample = 100\n[routes.compare]\nignore_headers = [\"x-upstream\", \"date\"]\nnoise_sample = 0\n";
    let s =
        Strangler::start(&format!("{}{}", one_route(&legacy, &new, shadow), target(&hooks, "events = [\"finding\"]")))
            .await;
    let c = client();
    for _ in 0..50 {
        let _ = c.get(s.url("/orders/7")).send().await;
    }
    let d = wait_for(&hooks, "the finding", |d| d["event"] == "new_finding").await;
    assert_eq!(d["route"], "orders");
    assert_eq!(d["details"]["field"], "json:$.price");
    assert!(d["details"]["endpoint"].as_str().is_some_and(|e| e.starts_with("GET /orders/")), "{d}");
    // More of the same difference is no new finding.
    for _ in 0..50 {
        let _ = c.get(s.url("/orders/7")).send().await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(documents(&hooks).iter().filter(|d| d["event"] == "new_finding").count(), 1, "{:#?}", documents(&hooks));
}
