//! Shadowing: copy a request to the side that did not serve it, without the client ever waiting.
//!
//! On the request path only cheap, synchronous work happens: [`begin`] decides whether a request
//! is shadowed and takes a slot (or counts it dropped), [`Capture`] tees the request body and the
//! primary's answer into bounded buffers. When the request body is complete the shadow is sent
//! from a spawned task ([`task`]), which waits for the primary's answer over a channel, compares
//! the two off the request path and records the result.

pub mod client;
pub mod diffs_file;
pub mod kept;
pub mod replay;
pub mod shadower;
pub mod state;
pub mod task;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, UPGRADE};
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

pub use client::SHADOW_HEADER;
pub use shadower::{Primary, Shadower};
pub use state::{ShadowState, Verdict};

use crate::config::model::LogSettings;
use crate::config::Route;
use crate::core::{BySide, Side};
use crate::telemetry::ShadowTrace;
use crate::upstream::Pool;

/// Decide whether this request is shadowed. `None` for requests that are not eligible, sampled
/// out, too large (counted `skipped`) or over the route's in-flight limit (counted `dropped`).
/// `client` is who asked (the sticky key, else the address, see [`crate::route::split::client_key`]):
/// what noise observations are weighed by.
pub fn begin(
    route: &Arc<Route>,
    state: Option<&Arc<ShadowState>>,
    pools: &BySide<Arc<Pool>>,
    served: Side,
    req: &RequestHeader,
    log: &LogSettings,
    client: impl FnOnce() -> u64,
) -> Option<Box<Capture>> {
    let cfg = route.shadow.as_ref().filter(|s| s.enabled)?;
    let state = state?;
    let target = cfg.target.for_served(served)?;
    // The loop guard: a request that is itself a shadow is never shadowed again. Upgrades
    // (WebSocket) are connections, not requests: never copied.
    if !cfg.methods.contains(&req.method)
        || req.headers.contains_key(SHADOW_HEADER)
        || req.headers.contains_key(UPGRADE)
    {
        return None;
    }
    if !cfg.sample.draw() {
        return None;
    }
    let declared = req.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > cfg.max_body) {
        state.count(Verdict::Skipped);
        return None;
    }
    // As the client sent it (the forwarded header has lost `Transfer-Encoding`, hop-by-hop).
    let bodiless = declared.is_none_or(|n| n == 0) && !req.headers.contains_key(http::header::TRANSFER_ENCODING);
    let Some(permit) = state.try_slot() else {
        state.count(Verdict::Dropped);
        return None;
    };
    Some(Box::new(Capture {
        state: state.clone(),
        route: route.clone(),
        pools: pools.clone(),
        served,
        target,
        max_body: cfg.max_body,
        bodiless,
        permit: Some(permit),
        client: client(),
        client_host: req.headers.get(HOST).cloned(),
        diffs_file: log.diffs_file.clone().map(|f| (f, log.diffs_file_max)),
        forwarded: None,
        body: BytesMut::new(),
        over: false,
        primary: None,
        sent_at: None,
        response: None,
        response_body: BytesMut::new(),
        response_over: false,
        trace: None,
    }))
}

/// The per-request tee: a copy of the request as forwarded and of the primary's answer, each up
/// to `max_body`. Holds the route's in-flight slot until the shadow task is done.
pub struct Capture {
    state: Arc<ShadowState>,
    route: Arc<Route>,
    pools: BySide<Arc<Pool>>,
    served: Side,
    target: Side,
    max_body: usize,
    /// The request has no body: it is complete with its header.
    bodiless: bool,
    permit: Option<OwnedSemaphorePermit>,
    /// Who asked, hashed.
    client: u64,
    client_host: Option<HeaderValue>,
    /// `log.diffs_file` and its size cap.
    diffs_file: Option<(PathBuf, usize)>,
    forwarded: Option<RequestHeader>,
    body: BytesMut,
    /// The request body went over `max_body`.
    over: bool,
    /// Set once the shadow task runs: it waits on the other end.
    primary: Option<oneshot::Sender<Primary>>,
    sent_at: Option<Instant>,
    response: Option<(u16, http::HeaderMap)>,
    response_body: BytesMut,
    response_over: bool,
    /// The shadow's own trace, linked to the primary's span, when that is recorded.
    trace: Option<ShadowTrace>,
}

impl Capture {
    /// Trace the shadow (and its comparison) in a trace of its own, linked to the primary.
    pub fn trace(&mut self, trace: Option<ShadowTrace>) {
        self.trace = trace;
    }

    /// The request as sent to the primary (headers rewritten). Called again on a retry, whose
    /// body Pingora replays from the start.
    pub fn on_upstream_request(&mut self, req: &RequestHeader) {
        self.forwarded = Some(req.clone());
        self.sent_at = Some(Instant::now());
        self.body.clear();
    }

    /// The request as forwarded is known: one without a body is complete, and the shadow is
    /// sent at once.
    pub fn on_header_complete(&mut self, shadower: &Arc<Shadower>) {
        if self.bodiless && self.primary.is_none() && !self.over {
            self.dispatch(shadower);
        }
    }

    /// Tee a chunk of the request body; at its end, send the shadow.
    pub fn on_request_body(&mut self, shadower: &Arc<Shadower>, chunk: Option<&Bytes>, end: bool) {
        if self.primary.is_some() || self.over {
            return;
        }
        if let Some(c) = chunk {
            if self.body.len() + c.len() > self.max_body {
                self.over = true;
                self.body = BytesMut::new();
                self.permit = None;
                return;
            }
            self.body.extend_from_slice(c);
        }
        if end {
            self.dispatch(shadower);
        }
    }

    fn dispatch(&mut self, shadower: &Arc<Shadower>) {
        // Taken, not copied: once the shadow is sent, a retry of the primary does not send it
        // again.
        let Some(forwarded) = self.forwarded.take() else { return };
        let (tx, rx) = oneshot::channel();
        self.primary = Some(tx);
        let job = task::Job {
            shadower: shadower.clone(),
            state: self.state.clone(),
            route: self.route.clone(),
            pools: self.pools.clone(),
            served: self.served,
            target: self.target,
            permit: self.permit.take(),
            client: self.client,
            request: forwarded,
            client_host: self.client_host.clone(),
            body: std::mem::take(&mut self.body).freeze(),
            diffs_file: self.diffs_file.take(),
            trace: self.trace.take(),
        };
        shadower.spawn(|| task::run(job, rx));
    }

    /// The primary's response header, as the upstream sent it.
    pub fn on_response(&mut self, resp: &ResponseHeader) {
        self.response = Some((resp.status.as_u16(), resp.headers.clone()));
    }

    /// Tee a chunk of the primary's response body.
    pub fn on_response_body(&mut self, chunk: Option<&Bytes>) {
        let Some(c) = chunk else { return };
        if self.response_over || self.primary.is_none() {
            return;
        }
        if self.response_body.len() + c.len() > self.max_body {
            self.response_over = true;
            self.response_body = BytesMut::new();
        } else {
            self.response_body.extend_from_slice(c);
        }
    }

    /// The request is over: hand the primary's answer to the shadow task, or count why there is
    /// no shadow to compare.
    pub fn finish(self: Box<Self>, failed: bool) {
        let Capture { primary, response, response_body, response_over, sent_at, state, .. } = *self;
        match primary {
            Some(tx) => {
                let failed = failed || response.is_none();
                let (status, headers) = response.unwrap_or_default();
                let _ = tx.send(Primary {
                    status,
                    headers,
                    body: response_body.freeze(),
                    over: response_over,
                    failed,
                    took: sent_at.map(|t| t.elapsed()).unwrap_or_default(),
                    delivered: Instant::now(),
                });
            }
            // Body over the cap, or the request ended before its body did: nothing was sent.
            None => state.count(Verdict::Skipped),
        }
    }
}
