//! Failover and health checks: what new cannot take goes to legacy, users see no error, and the
//! failures still count against new.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;

/// An address nothing listens on: connections are refused.
fn closed_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn route(legacy: &str, new: &str, new_health: &str, extra: &str) -> String {
    format!(
        "[upstreams.legacy]\naddresses = [\"{legacy}\"]\n\n[upstreams.new]\naddresses = [\"{new}\"]\n{new_health}\n\n\
         [[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 100\n{extra}\n"
    )
}

const NO_HEALTH: &str = "[upstreams.new.health]\nenabled = false";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_down_clients_get_legacy_answers_and_new_is_charged() {
    let legacy = MockUpstream::start("legacy").await;
    // Health checks off: this is failover itself, request by request.
    let s = Strangler::start(&route(&legacy.address(), &closed_address(), NO_HEALTH, "failover = true")).await;
    let c = client();
    for _ in 0..30 {
        let resp = c.get(s.url("/orders/1")).send().await.expect("send");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "legacy");
    }
    assert_eq!(legacy.hits(), 30);
    assert_eq!(s.metric("strangler_failovers_total{route=\"orders\"}").await, Some(30.0));
    assert_eq!(s.metric("strangler_requests_total{code=\"200\",route=\"orders\",side=\"legacy\"}").await, Some(30.0));
    let live = s.route("orders").await.live;
    assert_eq!(live.new.error_rate, Some(100.0), "new's failures stay visible: {live:?}");
    assert_eq!(live.new.requests, 30);

    // Without failover the same outage is a 502.
    let s = Strangler::start(&route(&legacy.address(), &closed_address(), NO_HEALTH, "")).await;
    assert_eq!(c.get(s.url("/orders/1")).send().await.expect("send").status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_5xx_from_new_is_retried_on_legacy_only_when_replaying_is_safe() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::builder("new").status(503).start().await;
    let s = Strangler::start(&route(&legacy.address(), &new.address(), "", "failover = true")).await;
    let c = client();

    let resp = c.get(s.url("/orders/1")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "legacy");
    // An idempotent request with a small body is replayed whole.
    let resp = c.put(s.url("/orders/2")).body("{\"qty\": 2}").send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let put = legacy.received().into_iter().find(|r| r.method == "PUT").expect("PUT replayed on legacy");
    assert_eq!(put.body, Bytes::from_static(b"{\"qty\": 2}"));
    assert_eq!(s.metric("strangler_failovers_total{route=\"orders\"}").await, Some(2.0));

    // A POST may have had effects on new: its 503 goes to the client, never to legacy.
    let resp = c.post(s.url("/orders")).body("{\"qty\": 1}").send().await.expect("send");
    assert_eq!(resp.status(), 503);
    assert!(legacy.received().iter().all(|r| r.method != "POST"), "the POST was replayed");
    assert_eq!(new.received().iter().filter(|r| r.method == "POST").count(), 1);
    // So is a body too large to replay (over Pingora's 64 KiB retry buffer).
    let big = vec![b'x'; 200 * 1024];
    let resp = c.put(s.url("/orders/3")).body(big).send().await.expect("send");
    assert_eq!(resp.status(), 503);
    assert_eq!(s.metric("strangler_failovers_total{route=\"orders\"}").await, Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_addresses_are_skipped_and_a_dead_new_pool_sends_all_to_legacy() {
    let legacy = MockUpstream::start("legacy").await;
    let good = MockUpstream::start("new").await;
    let dead = closed_address();
    let healthy_ok = Arc::new(AtomicBool::new(false));
    let h = healthy_ok.clone();
    // A second new pool whose /healthz fails until told otherwise.
    let sick = MockUpstream::builder("sick")
        .reply(move |r| {
            let up = r.path != "/healthz" || h.load(Ordering::Relaxed);
            (if up { 200 } else { 503 }, vec![], Bytes::from_static(b"sick"))
        })
        .start()
        .await;
    let body = format!(
        "[upstreams.legacy]\naddresses = [\"{}\"]\n\n\
         [upstreams.new]\naddresses = [\"{dead}\", \"{}\"]\n[upstreams.new.health]\ninterval = \"100ms\"\nfails = 1\n\n\
         [upstreams.sick]\naddresses = [\"{}\"]\n[upstreams.sick.health]\ninterval = \"100ms\"\npath = \"/healthz\"\nfails = 2\n\n\
         [[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 100\n\n\
         [[routes]]\nname = \"users\"\npath_prefix = \"/users\"\nlegacy = \"legacy\"\nnew = \"sick\"\nweight = 100\n",
        legacy.address(),
        good.address(),
        sick.address()
    );
    let s = Strangler::start(&body).await;
    let dead_sample = format!("strangler_upstream_healthy{{address=\"{dead}\",upstream=\"new\"}}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.route("orders").await.sides.new.healthy != 1 {
        assert!(Instant::now() < deadline, "the dead address was never found: {}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.metric(&dead_sample).await, Some(0.0));
    let errors_before =
        s.metric("strangler_upstream_errors_total{kind=\"connect\",route=\"orders\",side=\"new\"}").await;
    let c = client();
    for _ in 0..20 {
        let resp = c.get(s.url("/orders/1")).send().await.expect("send");
        assert_eq!(resp.text().await.expect("body"), "new");
    }
    let errors_after =
        s.metric("strangler_upstream_errors_total{kind=\"connect\",route=\"orders\",side=\"new\"}").await;
    assert_eq!(errors_after, errors_before, "the dead address is skipped, not tried");

    // The whole `sick` pool fails its HTTP check: its route goes to legacy, and says so.
    s.wait_metric("strangler_new_pool_down{route=\"users\"}", 1.0).await;
    assert!(s.route("users").await.new_pool_down);
    for _ in 0..10 {
        let resp = c.get(s.url("/users/1")).send().await.expect("send");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "legacy");
    }
    let (ok, out, _) = s.cli(&["status"]);
    assert!(ok);
    assert!(out.contains("users: every address of the new pool is down"), "{out}");
    assert!(s.log().contains("all of the route's traffic goes to legacy"), "{}", s.log());

    // It comes back once it passes again.
    healthy_ok.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.metric("strangler_new_pool_down{route=\"users\"}").await != Some(0.0) {
        assert!(Instant::now() < deadline, "the pool never came back: {}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.get(s.url("/users/1")).send().await.expect("send").text().await.expect("body"), "sick");
}
