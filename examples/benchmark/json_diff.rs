//! Comparison throughput: the comparison of two JSON answers of ~1 KiB, ~100 KiB and ~1 MiB
//! (parse both, walk, report the differences, count them in the findings), as the shadow task
//! runs it; and of two byte-equal answers, which take the byte-equality shortcut. Prints pairs/s
//! and MB/s of input compared.
//!
//! Usage: `cargo run --release --example json_diff [ITERATIONS]`

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde_json::json;
use strangler::api::ReportRules;
use strangler::compare::{compare, Answer, Findings, JsonPath, Rules};

/// The allocator the strangler binary runs the shadow task with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An order list of `n` items (540 is about 100 KiB, 5 about 1 KiB), with two fields changed
/// when `variant` is set.
fn document(variant: bool, n: usize) -> Bytes {
    let (price_at, tag_at) = (n / 4, n / 2 + 1);
    let items: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": i, "sku": format!("SKU-{i:06}"), "name": format!("item number {i}"),
                "price": if variant && i == price_at { 10.5 } else { 10.0 }, "qty": i % 7,
                "tags": ["a", "b", if variant && i == tag_at { "x" } else { "c" }],
                "etag": format!("{:x}", i * 7919 + if variant { 1 } else { 0 }),
                "address": {"street": "Main St", "number": i, "city": "Springfield", "zip": "12345"},
            })
        })
        .collect();
    Bytes::from(json!({"items": items, "meta": {"generated_at": if variant { 2 } else { 1 }}}).to_string())
}

fn main() {
    let iterations: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let ignore = [JsonPath::parse("$.items[*].etag").unwrap_or_else(|e| panic!("{e}"))];
    let rules = Rules { ignore_headers: &[], ignore_paths: &ignore, matchers: &[] };
    for (n, runs) in [(5, iterations * 100), (540, iterations), (5400, (iterations / 10).max(3))] {
        let answer = |variant| Answer { status: 200, headers: HeaderMap::new(), body: document(variant, n) };
        let (legacy, new) = (answer(false), answer(true));
        let found = compare(&legacy, &new, &rules).differences;
        let wheres: Vec<String> = found.iter().map(|d| d.field.to_string()).collect();
        let expected = [
            format!("json:$.items[{}].price", n / 4),
            format!("json:$.items[{}].tags[2]", n / 2 + 1),
            "json:$.meta.generated_at".into(),
        ];
        assert_eq!(wheres, expected);

        let mut findings = Findings::default();
        measure(&mut findings, &legacy, &new, &rules, runs, &format!("{} differences", found.len()));
        // Byte-equal answers: what a service close to cutover mostly sends.
        let same = Answer { status: 200, headers: HeaderMap::new(), body: Bytes::copy_from_slice(&legacy.body) };
        assert!(compare(&legacy, &same, &rules).differences.is_empty());
        measure(&mut findings, &legacy, &same, &rules, runs * 10, "equal");
    }
}

/// Compare `legacy` with `new` `runs` times, then the findings' bookkeeping for the pair, as the
/// shadow task does; print the rate.
fn measure(findings: &mut Findings, legacy: &Answer, new: &Answer, rules: &Rules, runs: usize, what: &str) {
    let report = ReportRules { finding_absolute: 0.05, finding_relative: 100.0, ready_after: 100 };
    let bytes = legacy.body.len() + new.body.len();
    let started = Instant::now();
    for _ in 0..runs {
        let out = compare(legacy, new, rules);
        std::hint::black_box(findings.record_pair(
            "GET /orders",
            "/orders",
            out.differences,
            &report,
            SystemTime::now(),
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "json compare + findings: two documents of {:.1} KiB, {what}: {:.0} pairs/s ({:.4} ms per pair, {:.0} MB/s of input)",
        legacy.body.len() as f64 / 1024.0,
        runs as f64 / secs,
        secs * 1000.0 / runs as f64,
        (bytes * runs) as f64 / secs / 1e6,
    );
}
