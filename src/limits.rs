//! Limits against abusive or broken clients. At the connection level (Pingora has no hook before a
//! request's header is complete, so the proxy app and its client streams are wrapped): a cap on
//! open client connections, a deadline for each request's whole header (slowloris), and a cap on
//! the bytes a header may take before it is complete ([`HeaderCap`]), well under Pingora's own
//! 1 MiB. Per request: header size and count and framing ([`inspect`]), the keep-alive idle
//! timeout, and the route's body cap (in the proxy). Every refusal is counted in
//! `strangler_limits_total{limit}`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::http::RequestHeader;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::model::Limits;
pub use crate::metrics::Limit;
use crate::snapshot::Shared;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's header deadline: its first request's header must be complete within
/// `header_timeout` of the accept, and every later one within `idle_timeout + header_timeout`
/// of the previous answer, so a client cannot keep a connection by dripping a header a byte at a
/// time (a timeout per read, as Pingora's keep-alive timeout is, restarts on every byte). It is
/// the keep-alive timeout too: a connection that sends no byte of its next request within
/// `idle_timeout` of the previous answer is closed. Pingora waits for that request without a
/// timer of its own (one timer registration per request saved); the connection's one
/// [`Deadline`] timer serves both.
#[derive(Debug)]
struct HeaderWatch {
    /// A header is complete and its request not yet answered: no deadline runs.
    seen: AtomicBool,
    /// Bytes of the header being read (since the last answer), for [`HeaderCap`].
    header_bytes: AtomicUsize,
    /// This connection's share of [`PENDING`].
    charged: AtomicUsize,
    /// The header being read went over a [`HeaderCap`] limit ([`OVER_BYTES`] or
    /// [`OVER_MEMORY`]): the connection is closed.
    over: AtomicU8,
    /// When the next header must be complete, in microseconds since `start`.
    deadline_us: AtomicU64,
    /// When a kept-alive connection that has sent no byte of its next request is closed, in
    /// microseconds since `start`; `u64::MAX` before the first answer.
    idle_until_us: AtomicU64,
    /// The keep-alive idle timeout, in microseconds: the listener's, or what the proxy set for
    /// the request being served ([`header_complete`]).
    idle_us: AtomicU64,
    start: Instant,
    header_timeout: Duration,
}

/// `d` in whole microseconds, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl HeaderWatch {
    /// A connection accepted at `start`.
    fn new(start: Instant, header_timeout: Duration, idle: Duration) -> Self {
        HeaderWatch {
            seen: AtomicBool::new(false),
            header_bytes: AtomicUsize::new(0),
            charged: AtomicUsize::new(0),
            over: AtomicU8::new(0),
            deadline_us: AtomicU64::new(micros(header_timeout)),
            idle_until_us: AtomicU64::new(u64::MAX),
            idle_us: AtomicU64::new(micros(idle)),
            start,
            header_timeout,
        }
    }

    /// The moment `us` microseconds after the accept.
    fn at(&self, us: u64) -> Instant {
        self.start + Duration::from_micros(us)
    }

    fn deadline(&self) -> Instant {
        self.at(self.deadline_us.load(Ordering::Relaxed))
    }

    fn idle(&self) -> Duration {
        Duration::from_micros(self.idle_us.load(Ordering::Relaxed))
    }

    /// When the connection is closed if no byte of its next request arrives; `None` before the
    /// first answer.
    fn idle_until(&self) -> Option<Instant> {
        let us = self.idle_until_us.load(Ordering::Relaxed);
        (us != u64::MAX).then(|| self.at(us))
    }

    /// No byte of the next request has arrived since the last answer (or the accept).
    fn waiting(&self) -> bool {
        self.header_bytes.load(Ordering::Relaxed) == 0
    }

    /// The header is complete; `idle`, when given, applies once its request is answered.
    fn complete(&self, idle: Option<Duration>) {
        self.seen.store(true, Ordering::Relaxed);
        self.release();
        if let Some(idle) = idle {
            self.idle_us.store(micros(idle), Ordering::Relaxed);
        }
    }

    /// The request was answered at `now`.
    fn answered(&self, now: Instant) {
        let since = micros(now.saturating_duration_since(self.start));
        let idle_until = since.saturating_add(self.idle_us.load(Ordering::Relaxed));
        self.idle_until_us.store(idle_until, Ordering::Relaxed);
        self.deadline_us.store(idle_until.saturating_add(micros(self.header_timeout)), Ordering::Relaxed);
        self.header_bytes.store(0, Ordering::Relaxed);
        self.seen.store(false, Ordering::Relaxed);
    }

    /// What ends the connection at `now`, if anything: a kept-alive connection idle too long
    /// (`Some(None)`, not a refusal) or a header past its deadline.
    fn expired(&self, now: Instant) -> Option<Option<Limit>> {
        if self.waiting() && self.idle_until().is_some_and(|t| now >= t) {
            return Some(None);
        }
        if now >= self.deadline() {
            return Some(Some(Limit::HeaderTimeout));
        }
        None
    }

    /// When to look again, at `now`, if nothing has expired: the earliest moment something could.
    /// While a header is being read that is its deadline, or sooner: once it is answered, the
    /// connection's idle time starts (and can be no earlier than `now + idle`).
    fn next_check(&self, now: Instant) -> Instant {
        let deadline = self.deadline();
        if !self.waiting() {
            return deadline.min(now + self.idle());
        }
        self.idle_until().map_or(deadline, |t| deadline.min(t))
    }

    /// The header is no longer pending (complete, or its connection gone): give its share of
    /// the budget back.
    fn release(&self) {
        // Most headers never draw on the budget: then the shared counter is not touched.
        if self.charged.load(Ordering::Relaxed) != 0 {
            PENDING.fetch_sub(self.charged.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// Bytes of incomplete request headers held by all client connections together, beyond the
/// first [`SMALL_HEADER`] bytes of each: what `max_pending_header_bytes` bounds.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// What any header may take without drawing on the shared budget: Pingora's first read buffer,
/// which every connection has anyway, and far more than a usual request needs. So however the
/// budget is used up, ordinary requests are still read.
const SMALL_HEADER: usize = 4096;

const OVER_BYTES: u8 = 1;
const OVER_MEMORY: u8 = 2;

/// The header deadline of the connection `stream` is, if [`Guarded`] put one on it (HTTP/1
/// client connections; an HTTP/2 session's `stream` is `None`).
fn watch_of(stream: Option<&Stream>) -> Option<&HeaderWatch> {
    // `**s`: the boxed connection itself, not the box, is what may be a HeaderCap.
    stream.and_then(|s| (**s).as_any().downcast_ref::<HeaderCap>()).map(|cap| &*cap.watch)
}

/// Called by the proxy (and the admin listener) with a request's connection once its header has
/// been read, with the keep-alive idle timeout that applies after this request (`None`: the
/// listener's). Whether the connection has a header deadline, which then closes it when idle:
/// if so, Pingora need not time the wait for the next request itself.
pub fn header_complete(stream: Option<&Stream>, idle: Option<Duration>) -> bool {
    let Some(w) = watch_of(stream) else { return false };
    w.complete(idle);
    true
}

/// Called once a request is answered (at `now`): the connection's idle time starts, and its next
/// header gets its own deadline.
pub fn request_done(stream: Option<&Stream>, now: Instant) {
    if let Some(w) = watch_of(stream) {
        w.answered(now);
    }
}

/// What admission needs from a request's header, picked up while checking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspected<'a> {
    /// The host the request names: its absolute URI's, else its `Host` header.
    pub host: Option<&'a str>,
    /// A declared body size.
    pub content_length: Option<u64>,
    /// A header named like one only strangler or a trusted proxy may set (see
    /// [`crate::headers::may_be_mark`]).
    pub marked: bool,
    /// A `Connection` value that could nominate a header strangler sets (see
    /// [`crate::headers::may_nominate_protected`]).
    pub nominates: bool,
}

/// Check a request's header in one walk over it (no hashed lookup per header), refusing:
/// - framing a proxy must not guess about (RFC 9112 §6.3), with 400 before any upstream is
///   contacted: `Content-Length` with `Transfer-Encoding` (the classic smuggling pair), a
///   `Transfer-Encoding` other than exactly `chunked` (`chunked, chunked`, `gzip`), and several
///   `Content-Length` values that disagree. An answer to any of them closes the connection, so
///   bytes that follow can never become a second request;
/// - then a header over the count or size limits (431), counted as the client sent it.
///
/// The same walk notes whether the header carries anything the proxy rewrites before forwarding
/// it, so an ordinary header is walked once.
pub fn inspect<'a>(req: &'a RequestHeader, limits: &Limits) -> Result<Inspected<'a>, Limit> {
    use crate::headers::{may_be_mark, may_nominate_protected};
    use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
    let mut size =
        req.uri.path_and_query().map_or(0, |p| p.as_str().len()) + req.uri.authority().map_or(0, |a| a.as_str().len());
    let (mut te, mut te_count, mut cl, mut cl_conflict, mut host, mut hosts) = (None, 0, None, false, None, 0);
    let (mut marked, mut nominates) = (false, false);
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
        } else if *name == HOST {
            hosts += 1;
            if host.is_none() {
                host = value.to_str().ok();
            }
        } else if *name == CONNECTION {
            nominates |= may_nominate_protected(value.as_bytes());
        } else {
            marked |= may_be_mark(name.as_str());
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
    // HTTP/1.1 needs exactly one Host; HTTP/2 names its authority otherwise, HTTP/1.0 may omit it.
    if req.version == http::Version::HTTP_11 && (hosts != 1 || host.is_none_or(str::is_empty)) {
        return Err(Limit::Host);
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
        marked,
        nominates,
    })
}

/// The bytes a request header may take on the wire before it is complete: `max_header_bytes`
/// (which counts names, values and the target) plus room for the request line's method and
/// version and for spacing, so a header [`inspect`] would pass is never cut, and one over it
/// gets its 431 from [`inspect`] unless it is far over.
fn header_cap(limits: &Limits) -> usize {
    limits.max_header_bytes.saturating_add(4096)
}

/// A Pingora app (the proxy, or the admin listener) behind the connection limits.
pub struct Guarded<A> {
    inner: Arc<A>,
    /// The limits bound at start (connections, deadlines).
    limits: Limits,
    /// Where the header size limits of the moment are read, once per connection.
    shared: Arc<Shared>,
    h2c: bool,
    /// Client connections open now. Pingora serves a kept-alive HTTP/1 connection's requests in
    /// one `process_new` call, so one call is one connection.
    open: AtomicUsize,
    /// The admin listener's rules for connections past its general slots.
    reserve: Option<Reserve>,
}

impl<A> Guarded<A> {
    pub fn new(inner: A, limits: Limits, shared: Arc<Shared>, h2c: bool) -> Self {
        Guarded { inner: Arc::new(inner), limits, shared, h2c, open: AtomicUsize::new(0), reserve: None }
    }

    /// The admin listener: `limits.max_connections` general slots, at most [`PER_ADDRESS`] of
    /// them held by one address, and past those a reserve that serves health and metrics only
    /// ([`Reserve`]).
    pub fn admin(inner: A, limits: Limits, shared: Arc<Shared>) -> Self {
        Guarded { reserve: Some(Reserve::default()), ..Self::new(inner, limits, shared, false) }
    }
}

// === the admin listener's reserve ===

/// General admin slots one client address may hold at once.
pub const PER_ADDRESS: usize = 16;
/// Connections served from the reserve at once at most.
pub const RESERVE_CONNECTIONS: usize = 1024;
/// Time a reserve connection has to show it asks for health or metrics.
pub const RESERVE_DEADLINE: Duration = Duration::from_secs(1);
/// What a reserve connection's request must begin with: exactly one of these, then a space or
/// a `?` (peeked, not read: the request is then served as any other).
const RESERVED: [&[u8]; 3] = [b"GET /livez", b"GET /readyz", b"GET /metrics"];
/// Bytes peeked: the longest prefix and the byte after it.
const RESERVED_PEEK: usize = 13;

/// Whatever unauthenticated clients do, `/livez`, `/readyz` and `/metrics` answer: a connection
/// that finds the general slots full, or its address holding [`PER_ADDRESS`] of them, may still
/// send `GET /livez`, `GET /readyz` or `GET /metrics` within [`RESERVE_DEADLINE`]; anything else
/// there is closed (counted as `connections` in `strangler_limits_total`).
#[derive(Default)]
pub struct Reserve {
    per_address: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    open: AtomicUsize,
}

impl Reserve {
    /// A general slot for `ip`, if its address holds fewer than [`PER_ADDRESS`].
    fn take(&self, ip: Option<std::net::IpAddr>) -> Option<AddressSlot<'_>> {
        let Some(ip) = ip else { return Some(AddressSlot { reserve: self, ip: None }) };
        let mut held = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(ip).or_default();
        if *n >= PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot { reserve: self, ip: Some(ip) })
    }

    /// Whether a connection that got no general slot asks for health or metrics in time.
    async fn admits(stream: &mut Stream) -> bool {
        let mut buf = [0u8; RESERVED_PEEK];
        match tokio::time::timeout(RESERVE_DEADLINE, stream.try_peek(&mut buf)).await {
            Ok(Ok(true)) => {
                RESERVED.iter().any(|p| buf.starts_with(p) && matches!(buf.get(p.len()), Some(b' ' | b'?')))
            }
            _ => false,
        }
    }
}

/// One general admin slot held by an address, given back however the connection ends.
struct AddressSlot<'a> {
    reserve: &'a Reserve,
    ip: Option<std::net::IpAddr>,
}

impl Drop for AddressSlot<'_> {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut held = self.reserve.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&ip);
            }
        }
    }
}

fn peer_ip(stream: &Stream) -> Option<std::net::IpAddr> {
    let digest = stream.get_socket_digest()?;
    digest.peer_addr()?.as_inet().map(|a| a.ip())
}

/// Ready when a header deadline passes before that header is complete, or a kept-alive
/// connection stays idle past its idle timeout. While a request is in flight the timer is not
/// polled at all, so serving it pays nothing for the deadline, and it is not moved per request
/// either: when it fires, it is set again to the next moment the connection could expire
/// ([`HeaderWatch::next_check`]) unless it has. That moment is never later than what a request
/// answered meanwhile could bring (an answer's idle time ends no sooner than the one before, as
/// long as a reload does not shorten `idle_timeout`; if one does, that connection is closed late
/// by at most the difference).
struct Deadline {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    watch: Arc<HeaderWatch>,
    /// The waker the timer holds since it was last polled (`None` once it fired or was reset).
    /// Until it fires, polling it again with the same waker would only register that waker
    /// again: each request's wake-up between requests skips that.
    armed: Option<std::task::Waker>,
}

impl std::future::Future for Deadline {
    /// The connection is to be closed. The refusal is counted before this is ready: `select!`
    /// drops (closes) the connection before it runs a branch's handler, and a client that sees
    /// the close must find it counted.
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Counted by HeaderCap when it saw the header go over.
        if self.watch.over.load(Ordering::Relaxed) != 0 {
            return Poll::Ready(());
        }
        if self.watch.seen.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        loop {
            let holds_waker = self.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
            if holds_waker && !self.sleep.is_elapsed() {
                return Poll::Pending;
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                if !holds_waker {
                    self.armed = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            self.armed = None;
            let now = Instant::now();
            match self.watch.expired(now) {
                Some(refused) => {
                    if let Some(limit) = refused {
                        limit.count();
                    }
                    return Poll::Ready(());
                }
                None => {
                    let next = self.watch.next_check(now);
                    self.sleep.as_mut().reset(next.into());
                }
            }
        }
    }
}

/// What a client gets when its header goes over the cap, written on a best-effort basis (the
/// client may not be reading) just before the connection is closed.
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// An HTTP/1 client stream whose request headers are held to two limits while they are being
/// read. Pingora buffers a header up to 1 MiB before it parses it, so without them a few hundred
/// clients each sending a never-ending header would hold hundreds of MiB.
/// - Each header may take `cap` bytes ([`header_cap`]).
/// - All incomplete headers together may take `budget` bytes (`max_pending_header_bytes`)
///   beyond the first [`SMALL_HEADER`] bytes of each: a buffer that grows to hold a header also
///   leaves the smaller ones it outgrew behind for a while, so headers being read can hold about
///   twice their size in memory, and a few hundred large ones add up even when each is allowed.
///
/// Reads while a header is pending are shortened to what the limits leave, so a body or a
/// pipelined request sent right behind a header is never counted as header. Once a limit is
/// reached the stream answers 431 and stops; the connection's [`Deadline`] closes it.
#[derive(Debug)]
struct HeaderCap {
    inner: Stream,
    watch: Arc<HeaderWatch>,
    cap: usize,
    budget: usize,
}

impl Drop for HeaderCap {
    fn drop(&mut self) {
        self.watch.release();
    }
}

impl HeaderCap {
    /// How many bytes the header being read may still take, and which limit stops it if none.
    fn allowance(&self) -> (usize, u8) {
        let read = self.watch.header_bytes.load(Ordering::Relaxed);
        let left = self.cap.saturating_sub(read);
        if left == 0 {
            return (0, OVER_BYTES);
        }
        let free = SMALL_HEADER
            .saturating_sub(read)
            .saturating_add(self.budget.saturating_sub(PENDING.load(Ordering::Relaxed)));
        if free == 0 {
            return (0, OVER_MEMORY);
        }
        (left.min(free), 0)
    }

    /// Count `n` more header bytes, charging what goes past [`SMALL_HEADER`] to the budget.
    fn count(&self, n: usize) {
        // Only this stream adds to the count (its connection's task), so a load and a store do.
        let before = self.watch.header_bytes.load(Ordering::Relaxed);
        self.watch.header_bytes.store(before + n, Ordering::Relaxed);
        let charge = (before + n).saturating_sub(SMALL_HEADER) - before.saturating_sub(SMALL_HEADER);
        if charge > 0 {
            PENDING.fetch_add(charge, Ordering::Relaxed);
            self.watch.charged.fetch_add(charge, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for HeaderCap {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.watch.seen.load(Ordering::Relaxed) {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let (left, over) = this.allowance();
        if left == 0 {
            if this.watch.over.swap(over, Ordering::Relaxed) == 0 {
                // Counted before the client can see the answer.
                if over == OVER_MEMORY { Limit::HeaderMemory } else { Limit::HeaderBytes }.count();
                let inner = Pin::new(&mut this.inner);
                if let Poll::Ready(Ok(_)) = inner.poll_write(cx, TOO_LARGE) {
                    let _ = Pin::new(&mut this.inner).poll_flush(cx);
                }
                // Polls the connection's Deadline, which sees `over` and closes it.
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        if left >= buf.remaining() {
            // The usual case: the whole read fits the allowance.
            let before = buf.filled().len();
            let read = Pin::new(&mut this.inner).poll_read(cx, buf);
            this.count(buf.filled().len() - before);
            return read;
        }
        let (read, n) = {
            let mut part = buf.take(left);
            let read = Pin::new(&mut this.inner).poll_read(cx, &mut part);
            (read, part.filled().len())
        };
        // `part` was the start of `buf`'s unfilled region: what it filled is `buf`'s next `n` bytes.
        // SAFETY: those `n` bytes were initialised by the read into `part`.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        this.count(n);
        read
    }
}

impl AsyncWrite for HeaderCap {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeaderCap {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeaderCap {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderCap {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderCap {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeaderCap {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeaderCap {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeaderCap {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
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
        let general = self.open.fetch_add(1, Ordering::Relaxed) < self.limits.max_connections;
        let _slot = Slot(&self.open);
        let Some(reserve) = &self.reserve else {
            if !general {
                Limit::Connections.count();
                return None;
            }
            return self.serve(stream, shutdown).await;
        };
        let address = if general { reserve.take(peer_ip(&stream)) } else { None };
        if address.is_some() {
            return self.serve(stream, shutdown).await;
        }
        // The reserve: health and metrics only, bounded in number and in time to ask.
        if reserve.open.fetch_add(1, Ordering::Relaxed) >= RESERVE_CONNECTIONS {
            reserve.open.fetch_sub(1, Ordering::Relaxed);
            Limit::Connections.count();
            return None;
        }
        let _reserved = Slot(&reserve.open);
        if !Reserve::admits(&mut stream).await {
            Limit::Connections.count();
            return None;
        }
        self.serve(stream, shutdown).await
    }

    /// Called when the listeners stop (upgrade or shutdown). Pingora's own cleanup would drop
    /// every idle keep-alive connection at once, and a request a client is sending on one at that
    /// moment fails with a reset. Without it, each kept-alive connection's next request is still
    /// served, with `Connection: close` (Pingora turns keep-alive off once shutdown began), so
    /// clients move to the new process on their own; connections still idle when the grace period
    /// ends close with the process.
    async fn cleanup(&self) {}
}

impl<A: ServerApp + Send + Sync + 'static> Guarded<A> {
    /// Serve a connection that has its slot: HTTP/2 as it is, HTTP/1 behind the header cap and
    /// deadlines.
    async fn serve(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let deadline = self.limits.header_timeout;
        match is_h2(&mut stream, self.h2c, deadline).await {
            Some(true) => ServerApp::process_new(&self.inner, stream, shutdown).await,
            Some(false) => {
                let (cap, budget, idle) = {
                    let now = self.shared.load();
                    let limits = &now.config.limits;
                    // The admin listener's idle time is short whatever the proxy's is.
                    let idle = match self.reserve {
                        Some(_) => limits.idle_timeout.min(self.limits.idle_timeout),
                        None => limits.idle_timeout,
                    };
                    (header_cap(limits), limits.max_pending_header_bytes, idle)
                };
                let watch = Arc::new(HeaderWatch::new(Instant::now(), deadline, idle));
                let stream: Stream = Box::new(HeaderCap { inner: stream, watch: watch.clone(), cap, budget });
                let serve = ServerApp::process_new(&self.inner, stream, shutdown);
                // The first answer comes no sooner than now, so the connection's idle time cannot
                // end before `idle` from now: looking again then is never late.
                let first = deadline.min(idle);
                let expire = Deadline { sleep: Box::pin(tokio::time::sleep(first)), watch, armed: None };
                tokio::select! {
                    biased;
                    r = serve => r,
                    // A header never completed in time or went over its cap (counted): nothing
                    // is in flight, drop the connection.
                    () = expire => None
                }
            }
            None => {
                Limit::HeaderTimeout.count();
                None
            }
        }
    }
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
            max_pending_header_bytes: 200,
            max_headers: 4,
            max_connections: 1,
        }
    }

    /// An HTTP/1.0 request (which may go without `Host`, so the limits under test are the only
    /// ones in play), or HTTP/1.1 when it names a host.
    fn request(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", uri.as_bytes(), None).unwrap();
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.set_version(http::Version::HTTP_10);
        }
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    /// RFC 9112 §3.2: an HTTP/1.1 request without a Host, with two, or with an empty one is
    /// refused; HTTP/1.0 may go without.
    #[test]
    fn http_1_1_needs_exactly_one_host() {
        let l = limits();
        let v11 = |headers: &[(&str, &str)]| {
            let mut req = request("/", headers);
            req.set_version(http::Version::HTTP_11);
            inspect(&req, &l).err()
        };
        assert_eq!(v11(&[]), Some(Limit::Host));
        assert_eq!(v11(&[("host", "a"), ("host", "b")]), Some(Limit::Host));
        assert_eq!(v11(&[("host", "")]), Some(Limit::Host));
        assert_eq!(v11(&[("host", "a")]), None);
        assert_eq!(inspect(&request("/", &[]), &l).err(), None, "HTTP/1.0");
    }

    /// One connection's life on the header deadline's clock: header 4 s, idle 1 s.
    #[test]
    fn the_header_watch_closes_slow_headers_and_idle_connections_and_never_looks_too_late() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let w = HeaderWatch::new(t0, Duration::from_secs(4), Duration::from_secs(1));
        // The first header: header_timeout from the accept; no idle time yet.
        assert_eq!(w.expired(ms(3_999)), None);
        assert_eq!(w.expired(ms(4_000)), Some(Some(Limit::HeaderTimeout)));
        assert_eq!(w.next_check(ms(0)), ms(4_000));
        // While it is read, the next look is no later than an answer's idle time could end.
        w.header_bytes.store(10, Ordering::Relaxed);
        assert_eq!(w.next_check(ms(500)), ms(1_500));
        w.complete(Some(Duration::from_secs(1)));
        w.answered(ms(600));
        // Idle: closed 1 s after the answer, not refused; the next header's deadline is 5 s on.
        assert_eq!(w.next_check(ms(700)), ms(1_600));
        assert_eq!(w.expired(ms(1_599)), None);
        assert_eq!(w.expired(ms(1_600)), Some(None));
        // A request begun within the idle time is not idle: its header has until 5.6 s.
        w.header_bytes.store(5, Ordering::Relaxed);
        assert_eq!(w.expired(ms(1_700)), None);
        assert_eq!(w.next_check(ms(1_700)), ms(2_700));
        assert_eq!(w.expired(ms(5_599)), None);
        assert_eq!(w.expired(ms(5_600)), Some(Some(Limit::HeaderTimeout)));
        // The idle time the proxy sets for a request applies after its answer.
        w.complete(Some(Duration::from_secs(3)));
        w.answered(ms(2_000));
        assert_eq!(w.expired(ms(4_999)), None);
        assert_eq!(w.expired(ms(5_000)), Some(None));
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
        let plain = Inspected { host: None, content_length: None, marked: false, nominates: false };
        assert_eq!(seen, Inspected { host: Some("api.example.com"), content_length: Some(42), ..plain });
        let mut req = request("/x", &[("host", "api.example.com")]);
        req.set_uri("http://other.example/x".parse().unwrap());
        assert_eq!(inspect(&req, &l).unwrap().host, Some("other.example"), "an absolute URI's host wins");
        assert_eq!(inspect(&request("/", &[]), &l).unwrap(), plain);
    }

    /// The proxy rewrites a client's header only when this walk saw something to rewrite, so a
    /// miss here would forward a forged mark or let a client strip a forwarding header.
    #[test]
    fn the_walk_notes_what_the_proxy_rewrites() {
        let l = limits();
        let seen = |h: &[(&str, &str)]| {
            let req = request("/", h);
            let s = inspect(&req, &l).unwrap();
            (s.marked, s.nominates)
        };
        assert_eq!(
            seen(&[("accept", "*/*"), ("connection", "keep-alive"), ("x-forwarded-for", "1.2.3.4")]),
            (false, false)
        );
        for mark in ["x-strangler-shadow", "X-Strangler-Anything", "forwarded", "x-real-ip", "x-forwarded-host"] {
            assert_eq!(seen(&[("accept", "*/*"), (mark, "1")]), (true, false), "{mark}");
        }
        assert_eq!(seen(&[("connection", "close, X-Forwarded-For")]), (false, true));
        assert_eq!(seen(&[("connection", "host")]), (false, true));
        assert_eq!(seen(&[("connection", "HOST")]), (false, true));
        assert_eq!(seen(&[("connection", "forwarded")]), (false, true), "x-forwarded-* by its tail");
        for plain in ["upgrade", "Keep-Alive", "CLOSE", "te", ""] {
            assert_eq!(seen(&[("connection", plain)]), (false, false), "{plain:?}");
        }
    }
}
