//! Per-request state, in small parts that each phase fills in turn.

use std::net::SocketAddr;
use std::time::Instant;

use crate::route::{Choice, Matched};
use crate::shadow::Capture;

/// Everything strangler knows about one request.
pub struct Ctx {
    pub started: Instant,
    /// The matched route, pinned for the whole request (its upstreams come with it), so a reload
    /// in flight never changes where this request goes.
    pub route: Option<Matched>,
    /// The side, chosen once in `request_filter`: a retry in `upstream_peer` never re-rolls it.
    pub choice: Option<Choice>,
    pub upstream: UpstreamAttempt,
    /// `log.access_log` of the snapshot the request was routed on.
    pub access_log: bool,
    /// The client's IP as a header value, formatted once per downstream connection and carried
    /// over keep-alive requests.
    pub client_ip: Option<http::HeaderValue>,
    /// The tee of a shadowed request; `None` for the rest.
    pub shadow: Option<Box<Capture>>,
    /// Request body bytes still allowed by the route's `max_request_body`.
    pub body_left: usize,
}

/// Where the request was forwarded, and how many times `upstream_peer` was asked.
#[derive(Default)]
pub struct UpstreamAttempt {
    pub addr: Option<SocketAddr>,
    /// Index in the pool of the first attempt; retries walk on from it.
    pub start: usize,
    pub attempts: usize,
    /// Kind of the last upstream failure, for metrics and the access log.
    pub error: Option<&'static str>,
    /// New could not take the request and it was retried on legacy.
    pub failed_over: bool,
}

impl Ctx {
    pub fn new() -> Self {
        Ctx {
            started: Instant::now(),
            route: None,
            choice: None,
            upstream: UpstreamAttempt::default(),
            access_log: false,
            client_ip: None,
            shadow: None,
            body_left: usize::MAX,
        }
    }

    pub fn route_name(&self) -> &str {
        self.route.as_ref().map_or(crate::metrics::NO_ROUTE, |m| m.route.name.as_str())
    }

    pub fn side_name(&self) -> &'static str {
        self.choice.map_or("-", |c| c.side.as_str())
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}
