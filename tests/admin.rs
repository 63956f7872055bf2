//! The admin listener and the logs, as an operator sees them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use strangler::api::{ErrorBody, RouteView, Routes};

fn body(legacy: &MockUpstream, new: &MockUpstream) -> String {
    format!(
        "{}[[routes]]\nname = \"orders\"\nhosts = [\"*.example.com\"]\npath_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n\
         weight = 12.5\nsticky = {{ cookie = \"sid\" }}\noverride = {{ header = \"x-target\", token = \"t\" }}\n",
        pools(legacy, new)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_metrics_and_the_routes_api() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let s = Strangler::start(&body(&legacy, &new)).await;
    let c = client();

    assert_eq!(c.get(s.admin_url("/livez")).send().await.expect("livez").status(), 200);
    assert_eq!(c.get(s.admin_url("/readyz")).send().await.expect("readyz").status(), 200);
    let m = c.get(s.admin_url("/metrics")).send().await.expect("metrics");
    assert!(m.headers()["content-type"].to_str().expect("ct").starts_with("text/plain"));
    assert!(m.text().await.expect("text").contains("strangler_route_weight_percent{route=\"orders\"} 12.5"));

    let all: Routes = s.api("/routes").await;
    let r = &all.routes[0];
    assert_eq!(r.name, "orders");
    assert_eq!(r.weight, 12.5);
    assert_eq!(r.sticky.as_deref(), Some("cookie:sid"));
    assert_eq!(r.hosts, ["*.example.com"]);
    let token_shown = r.override_.as_ref().map(|o| o.token);
    assert_eq!(token_shown, Some(true), "whether a token is set, never the token");
    assert!(!serde_json::to_string(&all).unwrap().contains("\"t\""), "the token must not be exposed");
    assert_eq!(r.sides.new.addresses[0].address, new.address());
    assert!(r.sides.new.addresses[0].healthy);

    // The unversioned paths are an alias of the current version: the same shapes.
    let one = c.get(s.admin_url("/api/routes/orders")).send().await.expect("route");
    assert_eq!(one.status(), 200);
    assert_eq!(&one.json::<RouteView>().await.expect("a route").name, "orders");

    let missing = c.get(s.admin_url("/api/v1/routes/nope")).send().await.expect("route");
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<ErrorBody>().await.expect("an error").error.contains("nope"));

    let post = c.post(s.admin_url("/api/v1/routes")).send().await.expect("post");
    assert_eq!(post.status(), 405);
    assert!(post.json::<ErrorBody>().await.expect("an error").error.contains("GET"));
}

async fn wait_for_log(s: &Strangler, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = s.log();
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "{needle:?} never logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_access_log_line_per_request_in_text_and_json() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;

    let s = Strangler::start_with_log("level = \"info\"\naccess_log = true\n", &body(&legacy, &new)).await;
    let c = client();
    c.get(s.url("/orders/42"))
        .header("host", "api.example.com")
        .header("x-target", "new;token=t")
        .send()
        .await
        .expect("send");
    let log = wait_for_log(&s, "/orders/42").await;
    let line = log.lines().find(|l| l.contains("strangler::access")).expect("access line");
    for part in [
        "route=\"orders\"",
        "side=\"new\"",
        "method=\"GET\"",
        "status=\"200\"",
        &format!("upstream=\"{}\"", new.address()),
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }

    let s = Strangler::start_with_log("level = \"info\"\nformat = \"json\"\naccess_log = true\n", &body(&legacy, &new))
        .await;
    c.get(s.url("/nowhere")).send().await.expect("send");
    let log = wait_for_log(&s, "/nowhere").await;
    let access: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["target"] == "strangler::access")
        .collect();
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["route"], "-");
    assert_eq!(access[0]["status"], "404");
    // Pingora's own `log` output arrives through the same subscriber, as JSON too.
    assert!(log.lines().any(|l| l.contains("pingora")), "no Pingora lines in:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_that_changes_the_listeners_says_a_restart_is_needed() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let s = Strangler::start(&body(&legacy, &new)).await;
    let text = std::fs::read_to_string(&s.config).expect("read").replace("threads = 2", "threads = 3");
    std::fs::write(&s.config, text).expect("write");
    s.wait_metric("strangler_config_reloads_total{result=\"ok\"}", 1.0).await;
    wait_for_log(&s, "changes to server take effect only after a restart").await;
}

/// A route's history: one sample per 5 s step, each with both sides' figures, for charts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_history_has_a_sample_per_step_with_both_sides() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 50\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    let c = client();
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(5600) {
        assert_eq!(c.get(s.url("/x")).send().await.expect("request").status(), 200);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h: strangler::api::History = s.api("/routes/orders/history").await;
    assert_eq!(h.step_seconds, 5);
    assert!(!h.samples.is_empty(), "no sample after a whole step");
    let w = &h.samples[0].window;
    let both = w.legacy.requests + w.new.requests;
    assert!(both > 0 && both <= sent, "{both} requests in the first step of {sent} sent");
    assert!(w.legacy.requests > 0 && w.new.requests > 0, "weight 50 sends to both sides: {w:?}");
    assert!((w.seconds - 5.0).abs() < 1.5, "a step covers about 5 s: {}", w.seconds);
    let missing = c.get(s.admin_url("/api/v1/routes/nope/history")).send().await.expect("request");
    assert_eq!(missing.status(), 404);
}
