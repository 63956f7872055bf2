//! The shadow task: send the copy (and, for noise, the same request again to the serving side,
//! both at once), wait for the primary's answer, learn noise, compare, record.
//! Runs spawned, after the request body is complete; nothing here can reach the client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use opentelemetry::KeyValue;
use pingora::http::RequestHeader;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::client::{self, ExchangeError, Raw};
use super::kept::Kept;
use super::shadower::{Primary, Shadower};
use super::state::NoiseSample;
use super::state::{ShadowState, Verdict};
use crate::compare::body::{decode, DecodeError};
use crate::compare::store::{bound, header_map, DiffRecord, SideAnswer};
use crate::compare::{compare, noise_between, Answer, Outcome};
use crate::config::shadow::{is_safe, Shadow};
use crate::config::Route;
use crate::core::{BySide, Side};
use crate::telemetry::{ShadowTrace, TRACEPARENT};
use crate::upstream::Pool;

/// Bodies above this size are compared on the blocking pool, off the proxy's worker threads.
const INLINE_COMPARE: usize = 64 * 1024;

pub struct Job {
    pub shadower: Arc<Shadower>,
    pub state: Arc<ShadowState>,
    pub route: Arc<Route>,
    /// Legacy's and new's pools, as the request was routed.
    pub pools: BySide<Arc<Pool>>,
    pub served: Side,
    pub target: Side,
    /// The route's in-flight slot, released when the task ends.
    pub permit: Option<OwnedSemaphorePermit>,
    /// Who asked, hashed ([`crate::route::split::client_key`]).
    pub client: u64,
    pub request: RequestHeader,
    pub client_host: Option<HeaderValue>,
    pub body: Bytes,
    /// `log.diffs_file` and its size cap.
    pub diffs_file: Option<(PathBuf, usize)>,
    /// The shadow's trace, when the primary's span is recorded.
    pub trace: Option<ShadowTrace>,
}

impl Job {
    /// Send the captured request to `side`'s pool, as a shadow.
    async fn send(&self, side: Side, cfg: &Shadow) -> Result<Raw, ExchangeError> {
        let pool = &self.pools[side];
        let mut req = client::prepare(&self.request, self.client_host.as_ref(), &pool.config, self.body.len());
        if let Some(t) = &self.trace {
            // The shadow's span is its parent, not the primary's hop: the client's trace stays
            // as long as the primary made it.
            let _ = req.insert_header(TRACEPARENT, t.traceparent());
        }
        // Boxed when it leaves: held inline, an exchange (Pingora's session and its futures) would
        // make the whole shadow task that large, and every move of the task a copy of it.
        let body = self.body.clone();
        client::in_box(|| client::exchange(&self.shadower.connector, pool, req, body, cfg.max_body, cfg.timeout)).await
    }
}

pub async fn run(mut job: Job, primary: oneshot::Receiver<Primary>) {
    let Some(cfg) = job.route.shadow.as_ref() else { return };
    let mut seen = Seen::default();
    let verdict = pair(&job, cfg, primary, &mut seen).await;
    job.state.count(verdict);
    if let Some(trace) = job.trace.take() {
        end_spans(&job, trace, verdict, seen);
    }
}

/// What the shadow's spans say beyond the verdict.
#[derive(Default)]
struct Seen {
    /// The shadow's answer status.
    status: Option<u16>,
    /// When the comparison began, and the fields that differed (noise included).
    compared: Option<(SystemTime, Vec<String>)>,
}

/// Most differing fields named on a comparison's span.
const SPAN_FIELDS: usize = 32;

fn end_spans(job: &Job, trace: ShadowTrace, verdict: Verdict, seen: Seen) {
    let base = || {
        vec![
            KeyValue::new("strangler.route", job.route.name.clone()),
            KeyValue::new("strangler.side", job.target.as_str()),
            KeyValue::new("strangler.served_by", job.served.as_str()),
            KeyValue::new("strangler.verdict", verdict.as_str()),
        ]
    };
    if let Some((start, fields)) = seen.compared {
        let mut attributes = base();
        attributes.push(KeyValue::new("strangler.differences", fields.len() as i64));
        let named: Vec<opentelemetry::StringValue> = fields.into_iter().take(SPAN_FIELDS).map(Into::into).collect();
        attributes.push(KeyValue::new("strangler.differing_fields", opentelemetry::Value::Array(named.into())));
        trace.compared(start, attributes);
    }
    let mut attributes = base();
    attributes.push(KeyValue::new("http.request.method", job.request.method.as_str().to_string()));
    attributes.push(KeyValue::new("url.path", job.request.uri.path().to_string()));
    if let Some(code) = seen.status {
        attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
    }
    trace.end(attributes, verdict == Verdict::Error);
}

/// Why a pair cannot be compared.
fn not_comparable(e: &DecodeError) -> Verdict {
    tracing::debug!("shadow pair not compared: {e}");
    Verdict::Skipped
}

/// One shadowed request, step by step: where it counts, both answers, noise, the comparison,
/// and what is kept of it.
async fn pair(job: &Job, cfg: &Shadow, primary: oneshot::Receiver<Primary>, seen: &mut Seen) -> Verdict {
    let (endpoint, repeat, bootstrapping) = plan(job, cfg);
    let Exchanged { primary, shadow, again } = match exchange(job, cfg, repeat, primary).await {
        Ok(x) => x,
        Err(verdict) => return verdict,
    };
    seen.status = Some(shadow.status);
    let delivered = primary.delivered;
    let took = BySide::from_fn(|side| if side == job.served { primary.took } else { shadow.took });
    let served = match answer(primary.status, primary.headers, primary.body, cfg.max_body) {
        Ok(a) => a,
        Err(e) => return not_comparable(&e),
    };
    let other = match answer(shadow.status, shadow.headers, shadow.body, cfg.max_body) {
        Ok(a) => a,
        Err(e) => return not_comparable(&e),
    };
    if let Some(again) = again {
        // An endpoint still learning its first samples takes a late one too: without it, a
        // field random on every answer would be reported on the first requests.
        let deadline = (!bootstrapping).then_some(delivered);
        learn_noise(job, cfg, &served, &endpoint, again, deadline);
    }
    let (legacy, new) = match job.served {
        Side::Legacy => (served, other),
        Side::New => (other, served),
    };
    let statuses = BySide { legacy: legacy.status, new: new.status };
    let compare_start = SystemTime::now();
    let outcome = compare_off_path(job.route.clone(), endpoint.clone(), legacy, new).await;
    if job.trace.is_some() {
        seen.compared = Some((compare_start, outcome.differences.iter().map(|d| d.field.to_string()).collect()));
    }
    if outcome.differences.is_empty() {
        let bytes = {
            let mut f = job.state.findings();
            f.record_pair(&endpoint, "", Vec::new(), &cfg.compare.rules, SystemTime::now());
            f.bytes()
        };
        job.state.evidence_bytes(bytes);
        return Verdict::Match;
    }
    // One instant for the diff record and the findings' examples, so a finding's example names
    // the pair it came from (the console shows the pair by it).
    let now = SystemTime::now();
    let answers =
        statuses.map(|side, status| SideAnswer { status: *status, duration_ms: took[side].as_secs_f64() * 1000.0 });
    keep_mismatch(job, cfg, &endpoint, diff_record(job, answers, outcome, now), now)
}

/// The endpoint the request counts under, whether the serving side is asked again for noise,
/// and whether the endpoint is still learning its first samples.
fn plan(job: &Job, cfg: &Shadow) -> (String, bool, bool) {
    let c = &cfg.compare;
    let method = &job.request.method;
    let now = SystemTime::now();
    let mut f = job.state.findings();
    let e = f.endpoint(method.as_str(), job.request.uri.path(), &c.endpoints, now);
    let repeat = is_safe(method) && f.wants_noise_sample(&e, c.noise_sample, now);
    let bootstrapping = f.bootstrapping(&e, now);
    (e, repeat, bootstrapping)
}

/// The primary's answer, the shadow's, and the serving side's second one when asked.
struct Exchanged {
    primary: Primary,
    shadow: Raw,
    again: Option<Result<Raw, ExchangeError>>,
}

/// Send the shadow (and the noise repeat), wait for the primary's answer; the verdict when
/// there is nothing to compare.
async fn exchange(
    job: &Job,
    cfg: &Shadow,
    repeat: bool,
    primary: oneshot::Receiver<Primary>,
) -> Result<Exchanged, Verdict> {
    // The noise repeat leaves now, beside the shadow and at the primary's own time, never after
    // the primary's answer: no client can change state between two answers of one side.
    let again = async {
        match repeat {
            true => Some(job.send(job.served, cfg).await),
            false => None,
        }
    };
    // Polled first: of the two, the repeat is the one whose timing matters.
    let (again, shadow, primary) = tokio::join!(again, job.send(job.target, cfg), primary);
    let primary = match primary {
        Ok(p) if !p.failed => p,
        _ => return Err(Verdict::Skipped),
    };
    let shadow = match shadow {
        Ok(raw) => raw,
        Err(ExchangeError::TooLarge(_)) => return Err(Verdict::Skipped),
        Err(e) => {
            tracing::debug!(route = %job.route.name, side = job.target.as_str(), "shadow request failed: {e}");
            return Err(Verdict::Error);
        }
    };
    job.state.observe(job.served, primary.took);
    job.state.observe(job.target, shadow.took);
    if primary.over {
        return Err(Verdict::Skipped);
    }
    Ok(Exchanged { primary, shadow, again })
}

/// The record of a pair that differed, before redaction.
fn diff_record(job: &Job, answers: BySide<SideAnswer>, outcome: Outcome, now: SystemTime) -> DiffRecord {
    let BySide { legacy, new } = answers;
    DiffRecord {
        at: humantime::format_rfc3339_millis(now).to_string(),
        route: job.route.name.clone(),
        method: job.request.method.to_string(),
        path: job.request.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        served_by: job.served,
        legacy,
        new,
        differences: outcome.differences,
        truncated: outcome.truncated,
        request_headers: header_map(&job.request.headers),
    }
}

/// A pair that differed: every difference, noise included, counts in the findings (redacted,
/// then cut: they keep examples); the pair is a mismatch only on a field noise does not explain,
/// and only a mismatch is counted, kept for replay, and stored with the recent diffs.
fn keep_mismatch(job: &Job, cfg: &Shadow, endpoint: &str, mut record: DiffRecord, now: SystemTime) -> Verdict {
    let c = &cfg.compare;
    c.redaction.apply(&mut record);
    bound(&mut record);
    let all = std::mem::take(&mut record.differences);
    let (real, significant, bytes) = {
        let mut f = job.state.findings();
        let real = f.record_pair(endpoint, &record.path, all, &c.rules, now);
        let fields: Vec<_> = real.iter().map(|d| d.field.clone()).collect();
        let significant = f.any_significant(endpoint, &fields, &c.rules);
        (real, significant, f.bytes())
    };
    job.state.evidence_bytes(bytes);
    if real.is_empty() {
        job.state.count_explained();
        return Verdict::Match;
    }
    if significant {
        job.state.count_significant();
    }
    let mut kinds: Vec<_> = real.iter().map(|d| d.field.kind()).collect();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        job.state.count_mismatch(k);
    }
    record.differences = real;
    if c.keep_replays > 0 && (is_safe(&job.request.method) || c.replay_unsafe) {
        let kept = Kept {
            seen_at: record.at.clone(),
            endpoint: endpoint.to_string(),
            request: job.request.clone(),
            client_host: job.client_host.clone(),
            body: job.body.clone(),
        };
        job.state.kept.keep(kept, c.keep_replays);
    }
    tracing::debug!(route = %record.route, path = %record.path, differences = record.differences.len(), "shadow mismatch");
    let record = Arc::new(record);
    if let Some((path, max)) = &job.diffs_file {
        job.shadower.diffs_file.append(path, *max, record.clone());
    }
    job.state.recent.push(record, c.keep_diffs, c.keep_diffs_bytes);
    Verdict::Mismatch
}

/// The serving side's second answer to the request: whatever differs between its two answers is
/// noise on `endpoint`, counted for the request's client. A repeat written after `deadline` (the
/// primary's answer delivered) is not counted: by then the client could have changed what it
/// reads.
fn learn_noise(
    job: &Job,
    cfg: &Shadow,
    first: &Answer,
    endpoint: &str,
    again: Result<Raw, ExchangeError>,
    deadline: Option<Instant>,
) {
    let again = match again {
        Ok(raw) if deadline.is_some_and(|d| raw.sent > d) => {
            tracing::debug!(route = %job.route.name, endpoint, "noise repeat sent after the primary's answer: not counted");
            return job.state.count_noise_sample(NoiseSample::Late);
        }
        Ok(Raw { status, headers, body, .. }) => answer(status, headers, body, cfg.max_body),
        Err(e) => {
            tracing::debug!(route = %job.route.name, "noise-learning request failed: {e}");
            return job.state.count_noise_sample(NoiseSample::Failed);
        }
    };
    match again {
        // Two different statuses from one side are flakiness, not noise in a field.
        Ok(again) if again.status == first.status => {
            let c = &cfg.compare;
            let matchers = c.matchers_for(endpoint);
            let rules = c.rules(&matchers);
            job.state.learn(endpoint, job.client, &noise_between(first, &again, &rules));
        }
        _ => job.state.count_noise_sample(NoiseSample::Failed),
    }
}

pub(super) fn answer(status: u16, headers: http::HeaderMap, body: Bytes, cap: usize) -> Result<Answer, DecodeError> {
    let body = match decode(&headers, body.clone(), cap) {
        Ok(b) => b,
        // A body that says it is compressed but is not is compared as it came.
        Err(DecodeError::Invalid(_)) => body,
        Err(e) => return Err(e),
    };
    Ok(Answer { status, headers, body })
}

async fn compare_off_path(route: Arc<Route>, endpoint: String, legacy: Answer, new: Answer) -> Outcome {
    let small = legacy.body.len() + new.body.len() <= INLINE_COMPARE;
    let run = move || {
        let Some(cfg) = route.shadow.as_ref() else { return Outcome::default() };
        let c = &cfg.compare;
        let matchers = c.matchers_for(&endpoint);
        let rules = c.rules(&matchers);
        compare(&legacy, &new, &rules)
    };
    if small {
        return run();
    }
    tokio::task::spawn_blocking(run).await.unwrap_or_default()
}
