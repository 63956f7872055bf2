//! The fault and bad-input suite: one test per row. Each asserts what the client sees, what the
//! upstream received, and that the proxy still serves afterwards. Raw sockets where a client
//! library would clean the input up.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn one_route(upstream: &str, extra_route: &str) -> String {
    format!(
        "[upstreams.legacy]\naddresses = [\"{upstream}\"]\n[upstreams.new]\naddresses = [\"{upstream}\"]\n\n\
         [[routes]]\nname = \"r\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n{extra_route}\n"
    )
}

async fn proxy(up: &MockUpstream) -> Strangler {
    Strangler::start(&one_route(&up.address(), "")).await
}

async fn proxy_with(up: &MockUpstream, server: &str, route: &str) -> Strangler {
    let opts = Options { server: server.to_string(), ..Options::default() };
    Strangler::start_with(opts, &one_route(&up.address(), route)).await
}

/// Send raw bytes, then read until the proxy closes or `wait` passes; returns what came back.
async fn raw(s: &Strangler, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    read_all(&mut stream, wait).await
}

async fn read_all(stream: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

fn status_of(response: &str) -> u16 {
    response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The proxy still answers a plain request.
async fn still_serving(s: &Strangler) {
    let resp = client().get(s.url("/after")).send().await.expect("the proxy still serves");
    assert_eq!(resp.status(), 200);
}

// === config and signals ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncated_config_is_refused_and_the_old_one_serves() {
    let up = MockUpstream::start("up").await;
    let s = proxy(&up).await;
    let text = std::fs::read_to_string(&s.config).expect("read");
    std::fs::write(&s.config, &text[..text.len() / 2]).expect("truncate");
    s.wait_metric("strangler_config_reloads_total{result=\"error\"}", 1.0).await;
    still_serving(&s).await;
    std::fs::remove_file(&s.config).expect("delete");
    s.signal("HUP");
    s.wait_metric("strangler_config_reloads_total{result=\"error\"}", 2.0).await;
    still_serving(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sighup_storm_under_load_fails_no_request() {
    let up = MockUpstream::builder("up").no_record().start().await;
    let mut s = proxy(&up).await;
    let c = client();
    let url = s.url("/storm");
    let load = tokio::spawn(async move { load(&c, &url, 3000, 8).await });
    for _ in 0..100 {
        s.signal("HUP");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let codes = load.await.expect("load");
    assert_eq!(codes.get(&200), Some(&3000), "{codes:?}");
    assert!(s.is_running());
    s.wait_metric("strangler_config_reloads_total{result=\"ok\"}", 1.0).await;
    assert_eq!(s.metric("strangler_config_reloads_total{result=\"error\"}").await, Some(0.0));
}

// === upstream misbehaving ===

/// RST instead of FIN on close.
fn socket2_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    #[allow(deprecated)]
    s.set_linger(Some(Duration::ZERO))
}

/// An upstream that sends half a response, then resets the connection.
async fn resetting_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part").await;
                let _ = socket2_linger_zero(&s);
                drop(s);
            });
        }
    });
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstream_resetting_mid_response_breaks_that_response_only() {
    let good = MockUpstream::start("good").await;
    let bad = resetting_upstream().await;
    let body = format!(
        "[upstreams.good]\naddresses = [\"{}\"]\n[upstreams.bad]\naddresses = [\"{bad}\"]\n\n\
         [[routes]]\nname = \"bad\"\npath_prefix = \"/bad\"\nlegacy = \"bad\"\nnew = \"bad\"\n\n\
         [[routes]]\nname = \"good\"\nlegacy = \"good\"\nnew = \"good\"\n",
        good.address()
    );
    let s = Strangler::start(&body).await;
    let resp = client().get(s.url("/bad/x")).send().await.expect("headers arrive");
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err(), "the client sees the body cut, not a complete short body");
    assert_eq!(
        s.metric("strangler_upstream_errors_total{kind=\"reset\",route=\"bad\",side=\"legacy\"}").await,
        Some(1.0)
    );
    still_serving(&s).await;
}

/// An upstream that answers one request per connection, then closes the idle connection after a
/// short while without saying so (no `Connection: close`).
async fn closing_upstream(hits: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let hits = hits.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            });
        }
    });
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstream_closing_idle_keepalive_connections_is_invisible_to_clients() {
    let hits = Arc::new(AtomicUsize::new(0));
    let up = closing_upstream(hits.clone()).await;
    let s = Strangler::start(&one_route(&up, "")).await;
    let c = client();
    for _ in 0..10 {
        let resp = c.get(s.url("/k")).send().await.expect("send");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "ok");
        // Long enough for the upstream to have closed the pooled connection.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 10, "each request reached the upstream exactly once");
}

// === bodies ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declared_body_over_the_cap_is_413_before_any_upstream_is_contacted() {
    let up = MockUpstream::start("up").await;
    let s = proxy_with(&up, "", "max_request_body = \"1KiB\"").await;
    let resp = raw(&s, b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", Duration::from_secs(2)).await;
    assert_eq!(status_of(&resp), 413, "{resp}");
    assert_eq!(up.hits(), 0);
    // A chunked body says nothing up front: it is cut at the cap.
    let chunk = "x".repeat(600);
    let req = format!(
        "POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let resp = raw(&s, req.as_bytes(), Duration::from_secs(2)).await;
    assert_eq!(status_of(&resp), 413, "{resp}");
    assert!(up.received().iter().all(|r| r.body.len() <= 1024), "no body over the cap was delivered");
    assert_eq!(s.metric("strangler_limits_total{limit=\"body\"}").await, Some(2.0));
    still_serving(&s).await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// An upstream that counts request body bytes without keeping them.
async fn sink_upstream(seen: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let mut body = req.into_body();
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Some(d) = frame.data_ref() {
                                seen.fetch_add(d.len() as u64, Ordering::Relaxed);
                            }
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from(
                            "done",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_1gib_chunked_upload_streams_through_in_flat_memory() {
    let seen = Arc::new(AtomicU64::new(0));
    let up = sink_upstream(seen.clone()).await;
    let s = Strangler::start(&one_route(&up, "max_request_body = \"2GiB\"")).await;
    let before = rss_kib(s.child.id());
    let pid = s.child.id();
    let peak = Arc::new(AtomicU64::new(before));
    let watch = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    const TOTAL: u64 = 1 << 30;
    const CHUNK: usize = 256 * 1024;
    // Chunked by hand, on a raw socket: 4096 chunks of 256 KiB.
    let mut up_stream = TcpStream::connect(("127.0.0.1", s.port)).await.expect("connect");
    up_stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("write");
    let piece = [format!("{CHUNK:x}\r\n").into_bytes(), vec![b'a'; CHUNK], b"\r\n".to_vec()].concat();
    for _ in 0..TOTAL / CHUNK as u64 {
        up_stream.write_all(&piece).await.expect("write chunk");
    }
    up_stream.write_all(b"0\r\n\r\n").await.expect("write end");
    let resp = read_all(&mut up_stream, Duration::from_secs(10)).await;
    watch.abort();
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(seen.load(Ordering::Relaxed), TOTAL, "every byte arrived");
    let grew = peak.load(Ordering::Relaxed).saturating_sub(before);
    println!("rss before {before} KiB, peak growth {grew} KiB over a 1 GiB upload");
    assert!(grew < 64 * 1024, "memory grew by {grew} KiB: the body was buffered");
}

// === framing and smuggling ===

/// Each of these must be refused (4xx) and reach no upstream as more than one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_framing_is_refused_and_never_becomes_two_requests() {
    let up = MockUpstream::start("up").await;
    let s = proxy(&up).await;
    let cases: [(&str, &[u8]); 8] = [
        ("bad chunk size", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("CL and TE", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("two different Content-Length", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /smuggled HTTP/1.1\r\n\r\n"),
        ("chunked, chunked", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("NUL in a header value", b"GET /a HTTP/1.1\r\nHost: x\r\nX-Bad: a\0b\r\n\r\n"),
        ("CR in a header value", b"GET /a HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\n\r\n"),
        ("bare LF line ends with a smuggled request", b"GET /a HTTP/1.1\nHost: x\nContent-Length: 0\n\nGET /smuggled HTTP/1.1\nHost: x\n\n"),
        ("missing last chunk", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    ];
    for (name, bytes) in cases {
        let resp = raw(&s, bytes, Duration::from_millis(1500)).await;
        let code = status_of(&resp);
        let smuggled = up.received().iter().any(|r| r.path.contains("smuggled"));
        assert!(!smuggled, "{name}: a second request reached the upstream");
        if name == "CL and TE" {
            // Normalised as RFC 9112 says: Transfer-Encoding wins, Content-Length is dropped, and
            // the connection closes after the answer, so the trailing bytes are never parsed.
            assert!(code == 200 || (400..500).contains(&code), "{name}: {resp}");
            let got = up.received().pop().expect("one request");
            assert!(got.headers.get("content-length").is_none() || got.headers.get("transfer-encoding").is_none());
        } else if name == "missing last chunk" {
            // The client stopped mid-body: nothing complete was delivered, and no 2xx was sent.
            assert!(!(200..300).contains(&code), "{name}: {resp}");
        } else if name.starts_with("bare LF") {
            // Accepted as one request (LF-only line ends are tolerated), never as two.
            assert!(code == 200 || code == 400, "{name}: {resp}");
        } else {
            assert!((400..500).contains(&code), "{name}: wanted a 4xx, got {resp:?}");
        }
        println!("{name}: {code}");
    }
    assert!(
        up.received().iter().all(|r| r.path == "/a"),
        "{:?}",
        up.received().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    still_serving(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_many_or_too_large_headers_are_431() {
    let up = MockUpstream::start("up").await;
    let s = proxy_with(&up, "[server.limits]\nmax_headers = 20\nmax_header_bytes = \"2KiB\"", "").await;
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let resp = raw(&s, format!("GET /a HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(), Duration::from_secs(2)).await;
    assert_eq!(status_of(&resp), 431, "{resp}");
    let big = "v".repeat(3000);
    let resp =
        raw(&s, format!("GET /a HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(), Duration::from_secs(2)).await;
    assert_eq!(status_of(&resp), 431, "{resp}");
    assert_eq!(up.hits(), 0);
    assert_eq!(s.metric("strangler_limits_total{limit=\"header_count\"}").await, Some(1.0));
    assert_eq!(s.metric("strangler_limits_total{limit=\"header_bytes\"}").await, Some(1.0));
    still_serving(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headers_named_in_connection_cannot_strip_what_the_proxy_adds() {
    let up = MockUpstream::start("up").await;
    let s = proxy(&up).await;
    let resp = raw(
        &s,
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Forwarded-For, X-Forwarded-Proto, X-Custom\r\n\
          X-Custom: hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n",
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(status_of(&resp), 200, "{resp}");
    let got = up.received().pop().expect("forwarded");
    assert_eq!(got.headers.get("x-forwarded-for").map(|v| v.to_str().unwrap_or("")), Some("127.0.0.1"));
    assert_eq!(got.headers.get("x-forwarded-proto").map(|v| v.to_str().unwrap_or("")), Some("http"));
    assert!(got.headers.get("x-custom").is_none(), "a header named in Connection is hop-by-hop");
    assert!(got.headers.get("keep-alive").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_refused_with_200_does_not_relay_the_pipelined_bytes() {
    let up = MockUpstream::start("up").await;
    let s = proxy(&up).await;
    let resp = raw(
        &s,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\
          GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(status_of(&resp), 200, "{resp}");
    let paths: Vec<String> = up.received().iter().map(|r| r.path.clone()).collect();
    assert!(!paths.iter().any(|p| p.contains("smuggled")), "{paths:?}");
    still_serving(&s).await;
}

// === slow clients ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_is_cut_at_the_header_deadline() {
    let up = MockUpstream::start("up").await;
    let s = proxy_with(&up, "[server.limits]\nheader_timeout = \"500ms\"", "").await;
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).await.expect("connect");
    let started = Instant::now();
    let mut closed = false;
    for part in [&b"GET /a HT"[..], b"TP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n", b"X-B: 2\r\n", b"X-C: 3\r\n"] {
        if stream.write_all(part).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rest = read_all(&mut stream, Duration::from_secs(2)).await;
    assert!(closed || rest.is_empty(), "no answer to a header that never completed: {rest}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(up.hits(), 0);
    assert_eq!(s.metric("strangler_limits_total{limit=\"header_timeout\"}").await, Some(1.0));
    // A client that sends nothing at all is cut too.
    let mut idle = TcpStream::connect(("127.0.0.1", s.port)).await.expect("connect");
    assert_eq!(read_all(&mut idle, Duration::from_secs(2)).await, "");
    s.wait_metric("strangler_limits_total{limit=\"header_timeout\"}", 2.0).await;
    still_serving(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_post_gets_408_and_the_upstream_no_complete_request() {
    let up = MockUpstream::start("up").await;
    let s = proxy_with(&up, "[server.limits]\nbody_timeout = \"500ms\"", "").await;
    let resp =
        raw(&s, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b", Duration::from_secs(3)).await;
    assert_eq!(status_of(&resp), 408, "{resp}");
    assert!(up.received().iter().all(|r| r.body.len() != 100));
    assert_eq!(s.metric("strangler_limits_total{limit=\"body_timeout\"}").await, Some(1.0));
    still_serving(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_over_the_cap_are_closed_at_accept() {
    let up = MockUpstream::start("up").await;
    let s = proxy_with(&up, "[server.limits]\nmax_connections = 5", "").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).await.expect("connect");
        c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(c); // kept alive: still open
    }
    let mut extra = TcpStream::connect(("127.0.0.1", s.port)).await.expect("the kernel still accepts");
    let _ = extra.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(read_all(&mut extra, Duration::from_secs(2)).await, "", "the sixth is closed unanswered");
    assert_eq!(s.metric("strangler_limits_total{limit=\"connections\"}").await, Some(1.0));
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_serving(&s).await;
}

// === admin API ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_in_the_query_string_is_not_a_token() {
    let up = MockUpstream::start("up").await;
    let opts = Options { admin: "token = \"s3cret\"".to_string(), ..Options::default() };
    let s = Strangler::start_with(opts, &one_route(&up.address(), "")).await;
    let c = client();
    let resp =
        c.put(s.admin_url("/api/routes/r/weight?token=s3cret")).body("{\"percent\": 5}").send().await.expect("put");
    assert_eq!(resp.status(), 401);
    let resp = c.get(s.admin_url("/api/routes?access_token=s3cret")).send().await.expect("get");
    assert_eq!(resp.status(), 401);
    let resp = c.get(s.admin_url("/api/routes/r/weight")).bearer_auth("s3cret").send().await.expect("get");
    assert_eq!(resp.status(), 405, "a GET on a mutation");
    assert_eq!(s.metric("strangler_route_weight_percent{route=\"r\"}").await, Some(0.0));
}

/// An upstream that refuses connections: the client gets a 502, and the log one readable line
/// saying which route, side and address failed and why, never Pingora's context chain with a
/// peer's debug dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_logged_as_one_readable_line() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let s = Strangler::start(&one_route(&dead.to_string(), "")).await;
    let resp = client().get(s.url("/items/1")).send().await.expect("request");
    assert_eq!(resp.status(), 502);
    let said = format!("route r: legacy upstream {dead} failed (connect): Connection refused");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains(&said) {
        assert!(Instant::now() < deadline, "no line {said:?} in the log:\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = s.log();
    let line = log.lines().find(|l| l.contains(&said)).expect("the line");
    assert!(line.len() < 400, "one short line: {line}");
    for dump in ["BasicPeer", "PeerOptions", "Fail to proxy"] {
        assert!(!log.contains(dump), "{dump} in the log:\n{log}");
    }
}
