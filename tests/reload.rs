//! Hot reload: file edits (atomic rename, symlink swap), SIGHUP, invalid files, under load.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn body(legacy: &MockUpstream, new: &MockUpstream, weight: f64) -> String {
    format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = {weight}\n",
        pools(legacy, new)
    )
}

const RELOAD_ERR: &str = "strangler_config_reloads_total{result=\"error\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn editing_the_weight_under_load_changes_the_split_and_fails_no_request() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let s = Strangler::start(&body(&legacy, &new, 10.0)).await;

    // Continuous load from 8 workers; each response is tallied by the side that served it.
    let stop = Arc::new(AtomicBool::new(false));
    let (to_new, total, failed) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (c, url, stop, to_new, total, failed) =
            (client(), s.url("/orders"), stop.clone(), to_new.clone(), total.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        if r.text().await.is_ok_and(|b| b == "new") {
                            to_new.fetch_add(1, Ordering::SeqCst);
                        }
                        total.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    let window = || async {
        let (n0, t0) = (to_new.load(Ordering::SeqCst), total.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (n1, t1) = (to_new.load(Ordering::SeqCst), total.load(Ordering::SeqCst));
        (n1 - n0) as f64 / (t1 - t0).max(1) as f64 * 100.0
    };

    let before = window().await;
    s.rewrite(&body(&legacy, &new, 50.0));
    s.wait_metric(RELOAD_OK, 1.0).await;
    let after = window().await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "requests failed during the reload");
    assert!(total.load(Ordering::SeqCst) > 500, "too little load to prove anything");
    assert!((5.0..15.0).contains(&before), "before the edit: {before:.1}% on new");
    assert!((42.0..58.0).contains(&after), "after the edit: {after:.1}% on new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_file_is_refused_counted_and_the_old_config_keeps_serving() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let mut s = Strangler::start(&body(&legacy, &new, 100.0)).await;
    let c = client();

    for broken in [
        body(&legacy, &new, 150.0),                               // invalid value
        "[[routes]\nname = ".to_string(),                         // not TOML
        format!("{}weight_typo = 1\n", body(&legacy, &new, 0.0)), // unknown key
    ] {
        let errors = s.metric_value(RELOAD_ERR).await;
        s.rewrite(&broken);
        s.wait_metric(RELOAD_ERR, errors + 1.0).await;
        let r = c.get(s.url("/")).send().await.expect("send");
        assert_eq!(r.text().await.expect("text"), "new", "the last valid config (weight 100) must keep serving");
    }
    // Truncated to nothing, then deleted: still serving, still the old config.
    let errors = s.metric_value(RELOAD_ERR).await;
    std::fs::remove_file(&s.config).expect("delete");
    s.wait_metric(RELOAD_ERR, errors + 1.0).await;
    assert_eq!(c.get(s.url("/")).send().await.expect("send").text().await.expect("text"), "new");
    assert!(s.is_running());
    assert_eq!(s.metric(RELOAD_OK).await, Some(0.0));
    assert!(s.log().contains("routes[0].weight"), "the log names the bad key:\n{}", s.log());

    // A valid file again is picked up.
    s.rewrite(&body(&legacy, &new, 0.0));
    s.wait_metric(RELOAD_OK, 1.0).await;
    assert_eq!(c.get(s.url("/")).send().await.expect("send").text().await.expect("text"), "legacy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_reloads_and_does_not_kill_the_process() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let mut s = Strangler::start(&body(&legacy, &new, 0.0)).await;
    // SIGHUP reloads even when the file is unchanged (it also re-resolves upstream names).
    for i in 1..=3 {
        s.signal("HUP");
        s.wait_metric(RELOAD_OK, f64::from(i)).await;
    }
    assert!(s.is_running());
    assert_eq!(client().get(s.url("/")).send().await.expect("send").status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kubernetes_style_symlink_swap_is_seen() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    // dir/strangler.toml -> ..data/strangler.toml, ..data -> ..v1; an update swaps ..data to ..v2.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("..v1")).expect("mkdir");
    std::os::unix::fs::symlink("..v1", d.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/strangler.toml", d.join("strangler.toml")).expect("symlink");
    let config = d.join("strangler.toml");
    let s = Strangler::start_at(dir, config, &body(&legacy, &new, 0.0)).await;
    let c = client();
    assert_eq!(c.get(s.url("/")).send().await.expect("send").text().await.expect("text"), "legacy");

    let d = s.dir.path();
    let text =
        std::fs::read_to_string(d.join("..v1/strangler.toml")).expect("read").replace("weight = 0", "weight = 100");
    std::fs::create_dir(d.join("..v2")).expect("mkdir");
    std::fs::write(d.join("..v2/strangler.toml"), text).expect("write");
    std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).expect("symlink");
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).expect("swap");
    s.wait_metric(RELOAD_OK, 1.0).await;
    assert_eq!(c.get(s.url("/")).send().await.expect("send").text().await.expect("text"), "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_in_flight_finishes_on_the_config_it_started_with() {
    let legacy = MockUpstream::start("legacy").await;
    let slow_new = MockUpstream::builder("new").delay(Duration::from_millis(800)).start().await;
    let s = Strangler::start(&body(&legacy, &slow_new, 100.0)).await;
    let c = client();
    let in_flight = tokio::spawn(c.get(s.url("/orders")).send());
    // In flight once new has it (it answers 800 ms later).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while slow_new.received().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the request never reached new");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The route now sends nothing to new, and the new pool is gone from the file.
    s.rewrite(&format!(
        "[upstreams.legacy]\naddresses = [\"{}\"]\n\n[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"legacy\"\nweight = 0\n",
        legacy.address()
    ));
    s.wait_metric(RELOAD_OK, 1.0).await;
    assert_eq!(c.get(s.url("/orders")).send().await.expect("send").text().await.expect("text"), "legacy");
    let r = in_flight.await.expect("task").expect("in-flight request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("text"), "new");
}
