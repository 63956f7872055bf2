//! The decision about a request, made synchronously on one snapshot: refuse it, answer that no
//! route matches, or route it to a side. Nothing here awaits or answers the client; the proxy's
//! `request_filter` matches on the [`Admission`] and does that.

use std::net::IpAddr;
use std::sync::Arc;

use pingora::http::RequestHeader;

use crate::config::Side;
use crate::limits::{Inspected, Limit};
use crate::route::{choose_side, Choice, Decision, Matched};
use crate::snapshot::Snapshot;

/// What becomes of a request.
pub enum Admission {
    /// Answered at once, before any upstream is contacted.
    Refuse(Limit),
    /// No route matches: 404.
    NoRoute,
    Routed(Routed),
}

/// A routed request: its route, pinned for the whole request (its pools come with it, so a
/// reload in flight never changes where it goes), and the side chosen for it.
pub struct Routed {
    pub matched: Arc<Matched>,
    /// Chosen once: a retry in `upstream_peer` never re-rolls it; failover moves it to legacy.
    pub choice: Choice,
}

/// Framing and header limits (`inspected`: [`crate::limits::inspect`] of `req`), the route, a
/// declared body against the route's cap, then the side.
pub fn admit(
    snap: &Snapshot,
    req: &RequestHeader,
    inspected: Result<Inspected<'_>, Limit>,
    client_ip: Option<IpAddr>,
) -> Admission {
    let seen = match inspected {
        Ok(seen) => seen,
        Err(limit) => return Admission::Refuse(limit),
    };
    let Some(matched) = snap.table.find(seen.host, req.uri.path()) else { return Admission::NoRoute };
    if seen.content_length.is_some_and(|n| n > matched.route.max_request_body as u64) {
        return Admission::Refuse(Limit::Body);
    }
    let mut choice = choose_side(&matched.route, &req.headers, client_ip);
    // A new pool that health checks found entirely down takes nothing but forced (override)
    // requests: the rest go to legacy.
    if choice.side == Side::New && choice.decision != Decision::Override && matched.pool(Side::New).all_down() {
        choice.side = Side::Legacy;
    }
    Admission::Routed(Routed { matched: Arc::clone(matched), choice })
}

/// The status and body of a refusal.
pub fn refusal(limit: Limit) -> (u16, &'static [u8]) {
    match limit {
        Limit::Body => (413, b"request body too large\n"),
        Limit::HeaderBytes | Limit::HeaderCount => (431, b"request header too large\n"),
        Limit::Path => (
            400,
            b"ambiguous path: an encoded slash or backslash, a backslash, an encoded NUL, a malformed escape, a dot segment with parameters (..;) or bytes that are not UTF-8\n",
        ),
        Limit::Host => (400, b"an HTTP/1.1 request needs exactly one Host header\n"),
        _ => (400, b"bad request framing: an unsupported Transfer-Encoding or conflicting Content-Length\n"),
    }
}
