//! Cutover evidence no client can bend, against the real binary: a client that changes state
//! between reads cannot teach strangler to ignore a real bug; ids of every shape fold into one
//! template per route shape while literals stay; the evidence stays within its byte budget under
//! an attack; and no secret of the audit's list reaches the diffs file, the API or the report.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use strangler::api::{Diffs, Report, RolloutView, Verdict};

/// Every shadow result of route `route` so far, by result. Each is registered at zero with the
/// route, so a missing one is a wrong name, not a zero.
async fn shadow_results(s: &Strangler, route: &str) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    for r in ["match", "mismatch", "error", "dropped", "skipped"] {
        let name = format!("strangler_shadow_total{{result=\"{r}\",route=\"{route}\"}}");
        out.push((r, s.metric(&name).await.unwrap_or_else(|| panic!("no {name}"))));
    }
    out
}

/// Compared pairs (match + mismatch) of route `route` so far.
async fn compared(s: &Strangler, route: &str) -> f64 {
    shadow_results(s, route).await.iter().filter(|(r, _)| matches!(*r, "match" | "mismatch")).map(|(_, n)| n).sum()
}

async fn wait_compared(s: &Strangler, route: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while compared(s, route).await < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} pairs compared: {:?}\n{}",
            compared(s, route).await,
            shadow_results(s, route).await,
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Legacy and new share the accounts' state. The fee depends on the plan: legacy charges 1 on
/// the basic plan and new charges 2 (the bug), both 5 on premium. New answers 150 ms slower.
/// Every answer carries a fresh nonce. `POST /accounts/ID/plan` toggles the plan.
async fn accounts() -> (MockUpstream, MockUpstream) {
    let plans: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
    let nonce = Arc::new(AtomicU64::new(0));
    let side = |buggy: bool| {
        let (plans, nonce) = (plans.clone(), nonce.clone());
        move |r: &Received| {
            let id = r.path.trim_start_matches("/accounts/").split('/').next().unwrap_or("").to_string();
            let mut plans = plans.lock().expect("lock");
            if r.method == "POST" {
                let premium = plans.entry(id).or_default();
                *premium = !*premium;
                return (200, Vec::new(), Bytes::from_static(b"{}"));
            }
            let premium = plans.get(&id).copied().unwrap_or(false);
            let fee = match (premium, buggy) {
                (true, _) => 5,
                (false, false) => 1,
                (false, true) => 2,
            };
            let n = nonce.fetch_add(1, Ordering::Relaxed);
            let plan = if premium { "premium" } else { "basic" };
            let body = format!(r#"{{"id":"{id}","plan":"{plan}","fee":{fee},"nonce":"n{n}"}}"#);
            (200, Vec::new(), Bytes::from(body))
        }
    };
    let legacy = MockUpstream::builder("legacy").reply(side(false)).no_record().start().await;
    let new =
        MockUpstream::builder("new").reply(side(true)).delay(Duration::from_millis(150)).no_record().start().await;
    (legacy, new)
}

/// The poisoning attack of the audit: a client reads its account and at once toggles its plan,
/// 20 times, then 200 other clients read their own. The repeat that learns noise leaves beside
/// the primary's request, so the toggle cannot fall between two answers of one side: `$.fee` is
/// a finding, the nonce is noise from the first request, and a `require_ready` rollout is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_toggling_state_cannot_teach_strangler_to_ignore_a_bug() {
    let (legacy, new) = accounts().await;
    let body = format!(
        "{}[[routes]]\nname = \"accounts\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         sticky = {{ header = \"x-user\" }}\n\
         [routes.shadow]\n[routes.compare]\nignore_headers = [\"date\", \"x-upstream\"]\nready_after = 50\n\
         [routes.rollout]\nsteps = [50, 100]\nhold = \"200ms\"\nmin_requests = 10\nmax_latency_ratio = 1000\n\
         require_ready = true\nmax_mismatch_rate = \"off\"\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    let c = client();
    for _ in 0..20 {
        let read = c.get(s.url("/accounts/7")).header("x-user", "mallory").send().await.expect("read");
        assert_eq!(read.status(), 200);
        let toggle = c.post(s.url("/accounts/7/plan")).header("x-user", "mallory").send().await.expect("toggle");
        assert_eq!(toggle.status(), 200);
    }
    let mut readers = Vec::new();
    for i in 0..200 {
        let (c, url) = (c.clone(), s.url(&format!("/accounts/{}", 100 + i)));
        readers.push(tokio::spawn(async move {
            c.get(url).header("x-user", format!("user-{i}")).send().await.map(|r| r.status().as_u16())
        }));
        if readers.len() == 16 {
            for r in readers.drain(..) {
                assert_eq!(r.await.expect("task").expect("read"), 200);
            }
        }
    }
    for r in readers {
        assert_eq!(r.await.expect("task").expect("read"), 200);
    }
    wait_compared(&s, "accounts", 220.0).await;

    let report: Report = s.api("/routes/accounts/report").await;
    let e = report.endpoints.iter().find(|e| e.endpoint == "GET /accounts/{id}").expect("the accounts endpoint");
    let findings: Vec<String> = e.findings.iter().map(|f| f.field.to_string()).collect();
    assert_eq!(e.verdict, Verdict::Differs, "{e:#?}");
    // The highest: the bug. (A toggle can also land between a read's primary and its shadow: a
    // real difference in `plan` on a pair or two, seen as such.)
    assert_eq!(findings[0], "json:$.fee", "{e:#?}");
    assert!(e.findings[0].rate > 90.0, "{e:#?}");
    assert!(!findings.contains(&"json:$.nonce".to_string()), "{e:#?}");
    let nonce = e.noise.iter().find(|n| n.field.to_string() == "json:$.nonce").expect("the nonce is noise");
    assert!(nonce.explained >= 200, "every pair's nonce difference explained and counted: {nonce:?}");
    // A repeat leaves before the client has the answer; should an upstream still process it after
    // the toggle, that is one client's sample among many, weighed once.
    assert!(e.findings[0].noise_rate < 10.0, "{:#?}", e.findings[0]);
    assert!(e.noise_clients > 1, "the readers are clients of their own: {e:#?}");
    let learned = s.metric_value("strangler_noise_samples_total{result=\"learned\",route=\"accounts\"}").await;
    let late = s.metric_value("strangler_noise_samples_total{result=\"late\",route=\"accounts\"}").await;
    println!("noise repeats: {learned} learned, {late} sent after their primary's answer was delivered (not counted)");
    assert!(learned >= 20.0, "{learned} learned, {late} late");

    // The rollout: the last step waits for a report free of differences. (The mismatch gate,
    // on by default, would roll the bug back first; it is off here so the report alone decides.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let _traffic = loop {
        let r: RolloutView = s.rollout("accounts").await;
        if r.waiting.as_deref().is_some_and(|w| w.contains("GET /accounts/{id} differs")) {
            break r;
        }
        assert!(Instant::now() < deadline, "the rollout was never held by the report: {r:?}\n{}", s.log());
        let _ = c.get(s.url("/accounts/1")).header("x-user", "steady").send().await;
    };
    assert_eq!(s.route("accounts").await.weight, 50.0, "held at the step before the last");

    // The CLI shows what noise explained.
    let (ok, out, err) = s.cli(&["report", "accounts"]);
    assert!(ok, "{err}");
    assert!(out.contains("json:$.nonce: explained"), "{out}");
}

/// Real-world id shapes, none of which a segment rule knows for sure, fold into one template per
/// route shape from their cardinality; the literals beside them stay, and the report says which
/// templates were inferred and from how many values.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_of_every_shape_fold_into_one_template_each() {
    let same = |_: &Received| (200, Vec::new(), Bytes::from_static(br#"{"ok":true}"#));
    let legacy = MockUpstream::builder("legacy").reply(same).no_record().start().await;
    let new = MockUpstream::builder("new").reply(same).no_record().start().await;
    let body = format!(
        "{}[[routes]]\nname = \"api\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.shadow]\n[routes.compare]\nignore_headers = [\"date\", \"x-upstream\"]\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    let c = client();
    let word = |i: usize| char::from(b'a' + (i % 26) as u8).to_string().repeat(i / 26 + 2);
    type Shape = (&'static str, Box<dyn Fn(usize) -> String>);
    let shapes: Vec<Shape> = vec![
        (
            "/b64/{id}",
            Box::new(|i| format!("/b64/{}==", ["QUJD", "REVG", "R0hJ", "SktM"][i % 4].to_string() + &"QQ".repeat(i))),
        ),
        ("/url/{id}", Box::new(move |i| format!("/url/aB-_{}", word(i)))),
        ("/posts/{id}", Box::new(move |i| format!("/posts/my-{}-post", word(i)))),
        ("/days/{id}", Box::new(|i| format!("/days/2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1))),
        ("/people/{id}", Box::new(move |i| format!("/people/{}@example.com", word(i)))),
        ("/hash/{id}", Box::new(move |i| format!("/hash/AbCdEf{}", word(i).to_uppercase()))),
        ("/orders/{id}", Box::new(|i| format!("/orders/{}", 1000 + i))),
        ("/users/{id}", Box::new(|i| format!("/users/3f2504e0-4f89-11d3-9a0c-{:012x}", i))),
    ];
    let mut sent = 0;
    for i in 0..30 {
        for (_, make) in &shapes {
            assert_eq!(c.get(s.url(&make(i))).send().await.expect("request").status(), 200);
            sent += 1;
        }
        for literal in ["/posts/latest", "/v2/search"] {
            assert_eq!(c.get(s.url(literal)).send().await.expect("request").status(), 200);
            sent += 1;
        }
    }
    wait_compared(&s, "api", f64::from(sent)).await;
    let report: Report = s.api("/routes/api/report").await;
    let names: BTreeSet<&str> = report.endpoints.iter().map(|e| e.endpoint.as_str()).collect();
    let mut want: BTreeSet<String> = shapes.iter().map(|(t, _)| format!("GET {t}")).collect();
    want.insert("GET /posts/latest".into());
    want.insert("GET /v2/search".into());
    assert_eq!(names, want.iter().map(String::as_str).collect(), "{report:#?}");
    assert_eq!(report.endpoints.iter().map(|e| e.comparisons).sum::<u64>(), sent as u64, "nothing lost in a fold");
    let posts = report.endpoints.iter().find(|e| e.endpoint == "GET /posts/{id}").expect("posts");
    assert_eq!((posts.comparisons, posts.inferred_from.as_slice()), (30, &[30][..]));
    let literal = report.endpoints.iter().find(|e| e.endpoint == "GET /posts/latest").expect("latest");
    assert!(literal.inferred_from.is_empty() && !literal.declared);
    let (ok, out, err) = s.cli(&["report", "api"]);
    assert!(ok, "{err}");
    assert!(out.contains("GET /posts/{id} (30 distinct values)"), "{out}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The audit's attack: 16 clients send 120 requests to distinct paths with a 60 KB query, and
/// legacy and new differ in 50 fields with long values. The evidence stays within
/// `max_evidence`, the endpoints within `max_endpoints`, the report's answer bounded; the
/// growth of the process is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_evidence_stays_within_its_byte_budget_under_attack() {
    let doc = |tag: &'static str| {
        move |_: &Received| {
            let fields: Vec<String> = (0..50).map(|k| format!(r#""field_{k}":"{tag}{}""#, "v".repeat(2000))).collect();
            (200, Vec::new(), Bytes::from(format!("{{{}}}", fields.join(","))))
        }
    };
    let legacy = MockUpstream::builder("legacy").reply(doc("l")).no_record().start().await;
    let new = MockUpstream::builder("new").reply(doc("n")).no_record().start().await;
    let body = format!(
        "{}[[routes]]\nname = \"api\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.shadow]\n[routes.compare]\nignore_headers = [\"date\", \"x-upstream\"]\n\
         max_endpoints = 100\nmax_evidence = \"1MiB\"\nkeep_diffs_bytes = \"1MiB\"\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    let before = rss_kib(s.child.id());
    let query = format!("q={}", "x".repeat(60_000));
    let c = client();
    let mut tasks = Vec::new();
    for client_no in 0..16 {
        let (c, base, query) = (c.clone(), s.url(""), query.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..120 / 16 + 1 {
                let url = format!("{base}/c{client_no}/r{i}/s{client_no}x{i}?{query}");
                let r = c.get(url).send().await.expect("request");
                assert_eq!(r.status(), 200);
                // Read whole, as a client does: one that hangs up mid-body fails its request,
                // and a failed primary is not compared.
                assert!(r.bytes().await.expect("the body").len() > 100_000);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    wait_compared(&s, "api", 128.0).await;
    let after = rss_kib(s.child.id());
    let report: Report = s.api("/routes/api/report?limit=1000").await;
    let text = reqwest::get(s.admin_url("/api/v1/routes/api/report?limit=1000"))
        .await
        .expect("report")
        .text()
        .await
        .expect("body");
    let evidence = s.metric("strangler_evidence_bytes{route=\"api\"}").await.expect("the evidence gauge");
    println!(
        "evidence under attack: {} endpoints, evidence {:.0} KiB of a 1024 KiB budget, report {:.0} KiB, \
         process grew {:.1} MiB (RSS {before} -> {after} KiB)",
        report.total_endpoints,
        evidence / 1024.0,
        text.len() as f64 / 1024.0,
        (after as f64 - before as f64) / 1024.0
    );
    assert!(evidence <= 1024.0 * 1024.0, "evidence {evidence} bytes");
    assert_eq!(report.evidence_bytes as f64, evidence);
    assert!(report.total_endpoints <= 100, "{} endpoints", report.total_endpoints);
    assert!(text.len() < 1024 * 1024 + 4096, "the report is {} bytes", text.len());
    for x in report.endpoints.iter().flat_map(|e| &e.findings).flat_map(|f| &f.examples) {
        assert!(x.path.len() < 300, "an example keeps {} bytes of path", x.path.len());
    }
    let diffs: Diffs = s.api("/routes/api/diffs?limit=1000").await;
    assert!(diffs.diffs.iter().all(|d| d.path.len() < 2100), "a diff record keeps a 60 KB path");
    assert!(after.saturating_sub(before) < 150 * 1024, "the process grew {} KiB", after - before);
}

/// Every redaction gap of the audit: `;` query parameters, token headers matched by pattern,
/// and URLs with a token inside `Referer` and `Location`. None reaches the diffs file, the
/// diffs API or the report, while the request still carries them to the upstreams.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_of_the_audit_is_stored_or_shown() {
    let answer = |tag: &'static str| {
        move |_: &Received| {
            let location = format!("/next?token=LOCSECRET{tag}&page=2");
            (201, vec![("location".to_string(), location)], Bytes::from(format!(r#"{{"side":"{tag}"}}"#)))
        }
    };
    let legacy = MockUpstream::builder("legacy").reply(answer("l")).start().await;
    let new = MockUpstream::builder("new").reply(answer("n")).no_record().start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let diffs_file = dir.path().join("diffs.jsonl");
    let log = format!("level = \"info\"\naccess_log = false\ndiffs_file = \"{}\"\n", diffs_file.display());
    let body = format!(
        "{}[[routes]]\nname = \"api\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.shadow]\n[routes.compare]\nignore_headers = [\"date\", \"x-upstream\"]\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start_with_log(&log, &body).await;
    let r = client()
        .get(s.url("/pay?a=1;token=QUERYSECRET&b=2"))
        .header("x-auth-token", "AUTHSECRET")
        .header("x-vault-token", "VAULTSECRET")
        .header("x-csrf-token", "CSRFSECRET")
        .header("referer", "https://shop.example/cart?token=REFSECRET;lang=en")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 201);
    wait_compared(&s, "api", 1.0).await;
    let got = legacy.received().into_iter().next().expect("legacy got the request");
    assert_eq!(got.headers.get("x-vault-token").map(|v| v.as_bytes()), Some(&b"VAULTSECRET"[..]), "forwarded as sent");

    let deadline = Instant::now() + Duration::from_secs(10);
    let written = loop {
        let text = std::fs::read_to_string(&diffs_file).unwrap_or_default();
        if !text.is_empty() {
            break text;
        }
        assert!(Instant::now() < deadline, "no diff written\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let api = |path: &'static str| {
        let url = s.admin_url(path);
        async move { reqwest::get(url).await.expect("admin").text().await.expect("body") }
    };
    let diffs = api("/api/v1/routes/api/diffs").await;
    let report = api("/api/v1/routes/api/report").await;
    assert!(diffs.contains("token=[redacted]") && report.contains("token=[redacted]"), "{diffs}\n{report}");
    for secret in ["QUERYSECRET", "AUTHSECRET", "VAULTSECRET", "CSRFSECRET", "REFSECRET", "LOCSECRET"] {
        for (place, text) in [("the diffs file", &written), ("the diffs API", &diffs), ("the report", &report)] {
            assert!(!text.contains(secret), "{secret} in {place}: {text}");
        }
    }
}
