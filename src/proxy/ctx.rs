//! Per-request state, in small parts that each phase fills in turn.

use std::net::SocketAddr;
use std::time::Instant;

pub use super::admit::Routed;
use crate::config::Side;
use crate::shadow::Capture;
use crate::telemetry::Hop;
use crate::upstream::Failure;

/// Everything strangler knows about one request.
pub struct Ctx {
    pub started: Instant,
    /// The route and side, set once the request is admitted; `None` for a refused or unmatched
    /// request, which never reaches an upstream.
    pub routed: Option<Routed>,
    pub upstream: UpstreamAttempt,
    /// `log.access_log` of the snapshot the request was routed on.
    pub access_log: bool,
    /// The client's IP as a header value, formatted once per downstream connection and carried
    /// over keep-alive requests.
    pub client_ip: Option<http::HeaderValue>,
    /// The peer is in `server.trusted_proxies`: its forwarding headers are believed.
    pub trusted_peer: bool,
    /// The tee of a shadowed request; `None` for the rest.
    pub shadow: Option<Box<Capture>>,
    /// Request body bytes still allowed by the route's `max_request_body`.
    pub body_left: usize,
    /// Some of the request body has been read.
    pub body_seen: bool,
    /// The request's place in a trace, with `[telemetry]`; `None` when it has none.
    pub trace: Option<Box<Hop>>,
}

/// Where the request was forwarded, and how many times `upstream_peer` was asked.
#[derive(Default)]
pub struct UpstreamAttempt {
    pub addr: Option<SocketAddr>,
    /// Index in the pool of the first attempt; retries walk on from it.
    pub start: usize,
    pub attempts: usize,
    /// The last upstream failure, for metrics and the access log.
    pub error: Option<Failure>,
    /// New could not take the request and it was retried on legacy.
    pub failed_over: bool,
    /// When the upstream had the whole request: its body's end, or its header for a retry.
    pub sent_at: Option<Instant>,
    /// How long the upstream took to start answering: the latency the live figures and the
    /// rollout's latency gate use, so a client that uploads or reads slowly cannot move it.
    pub first_byte: Option<std::time::Duration>,
}

impl Ctx {
    pub fn new() -> Self {
        Ctx {
            started: Instant::now(),
            routed: None,
            upstream: UpstreamAttempt::default(),
            access_log: false,
            client_ip: None,
            trusted_peer: false,
            shadow: None,
            body_left: usize::MAX,
            body_seen: false,
            trace: None,
        }
    }

    pub fn route_name(&self) -> &str {
        self.routed.as_ref().map_or(crate::metrics::NO_ROUTE, |r| r.matched.route.name.as_str())
    }

    pub fn side(&self) -> Option<Side> {
        self.routed.as_ref().map(|r| r.choice.side)
    }

    pub fn side_name(&self) -> &'static str {
        self.side().map_or("-", Side::as_str)
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}
