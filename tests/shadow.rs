//! Shadowing and comparison against the real binary and real upstreams: the client never waits
//! for the shadow, differences are found and reported where they are, noise is learned, and the
//! limits (loop guard, max_in_flight, redaction) hold.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bin, client, MockUpstream, Received, Strangler};
use serde_json::json;
use strangler::api::{DiffRecord, Diffs, Field};

/// Two routes on the same legacy pool: `/on` shadows to `new`, `/off` does not.
fn on_and_off(legacy: &MockUpstream, new_addr: &str, shadow: &str) -> String {
    format!(
        "[upstreams.legacy]\naddresses = [\"{}\"]\n[upstreams.new]\naddresses = [\"{new_addr}\"]\n\
         [[routes]]\nname = \"on\"\npath_prefix = \"/on\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0.0\n\
         [routes.shadow]\n{shadow}\n\
         [[routes]]\nname = \"off\"\npath_prefix = \"/off\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0.0\n",
        legacy.address()
    )
}

/// Sequential GETs; every answer must be legacy's. Returns the latencies, sorted.
async fn timed(c: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = c.get(url).send().await.expect("request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "legacy");
        took.push(t.elapsed());
    }
    took.sort();
    took
}

/// The client sees the same latency with shadowing on as off, whatever the shadow side does.
async fn assert_isolated(s: &Strangler) {
    let c = client();
    timed(&c, &s.url("/off/warm"), 5).await;
    let off = timed(&c, &s.url("/off/x"), 30).await;
    let on = timed(&c, &s.url("/on/x"), 30).await;
    let (p50_off, p50_on, max_on) = (off[15], on[15], on[29]);
    // The shadow side takes seconds or never answers; the client's requests take milliseconds.
    assert!(
        p50_on < p50_off + Duration::from_millis(50) && max_on < Duration::from_millis(500),
        "shadowing slowed the client: p50 off {p50_off:?}, p50 on {p50_on:?}, max on {max_on:?}"
    );
}

#[tokio::test]
async fn a_slow_shadow_side_never_delays_the_client() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::builder("new").delay(Duration::from_secs(2)).start().await;
    let s = Strangler::start(&on_and_off(&legacy, &new.address(), "timeout = \"3s\"")).await;
    assert_isolated(&s).await;
    // The shadows did go out, and complete after the clients are long gone.
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"on\"}", 30.0).await;
    assert_eq!(new.hits(), 30);
    // Routes without shadowing export no shadow series.
    assert!(!metrics(&s).await.contains("strangler_shadow_total{result=\"match\",route=\"off\"}"));
}

/// The scheduling policy of each of the process's threads named `name` (`/proc/PID/task/*/stat`,
/// field 41).
fn thread_policies(pid: u32, name: &str) -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
        // After the parenthesised name, fields start at the third.
        let (_, rest) = stat.rsplit_once(')').expect("stat has a name");
        let field = rest.split_whitespace().nth(41 - 3).expect("field 41");
        policies.push(field.parse().expect("a policy number"));
    }
    policies
}

#[tokio::test]
async fn shadow_threads_shadow_and_compare_at_idle_priority() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::builder("new").delay(Duration::from_millis(300)).start().await;
    let opts = common::Options { server: "shadow_threads = 1".into(), ..common::Options::default() };
    let s = Strangler::start_with(opts, &on_and_off(&legacy, &new.address(), "")).await;
    assert_isolated(&s).await;
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"on\"}", 30.0).await;
    assert_eq!(new.hits(), 30);
    let api: Diffs = s.api("/routes/on/diffs").await;
    assert!(!api.diffs.is_empty(), "the mismatches are recorded");
    // The shadow runtime's thread exists and runs SCHED_IDLE (5): the kernel gives it a core
    // only when no worker wants one.
    let policies = thread_policies(s.child.id(), "shadow");
    assert!(!policies.is_empty(), "no thread named shadow");
    assert!(policies.iter().all(|&p| p == libc::SCHED_IDLE as u32), "{policies:?}");
    // Without the setting there is no such thread: shadows run on the workers.
    let shared = Strangler::start(&on_and_off(&legacy, &new.address(), "")).await;
    assert_eq!(thread_policies(shared.child.id(), "shadow"), Vec::<u32>::new());
}

#[tokio::test]
async fn a_shadow_side_that_is_down_never_fails_the_client() {
    let legacy = MockUpstream::start("legacy").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let s = Strangler::start(&on_and_off(&legacy, &dead.to_string(), "")).await;
    assert_isolated(&s).await;
    s.wait_metric("strangler_shadow_total{result=\"error\",route=\"on\"}", 30.0).await;
}

#[tokio::test]
async fn a_huge_shadow_answer_is_skipped_without_touching_the_client() {
    let legacy = MockUpstream::start("legacy").await;
    let huge = Bytes::from(vec![b'x'; 50 << 20]);
    let new = MockUpstream::builder("new").reply(move |_| (200, Vec::new(), huge.clone())).start().await;
    let s = Strangler::start(&on_and_off(&legacy, &new.address(), "max_body = \"1MiB\"")).await;
    assert_isolated(&s).await;
    s.wait_metric("strangler_shadow_total{result=\"skipped\",route=\"on\"}", 30.0).await;
    assert_eq!(s.metric("strangler_shadow_total{result=\"mismatch\",route=\"on\"}").await, Some(0.0));
}

fn shadow_headers(r: &Received) -> Option<&str> {
    r.headers.get("x-strangler-shadow").and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn writes_are_shadowed_only_when_listed_and_bodies_arrive_intact() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "{}\n[[routes]]\nname = \"writes\"\npath_prefix = \"/writes\"\nlegacy = \"legacy\"\nnew = \"new\"\n\
         [routes.shadow]\nmethods = [\"GET\", \"POST\"]\n",
        on_and_off(&legacy, &new.address(), "")
    );
    let s = Strangler::start(&body).await;
    let c = client();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    // Default methods: the POST is served by legacy and never copied; the GET is.
    let r = c.post(s.url("/on/order")).body(payload.clone()).send().await.expect("post");
    assert_eq!(r.text().await.expect("body"), "legacy");
    c.get(s.url("/on/order")).send().await.expect("get");
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"on\"}", 1.0).await;
    let got = new.received();
    assert_eq!(got.len(), 1, "only the GET was shadowed: {got:?}");
    assert_eq!((got[0].method.as_str(), shadow_headers(&got[0])), ("GET", Some("1")));

    // Listed: the POST is copied with its body, byte for byte, streamed or not.
    c.post(s.url("/writes/order")).body(payload.clone()).send().await.expect("post");
    let answer = chunked_post(s.port, "/writes/chunked", &payload).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("legacy"), "{answer}");
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"writes\"}", 2.0).await;
    let posts: Vec<Received> = new.received().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 2);
    for p in &posts {
        assert_eq!(p.body.len(), payload.len(), "{}", p.path);
        assert!(p.body == payload, "shadowed body of {} differs", p.path);
        assert_eq!(shadow_headers(p), Some("1"));
    }
    let legacy_posts: Vec<Received> = legacy.received().into_iter().filter(|r| r.path == "/writes/chunked").collect();
    assert!(legacy_posts[0].body == payload, "the primary's body is intact too");
}

/// A POST with a chunked body, sent by hand (the client libraries buffer small bodies).
async fn chunked_post(port: u16, path: &str, payload: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .into_bytes();
    for c in payload.chunks(16_384) {
        req.extend(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend(c);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    s.write_all(&req).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// The loop guard: a shadow copy that comes back through a trusted hop (a service behind
/// strangler calling another route) is not shadowed again. From an untrusted client the marker
/// is dropped instead (`tests/hardening.rs`).
#[tokio::test]
async fn a_request_that_is_already_a_shadow_is_never_shadowed_again() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let opts = common::Options { server: "trusted_proxies = [\"127.0.0.1\"]".into(), ..Default::default() };
    let s = Strangler::start_with(opts, &on_and_off(&legacy, &new.address(), "")).await;
    let c = client();
    let r = c.get(s.url("/on/a")).header("x-strangler-shadow", "1").send().await.expect("get");
    assert_eq!(r.text().await.expect("body"), "legacy");
    c.get(s.url("/on/b")).send().await.expect("get");
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"on\"}", 1.0).await;
    let paths: Vec<String> = new.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/on/b"]);
}

#[tokio::test]
async fn shadows_over_max_in_flight_are_dropped_not_queued() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::builder("new").delay(Duration::from_millis(1500)).start().await;
    let s = Strangler::start(&on_and_off(&legacy, &new.address(), "max_in_flight = 1")).await;
    let c = client();
    let took = timed(&c, &s.url("/on/x"), 4).await;
    assert!(took[3] < Duration::from_millis(500), "a dropped shadow made the client wait: {took:?}");
    assert_eq!(s.metric("strangler_shadow_total{result=\"dropped\",route=\"on\"}").await, Some(3.0));
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"on\"}", 1.0).await;
    assert_eq!(new.hits(), 1);
    // The slot is free again once the shadow is done.
    timed(&c, &s.url("/on/y"), 1).await;
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"on\"}", 2.0).await;
}

/// Legacy and new answers that differ per path, the way a rewrite does.
fn differing(flavor: &'static str) -> impl Fn(&Received) -> (u16, Vec<(String, String)>, Bytes) {
    move |r| {
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        let legacy = flavor == "legacy";
        match r.path.as_str() {
            "/api/json" => {
                let body = if legacy {
                    json!({"total": 3, "items": [{"id": 1, "price": 10}], "meta": {"generated_at": 1}})
                } else {
                    json!({"amount": 3, "items": [{"price": 10.0, "id": 1}], "meta": {"generated_at": 2}})
                };
                (200, vec![h("content-type", "application/json")], Bytes::from(body.to_string()))
            }
            // Legacy compresses, new does not: the same document, compared decoded.
            "/api/gzip" if legacy => {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(br#"{"a": [1, 2], "b": "x"}"#).expect("gzip");
                let h2 = h("content-encoding", "gzip");
                (200, vec![h2], Bytes::from(gz.finish().expect("gzip")))
            }
            "/api/gzip" => (200, Vec::new(), Bytes::from_static(br#"{"b":"x","a":[1,2.0]}"#)),
            "/api/status" => (if legacy { 404 } else { 400 }, Vec::new(), Bytes::from_static(b"no")),
            "/api/header" => {
                let v = if legacy { "a" } else { "b" };
                (200, vec![h("x-flavor", v), h("x-ignored", v)], Bytes::from_static(b"same"))
            }
            _ => (200, vec![h("x-ignored", flavor)], Bytes::from_static(b"same")),
        }
    }
}

#[tokio::test]
async fn differences_are_found_reported_and_shown_by_the_cli() {
    let legacy = MockUpstream::builder("legacy").reply(differing("legacy")).start().await;
    let new = MockUpstream::builder("new").reply(differing("new")).start().await;
    let body = format!(
        "{}[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0.0\n\
         [routes.shadow]\n[routes.compare]\nignore_headers = [\"date\", \"X-Ignored\", \"x-upstream\"]\n\
         ignore_json_paths = [\"$.meta.generated_at\"]\nnoise_sample = 0.0\n",
        common::pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    let c = client();
    for path in ["/api/same", "/api/gzip", "/api/json", "/api/status", "/api/header"] {
        c.get(s.url(path)).send().await.expect("get");
        // One at a time, so the diffs come back in a known order.
        let matches = if path == "/api/same" { 1.0 } else { 2.0 };
        s.wait_metric("strangler_shadow_total{result=\"match\",route=\"api\"}", matches).await;
        let done = |t: &str| common::parse_metric(t, "strangler_shadow_total{result=\"mismatch\",route=\"api\"}");
        let want = match path {
            "/api/same" | "/api/gzip" => 0.0,
            "/api/json" => 1.0,
            "/api/status" => 2.0,
            _ => 3.0,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while done(&metrics(&s).await).is_none_or(|n| n < want) {
            assert!(Instant::now() < deadline, "no mismatch recorded for {path}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for (place, n) in [("body", 1.0), ("status", 1.0), ("header", 1.0)] {
        let sample = format!("strangler_shadow_mismatches_total{{route=\"api\",where=\"{place}\"}}");
        assert_eq!(s.metric(&sample).await, Some(n), "{sample}");
    }
    assert_eq!(s.metric("strangler_shadow_total{result=\"match\",route=\"api\"}").await, Some(2.0));

    let api: Diffs = s.api("/routes/api/diffs").await;
    let diffs = &api.diffs;
    let wheres = |i: usize| -> Vec<String> { diffs[i].differences.iter().map(|d| d.field.to_string()).collect() };
    assert_eq!(diffs.len(), 3);
    assert_eq!(wheres(0), ["header:x-flavor"], "x-ignored and date are ignored");
    assert_eq!(wheres(1), ["status"]);
    // 10 == 10.0 and key order do not count; the ignored path does not either.
    assert_eq!(wheres(2), ["json:$.total", "json:$.amount"]);
    let total = &diffs[2].differences[0];
    assert_eq!((total.legacy.clone(), total.new.clone()), (Some(json!(3)), None));
    assert_eq!((diffs[1].legacy.status, diffs[1].new.status), (404, 400));
    assert_eq!((diffs[2].method.as_str(), diffs[2].path.as_str()), ("GET", "/api/json"));
    let limited: Diffs = s.api("/routes/api/diffs?limit=1").await;
    assert_eq!(limited.diffs.len(), 1);
    let bad = c.get(s.admin_url("/api/routes/api/diffs?limit=zero")).send().await.expect("diffs");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("\"error\""));

    let shadow = s.route("api").await.shadow.expect("the route shadows");
    assert_eq!(shadow.counts.mismatch, 3);
    assert_eq!(shadow.target, "other");

    // The CLI, reading the admin address from the same config.
    let out = Command::new(bin()).args(["diffs", "api", "-c"]).arg(&s.config).output().expect("cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("GET /api/json"), "{text}");
    let row = text.lines().find(|l| l.trim_start().starts_with("json:$.total")).expect("a row for $.total");
    assert!(row.contains('3') && row.contains("(absent)"), "{row}");
    let out = Command::new(bin())
        .args(["diffs", "api", "--json", "--limit", "1", "-c"])
        .arg(&s.config)
        .output()
        .expect("cli");
    let v: Diffs = serde_json::from_slice(&out.stdout).expect("--json prints the API's JSON");
    assert_eq!(v.diffs.len(), 1);

    // Errors: one clear line, non-zero exit.
    let out = Command::new(bin()).args(["diffs", "nope", "-c"]).arg(&s.config).output().expect("cli");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("404") && err.contains("no route named \"nope\""), "{err}");
    let out = Command::new(bin()).args(["diffs", "api", "--admin", "http://127.0.0.1:1"]).output().expect("cli");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the admin API"));
}

async fn metrics(s: &Strangler) -> String {
    reqwest::get(s.admin_url("/metrics")).await.expect("metrics").text().await.expect("text")
}

/// Every answer carries fresh random ids; `value` differs only between legacy and new.
fn noisy(value: u32) -> impl Fn(&Received) -> (u16, Vec<(String, String)>, Bytes) {
    move |_| {
        let id = || format!("{:x}", rand::random::<u64>());
        let body = json!({"id": id(), "value": value, "items": [{"rid": id()}, {"rid": id()}]});
        (200, vec![("x-request-id".to_string(), id())], Bytes::from(body.to_string()))
    }
}

#[tokio::test]
async fn noise_is_learned_from_one_side_and_real_differences_are_not() {
    let legacy = MockUpstream::builder("legacy").reply(noisy(1)).start().await;
    let new = MockUpstream::builder("new").reply(noisy(2)).start().await;
    let body = format!(
        "{}[[routes]]\nname = \"api\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0.0\n\
         [routes.shadow]\n[routes.compare]\nnoise_sample = 100.0\nignore_headers = [\"date\", \"x-upstream\"]\n",
        common::pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    let c = client();
    for i in 0..5 {
        c.get(s.url(&format!("/thing/{i}"))).send().await.expect("get");
        s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"api\"}", f64::from(i + 1)).await;
    }
    let noise = s.route("api").await.shadow.expect("the route shadows").noise;
    let learned: Vec<String> = noise.iter().map(|n| n.field.to_string()).collect();
    assert_eq!(learned, ["header:x-request-id", "json:$.id", "json:$.items[*].rid"]);
    assert_eq!(noise[1].seen, 5);
    assert_eq!(s.metric("strangler_noise_fields{route=\"api\"}").await, Some(3.0));
    // Each request was sent twice to legacy (the answer and the noise probe) and once to new.
    assert_eq!((legacy.hits(), new.hits()), (10, 5));

    let api: Diffs = s.api("/routes/api/diffs").await;
    for d in &api.diffs {
        let wheres: Vec<String> = d.differences.iter().map(|x| x.field.to_string()).collect();
        assert_eq!(wheres, ["json:$.value"], "only the real difference is reported, even on the first request");
    }
}

#[tokio::test]
async fn redacted_headers_never_reach_the_api_or_the_diffs_file() {
    let cookie = |v: &'static str| {
        move |_: &Received| (200, vec![("set-cookie".to_string(), v.to_string())], Bytes::from_static(b"x"))
    };
    let legacy = MockUpstream::builder("legacy").reply(cookie("session=legacy-secret")).start().await;
    let new = MockUpstream::builder("new").reply(cookie("session=new-secret")).start().await;
    let body = format!(
        "{}[[routes]]\nname = \"api\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0.0\n\
         [routes.shadow]\n[routes.compare]\nnoise_sample = 0.0\nignore_headers = [\"date\", \"x-upstream\"]\nredact_headers = [\"Authorization\", \"set-cookie\", \"x-api-key\"]\n",
        common::pools(&legacy, &new)
    );
    let dir = tempfile::tempdir().expect("dir");
    let diffs_file = dir.path().join("diffs.jsonl");
    let log = format!("level = \"info\"\naccess_log = false\ndiffs_file = \"{}\"\n", diffs_file.display());
    let s = Strangler::start_with_log(&log, &body).await;
    let c = client();
    c.get(s.url("/x"))
        .header("authorization", "Bearer hunter2")
        .header("x-api-key", "k-123")
        .send()
        .await
        .expect("get");
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"api\"}", 1.0).await;

    let api = c.get(s.admin_url("/api/routes/api/diffs")).send().await.expect("diffs").text().await.expect("text");
    // The diffs file is written by a writer of its own, after the pair is counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = loop {
        match std::fs::read_to_string(&diffs_file) {
            Ok(text) if !text.is_empty() => break text,
            _ => assert!(Instant::now() < deadline, "no diffs file written"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(file.lines().count(), 1);
    for text in [&api, &file] {
        for secret in ["hunter2", "k-123", "legacy-secret", "new-secret"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    let line: DiffRecord = serde_json::from_str(file.trim()).expect("one JSON line, a diff record");
    assert_eq!(line.request_headers["authorization"], json!("[redacted]"));
    let redacted = Some(json!("[redacted]"));
    let first = &line.differences[0];
    assert_eq!(first.field, Field::Header("set-cookie".into()));
    assert_eq!((&first.legacy, &first.new), (&redacted, &redacted));
    // What is not redacted is shown as it is, so a mismatch can be reproduced.
    assert!(!line.request_headers.contains_key("x-strangler-shadow"));
    assert_eq!(line.path, "/x");
}

#[tokio::test]
async fn shadowing_is_turned_on_and_off_by_a_reload_and_learned_noise_survives_it() {
    let legacy = MockUpstream::builder("legacy").reply(noisy(1)).start().await;
    let new = MockUpstream::builder("new").reply(noisy(1)).start().await;
    let route = |shadow: &str| {
        format!(
            "{}[[routes]]\nname = \"api\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0.0\n{shadow}",
            common::pools(&legacy, &new)
        )
    };
    let on = "[routes.shadow]\n[routes.compare]\nnoise_sample = 100.0\nignore_headers = [\"date\", \"x-upstream\"]\n";
    let s = Strangler::start(&route("")).await;
    let c = client();
    c.get(s.url("/a")).send().await.expect("get");
    assert_eq!(new.hits(), 0);

    s.rewrite(&route(on));
    s.wait_metric("strangler_config_reloads_total{result=\"ok\"}", 1.0).await;
    c.get(s.url("/b")).send().await.expect("get");
    // Both sides answer the same up to their random fields: learned, then a match.
    s.wait_metric("strangler_shadow_total{result=\"match\",route=\"api\"}", 1.0).await;
    assert_eq!(s.metric("strangler_noise_fields{route=\"api\"}").await, Some(3.0));

    // A reload that keeps the route keeps what it learned.
    s.rewrite(&route(&on.replace("noise_sample = 100.0", "noise_sample = 0.0")));
    s.wait_metric("strangler_config_reloads_total{result=\"ok\"}", 2.0).await;
    c.get(s.url("/c")).send().await.expect("get");
    s.wait_metric("strangler_shadow_total{result=\"match\",route=\"api\"}", 2.0).await;
    assert_eq!(s.metric("strangler_shadow_total{result=\"mismatch\",route=\"api\"}").await, Some(0.0));

    s.rewrite(&route("[routes.shadow]\nenabled = false\n"));
    s.wait_metric("strangler_config_reloads_total{result=\"ok\"}", 3.0).await;
    let before = new.hits();
    c.get(s.url("/d")).send().await.expect("get");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(new.hits(), before, "a disabled shadow sends nothing");
}
