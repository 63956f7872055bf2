//! Limits against abusive or broken clients. At the connection level (Pingora has no hook before a
//! request's header is complete, so the proxy app is wrapped): a cap on open client connections and
//! a deadline for a new connection's whole first request header (slowloris). Per request: header
//! size and count ([`check_header`]), the keep-alive idle timeout, and the route's body cap (in the
//! proxy). Every refusal is counted in `strangler_limits_total{limit}`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::http::RequestHeader;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;

use crate::config::model::Limits;
use crate::metrics::METRICS;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

tokio::task_local! {
    /// Set by the proxy once a request's header is complete, for the connection task that reads it.
    static HEADER_SEEN: Arc<AtomicBool>;
}

/// Called by the proxy as soon as a request's header has been read.
pub fn header_complete() {
    let _ = HEADER_SEEN.try_with(|seen| seen.store(true, Ordering::Relaxed));
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
}

impl Limit {
    pub const ALL: [Limit; 7] = [
        Limit::Connections,
        Limit::HeaderTimeout,
        Limit::HeaderBytes,
        Limit::HeaderCount,
        Limit::Body,
        Limit::BodyTimeout,
        Limit::Framing,
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
        }
    }

    /// Count one refusal.
    pub fn count(self) {
        METRICS.limits.with_label_values(&[self.as_str()]).inc();
    }
}

/// The header-level limits: the one the request is over, if any (answer 431).
pub fn check_header(req: &RequestHeader, limits: &Limits) -> Result<(), Limit> {
    if req.headers.len() > limits.max_headers {
        return Err(Limit::HeaderCount);
    }
    let uri =
        req.uri.path_and_query().map_or(0, |p| p.as_str().len()) + req.uri.authority().map_or(0, |a| a.as_str().len());
    let size = uri + req.headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>();
    if size > limits.max_header_bytes {
        return Err(Limit::HeaderBytes);
    }
    Ok(())
}

/// Request framing a proxy must not guess about (RFC 9112 §6.3), refused with 400 before any
/// upstream is contacted: `Content-Length` with `Transfer-Encoding` (the classic smuggling pair),
/// a `Transfer-Encoding` other than exactly `chunked` (`chunked, chunked`, `gzip`), and several
/// `Content-Length` values that disagree. An answer to any of them closes the connection, so
/// bytes that follow can never become a second request.
pub fn check_framing(req: &RequestHeader) -> Result<(), Limit> {
    let mut te = req.headers.get_all(http::header::TRANSFER_ENCODING).iter();
    let mut cl = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    let bad = match (te.next(), cl.next()) {
        (None, None) => false,
        (Some(t), None) => te.next().is_some() || !t.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"),
        (None, Some(first)) => {
            let first = first.as_bytes().trim_ascii();
            first.contains(&b',') || cl.any(|v| v.as_bytes().trim_ascii() != first)
        }
        (Some(_), Some(_)) => true,
    };
    if bad {
        return Err(Limit::Framing);
    }
    Ok(())
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

/// Ready when the header deadline passes before the header is complete. Once the header is seen
/// the timer is never polled again, so the rest of the connection pays nothing for it.
struct Deadline {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    seen: Arc<AtomicBool>,
}

impl std::future::Future for Deadline {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.seen.load(Ordering::Relaxed) {
            return std::task::Poll::Pending;
        }
        self.sleep.as_mut().poll(cx)
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
                let seen = Arc::new(AtomicBool::new(false));
                let serve = HEADER_SEEN.scope(seen.clone(), ServerApp::process_new(&self.inner, stream, shutdown));
                let expire = Deadline { sleep: Box::pin(tokio::time::sleep(deadline)), seen };
                tokio::select! {
                    biased;
                    r = serve => r,
                    // The first header never completed: nothing was proxied, drop the connection.
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
