//! Protocols on the client side: TLS termination with HTTP/2 by ALPN and certificates re-read on
//! reload, h2c, gRPC passed through untouched (trailers included), WebSocket upgrades relayed both
//! ways and never shadowed.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn https_client(ca_pem: &str, port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA"))
        .resolve("proxy.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .expect("client")
}

fn tls_server(cert: &std::path::Path, key: &std::path::Path) -> String {
    format!("tls = {{ cert = \"{}\", key = \"{}\" }}", cert.display(), key.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_termination_speaks_h2_and_takes_a_new_certificate_on_reload() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key, first_ca) = cert_files(dir.path(), "proxy.test", "proxy");
    let body = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n",
        pools(&legacy, &new)
    );
    let opts = Options { server: tls_server(&cert, &key), ..Options::default() };
    let s = Strangler::start_with(opts, &body).await;
    let url = format!("https://proxy.test:{}/orders/1", s.port);

    let resp = https_client(&first_ca, s.port).get(&url).send().await.expect("https");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2, "h2 offered by ALPN and taken");
    assert_eq!(resp.text().await.expect("body"), "legacy");
    let got = legacy.received().pop().expect("forwarded");
    assert_eq!(got.headers["x-forwarded-proto"], "https");
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(first_ca.as_bytes()).expect("CA"))
        .resolve("proxy.test", SocketAddr::from(([127, 0, 0, 1], s.port)))
        .build()
        .expect("client");
    assert_eq!(h1.get(&url).send().await.expect("h1").version(), http::Version::HTTP_11);
    assert!(reqwest::get(s.url("/orders/1")).await.is_err(), "no plain HTTP on a TLS listener");

    // New certificate (from another CA) in the same files, then a reload: new handshakes get it.
    let (_, _, second_ca) = cert_files(dir.path(), "proxy.test", "proxy");
    s.signal("HUP");
    s.wait_metric("strangler_config_reloads_total{result=\"ok\"}", 1.0).await;
    let resp = https_client(&second_ca, s.port).get(&url).send().await.expect("the new certificate is served");
    assert_eq!(resp.status(), 200);
    assert!(https_client(&first_ca, s.port).get(&url).send().await.is_err(), "the old one is gone");

    // A broken pair is refused like any bad config: the last good certificate keeps serving.
    std::fs::write(&key, "not a key").expect("write");
    s.signal("HUP");
    s.wait_metric("strangler_config_reloads_total{result=\"error\"}", 1.0).await;
    assert_eq!(https_client(&second_ca, s.port).get(&url).send().await.expect("https").status(), 200);
    assert!(s.log().contains("server.tls"), "the refusal names the key:\n{}", s.log());
}

/// An HTTP/2-only upstream (prior knowledge, as gRPC servers run) answering like a gRPC service:
/// `application/grpc`, the request's message echoed, `grpc-status` in trailers.
async fn grpc_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_string();
                    let message = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    trailers.insert("grpc-message", http::HeaderValue::from_str(&path).expect("path"));
                    let body = http_body_util::Full::new(message).with_trailers(async move { Some(Ok(trailers)) });
                    let resp =
                        Response::builder().header("content-type", "application/grpc").body(body).expect("response");
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2c_clients_and_grpc_pass_through_with_trailers() {
    let grpc = grpc_upstream().await;
    let body = format!(
        "[upstreams.legacy]\naddresses = [\"{grpc}\"]\nhttp2 = true\n[upstreams.legacy.health]\nenabled = false\n\
         [upstreams.new]\naddresses = [\"{grpc}\"]\nhttp2 = true\n\n\
         [[routes]]\nname = \"grpc\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 50\n"
    );
    let opts = Options { server: "h2c = true".to_string(), ..Options::default() };
    let s = Strangler::start_with(opts, &body).await;
    let c = reqwest::Client::builder().http2_prior_knowledge().build().expect("client");
    let message = Bytes::from_static(b"\x00\x00\x00\x00\x05hello");
    for _ in 0..4 {
        let resp = c
            .post(s.url("/pkg.Orders/Get"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(message.clone())
            .send()
            .await
            .expect("h2c request");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let resp: http::Response<reqwest::Body> = resp.into();
        let collected = resp.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().expect("trailers came through");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "/pkg.Orders/Get");
        assert_eq!(collected.to_bytes(), message, "the message is untouched");
    }
    // One side may have served nothing: its series is absent, which counts as none here.
    let total = s.metric("strangler_requests_total{code=\"200\",route=\"grpc\",side=\"legacy\"}").await.unwrap_or(0.0)
        + s.metric("strangler_requests_total{code=\"200\",route=\"grpc\",side=\"new\"}").await.unwrap_or(0.0);
    assert_eq!(total, 4.0);
}

/// An upstream that accepts a WebSocket upgrade and then echoes bytes, prefixed with its name.
async fn ws_upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                let mut buf = [0u8; 1024];
                loop {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    let reply = [name.as_bytes(), b":", &buf[..n]].concat();
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn read_some(stream: &mut TcpStream) -> String {
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("in time").expect("read");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_upgrades_are_relayed_both_ways_and_never_shadowed() {
    let legacy = ws_upstream("legacy").await;
    let new = ws_upstream("new").await;
    let body = format!(
        "[upstreams.legacy]\naddresses = [\"{legacy}\"]\n[upstreams.new]\naddresses = [\"{new}\"]\n\n\
         [[routes]]\nname = \"ws\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 50\n[routes.shadow]\nsample = 100\n"
    );
    let s = Strangler::start(&body).await;
    // Pingora 0.9.1 ends the upstream half of an upgraded exchange right after the 101 when it
    // reads the 101 before the upgrade request's empty body end (cloudflare/pingora#946; "try_reserve()
    // body pipe for upstream ... Closed" in its debug log), so the client's first frame finds the
    // connection closed. It takes a preempted proxy thread: counted and bounded here, reported in
    // the README; every connection that stays open must relay both ways on one side.
    let (mut relayed, mut closed_early) = (0, 0);
    while relayed < 6 {
        let mut stream = TcpStream::connect(("127.0.0.1", s.port)).await.expect("connect");
        stream
            .write_all(
                b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .expect("write");
        let head = read_some(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // Both ways, several times, on the side chosen once for the connection's life.
        let mut side = None;
        let mut open = true;
        for msg in ["one", "two", "three"] {
            stream.write_all(msg.as_bytes()).await.expect("write");
            // TCP keeps no message boundaries: read until the whole echo is in.
            let mut echo = read_some(&mut stream).await;
            while !echo.ends_with(msg) && !echo.is_empty() {
                let more = read_some(&mut stream).await;
                if more.is_empty() {
                    break;
                }
                echo.push_str(&more);
            }
            if echo.is_empty() && msg == "one" {
                open = false;
                break;
            }
            let (who, said) = echo.split_once(':').unwrap_or_else(|| panic!("name:message, got {echo:?}"));
            assert_eq!(said, msg);
            assert!(side.is_none_or(|s| s == who), "the side changed mid-connection");
            side = Some(who.to_string());
        }
        if open {
            relayed += 1;
        } else {
            closed_early += 1;
            assert!(closed_early <= 3, "{closed_early} upgraded connections closed right after the 101");
        }
    }
    // An upgraded exchange is counted when it ends: the last one ends as its client goes, just now.
    let mut upgrades = 0.0;
    for _ in 0..50 {
        upgrades = s.metric("strangler_requests_total{code=\"101\",route=\"ws\",side=\"legacy\"}").await.unwrap_or(0.0)
            + s.metric("strangler_requests_total{code=\"101\",route=\"ws\",side=\"new\"}").await.unwrap_or(0.0);
        if upgrades >= f64::from(relayed + closed_early) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(upgrades, f64::from(relayed + closed_early), "each upgrade is counted");
    for result in ["match", "mismatch", "error", "dropped", "skipped"] {
        let n = s.metric(&format!("strangler_shadow_total{{result=\"{result}\",route=\"ws\"}}")).await;
        assert_eq!(n, Some(0.0), "an upgrade is never shadowed ({result})");
    }
}
