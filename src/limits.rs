//! Limits against abusive or broken clients. At the connection level (Pingora has no hook before a
//! request's header is complete, so the proxy app is wrapped): a cap on open client connections and
//! a deadline for a new connection's whole first request header (slowloris). Per request: header
//! size and count and framing ([`inspect`]), the keep-alive idle timeout, and the route's body cap (in the
//! proxy). Every refusal is counted in `strangler_limits_total{limit}`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::http::RequestHeader;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;

use crate::config::model::Limits;
use crate::metrics::METRICS;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

tokio::task_local! {
    /// The header deadline of the connection whose task this is.
    static HEADER_WATCH: Arc<HeaderWatch>;
}

/// A connection's header deadline: its first request's header must be complete within
/// `header_timeout` of the accept, and every later one within `idle_timeout + header_timeout`
/// of the previous answer, so a client cannot keep a connection by dripping a header a byte at a
/// time (Pingora's keep-alive timeout restarts on every byte).
struct HeaderWatch {
    /// A header is complete and its request not yet answered: no deadline runs.
    seen: AtomicBool,
    /// When the next header must be complete, in microseconds since `start`.
    deadline_us: AtomicU64,
    start: Instant,
    /// From an answer to the next complete header.
    next: Duration,
}

impl HeaderWatch {
    fn deadline(&self) -> Instant {
        self.start + Duration::from_micros(self.deadline_us.load(Ordering::Relaxed))
    }
}

/// Called by the proxy (and the admin listener) as soon as a request's header has been read.
pub fn header_complete() {
    let _ = HEADER_WATCH.try_with(|w| w.seen.store(true, Ordering::Relaxed));
}

/// Called once a request is answered: the connection's next header gets its own deadline.
pub fn request_done() {
    let _ = HEADER_WATCH.try_with(|w| {
        let next = w.start.elapsed() + w.next;
        w.deadline_us.store(u64::try_from(next.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        w.seen.store(false, Ordering::Relaxed);
    });
}

/// A limit a request or connection can be refused by, as counted in `strangler_limits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_connections`: the connection was closed at once.
    Connections,
    /// The request header did not arrive within `header_timeout`.
    HeaderTimeout,
    HeaderBytes,
    HeaderCount,
    /// A body over the route's `max_request_body`.
    Body,
    /// A request body that stopped coming (`body_timeout`).
    BodyTimeout,
    /// Framing a proxy must not guess about (400).
    Framing,
    /// A path the upstream could read two ways (400), see [`crate::route::path`].
    Path,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::Connections,
        Limit::HeaderTimeout,
        Limit::HeaderBytes,
        Limit::HeaderCount,
        Limit::Body,
        Limit::BodyTimeout,
        Limit::Framing,
        Limit::Path,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::HeaderTimeout => "header_timeout",
            Limit::HeaderBytes => "header_bytes",
            Limit::HeaderCount => "header_count",
            Limit::Body => "body",
            Limit::BodyTimeout => "body_timeout",
            Limit::Framing => "framing",
            Limit::Path => "path",
        }
    }

    /// Count one refusal.
    pub fn count(self) {
        METRICS.limits.with_label_values(&[self.as_str()]).inc();
    }
}

/// What admission needs from a request's header, picked up while checking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspected<'a> {
    /// The host the request names: its absolute URI's, else its `Host` header.
    pub host: Option<&'a str>,
    /// A declared body size.
    pub content_length: Option<u64>,
}

/// Check a request's header in one walk over it (no hashed lookup per header), refusing:
/// - framing a proxy must not guess about (RFC 9112 §6.3), with 400 before any upstream is
///   contacted: `Content-Length` with `Transfer-Encoding` (the classic smuggling pair), a
///   `Transfer-Encoding` other than exactly `chunked` (`chunked, chunked`, `gzip`), and several
///   `Content-Length` values that disagree. An answer to any of them closes the connection, so
///   bytes that follow can never become a second request;
/// - then a header over the count or size limits (431).
pub fn inspect<'a>(req: &'a RequestHeader, limits: &Limits) -> Result<Inspected<'a>, Limit> {
    use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
    let mut size =
        req.uri.path_and_query().map_or(0, |p| p.as_str().len()) + req.uri.authority().map_or(0, |a| a.as_str().len());
    let (mut te, mut te_count, mut cl, mut cl_conflict, mut host) = (None, 0, None, false, None);
    for (name, value) in req.headers.iter() {
        size += name.as_str().len() + value.len() + 4;
        if *name == TRANSFER_ENCODING {
            te = Some(value);
            te_count += 1;
        } else if *name == CONTENT_LENGTH {
            match cl {
                None => cl = Some(value.as_bytes().trim_ascii()),
                Some(first) => cl_conflict |= value.as_bytes().trim_ascii() != first,
            }
        } else if *name == HOST && host.is_none() {
            host = value.to_str().ok();
        }
    }
    let bad_framing = match (te, cl) {
        (None, None) => false,
        (Some(t), None) => te_count > 1 || !t.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"),
        (None, Some(first)) => first.contains(&b',') || cl_conflict,
        (Some(_), Some(_)) => true,
    };
    if bad_framing {
        return Err(Limit::Framing);
    }
    if req.headers.len() > limits.max_headers {
        return Err(Limit::HeaderCount);
    }
    if size > limits.max_header_bytes {
        return Err(Limit::HeaderBytes);
    }
    Ok(Inspected {
        host: req.uri.host().or(host),
        content_length: cl.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()),
    })
}

/// A Pingora app (the proxy) behind the connection limits.
pub struct Guarded<A> {
    inner: Arc<A>,
    limits: Limits,
    h2c: bool,
    /// Client connections open now. Pingora serves a kept-alive HTTP/1 connection's requests in
    /// one `process_new` call, so one call is one connection.
    open: AtomicUsize,
}

impl<A> Guarded<A> {
    pub fn new(inner: A, limits: Limits, h2c: bool) -> Self {
        Guarded { inner: Arc::new(inner), limits, h2c, open: AtomicUsize::new(0) }
    }
}

/// Ready when a header deadline passes before that header is complete. While a request is in
/// flight the timer is not polled at all, so serving it pays nothing for the deadline; once it is
/// answered, the next wake-up of the connection (a byte of the next header) arms the timer for
/// the next deadline. A connection that sends nothing is closed by the keep-alive timeout.
struct Deadline {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    watch: Arc<HeaderWatch>,
}

impl std::future::Future for Deadline {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.watch.seen.load(Ordering::Relaxed) {
            return std::task::Poll::Pending;
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return std::task::Poll::Pending;
            }
            let deadline = self.watch.deadline();
            if Instant::now() >= deadline {
                return std::task::Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline.into());
        }
    }
}

/// Releases a connection slot however the connection ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the connection speaks HTTP/2 (whose streams run on tasks of their own): by ALPN, or by
/// the h2c preface when h2c is on. `None` when the client sent nothing before `deadline`.
async fn is_h2(stream: &mut Stream, h2c: bool, deadline: Duration) -> Option<bool> {
    if stream.get_ssl_digest().is_some() {
        return Some(matches!(stream.selected_alpn_proto(), Some(ALPN::H2)));
    }
    if !h2c {
        return Some(false);
    }
    let mut buf = [0u8; H2_PREFACE.len()];
    match tokio::time::timeout(deadline, stream.try_peek(&mut buf)).await {
        Ok(Ok(true)) => Some(buf == H2_PREFACE),
        Ok(_) => Some(false),
        Err(_) => None,
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.limits.max_connections {
            self.open.fetch_sub(1, Ordering::Relaxed);
            Limit::Connections.count();
            return None;
        }
        let _slot = Slot(&self.open);
        let deadline = self.limits.header_timeout;
        match is_h2(&mut stream, self.h2c, deadline).await {
            Some(true) => ServerApp::process_new(&self.inner, stream, shutdown).await,
            Some(false) => {
                let watch = Arc::new(HeaderWatch {
                    seen: AtomicBool::new(false),
                    deadline_us: AtomicU64::new(u64::try_from(deadline.as_micros()).unwrap_or(u64::MAX)),
                    start: Instant::now(),
                    next: self.limits.idle_timeout + deadline,
                });
                let serve = HEADER_WATCH.scope(watch.clone(), ServerApp::process_new(&self.inner, stream, shutdown));
                let expire = Deadline { sleep: Box::pin(tokio::time::sleep(deadline)), watch };
                tokio::select! {
                    biased;
                    r = serve => r,
                    // A header never completed in time: nothing is in flight, drop the connection.
                    () = expire => {
                        Limit::HeaderTimeout.count();
                        None
                    }
                }
            }
            None => {
                Limit::HeaderTimeout.count();
                None
            }
        }
    }

    /// Called when the listeners stop (upgrade or shutdown). Pingora's own cleanup would drop
    /// every idle keep-alive connection at once, and a request a client is sending on one at that
    /// moment fails with a reset. Without it, each kept-alive connection's next request is still
    /// served, with `Connection: close` (Pingora turns keep-alive off once shutdown began), so
    /// clients move to the new process on their own; connections still idle when the grace period
    /// ends close with the process.
    async fn cleanup(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            max_header_bytes: 200,
            max_headers: 4,
            max_connections: 1,
        }
    }

    fn request(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", uri.as_bytes(), None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn framing_a_proxy_must_not_guess_about_is_refused() {
        let l = limits();
        let refused = |h: &[(&str, &str)]| inspect(&request("/", h), &l).err();
        assert_eq!(refused(&[("transfer-encoding", "chunked")]), None);
        assert_eq!(refused(&[("transfer-encoding", " Chunked ")]), None);
        assert_eq!(refused(&[("content-length", "5"), ("content-length", "5")]), None, "agreeing copies");
        for bad in [
            &[("transfer-encoding", "chunked, chunked")][..],
            &[("transfer-encoding", "gzip")],
            &[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
            &[("transfer-encoding", "chunked"), ("content-length", "5")],
            &[("content-length", "5"), ("content-length", "6")],
            &[("content-length", "5, 5")],
        ] {
            assert_eq!(refused(bad), Some(Limit::Framing), "{bad:?}");
        }
    }

    #[test]
    fn header_limits_and_what_routing_needs() {
        let l = limits();
        let many = [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")];
        assert_eq!(inspect(&request("/", &many), &l).err(), Some(Limit::HeaderCount));
        let long = "x".repeat(200);
        assert_eq!(inspect(&request("/", &[("a", &long)]), &l).err(), Some(Limit::HeaderBytes));
        let framing_first =
            [("content-length", "1"), ("transfer-encoding", "chunked"), ("c", "1"), ("d", "1"), ("e", "1")];
        assert_eq!(inspect(&request("/", &framing_first), &l).err(), Some(Limit::Framing));

        let req = request("/x", &[("host", "api.example.com"), ("content-length", " 42 ")]);
        let seen = inspect(&req, &l).unwrap();
        assert_eq!(seen, Inspected { host: Some("api.example.com"), content_length: Some(42) });
        let mut req = request("/x", &[("host", "api.example.com")]);
        req.set_uri("http://other.example/x".parse().unwrap());
        assert_eq!(inspect(&req, &l).unwrap().host, Some("other.example"), "an absolute URI's host wins");
        assert_eq!(inspect(&request("/", &[]), &l).unwrap(), Inspected { host: None, content_length: None });
    }
}
