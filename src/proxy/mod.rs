//! The Pingora `ProxyHttp` implementation. It is a table of contents: each phase hands off to one
//! function in [`forward`] or [`record`], in the order a request lives through them.

pub mod admit;
pub mod ctx;
pub mod forward;
pub mod record;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

pub use ctx::Ctx;

use crate::shadow::Shadower;
use crate::snapshot::Shared;

/// The proxy: routes, splits and forwards each request using the current snapshot.
pub struct Strangler {
    shared: Arc<Shared>,
    shadower: Arc<Shadower>,
}

impl Strangler {
    pub fn new(shared: Arc<Shared>, shadower: Arc<Shadower>) -> Self {
        Strangler { shared, shadower }
    }
}

#[async_trait]
impl ProxyHttp for Strangler {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    /// The header is complete: the connection's header deadline no longer applies. Header
    /// limits (431), the route's body cap on a declared length (413), then match a route and
    /// choose a side; answer 404 here when no route matches.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        forward::route_request(&self.shared, session, ctx).await
    }

    /// Pick an address of the chosen side's pool (round robin; the next one on a retry).
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        forward::peer(ctx)
    }

    /// Retry a refused connection on another address of the same pool; then, on a route that
    /// fails over, on legacy.
    fn fail_to_connect(&self, _session: &mut Session, _peer: &HttpPeer, ctx: &mut Ctx, e: Box<Error>) -> Box<Error> {
        forward::on_connect_failure(ctx, e)
    }

    /// Host rewrite, forwarding headers, and the override header removed.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        forward::upstream_request(session, req, ctx)?;
        // A shadowed request without a body is complete now: its shadow (and noise repeat)
        // leaves beside it, not after it.
        if let Some(capture) = ctx.shadow.as_mut() {
            capture.on_header_complete(&self.shadower);
        }
        Ok(())
    }

    /// Hold the body to the route's cap; tee the body of a shadowed request and send the shadow
    /// once the body is complete.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        forward::request_body(ctx, body.as_ref(), end_of_stream)?;
        if let Some(capture) = ctx.shadow.as_mut() {
            capture.on_request_body(&self.shadower, body.as_ref(), end_of_stream);
        }
        Ok(())
    }

    /// Fail a 5xx from new over to legacy when the route allows it; keep the primary's answer of
    /// a shadowed request for the comparison.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        forward::upstream_response(session, resp, ctx)?;
        if let Some(capture) = ctx.shadow.as_mut() {
            capture.on_response(resp);
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if let Some(capture) = ctx.shadow.as_mut() {
            capture.on_response_body(body.as_ref());
        }
        Ok(None)
    }

    /// `x-strangler-side` when the route exposes it.
    async fn response_filter(&self, _session: &mut Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        forward::downstream_response(resp, ctx)
    }

    /// Error responses: 502 when the upstream cannot be reached, 504 when it is too slow.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        record::fail_to_proxy(session, e, ctx).await
    }

    /// Keep the formatted client IP for the connection's next request.
    fn persist_connection_context(&self, _session: &Session, ctx: &Ctx) -> Option<Box<dyn Any + Send + Sync>> {
        forward::persist(ctx)
    }

    fn on_connection_reuse(&self, _session: &mut Session, ctx: &mut Ctx, prev: Box<dyn Any + Send + Sync>) {
        forward::restore(ctx, prev)
    }

    /// Metrics and the access log line.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if let Some(capture) = ctx.shadow.take() {
            capture.finish(e.is_some());
        }
        // One clock reading for the request's figures and its connection's next header deadline.
        let now = std::time::Instant::now();
        record::request_done(session, e, ctx, now);
        crate::limits::request_done(session.as_downstream().stream(), now);
    }
}
