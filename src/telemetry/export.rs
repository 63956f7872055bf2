//! Span export: a bounded queue the request path puts finished spans on (never waiting: a full
//! queue drops the span and counts it), and a thread that sends them in batches over OTLP/HTTP
//! protobuf with `opentelemetry-otlp`, through strangler's own HTTP client (ureq on rustls with
//! ring, as the rest of strangler uses).

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;

use super::span::Finished;
use crate::config::operations::Telemetry;
use crate::config::WEIGHT_SCALE;
use crate::metrics::METRICS;

/// Finished spans waiting for export.
const QUEUE: usize = 8192;
/// Spans per export request at most.
const MAX_BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const BATCH_WAIT: Duration = Duration::from_secs(1);
/// One export request's time, connection included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The traces of one `[telemetry]` setting: its sampling and its export queue. Replaced when
/// the setting changes on a reload; the old one's thread sends what it holds, then ends.
pub struct Tracing {
    settings: Telemetry,
    queue: SyncSender<SpanData>,
    scope: InstrumentationScope,
}

impl Tracing {
    pub fn start(settings: &Telemetry) -> Arc<Tracing> {
        let (queue, spans) = sync_channel(QUEUE);
        let s = settings.clone();
        let spawned = std::thread::Builder::new().name("otlp export".into()).spawn(move || run(&s, spans));
        if let Err(e) = spawned {
            // Every span is then counted dropped: the queue has no reader.
            tracing::error!("cannot start the span export thread: {e}");
        }
        let scope = InstrumentationScope::builder("strangler").with_version(env!("CARGO_PKG_VERSION")).build();
        Arc::new(Tracing { settings: settings.clone(), queue, scope })
    }

    pub fn settings(&self) -> &Telemetry {
        &self.settings
    }

    /// Whether a request without a sampled parent starts a trace.
    pub(super) fn draw(&self) -> bool {
        match self.settings.sample.hundredths() {
            0 => false,
            h if h >= WEIGHT_SCALE => true,
            h => rand::random::<u32>() % WEIGHT_SCALE < h,
        }
    }

    /// Queue a finished span; a full queue drops it.
    pub(super) fn record(&self, span: Finished, attributes: Vec<KeyValue>) {
        let data = span.into_data(attributes, self.scope.clone());
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.queue.try_send(data) {
            METRICS.telemetry_spans.with_label_values(&["dropped"]).inc();
        }
    }
}

/// The export thread: batches of up to [`MAX_BATCH`] spans, or what came in [`BATCH_WAIT`].
/// Ends once every sender is gone and the queue is empty.
fn run(settings: &Telemetry, spans: Receiver<SpanData>) {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Ureq::new())
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.traces_url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build();
    let mut exporter = match exporter {
        Ok(e) => e,
        Err(e) => return tracing::error!("cannot export spans to {}: {e}", settings.traces_url),
    };
    exporter.set_resource(&Resource::builder_empty().with_service_name(settings.service_name.clone()).build());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return tracing::error!("cannot start the span exporter: {e}"),
    };
    let mut last_warning: Option<Instant> = None;
    while let Ok(first) = spans.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + BATCH_WAIT;
        while batch.len() < MAX_BATCH {
            match spans.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(span) => batch.push(span),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let n = batch.len() as u64;
        match runtime.block_on(exporter.export(batch)) {
            Ok(()) => METRICS.telemetry_spans.with_label_values(&["exported"]).inc_by(n),
            Err(e) => {
                METRICS.telemetry_spans.with_label_values(&["failed"]).inc_by(n);
                // Once a minute at most: a collector that is away would fill the log.
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!("spans not exported to {}: {e}", settings.traces_url);
                }
            }
        }
    }
}

/// `opentelemetry-otlp`'s HTTP client: ureq, blocking (the export thread waits anyway).
#[derive(Debug)]
struct Ureq(ureq::Agent);

impl Ureq {
    fn new() -> Ureq {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(EXPORT_TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("strangler/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ureq(agent)
    }
}

#[async_trait]
impl HttpClient for Ureq {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.to_vec());
        let mut answer = self.0.run(request)?;
        let status = answer.status();
        let body = answer.body_mut().with_config().limit(1 << 20).read_to_vec()?;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}
