//! Comparison throughput: the full comparison of two ~100 KiB JSON answers (parse both, walk,
//! report the differences), as the shadow task runs it. Prints MB/s of input compared.
//!
//! Usage: `cargo run --release --example json_diff [ITERATIONS]`

use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::json;
use strangler::compare::{compare, Answer, JsonPath, Rules};

/// An order list of about 100 KiB, with a couple of fields changed when `variant` is set.
fn document(variant: bool) -> Bytes {
    let items: Vec<_> = (0..540)
        .map(|i| {
            json!({
                "id": i, "sku": format!("SKU-{i:06}"), "name": format!("item number {i}"),
                "price": if variant && i == 123 { 10.5 } else { 10.0 }, "qty": i % 7,
                "tags": ["a", "b", if variant && i == 321 { "x" } else { "c" }],
                "etag": format!("{:x}", i * 7919 + if variant { 1 } else { 0 }),
                "address": {"street": "Main St", "number": i, "city": "Springfield", "zip": "12345"},
            })
        })
        .collect();
    Bytes::from(json!({"items": items, "meta": {"generated_at": if variant { 2 } else { 1 }}}).to_string())
}

fn main() {
    let iterations: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let answer = |variant| Answer { status: 200, headers: HeaderMap::new(), body: document(variant) };
    let (legacy, new) = (answer(false), answer(true));
    let ignore = [JsonPath::parse("$.items[*].etag").unwrap_or_else(|e| panic!("{e}"))];
    let rules = Rules { ignore_headers: &[], ignore_paths: &ignore, matchers: &[] };

    let found = compare(&legacy, &new, &rules).differences;
    let wheres: Vec<String> = found.iter().map(|d| d.field.to_string()).collect();
    assert_eq!(wheres, ["json:$.items[123].price", "json:$.items[321].tags[2]", "json:$.meta.generated_at"]);

    let bytes = legacy.body.len() + new.body.len();
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(compare(&legacy, &new, &rules));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "json diff: two documents of {:.0} KiB, {} differences: {:.2} ms per pair, {:.0} MB/s of input",
        legacy.body.len() as f64 / 1024.0,
        found.len(),
        secs * 1000.0 / iterations as f64,
        (bytes * iterations) as f64 / secs / 1e6,
    );
}
