//! Forwarding: match the route, choose the side, build the upstream peer and request headers.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::{Ctx, UpstreamAttempt};
use super::record;
use crate::config::{Side, Upstream};
use crate::limits;
use crate::metrics::METRICS;
use crate::route::{choose_side, Decision};
use crate::shadow;
use crate::snapshot::Shared;

pub const SIDE_HEADER: HeaderName = HeaderName::from_static("x-strangler-side");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Check the request's framing and header limits, match a route, hold a declared body to the
/// route's cap, and choose a side. Answers itself (returning `Ok(true)`) with 400, 431 or 413 for a
/// refused request and 404 when no route matches, before any upstream is contacted.
pub async fn route_request(shared: &Shared, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    keep_forwarding_headers(session.req_header_mut());
    let req = session.req_header();
    let host = req.uri.host().or_else(|| req.headers.get(HOST).and_then(|v| v.to_str().ok()));
    // Everything that reads the snapshot happens here, before any await.
    let mut refused = None;
    let idle;
    let declared = req.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let found = {
        let snap = shared.load();
        ctx.access_log = snap.config.log.access_log;
        let limits = &snap.config.limits;
        idle = (limits.idle_timeout, limits.body_timeout);
        if limits::check_framing(req).is_err() {
            refused = Some(400);
        } else if limits::check_header(req, limits).is_err() {
            refused = Some(431);
        }
        let found = snap.table.find(host, req.uri.path()).filter(|_| refused.is_none());
        if found.is_some_and(|m| declared.is_some_and(|n| n > m.route.max_request_body as u64)) {
            limits::count("body");
            refused = Some(413);
        }
        found.filter(|_| refused.is_none()).cloned().map(|matched| {
            let mut choice = choose_side(&matched.route, &req.headers, peer_ip(session));
            // A new pool that health checks found entirely down takes nothing but forced
            // (override) requests: the rest go to legacy.
            if choice.side == Side::New && choice.decision != Decision::Override && matched.route.new.all_down() {
                choice.side = Side::Legacy;
            }
            let capture = shadow::begin(&matched, choice.side, req, snap.config.log.diffs_file.as_ref());
            (matched, choice, capture)
        })
    };
    let (idle, body_timeout) = idle;
    // Only a connection Pingora keeps alive gets our idle timeout: it turns keep-alive off where
    // reuse would be unsafe (Content-Length with Transfer-Encoding), and that must stay off.
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(idle.as_secs().max(1)));
    }
    session.set_read_timeout(Some(body_timeout));
    if let Some(code) = refused {
        // Answered before any upstream is contacted; the unread body makes the connection unusable.
        session.set_keepalive(None);
        let body: &'static [u8] = match code {
            413 => b"request body too large\n",
            431 => b"request header too large\n",
            _ => b"bad request framing: an unsupported Transfer-Encoding or conflicting Content-Length\n",
        };
        Box::pin(session.respond_error_with_body(code, Bytes::from_static(body))).await?;
        return Ok(true);
    }
    let Some((matched, choice, capture)) = found else {
        // Boxed: the rare 404 path must not grow every request's future.
        Box::pin(session.respond_error_with_body(404, Bytes::from_static(b"no route matches this request\n"))).await?;
        return Ok(true);
    };
    if choice.override_rejected {
        METRICS.override_rejected.with_label_values(&[&matched.route.name]).inc();
    }
    ctx.shadow = capture;
    ctx.body_left = matched.route.max_request_body;
    ctx.route = Some(matched);
    ctx.choice = Some(choice);
    Ok(false)
}

/// The downstream peer's IP (none for Unix-socket clients).
fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

fn chosen(ctx: &Ctx) -> Result<(&crate::config::Route, Side)> {
    match (&ctx.route, ctx.choice) {
        (Some(m), Some(c)) => Ok((&m.route, c.side)),
        _ => Error::e_explain(ErrorType::InternalError, "no route chosen before upstream selection"),
    }
}

/// The peer for this attempt: the chosen side's pool, round robin, the next address on a retry.
pub fn peer(ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
    let (route, side) = chosen(ctx)?;
    let up = route.upstream(side).clone();
    if ctx.upstream.attempts == 0 {
        ctx.upstream.start = up.start_index();
    }
    let addr = up.addr(ctx.upstream.start, ctx.upstream.attempts);
    ctx.upstream.attempts += 1;
    ctx.upstream.addr = Some(addr);
    Ok(Box::new(http_peer(&up, addr)))
}

/// The peer for one address of a pool, with the pool's TLS and timeouts.
pub fn http_peer(up: &Upstream, addr: std::net::SocketAddr) -> HttpPeer {
    let sni = if up.tls { up.sni.clone() } else { String::new() };
    let mut peer = HttpPeer::new(addr, up.tls, sni);
    peer.options.connection_timeout = Some(up.connect_timeout);
    // Connect and read timeouts only: a write timeout would register a timer on every write of
    // every request, and an upstream that stops reading also stops answering, which the read
    // timeout already catches.
    peer.options.read_timeout = Some(up.read_timeout);
    if up.http2 {
        // TLS: offer h2 (and h1) by ALPN; plain text: h2c by prior knowledge, as gRPC servers take.
        let min = if up.tls { 1 } else { 2 };
        peer.options.set_http_version(2, min);
    }
    peer
}

/// Count the failed connect and, while the pool has addresses not yet tried, retry on the next.
/// When new's pool is exhausted and the route fails over, retry on legacy.
pub fn on_connect_failure(ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
    let kind = record::error_kind(e.etype());
    ctx.upstream.error = Some(kind);
    let Ok((route, side)) = chosen(ctx) else { return e };
    METRICS.upstream_errors.with_label_values(&[&route.name, side.as_str(), kind]).inc();
    if ctx.upstream.attempts < route.upstream(side).addrs.len() {
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
    matches!(chosen(ctx), Ok((route, Side::New)) if route.failover && !ctx.upstream.failed_over)
}

/// Send the rest of this request to legacy. New's failed attempt counts against its error rate
/// (a failing new service still trips a rollout gate though users were saved). A shadow copy
/// taken for the new answer is void: it would compare legacy with itself.
fn fail_over(ctx: &mut Ctx) {
    if let (Some(m), Some(choice)) = (&ctx.route, ctx.choice.as_mut()) {
        choice.side = Side::Legacy;
        m.stats.live.record_failed_attempt(Side::New);
        METRICS.failovers.with_label_values(&[&m.route.name]).inc();
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
    let status = resp.status.as_u16();
    if !(502..=504).contains(&status) || !can_fail_over(ctx) {
        return Ok(());
    }
    if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
        return Ok(());
    }
    METRICS.upstream_errors.with_label_values(&[ctx.route_name(), Side::New.as_str(), "status"]).inc();
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
    let (route, side) = chosen(ctx)?;
    if let Some(host) = &route.upstream(side).host_header {
        req.insert_header(HOST, host.clone())?;
    }
    if let Some(ip) = &ctx.client_ip {
        let xff = match req.headers.get(X_FORWARDED_FOR).map(|v| v.as_bytes()) {
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
    if let Some(ov) = &route.override_ {
        req.remove_header(&ov.header);
    }
    if let Some(capture) = ctx.shadow.as_mut() {
        capture.on_upstream_request(req);
    }
    Ok(())
}

pub fn downstream_response(resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
    let (route, side) = chosen(ctx)?;
    if route.expose_side {
        resp.insert_header(SIDE_HEADER, HeaderValue::from_static(side.as_str()))?;
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
pub fn request_body(ctx: &mut Ctx, chunk: Option<&Bytes>) -> Result<()> {
    let n = chunk.map_or(0, Bytes::len);
    match ctx.body_left.checked_sub(n) {
        Some(left) => {
            ctx.body_left = left;
            Ok(())
        }
        None => {
            limits::count("body");
            Error::e_explain(ErrorType::HTTPStatus(413), "request body over the route's max_request_body")
        }
    }
}

/// Headers strangler sets for the upstream, which a client must not be able to drop by naming
/// them in `Connection` (nominated headers are hop-by-hop and stripped).
const PROTECTED: [&str; 4] = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// Take the headers strangler sets out of the client's `Connection` nominations (on the request
/// as received, before Pingora derives the upstream request from it), so they reach the upstream
/// and the client cannot strip them; Pingora would otherwise refuse the request with 400.
fn keep_forwarding_headers(req: &mut RequestHeader) {
    let is_protected = |t: &str| {
        let t = t.trim().trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
        PROTECTED.iter().any(|p| t.eq_ignore_ascii_case(p))
    };
    let Some(conn) = req.headers.get(http::header::CONNECTION).and_then(|v| v.to_str().ok()) else { return };
    // The common case (`keep-alive`, `close`) names none of them: a byte scan, nothing allocated.
    let mentions = |needle: &[u8]| conn.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    if !(mentions(b"host") || mentions(b"forwarded")) || !conn.split(',').any(is_protected) {
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
