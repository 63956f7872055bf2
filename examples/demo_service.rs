//! A tiny orders service in two flavors, for `make demo`: `legacy` plays the old Node.js service,
//! `new` its rewrite. They agree on most endpoints and deliberately differ on a few, the way a
//! real rewrite does:
//! - `GET /orders`: new renames `total` to `amount` in each item;
//! - `GET /orders/{id}` with a non-numeric id: legacy says 404, new says 400;
//! - every JSON answer carries `generated_at`, a timestamp that differs on every call (noise).
//!
//! Usage: `demo_service --flavor legacy|new --listen 127.0.0.1:3000`

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    Legacy,
    New,
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn order(id: u64, flavor: Flavor) -> serde_json::Value {
    let total = (id * 1999) % 10_000;
    let mut o = json!({ "id": id, "status": if id % 3 == 0 { "shipped" } else { "open" }, "currency": "EUR" });
    let key = if flavor == Flavor::New { "amount" } else { "total" };
    o[key] = json!(total);
    o
}

fn answer(flavor: Flavor, path: &str) -> (StatusCode, serde_json::Value) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["health"] => (StatusCode::OK, json!({ "ok": true })),
        ["orders"] => {
            let items: Vec<_> = (1..=3).map(|id| order(id, flavor)).collect();
            (StatusCode::OK, json!({ "items": items, "generated_at": now_ms() }))
        }
        ["orders", id] => match id.parse::<u64>() {
            Ok(id) if id <= 1000 => (StatusCode::OK, json!({ "order": order(id, flavor), "generated_at": now_ms() })),
            Ok(_) => (StatusCode::NOT_FOUND, json!({ "error": "no such order" })),
            Err(_) if flavor == Flavor::New => {
                (StatusCode::BAD_REQUEST, json!({ "error": "order id must be a number" }))
            }
            Err(_) => (StatusCode::NOT_FOUND, json!({ "error": "no such order" })),
        },
        ["users", id] => {
            (StatusCode::OK, json!({ "user": { "id": id, "name": format!("user-{id}") }, "generated_at": now_ms() }))
        }
        _ => (StatusCode::NOT_FOUND, json!({ "error": "not found" })),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut flavor = None;
    let mut listen: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--flavor" => {
                flavor = match args.next().as_deref() {
                    Some("legacy") => Some(Flavor::Legacy),
                    Some("new") => Some(Flavor::New),
                    _ => None,
                }
            }
            "--listen" => listen = args.next().and_then(|s| s.parse().ok()),
            _ => {}
        }
    }
    let (Some(flavor), Some(listen)) = (flavor, listen) else {
        eprintln!("usage: demo_service --flavor legacy|new --listen HOST:PORT");
        std::process::exit(2);
    };
    let name = if flavor == Flavor::New { "new" } else { "legacy" };
    let listener = TcpListener::bind(listen).await?;
    eprintln!("demo {name} service on http://{listen}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| async move {
                let (status, body) = answer(flavor, req.uri().path());
                let resp = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("x-service", name)
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap_or_default();
                Ok::<_, Infallible>(resp)
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
