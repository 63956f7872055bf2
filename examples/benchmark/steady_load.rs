//! Open-loop load at a fixed rate, for the under-load proofs and the soak: one request every
//! 1/RATE seconds whatever the answers take (so a stall shows as latency and failures, not as a
//! slower sender), over keep-alive connections. Prints what was sent, what failed and how, and
//! the latency percentiles.
//!
//! Usage: `steady_load URL RATE SECONDS`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    status: AtomicU64,
    connect: AtomicU64,
    other: AtomicU64,
    micros: Mutex<Vec<u64>>,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080/".to_string());
    let rate: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let tally = Arc::new(Tally::default());
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < end {
        tick.tick().await;
        sent += 1;
        let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
        tasks.spawn(async move {
            let t = Instant::now();
            match client.get(&url).send().await {
                Ok(r) => {
                    let good = r.status().is_success();
                    let body = r.bytes().await;
                    if good && body.is_ok() {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        let us = t.elapsed().as_micros() as u64;
                        tally.micros.lock().expect("lock").push(us);
                    } else if !good {
                        tally.status.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tally.other.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) if e.is_connect() => {
                    tally.connect.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    tally.other.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut micros = std::mem::take(&mut *tally.micros.lock().expect("lock"));
    micros.sort_unstable();
    let pct = |q: f64| micros.get(((micros.len() as f64 * q) as usize).min(micros.len().saturating_sub(1))).copied();
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.2}", v as f64 / 1000.0));
    let (status, connect, other) = (
        tally.status.load(Ordering::Relaxed),
        tally.connect.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    println!(
        "sent {sent}  ok {}  failed {}  (non-2xx {status}, connection errors {connect}, other {other})  p50 {} ms  p99 {} ms  max {} ms",
        tally.ok.load(Ordering::Relaxed),
        status + connect + other,
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(micros.last().copied()),
    );
}
