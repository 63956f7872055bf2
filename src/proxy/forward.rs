//! Forwarding: act on the admission decision, take a peer from the chosen side's pool, fail new
//! over to legacy, and build the upstream request headers.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;

use super::admit::{self, admit, Admission, Routed};
use super::ctx::{Ctx, UpstreamAttempt};
use crate::core::Side;
use crate::headers::{may_be_mark, PROTECTED};
use crate::limits::{self, Limit};
use crate::metrics::METRICS;
use crate::route::path::{self, Ambiguous};
use crate::route::split;
use crate::shadow;
use crate::snapshot::Shared;
use crate::telemetry::{self, TRACEPARENT};
use crate::upstream::Failure;

pub const SIDE_HEADER: HeaderName = HeaderName::from_static("x-strangler-side");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Admit the request on the current snapshot (see [`admit`]) and act on the decision: answer a
/// refusal (400, 431, 413) or a missing route (404) here, before any upstream is contacted
/// (returning `Ok(true)`), or keep the routed request, with its shadow tee, in `ctx`.
pub async fn route_request(shared: &Shared, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let path_refused = normalize_path(session.req_header_mut()).is_err();
    let client_ip = peer_ip(session);
    // Everything that reads the snapshot happens in this block, before any await.
    let (admission, idle, body_timeout) = {
        let snap = shared.load();
        ctx.trusted_peer = snap.config.trusts(client_ip);
        ctx.access_log = snap.config.log.access_log;
        let limits = &snap.config.limits;
        let admission = if path_refused {
            Admission::Refuse(Limit::Path)
        } else {
            let inspected = limits::inspect(session.req_header(), limits);
            let (drop_marks, nominates) =
                inspected.as_ref().map_or((false, false), |s| (s.marked && !ctx.trusted_peer, s.nominates));
            if !drop_marks && !nominates {
                admit(&snap, session.req_header(), inspected, client_ip)
            } else {
                sanitize_client_headers(session.req_header_mut(), &snap.config, drop_marks, nominates);
                // Limits were judged on the header as sent; read again for what it borrows.
                admit(&snap, session.req_header(), limits::inspect(session.req_header(), limits), client_ip)
            }
        };
        let req = session.req_header();
        if let Admission::Routed(r) = &admission {
            let trusted = ctx.trusted_peer;
            let m = &r.matched;
            ctx.trace = telemetry::begin(snap.tracing.as_ref(), &req.headers);
            ctx.shadow =
                shadow::begin(&m.route, m.shadow.as_ref(), &m.pools, r.choice.side, req, &snap.config.log, || {
                    split::client_key(&m.route, &req.headers, client_ip, trusted)
                });
            if let (Some(capture), Some(hop)) = (ctx.shadow.as_mut(), ctx.trace.as_ref()) {
                capture.trace(hop.shadow());
            }
        }
        (admission, limits.idle_timeout, limits.body_timeout)
    };
    // Only a connection Pingora keeps alive gets our idle timeout: it turns keep-alive off where
    // reuse would be unsafe (Content-Length with Transfer-Encoding), and that must stay off. The
    // connection's header deadline closes it when idle; Pingora then waits for the next request
    // without arming a timer of its own (nor one a client's `Keep-Alive: timeout=` asks for).
    let keep_alive = session.get_keepalive().is_some();
    let watched = limits::header_complete(session.as_downstream().stream(), keep_alive.then_some(idle));
    if keep_alive {
        session.set_keepalive(Some(if watched { 0 } else { idle.as_secs().max(1) }));
        // Requests a client pipelines behind this one are answered in order (RFC 9112 §9.3.2),
        // not dropped with the connection; but never behind an upgrade (what follows it is the
        // new protocol's, or an attempt to smuggle a request past a refused one), nor behind a
        // header with bare LF line ends, which a proxy in front may have split otherwise.
        let downstream = session.as_downstream_mut();
        if !downstream.is_upgrade_req() && downstream.as_http1().is_some_and(|h| crlf_only(&h.get_headers_raw_bytes()))
        {
            downstream.set_pipelining_enabled(true);
        }
    }
    session.set_read_timeout(Some(body_timeout));
    match admission {
        Admission::Routed(routed) => {
            if routed.choice.override_rejected {
                METRICS.override_rejected.with_label_values(&[&routed.matched.route.name]).inc();
            }
            ctx.body_left = routed.matched.route.max_request_body;
            ctx.routed = Some(routed);
            Ok(false)
        }
        Admission::Refuse(limit) => {
            limit.count();
            // Answered before any upstream is contacted; the unread body makes the connection
            // unusable. Boxed, like the 404: rare paths must not grow every request's future.
            session.set_keepalive(None);
            let (code, body) = admit::refusal(limit);
            Box::pin(session.respond_error_with_body(code, Bytes::from_static(body))).await?;
            Ok(true)
        }
        Admission::NoRoute => {
            Box::pin(session.respond_error_with_body(404, Bytes::from_static(b"no route matches this request\n")))
                .await?;
            Ok(true)
        }
    }
}

/// The client's header as strangler forwards it, called only when [`limits::inspect`] saw
/// something to rewrite (the usual request needs no change and is not walked again):
/// - `drop_marks` (the header has marks and the peer is not in `server.trusted_proxies`):
///   headers only strangler, or a trusted proxy, may set are removed before routing. A client
///   must not mark its request as a shadow (the upstream may skip side effects for it, and it
///   would never be compared: a way to hide from the mismatch gate), nor claim another client's
///   address or host. The override header, named by a route, stays: it has a token rule of its
///   own;
/// - `nominates`: a `Connection` header that nominates a header strangler sets loses that
///   nomination ([`keep_forwarding_headers`]).
fn sanitize_client_headers(req: &mut RequestHeader, config: &crate::config::Config, drop_marks: bool, nominates: bool) {
    if drop_marks {
        let is_override =
            |name: &HeaderName| config.routes.iter().any(|r| r.override_.as_ref().is_some_and(|o| o.header == name));
        let marks: Vec<HeaderName> =
            req.headers.keys().filter(|name| may_be_mark(name.as_str()) && !is_override(name)).cloned().collect();
        for name in &marks {
            req.remove_header(name);
        }
    }
    if nominates {
        keep_forwarding_headers(req);
    }
}

/// Route and forward the normalised path (see [`crate::route::path`]), with the query as sent.
/// A target that is not UTF-8 is refused too: the URI Pingora routes on is then a lossy rendering
/// of the bytes the upstream would get.
fn normalize_path(req: &mut RequestHeader) -> std::result::Result<(), Ambiguous> {
    if !req.raw_path_is_utf8() {
        return Err(Ambiguous::BadEscape);
    }
    let normal = match path::normalize(req.uri.path())? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(p) => p,
    };
    let target = match req.uri.query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut parts = req.uri.clone().into_parts();
    parts.path_and_query = Some(target.parse().map_err(|_| Ambiguous::BadEscape)?);
    req.set_uri(http::Uri::from_parts(parts).map_err(|_| Ambiguous::BadEscape)?);
    Ok(())
}

/// The downstream peer's IP (none for Unix-socket clients).
/// Whether every line of a raw header ends with CR LF.
fn crlf_only(raw: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', raw).all(|i| i > 0 && raw[i - 1] == b'\r')
}

fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

fn routed(routed: &Option<Routed>) -> Result<&Routed> {
    match routed {
        Some(r) => Ok(r),
        None => Error::e_explain(ErrorType::InternalError, "no route chosen before upstream selection"),
    }
}

/// The peer for this attempt: the chosen side's pool, round robin, the next address on a retry.
pub fn peer(ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
    let r = routed(&ctx.routed)?;
    let pool = r.matched.pool(r.choice.side);
    let up = &mut ctx.upstream;
    if up.attempts == 0 {
        up.start = pool.start_index();
    }
    let addr = pool.addr(up.start, up.attempts);
    up.attempts += 1;
    up.addr = Some(addr);
    Ok(Box::new(pool.peer(addr)))
}

/// Count the failed connect and, while the pool has addresses not yet tried, retry on the next.
/// When new's pool is exhausted and the route fails over, retry on legacy.
pub fn on_connect_failure(ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
    let kind = Failure::of(e.etype());
    ctx.upstream.error = Some(kind);
    let Ok(r) = routed(&ctx.routed) else { return e };
    let side = r.choice.side;
    METRICS.upstream_errors.with_label_values(&[&r.matched.route.name, side.as_str(), kind.as_str()]).inc();
    if ctx.upstream.attempts < r.matched.pool(side).len() {
        e.set_retry(true);
    } else if can_fail_over(ctx) {
        fail_over(ctx);
        e.set_retry(true);
    }
    e
}

/// New may hand this request to legacy: the route fails over, new was chosen, and it has not
/// failed over already.
fn can_fail_over(ctx: &Ctx) -> bool {
    ctx.routed
        .as_ref()
        .is_some_and(|r| r.choice.side == Side::New && r.matched.route.failover && !ctx.upstream.failed_over)
}

/// Send the rest of this request to legacy. New's failed attempt counts against its error rate
/// (a failing new service still trips a rollout gate though users were saved). A shadow copy
/// taken for the new answer is void: it would compare legacy with itself.
fn fail_over(ctx: &mut Ctx) {
    if let Some(r) = ctx.routed.as_mut() {
        r.choice.side = Side::Legacy;
        r.matched.stats.live.record_failed_attempt(Side::New);
        METRICS.failovers.with_label_values(&[&r.matched.route.name]).inc();
    }
    ctx.upstream = UpstreamAttempt { failed_over: true, ..UpstreamAttempt::default() };
    if let Some(capture) = ctx.shadow.take() {
        capture.finish(true);
    }
}

/// A 502/503/504 from new, on a route that fails over, for an idempotent request whose body
/// Pingora can still replay (up to 64 KiB): abandon the answer and retry on legacy. Returns the
/// retryable error that makes Pingora do so.
pub fn upstream_response(session: &Session, resp: &ResponseHeader, ctx: &mut Ctx) -> Result<()> {
    ctx.upstream.first_byte = ctx.upstream.sent_at.map(|t| t.elapsed());
    let status = resp.status.as_u16();
    if !(502..=504).contains(&status) || !can_fail_over(ctx) {
        return Ok(());
    }
    if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
        return Ok(());
    }
    METRICS.upstream_errors.with_label_values(&[ctx.route_name(), Side::New.as_str(), Failure::Status.as_str()]).inc();
    fail_over(ctx);
    let mut e = Error::explain(ErrorType::HTTPStatus(status), format!("new answered {status}; retrying on legacy"));
    e.set_retry(true);
    Err(e)
}

/// Headers for the upstream: Host rewrite, `x-forwarded-*`, and the override header (which may
/// carry a token) removed.
pub fn upstream_request(session: &Session, req: &mut RequestHeader, ctx: &mut Ctx) -> Result<()> {
    if ctx.client_ip.is_none() {
        ctx.client_ip = peer_ip(session).and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok());
    }
    let r = routed(&ctx.routed)?;
    let route = &r.matched.route;
    if let Some(host) = &route.upstream(r.choice.side).host_header {
        req.insert_header(HOST, host.clone())?;
    }
    if let Some(ip) = &ctx.client_ip {
        // A trusted proxy's list is appended to; anyone else's is replaced: it is only a claim.
        let prev = if ctx.trusted_peer { req.headers.get(X_FORWARDED_FOR).map(|v| v.as_bytes()) } else { None };
        let xff = match prev {
            Some(prev) if !prev.is_empty() => {
                HeaderValue::from_bytes(&[prev, b", ", ip.as_bytes()].concat()).unwrap_or_else(|_| ip.clone())
            }
            _ => ip.clone(),
        };
        req.insert_header(X_FORWARDED_FOR, xff)?;
    }
    let tls = session.as_downstream().digest().is_some_and(|d| d.ssl_digest.is_some());
    let proto = if tls { HeaderValue::from_static("https") } else { HeaderValue::from_static("http") };
    req.insert_header(X_FORWARDED_PROTO, proto)?;
    for h in &route.strip_headers {
        req.remove_header(h);
    }
    // This hop's span is the upstream's parent (the client's `tracestate` goes on as it came).
    if let Some(hop) = &ctx.trace {
        req.insert_header(TRACEPARENT, hop.traceparent())?;
    }
    if let Some(capture) = ctx.shadow.as_mut() {
        capture.on_upstream_request(req);
    }
    ctx.upstream.sent_at = Some(std::time::Instant::now());
    Ok(())
}

pub fn downstream_response(resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
    let r = routed(&ctx.routed)?;
    if r.matched.route.expose_side {
        resp.insert_header(SIDE_HEADER, HeaderValue::from_static(r.choice.side.as_str()))?;
    }
    Ok(())
}

/// What a keep-alive connection carries to its next request: the formatted client IP.
pub fn persist(ctx: &Ctx) -> Option<Box<dyn std::any::Any + Send + Sync>> {
    ctx.client_ip.clone().map(|v| Box::new(v) as Box<dyn std::any::Any + Send + Sync>)
}

pub fn restore(ctx: &mut Ctx, prev: Box<dyn std::any::Any + Send + Sync>) {
    if let Ok(ip) = prev.downcast::<HeaderValue>() {
        ctx.client_ip = Some(*ip);
    }
}

/// Count a chunk of the request body against the route's cap; over it, the request ends with 413
/// (a chunked body declares no size up front, so this is where it is caught).
///
/// The body's end is when the upstream has the whole request: its time to answer counts from
/// there, so a client that uploads slowly does not make the upstream look slow.
pub fn request_body(ctx: &mut Ctx, chunk: Option<&Bytes>, end_of_stream: bool) -> Result<()> {
    let n = chunk.map_or(0, Bytes::len);
    ctx.body_seen |= n > 0;
    // A request without a body was whole when its header was sent (`upstream_request`).
    if end_of_stream && ctx.body_seen {
        ctx.upstream.sent_at = Some(std::time::Instant::now());
    }
    match ctx.body_left.checked_sub(n) {
        Some(left) => {
            ctx.body_left = left;
            Ok(())
        }
        None => {
            Limit::Body.count();
            Error::e_explain(ErrorType::HTTPStatus(413), "request body over the route's max_request_body")
        }
    }
}

/// Take the headers strangler sets out of the client's `Connection` nominations (on the request
/// as received, before Pingora derives the upstream request from it), so they reach the upstream
/// and the client cannot strip them; Pingora would otherwise refuse the request with 400. Called
/// only when [`crate::headers::may_nominate_protected`] found a value that could.
fn keep_forwarding_headers(req: &mut RequestHeader) {
    let is_protected = |t: &str| {
        let t = t.trim().trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
        PROTECTED.iter().any(|p| t.eq_ignore_ascii_case(p))
    };
    let Some(conn) = req.headers.get(http::header::CONNECTION).and_then(|v| v.to_str().ok()) else { return };
    if !conn.split(',').any(is_protected) {
        return;
    }
    let kept: Vec<&str> = conn.split(',').map(str::trim).filter(|t| !t.is_empty() && !is_protected(t)).collect();
    let value = kept.join(", ");
    if value.is_empty() {
        req.remove_header(&http::header::CONNECTION);
    } else if let Ok(v) = HeaderValue::from_str(&value) {
        let _ = req.insert_header(http::header::CONNECTION, v);
    }
}
