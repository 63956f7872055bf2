//! OpenTelemetry traces (`[telemetry]`): W3C trace context taken from clients and passed to
//! upstreams, a span per proxied request, and for a shadowed request a span for the shadow and
//! one for its comparison, in a trace of their own linked to the primary's span (a link, so
//! shadowing never lengthens the client's trace).
//!
//! The request path only decides and remembers ([`Hop`]): ids are drawn when the request is
//! routed, the `traceparent` for the upstream is written from them, and the span is built once,
//! when the request ends. Spans are exported over OTLP/HTTP protobuf in batches from a thread of
//! their own ([`export`]); a full queue drops spans and counts them.

pub mod export;
mod span;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};
use opentelemetry::KeyValue;
use span::Finished;

pub use export::Tracing;

/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// A client's `traceparent`, parsed: its trace, the span that called us, and whether it is
/// sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace: TraceId,
    pub span: SpanId,
    pub sampled: bool,
}

fn hex_u128(s: &str) -> Option<u128> {
    (s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
}

fn hex_u64(s: &str) -> Option<u64> {
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// Parse a `traceparent` value (W3C Trace Context, level 2): `00-<trace>-<span>-<flags>`, lower
/// case hex, neither id all zeros. A later version is read by its first four fields, as the
/// specification asks; anything else is no parent (the request starts a trace of its own).
pub fn parse_traceparent(value: &[u8]) -> Option<Parent> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let mut parts = value.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version = u8::from_str_radix(version, 16).ok().filter(|_| version.len() == 2)?;
    if version == 0xff || (version == 0 && parts.next().is_some()) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok().filter(|_| flags.len() == 2)?;
    let (trace, span) = (hex_u128(trace).filter(|t| *t != 0)?, hex_u64(span).filter(|s| *s != 0)?);
    Some(Parent { trace: TraceId::from(trace), span: SpanId::from(span), sampled: flags & 1 == 1 })
}

fn traceparent(trace: TraceId, span: SpanId, sampled: bool) -> HeaderValue {
    let text = format!("00-{trace}-{span}-{}", if sampled { "01" } else { "00" });
    // Hex digits and dashes only.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn new_trace_id() -> TraceId {
    TraceId::from(rand::random::<u128>().max(1))
}

fn new_span_id() -> SpanId {
    SpanId::from(rand::random::<u64>().max(1))
}

/// One request's place in a trace: the span strangler's hop is, under the client's parent.
pub struct Hop {
    pub trace: TraceId,
    pub span: SpanId,
    /// The client's span, when it sent a `traceparent`.
    pub parent: Option<SpanId>,
    /// Recorded and exported; the rest only carry the context on.
    pub sampled: bool,
    pub start: SystemTime,
    /// Where the span goes, when sampled.
    sink: Option<Arc<Tracing>>,
}

/// The trace context of a routed request, or `None`: telemetry is off, or the request is not
/// sampled and has no context to carry on. Parent-based: a sampled parent is always followed,
/// an unsampled one never; without one, `tracing.sample` percent of requests start a trace.
/// Boxed: the request's state is moved with every future Pingora builds around it, and a
/// request without a trace should pay for one pointer, not for the whole context.
pub fn begin(tracing: Option<&Arc<Tracing>>, headers: &HeaderMap) -> Option<Box<Hop>> {
    let tracing = tracing?;
    let parent = headers.get(TRACEPARENT).and_then(|v| parse_traceparent(v.as_bytes()));
    let sampled = match parent {
        Some(p) => p.sampled,
        None => tracing.draw(),
    };
    if parent.is_none() && !sampled {
        return None;
    }
    Some(Box::new(Hop {
        trace: parent.map_or_else(new_trace_id, |p| p.trace),
        span: new_span_id(),
        parent: parent.map(|p| p.span),
        sampled,
        start: SystemTime::now(),
        sink: sampled.then(|| tracing.clone()),
    }))
}

impl Hop {
    /// The `traceparent` the upstream gets: this hop's span as its parent.
    pub fn traceparent(&self) -> HeaderValue {
        traceparent(self.trace, self.span, self.sampled)
    }

    fn context(&self) -> SpanContext {
        SpanContext::new(self.trace, self.span, TraceFlags::SAMPLED, false, TraceState::NONE)
    }

    /// The shadow's trace, linked to this hop, when this hop is recorded.
    pub fn shadow(&self) -> Option<ShadowTrace> {
        let sink = self.sink.clone()?;
        Some(ShadowTrace {
            sink,
            primary: self.context(),
            trace: new_trace_id(),
            span: new_span_id(),
            start: SystemTime::now(),
        })
    }

    /// The request is over: its span, exported when sampled.
    pub fn end(self, name: Cow<'static, str>, attributes: Vec<KeyValue>, error: bool) {
        let Some(sink) = &self.sink else { return };
        let span = Finished {
            trace: self.trace,
            span: self.span,
            parent: self.parent.map(|p| (p, true)),
            kind: SpanKind::Server,
            name,
            start: self.start,
            link: None,
            error,
        };
        sink.record(span, attributes);
    }
}

/// A shadowed request's trace: a root of its own, linked to the primary's span.
pub struct ShadowTrace {
    sink: Arc<Tracing>,
    primary: SpanContext,
    trace: TraceId,
    span: SpanId,
    start: SystemTime,
}

impl ShadowTrace {
    /// The `traceparent` the shadow request (and the noise repeat) carries: the shadow's span,
    /// never the client's trace.
    pub fn traceparent(&self) -> HeaderValue {
        traceparent(self.trace, self.span, true)
    }

    /// The comparison: a child of the shadow's span, linked to the primary's, from `start` to
    /// now.
    pub fn compared(&self, start: SystemTime, attributes: Vec<KeyValue>) {
        let span = Finished {
            trace: self.trace,
            span: new_span_id(),
            parent: Some((self.span, false)),
            kind: SpanKind::Internal,
            name: Cow::Borrowed("compare"),
            start,
            link: Some(self.primary.clone()),
            error: false,
        };
        self.sink.record(span, attributes);
    }

    /// The shadow is over (sent, answered, compared or not).
    pub fn end(self, attributes: Vec<KeyValue>, error: bool) {
        let span = Finished {
            trace: self.trace,
            span: self.span,
            parent: None,
            kind: SpanKind::Client,
            name: Cow::Borrowed("shadow"),
            start: self.start,
            link: Some(self.primary),
            error,
        };
        self.sink.record(span, attributes);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_as_the_w3c_specification_says() {
        let ok = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(ok.trace, TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736_u128));
        assert_eq!(ok.span, SpanId::from(0x00f067aa0ba902b7_u64));
        assert!(ok.sampled);
        let unsampled = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").expect("valid");
        assert!(!unsampled.sampled);
        // A later version: its first four fields, whatever follows.
        assert!(parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever").is_some());
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_upstream_gets_this_hops_span_as_its_parent() {
        let v = traceparent(TraceId::from(0xabc_u128), SpanId::from(0x12_u64), true);
        assert_eq!(v.to_str().expect("ASCII"), "00-00000000000000000000000000000abc-0000000000000012-01");
        let back = parse_traceparent(v.as_bytes()).expect("round trip");
        assert_eq!((back.trace, back.span, back.sampled), (TraceId::from(0xabc_u128), SpanId::from(0x12_u64), true));
    }
}
