//! The end of a request: error responses, metrics and the access log.

use std::time::Instant;

use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, Session};

use super::ctx::Ctx;
use opentelemetry::KeyValue;

use crate::metrics::METRICS;
use crate::route::Decision;
use crate::telemetry::Hop;
use crate::upstream::Failure;

/// Answer the client when proxying failed: 504 for an upstream that was too slow (Pingora would
/// say 502), 502 for one that could not be reached or broke the protocol.
pub async fn fail_to_proxy(session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
    let upstream = *e.esource() == ErrorSource::Upstream;
    let code = match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout if upstream => 504,
        _ if upstream => 502,
        ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
            if *e.esource() == ErrorSource::Downstream =>
        {
            0 // the client is gone
        }
        ErrorType::ReadTimedout if *e.esource() == ErrorSource::Downstream => {
            crate::limits::Limit::BodyTimeout.count();
            408 // a request body that stopped coming (slow POST)
        }
        _ if *e.esource() == ErrorSource::Downstream => 400,
        _ => 500,
    };
    if upstream {
        let kind = Failure::of(e.etype());
        // Connect failures were counted per attempt in `fail_to_connect`.
        if !kind.is_connect() {
            METRICS.upstream_errors.with_label_values(&[ctx.route_name(), ctx.side_name(), kind.as_str()]).inc();
        }
        ctx.upstream.error = Some(kind);
        // One line an operator can read at 3 am, in place of Pingora's (dropped in `logging`):
        // which route and side, which address, and the cause at the bottom of the chain.
        let address = ctx.upstream.addr.map_or_else(|| "-".to_string(), |a| a.to_string());
        tracing::warn!(
            target: "strangler::upstream",
            route = ctx.route_name(),
            side = ctx.side_name(),
            upstream = %address,
            failure = kind.as_str(),
            "route {}: {} upstream {address} failed ({}): {}; answered {code}",
            ctx.route_name(),
            ctx.side_name(),
            kind.as_str(),
            cause(e),
        );
    }
    if code > 0 {
        let body: &'static [u8] = match code {
            502 => b"bad gateway: the upstream could not be reached\n",
            504 => b"gateway timeout: the upstream did not answer in time\n",
            408 => b"request timeout: the request body stopped coming\n",
            _ => b"",
        };
        if let Err(err) = session.respond_error_with_body(code, Bytes::from_static(body)).await {
            tracing::debug!("could not send the error response: {err}");
        }
    }
    FailToProxy { error_code: code, can_reuse_downstream: false }
}

/// The bottom of an error's chain in words ("Connection refused (os error 111)"), without the
/// contexts above it: they may carry a whole peer's debug dump.
fn cause(e: &Error) -> String {
    let root = e.root_cause();
    match root.downcast_ref::<Error>() {
        // A Pingora error at the bottom: its kind, not its context.
        Some(inner) => inner.etype().as_str().to_string(),
        None => root.to_string(),
    }
}

/// Count the request and write its access log line.
/// `now`: when the request ended.
pub fn request_done(session: &Session, e: Option<&Error>, ctx: &mut Ctx, now: Instant) {
    if let Some(hop) = ctx.trace.take() {
        end_span(*hop, session, ctx, session.response_written().map(|r| r.status.as_u16()), e.is_some());
    }
    let status = session.response_written().map(|r| r.status);
    let code = status.as_ref().map_or("0", |s| s.as_str());
    let (route, side) = (ctx.route_name(), ctx.side_name());
    let elapsed = now.saturating_duration_since(ctx.started);
    match &ctx.routed {
        Some(r) => {
            let split = r.choice.decision != Decision::Override;
            r.matched.stats.record(r.choice.side, status, elapsed, split.then_some(ctx.upstream.first_byte))
        }
        None => {
            METRICS.requests.with_label_values(&[route, side, code]).inc();
            METRICS.request_duration.with_label_values(&[route, side]).observe(elapsed.as_secs_f64());
        }
    }

    if ctx.access_log {
        let req = session.req_header();
        let upstream = ctx.upstream.addr.map(|a| a.to_string());
        tracing::info!(
            target: "strangler::access",
            route,
            side,
            method = req.method.as_str(),
            path = req.uri.path(),
            status = code,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            upstream = upstream.as_deref().unwrap_or("-"),
            error = ctx.upstream.error.map(Failure::as_str).or(e.map(|_| "proxy")).unwrap_or("-"),
        );
    }
}

/// The request's span: what was asked, where it went, how it was answered.
fn end_span(hop: Hop, session: &Session, ctx: &Ctx, status: Option<u16>, failed: bool) {
    if !hop.sampled {
        return;
    }
    let req = session.req_header();
    let mut attributes = vec![
        KeyValue::new("http.request.method", req.method.as_str().to_string()),
        KeyValue::new("url.path", req.uri.path().to_string()),
        KeyValue::new("strangler.route", ctx.route_name().to_string()),
        KeyValue::new("strangler.side", ctx.side_name()),
    ];
    if let Some(r) = &ctx.routed {
        attributes.push(KeyValue::new("strangler.weight", r.matched.route.weight_percent()));
        attributes.push(KeyValue::new("strangler.override", r.choice.decision == Decision::Override));
    }
    if let Some(code) = status {
        attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
    }
    if let Some(addr) = ctx.upstream.addr {
        attributes.push(KeyValue::new("server.address", addr.ip().to_string()));
        attributes.push(KeyValue::new("server.port", i64::from(addr.port())));
    }
    if ctx.upstream.failed_over {
        attributes.push(KeyValue::new("strangler.failed_over", true));
    }
    if let Some(kind) = ctx.upstream.error {
        attributes.push(KeyValue::new("error.type", kind.as_str()));
    }
    let name = format!("{} {}", req.method.as_str(), ctx.route_name());
    hop.end(name.into(), attributes, failed || status.is_some_and(|c| c >= 500))
}
