//! The cutover report against the real binary: a legacy and a new service that both answer with
//! random ids, the new one differing on one endpoint only. Noise is known before it can be
//! reported, the real difference is a finding of its endpoint, and the CLI prints the verdicts.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{client, MockUpstream, Received, Strangler};
use strangler::api::{Diffs, Report, Verdict};

/// A service answering JSON with a fresh id and timestamp every time, like most real ones;
/// `price` is 10, or `bad_price` on `/orders/7` when given.
async fn service(name: &str, bad_price: Option<u64>) -> MockUpstream {
    let counter = Arc::new(AtomicU64::new(0));
    let tag = name.to_string();
    MockUpstream::builder(name)
        .reply(move |r: &Received| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let price = if r.path == "/orders/7" { bad_price.unwrap_or(10) } else { 10 };
            let body = format!(r#"{{"id":"{tag}-{n}","at":{n},"items":[{{"sku":"a","price":{price}}}]}}"#);
            (200, vec![("x-request-id".into(), format!("{tag}{n}"))], Bytes::from(body))
        })
        .start()
        .await
}

/// The mocks name themselves in `x-upstream`, a difference by design: ignored.
fn config(legacy: &MockUpstream, new: &MockUpstream, compare: &str) -> String {
    format!(
        "[upstreams.legacy]\naddresses = [\"{}\"]\n[upstreams.new]\naddresses = [\"{}\"]\n\
         [[routes]]\nname = \"shop\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.shadow]\nsample = 100\n[routes.compare]\nnoise_sample = 0\n\
         ignore_headers = [\"date\", \"x-upstream\"]\n{compare}\n",
        legacy.address(),
        new.address()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_fields_are_never_reported_and_a_real_difference_is_found_on_its_endpoint() {
    let legacy = service("legacy", None).await;
    let new = service("new", Some(11)).await;
    let s = Strangler::start(&config(&legacy, &new, "ready_after = 30")).await;
    let c = client();
    for i in 0..40 {
        for path in [format!("/orders/{i}"), format!("/search?q={i}")] {
            assert_eq!(c.get(s.url(&path)).send().await.expect("request").status(), 200);
        }
    }
    let compared = || async {
        s.metric_value("strangler_shadow_total{result=\"match\",route=\"shop\"}").await
            + s.metric_value("strangler_shadow_total{result=\"mismatch\",route=\"shop\"}").await
    };
    for _ in 0..100 {
        if compared().await >= 80.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(compared().await, 80.0);

    // Random ids, timestamps and request ids differ on every answer of both sides: from the
    // first request on, none of them made a pair a mismatch. Only /orders/7 did.
    let diffs: Diffs = s.api("/routes/shop/diffs?limit=100").await;
    let paths: Vec<&str> = diffs.diffs.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["/orders/7"], "{:#?}", diffs.diffs);
    let fields: Vec<String> = diffs.diffs[0].differences.iter().map(|d| d.field.to_string()).collect();
    assert_eq!(fields, ["json:$.items[0].price"]);

    let report: Report = s.api("/routes/shop/report").await;
    let by_name = |n: &str| report.endpoints.iter().find(|e| e.endpoint == n).unwrap_or_else(|| panic!("no {n}"));
    let orders = by_name("GET /orders/{id}");
    assert_eq!((orders.verdict, orders.comparisons, orders.mismatches), (Verdict::Differs, 40, 1));
    assert_eq!(orders.findings.len(), 1, "{:#?}", orders.findings);
    let price = &orders.findings[0];
    assert_eq!((price.field.to_string(), price.differing, price.rate), ("json:$.items[*].price".into(), 1, 2.5));
    assert_eq!(price.examples[0].path, "/orders/7");
    assert_eq!(price.examples[0].legacy, Some(10.into()));
    assert_eq!(price.examples[0].new, Some(11.into()));
    let noise: Vec<String> = orders.noise.iter().map(|n| n.field.to_string()).collect();
    assert_eq!(noise, ["header:x-request-id", "json:$.at", "json:$.id"]);
    assert!(orders.noise_samples >= 20, "every early request is sampled for noise: {}", orders.noise_samples);
    let search = by_name("GET /search");
    assert_eq!((search.verdict, search.comparisons, search.findings.len()), (Verdict::Ready, 40, 0));

    // The CLI: a table, and Markdown for the cutover ticket.
    let (ok, table, err) = s.cli(&["report", "shop"]);
    assert!(ok, "{err}");
    assert!(table.contains("1 ready, 1 differ, 0 not enough data"), "{table}");
    assert!(table.contains("json:$.items[*].price 2.5%"), "{table}");
    assert!(table.contains("/orders/7 json:$.items[0].price: 10 → 11"), "{table}");
    let (ok, md, err) = s.cli(&["report", "shop", "--markdown"]);
    assert!(ok, "{err}");
    assert!(md.starts_with("## Cutover report: `shop`"), "{md}");
    assert!(md.contains("| `GET /orders/{id}` | differs | 40 | 2.5% | `json:$.items[*].price` 2.5% |"), "{md}");
    assert!(md.contains("| `GET /search` | ready | 40 | 0% | - |"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declared_templates_win_and_too_little_traffic_says_so() {
    let legacy = service("legacy", None).await;
    let new = service("new", None).await;
    let s = Strangler::start(&config(&legacy, &new, "endpoints = [\"/orders/{order}\"]")).await;
    let c = client();
    for path in ["/orders/abc", "/orders/def", "/search"] {
        assert_eq!(c.get(s.url(path)).send().await.expect("request").status(), 200);
    }
    s.wait_metric("strangler_shadow_total{result=\"match\",route=\"shop\"}", 3.0).await;
    let report: Report = s.api("/routes/shop/report").await;
    let names: Vec<(&str, Verdict, u64)> =
        report.endpoints.iter().map(|e| (e.endpoint.as_str(), e.verdict, e.comparisons)).collect();
    assert_eq!(names, [("GET /orders/{order}", Verdict::NotEnoughData, 2), ("GET /search", Verdict::NotEnoughData, 1)]);
    let missing = c.get(s.admin_url("/api/v1/routes/nope/report")).send().await.expect("request");
    assert_eq!(missing.status(), 404);
}

/// Matchers from the config: a tolerance scoped to one endpoint accepts a small numeric
/// difference there and nowhere else; a same_shape header matcher accepts two UUIDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn matchers_accept_what_they_cover_and_nothing_else() {
    let answer = |price: &'static str, trace: &'static str| {
        move |_: &Received| {
            let body = format!(r#"{{"price":{price}}}"#);
            (200, vec![("x-trace".to_string(), trace.to_string())], Bytes::from(body))
        }
    };
    let legacy =
        MockUpstream::builder("legacy").reply(answer("10.0", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")).start().await;
    let new =
        MockUpstream::builder("new").reply(answer("10.004", "9a0c0305-e82c-3301-3f25-04e04f8911d3")).start().await;
    let matchers = "[[routes.compare.matchers]]\nfield = \"json:$.price\"\nendpoint = \"/orders/{id}\"\n\
                    kind = \"tolerance\"\nabsolute = 0.01\n\
                    [[routes.compare.matchers]]\nfield = \"header:x-trace\"\nkind = \"same_shape\"\n\
                    pattern = \"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$\"\n";
    let s = Strangler::start(&config(&legacy, &new, matchers)).await;
    let c = client();
    for path in ["/orders/1", "/orders/2", "/search"] {
        assert_eq!(c.get(s.url(path)).send().await.expect("request").status(), 200);
    }
    s.wait_metric("strangler_shadow_total{result=\"match\",route=\"shop\"}", 2.0).await;
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"shop\"}", 1.0).await;
    let diffs: Diffs = s.api("/routes/shop/diffs").await;
    assert_eq!(diffs.diffs.len(), 1);
    assert_eq!(diffs.diffs[0].path, "/search");
    let fields: Vec<String> = diffs.diffs[0].differences.iter().map(|d| d.field.to_string()).collect();
    assert_eq!(fields, ["json:$.price"], "the header matched its shape on every endpoint");
}

/// Replay: mismatching requests are kept as received; after new is fixed, a replay sends them to
/// both sides again and tells what is fixed and what still differs. `--curl` prints them
/// redacted, while the replay itself carries the real credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_tells_what_is_fixed_and_what_still_differs() {
    use std::sync::atomic::AtomicBool;
    let fixed = Arc::new(AtomicBool::new(false));
    let legacy = MockUpstream::builder("legacy")
        .reply(|_: &Received| (200, Vec::new(), Bytes::from_static(br#"{"price":10}"#)))
        .start()
        .await;
    let is_fixed = fixed.clone();
    let new = MockUpstream::builder("new")
        .reply(move |r: &Received| {
            let wrong = r.path == "/orders/8" || (r.path == "/orders/7" && !is_fixed.load(Ordering::Relaxed));
            (200, Vec::new(), Bytes::from(format!(r#"{{"price":{}}}"#, if wrong { 11 } else { 10 })))
        })
        .start()
        .await;
    let s = Strangler::start(&config(&legacy, &new, "")).await;
    let c = client();
    for path in ["/orders/7", "/orders/8", "/orders/1"] {
        let r = c.get(s.url(path)).header("authorization", "Bearer secret-token").send().await.expect("request");
        assert_eq!(r.status(), 200);
    }
    s.wait_metric("strangler_shadow_total{result=\"mismatch\",route=\"shop\"}", 2.0).await;

    let (ok, curl, err) = s.cli(&["replay", "shop", "--curl"]);
    assert!(ok, "{err}");
    assert!(curl.contains(&format!("curl -X GET 'http://127.0.0.1:{}/orders/7'", s.port)), "{curl}");
    assert!(curl.contains("-H 'authorization: [redacted]'"), "{curl}");
    assert!(!curl.contains("secret-token") && !curl.contains("/orders/1'"), "{curl}");

    fixed.store(true, Ordering::Relaxed);
    let hits = new.hits();
    let (ok, out, err) = s.cli(&["replay", "shop"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("route shop: replayed 2: 1 fixed, 1 still differ, 0 error(s)"), "{out}");
    assert!(out.contains("fixed    GET /orders/7"), "{out}");
    assert!(out.contains("differs  GET /orders/8"), "{out}");
    assert!(out.contains("json:$.price: 10 → 11"), "{out}");
    assert_eq!(new.hits(), hits + 2, "each kept request went to new once more");
    let sent = new.received().into_iter().last().expect("a replayed request");
    assert_eq!(sent.headers.get("authorization").map(|v| v.as_bytes()), Some(&b"Bearer secret-token"[..]));

    let (ok, out, _) = s.cli(&["replay", "shop", "--endpoint", "GET /search"]);
    assert!(ok && out.starts_with("route shop: replayed 0"), "{out}");
}
