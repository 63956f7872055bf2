//! The console's figures, in headless Chromium against the release binary with 50 routes under
//! traffic (run by `examples/benchmark/console.sh`, part of `make bench`):
//! - page weight: bytes transferred for the first load of the overview (the page's files, then
//!   the first API answer);
//! - time to first render of the overview with 50 routes: cold (new browser profile) and warm
//!   (files revalidated by ETag), the median of several loads;
//! - the cost of one overview poll (bytes of `GET /api/v1/routes`);
//! - screenshots of the overview and of a shadowed route with a rollout after the traffic, under
//!   `target/console/` (the README shows them).
//!
//! Usage: console_bench STRANGLER_BINARY [SECONDS_OF_TRAFFIC]

#[path = "../../tests/common/browser.rs"]
mod browser;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use browser::Browser;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const ROUTES: usize = 50;
const LOADS: usize = 7;

/// A JSON service answering in 1-6 ms with a fresh id; `new` gets one price wrong.
async fn upstream(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let path = req.uri().path().to_string();
                        let base = if name == "new" { 1 } else { 2 };
                        tokio::time::sleep(Duration::from_micros(base * 1000 + (n * 7919) % 4000)).await;
                        let price = if name == "new" && path.ends_with("/7") { 11 } else { 10 };
                        let status = if name == "new" && n % 200 == 0 { 503 } else { 200 };
                        let body =
                            format!(r#"{{"id":"{name}-{n}","path":"{path}","items":[{{"sku":"a","price":{price}}}]}}"#);
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .expect("response");
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

fn config(port: u16, admin: u16, legacy: SocketAddr, new: SocketAddr) -> String {
    let mut c = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 1\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [log]\nlevel = \"warn\"\naccess_log = false\n\
         [upstreams.legacy]\naddresses = [\"{legacy}\"]\n[upstreams.new]\naddresses = [\"{new}\"]\n\
         [[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.shadow]\nsample = 50\n[routes.compare]\nignore_json_paths = [\"$.id\"]\nignore_headers = [\"date\"]\n\
         [routes.rollout]\nsteps = [5, 25, 50, 100]\nhold = \"10m\"\nmin_requests = 20\nmax_error_rate = 5\nmax_latency_ratio = 3\n"
    );
    let weights = [0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0];
    for i in 1..ROUTES {
        c.push_str(&format!(
            "[[routes]]\nname = \"service-{i:02}\"\npath_prefix = \"/s{i:02}\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = {}\n",
            weights[i % weights.len()]
        ));
    }
    c
}

fn wait_ready(admin: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", admin)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("strangler never became ready");
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Load the overview in `b` and return (ms to first render, bytes transferred by the page's
/// files, bytes of the first API answer).
async fn load(b: &Browser, url: &str) -> (f64, f64, f64) {
    b.goto("about:blank").await;
    b.goto(url).await;
    b.find("body[data-rendered=overview]").await;
    let v = b
        .run(
            "const m = performance.getEntriesByName('strangler:overview-rendered')[0];\
             const nav = performance.getEntriesByType('navigation')[0];\
             const res = performance.getEntriesByType('resource');\
             const files = nav.transferSize + res.filter(r => r.name.includes('/ui/')).reduce((a, r) => a + r.transferSize, 0);\
             const apiBytes = res.filter(r => r.name.includes('/api/')).slice(0, 1).reduce((a, r) => a + r.transferSize, 0);\
             return [m.startTime, files, apiBytes];",
            vec![],
        )
        .await;
    let f = |i: usize| v[i].as_f64().unwrap_or(f64::NAN);
    (f(0), f(1), f(2))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args.next().expect("usage: console_bench STRANGLER_BINARY [SECONDS]");
    let seconds: u64 = args.next().map_or(90, |s| s.parse().expect("seconds"));
    let (legacy, new) = (upstream("legacy").await, upstream("new").await);
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("strangler.toml");
    std::fs::write(&path, config(port, admin, legacy, new)).expect("config");
    let _strangler = Proc(
        Command::new(&bin)
            .args(["run", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start strangler"),
    );
    wait_ready(admin);
    let ui = format!("http://127.0.0.1:{admin}/");

    // Traffic on every route, about 150 requests/s, until the screenshots are taken.
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    for w in 0..4u64 {
        let (stop, sent) = (stop.clone(), sent.clone());
        let client = reqwest::Client::new();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(25));
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                i += 4;
                let path = if i % 3 == 0 { format!("/orders/{}", i % 40) } else { format!("/s{:02}/x", 1 + i % 49) };
                let req = client.get(format!("http://127.0.0.1:{port}{path}")).header("x-user", (i % 997).to_string());
                if req.send().await.is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    let b = Browser::start().await;
    let (cold_ms, files, api_bytes) = load(&b, &ui).await;
    let rows = b.all("#routes tr").await.len();
    assert_eq!(rows, ROUTES, "the overview lists every route");
    let mut warm = Vec::new();
    for _ in 0..LOADS {
        warm.push(load(&b, &ui).await);
    }
    let routes_json = reqwest::get(format!("{ui}api/v1/routes")).await.expect("routes").bytes().await.expect("body");
    b.close().await;
    let mut colds = vec![cold_ms];
    for _ in 0..LOADS - 1 {
        let fresh = Browser::start().await;
        colds.push(load(&fresh, &ui).await.0);
        fresh.close().await;
    }

    println!("console, {ROUTES} routes, headless Chromium {}:", chromium_version());
    println!("  first load: {:.1} KiB of page files, then {:.1} KiB of API answer", files / 1024.0, api_bytes / 1024.0);
    println!(
        "  time to first render of the overview: cold {:.0} ms, warm {:.0} ms (median of {LOADS}; warm revalidates the files by ETag: {:.1} KiB)",
        median(colds),
        median(warm.iter().map(|w| w.0).collect()),
        median(warm.iter().map(|w| w.1).collect()) / 1024.0
    );
    println!("  one overview poll (every 2 s): {:.1} KiB", routes_json.len() as f64 / 1024.0);

    // Screenshots once the history has SECONDS of samples.
    let deadline = started + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let b = Browser::start().await;
    b.goto(&ui).await;
    b.find("body[data-rendered=overview]").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let overview = b.screenshot("bench-overview").await;
    b.goto(&format!("{ui}#/route/orders")).await;
    b.find("#chart-paired").await;
    b.find("#report tr.endpoint").await;
    b.click("#report tr.endpoint[data-endpoint=\"GET /orders/{id}\"]").await;
    b.find(".finding .pair").await;
    let _ = b.client.set_window_size(1400, 2400).await;
    b.run("window.scrollTo(0, 0)", vec![]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let route = b.screenshot("bench-route").await;
    let errors = b.console_errors().await;
    b.close().await;
    stop.store(true, Ordering::Relaxed);
    println!(
        "  {} requests over {:.0} s; screenshots: {} and {}; console errors: {}",
        sent.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        overview.display(),
        route.display(),
        errors.len()
    );
    assert!(errors.is_empty(), "{errors:?}");
}

fn chromium_version() -> String {
    Command::new(browser::CHROMIUM)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "?".into(), |v| v.trim().to_string())
}
