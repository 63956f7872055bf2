//! A span as it ends: what the request path knows of it, made into the exporter's span when it
//! is exported.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// A span as it ends, before it is `Tracing::record`ed: its ids, its parent (and whether that
/// is another process's), what kind it is, and the span it links to.
pub(crate) struct Finished {
    pub trace: TraceId,
    pub span: SpanId,
    pub parent: Option<(SpanId, bool)>,
    pub kind: SpanKind,
    pub name: Cow<'static, str>,
    pub start: SystemTime,
    pub link: Option<SpanContext>,
    pub error: bool,
}

impl Finished {
    /// The exporter's span, ending now.
    pub(super) fn into_data(self, attributes: Vec<KeyValue>, scope: opentelemetry::InstrumentationScope) -> SpanData {
        let mut links = SpanLinks::default();
        links.links.extend(self.link.map(Link::with_context));
        let (parent, remote) = self.parent.unwrap_or((SpanId::INVALID, false));
        SpanData {
            span_context: SpanContext::new(self.trace, self.span, TraceFlags::SAMPLED, false, TraceState::NONE),
            parent_span_id: parent,
            parent_span_is_remote: remote,
            span_kind: self.kind,
            name: self.name,
            start_time: self.start,
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links,
            status: if self.error { Status::error("") } else { Status::Unset },
            instrumentation_scope: scope,
        }
    }
}
