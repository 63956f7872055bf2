//! Cutover evidence on a realistic pair of services: a legacy and a new service with three
//! endpoints, both answering with random ids, timestamps and request ids, the new one differing
//! on exactly 1% of one endpoint's answers. Sends REQUESTS (1000) requests through a real
//! strangler (every one shadowed, noise_sample 1%), one at a time, and prints:
//! - how many of the seeded differences were reported as mismatches (target: all),
//! - how many mismatches reported were noise (target: 0),
//! - after how many requests the seeded difference was a significant finding of its endpoint,
//! - the report's verdict per endpoint.
//!
//! Usage: `cutover STRANGLER_BINARY [REQUESTS]`

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use strangler::api::{Diffs, Report};
use tokio::net::TcpListener;

const PRICE: &str = "json:$.items[*].price";

/// Whether the `n`th `/orders` answer of new carries the seeded difference: exactly 1 in 100.
fn seeded(order_id: u64) -> bool {
    order_id % 100 == 42
}

/// A service on an ephemeral port. Every answer has a fresh id, a timestamp in nanoseconds and a
/// request id; new's `/orders/{id}` price differs when `seeded(id)`.
async fn service(new: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let path = req.uri().path().to_string();
                    async move { Ok::<_, Infallible>(answer(new, &path, n)) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

fn answer(new: bool, path: &str, n: u64) -> Response<Full<Bytes>> {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let id = format!("{:016x}{:08x}", rand::random::<u64>(), n);
    let body = if let Some(order) = path.strip_prefix("/orders/") {
        let order: u64 = order.parse().unwrap_or(0);
        let price = if new && seeded(order) { 10.01 } else { 10.0 };
        format!(
            r#"{{"id":"{id}","order":{order},"created_at":{nanos},"items":[{{"sku":"a","price":{price}}},{{"sku":"b","price":5.0}}]}}"#
        )
    } else if path.starts_with("/users/") {
        format!(r#"{{"id":"{id}","name":"Ada","seen_at":{nanos},"roles":["admin","dev"]}}"#)
    } else {
        format!(r#"{{"request":"{id}","took_ns":{nanos},"results":[1,2,3]}}"#)
    };
    Response::builder()
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

async fn counter(c: &reqwest::Client, admin: &str, result: &str) -> u64 {
    let Ok(r) = c.get(format!("{admin}/metrics")).send().await else { return 0 };
    let text = r.text().await.unwrap_or_default();
    let prefix = format!("strangler_shadow_total{{result=\"{result}\",route=\"shop\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse::<f64>().ok()).map_or(0, |v| v as u64)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args.next().unwrap_or_else(|| "target/release/strangler".to_string());
    let requests: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let (legacy, new) = (service(false).await, service(true).await);
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, admin_port) = (free_port(), free_port());
    let config = dir.path().join("strangler.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 2\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\
             [log]\nlevel = \"warn\"\naccess_log = false\n\
             [upstreams.legacy]\naddresses = [\"{legacy}\"]\n[upstreams.new]\naddresses = [\"{new}\"]\n\
             [[routes]]\nname = \"shop\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
             [routes.shadow]\nsample = 100\n[routes.compare]\nnoise_sample = 1\nkeep_diffs = 1000\n"
        ),
    )
    .expect("config");
    let mut child = std::process::Command::new(&bin)
        .args(["run", "-c"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start strangler");
    let (url, admin) = (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{admin_port}"));
    let c = reqwest::Client::new();
    let started = Instant::now();
    while c.get(format!("{admin}/readyz")).send().await.map_or(true, |r| !r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(10), "strangler did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut seeded_sent = Vec::new();
    let mut significant_after = None;
    for i in 0..requests {
        let path = match i % 3 {
            0 => format!("/orders/{}", i / 3),
            1 => format!("/users/{i}"),
            _ => format!("/search?q=term{i}"),
        };
        if i % 3 == 0 && seeded(i / 3) {
            seeded_sent.push(path.clone());
        }
        let r = c.get(format!("{url}{path}")).send().await.expect("request");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        // Wait for this request's comparison before the next, so each figure is per request.
        let waited = Instant::now();
        while counter(&c, &admin, "match").await + counter(&c, &admin, "mismatch").await < i + 1 {
            assert!(waited.elapsed() < Duration::from_secs(5), "comparison {i} never finished");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if significant_after.is_none() && !seeded_sent.is_empty() {
            let report: Report = c
                .get(format!("{admin}/api/v1/routes/shop/report"))
                .send()
                .await
                .expect("report")
                .json()
                .await
                .expect("json");
            let found = report
                .endpoints
                .iter()
                .any(|e| e.endpoint == "GET /orders/{id}" && e.findings.iter().any(|f| f.field.to_string() == PRICE));
            if found {
                significant_after = Some(i + 1);
            }
        }
    }

    let diffs: Diffs = c
        .get(format!("{admin}/api/v1/routes/shop/diffs?limit=1000"))
        .send()
        .await
        .expect("diffs")
        .json()
        .await
        .expect("json");
    let is_seeded = |d: &strangler::api::DiffRecord| {
        seeded_sent.contains(&d.path)
            && d.differences.iter().all(|x| x.field.to_string().starts_with("json:$.items[0].price"))
    };
    let reported = diffs.diffs.iter().filter(|d| is_seeded(d)).count();
    let noise: Vec<_> = diffs.diffs.iter().filter(|d| !is_seeded(d)).collect();
    let report: Report =
        c.get(format!("{admin}/api/v1/routes/shop/report")).send().await.expect("report").json().await.expect("json");
    let _ = child.kill();
    let _ = child.wait();

    println!("{requests} requests over 3 endpoints, random ids and timestamps on both sides, new differing on 1% of /orders:");
    println!("  seeded differences reported: {reported} of {} (target: all)", seeded_sent.len());
    println!("  mismatches that were noise:  {} (target: 0)", noise.len());
    for d in noise.iter().take(3) {
        let fields: Vec<String> = d.differences.iter().map(|x| x.field.to_string()).collect();
        println!("    {} {}: {}", d.method, d.path, fields.join(", "));
    }
    match significant_after {
        Some(n) => println!(
            "  the seeded difference was a significant finding after request {n} (its first occurrence: request {})",
            seeded_sent
                .first()
                .and_then(|p| p.strip_prefix("/orders/"))
                .and_then(|o| o.parse::<u64>().ok())
                .map_or(0, |o| o * 3 + 1)
        ),
        None => println!("  the seeded difference never became a significant finding"),
    }
    println!("  verdicts:");
    for e in &report.endpoints {
        let findings: Vec<String> = e.findings.iter().map(|f| format!("{} {}%", f.field, f.rate)).collect();
        println!(
            "    {:20} {:16} {} compared, {} noise samples, noise fields {}, findings [{}]",
            e.endpoint,
            e.verdict.as_str(),
            e.comparisons,
            e.noise_samples,
            e.noise.len(),
            findings.join(", ")
        );
    }
}
