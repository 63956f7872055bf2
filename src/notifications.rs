//! Webhook notifications (`[[notify]]`): what happened to weights, rollouts, findings and the
//! fleet, POSTed where the team talks (a Slack channel, an incident tool, a chat bot).
//!
//! Never on the request path and never blocking the control plane: [`send`] puts a notice on a
//! bounded queue and returns. A dispatcher thread hands each notice to every target that wants
//! its kind; each target has its own thread and bounded queue, so a slow or dead receiver
//! delays only itself. A delivery is retried with backoff on connection errors, 429 and 5xx;
//! what cannot be queued is dropped and counted (`notifications_total{target,result}`).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::operations::{NoticeKind, NotifyFormat, NotifyTarget};
use crate::core::Percent;
use crate::metrics::METRICS;
use crate::snapshot::Shared;

/// Notices waiting for the dispatcher.
const QUEUE: usize = 1024;
/// Notices waiting for one target.
const TARGET_QUEUE: usize = 256;
/// The wait before the first retry; doubled before each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Attempts after the first.
pub const RETRIES: u32 = 4;
/// The signature header: `sha256=` and the hex HMAC-SHA256 of the body under the target's secret.
pub const SIGNATURE_HEADER: &str = "x-strangler-signature";

/// Something that happened, for whoever listens.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// What happened, in snake case: `weight_changed`, `step_passed`, `rolled_back`, ...
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// One line a person reads, as the log says it.
    pub text: String,
    /// The event's figures, typed.
    pub details: serde_json::Value,
}

impl Notice {
    pub fn new(kind: NoticeKind, event: &str, route: Option<&str>, text: String, details: serde_json::Value) -> Notice {
        Notice { kind, event: event.to_string(), route: route.map(str::to_string), text, details }
    }

    /// A weight change: from where (`source`: api, cli, console, file) and, by hand, from
    /// which peer.
    pub fn weight(route: &str, from: Percent, to: Percent, source: &str, peer: Option<&str>) -> Notice {
        let by = peer.map_or(String::new(), |p| format!(" ({p})"));
        Notice::new(
            NoticeKind::Weight,
            "weight_changed",
            Some(route),
            format!("weight {}% -> {}% from {source}{by}", from.as_f64(), to.as_f64()),
            serde_json::json!({ "from": from.as_f64(), "to": to.as_f64(), "source": source, "peer": peer }),
        )
    }
}

/// A notice as a target receives it: the notice, when and from which instance.
#[derive(Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    notice: &'a Notice,
    at: String,
    instance: &'a str,
}

/// The body `target` receives for `notice`.
pub fn body(target: &NotifyTarget, notice: &Notice, instance: &str, at: SystemTime) -> Vec<u8> {
    let at = humantime::format_rfc3339_seconds(at).to_string();
    let value = match target.format {
        NotifyFormat::Json => serde_json::to_value(Document { notice, at, instance }),
        NotifyFormat::Slack => {
            let route = notice.route.as_deref().map_or(String::new(), |r| format!(" · route *{r}*"));
            Ok(serde_json::json!({ "text": format!("strangler on {instance}{route}: {}", notice.text) }))
        }
    };
    value.map(|v| v.to_string().into_bytes()).unwrap_or_default()
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt {
    /// A 2xx answer, with its status.
    Delivered(u16),
    /// Worth another try: no connection, a time-out, 429 or 5xx.
    Retry(String),
    /// Not worth another: another 4xx (a revoked webhook, a bad secret).
    Refused(String),
}

/// The HTTP agent for one target, made once: its retries and its next notices reuse the
/// connection.
pub fn agent(target: &NotifyTarget) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(target.timeout))
        .http_status_as_error(false)
        .user_agent(concat!("strangler/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// One POST of `body` to `target`, `signed` when the target has a secret. Errors never show
/// the URL: a webhook's URL is a credential.
pub fn attempt(agent: &ureq::Agent, target: &NotifyTarget, body: &[u8], signed: Option<&str>) -> Attempt {
    let mut req = agent.post(&target.url).header("content-type", "application/json");
    if let Some(sig) = signed {
        req = req.header(SIGNATURE_HEADER, sig);
    }
    match req.send(body) {
        Ok(resp) => {
            let code = resp.status().as_u16();
            match code {
                200..=299 => Attempt::Delivered(code),
                429 | 500..=599 => Attempt::Retry(format!("answered {code}")),
                _ => Attempt::Refused(format!("answered {code}")),
            }
        }
        Err(e) => Attempt::Retry(describe(&e)),
    }
}

/// A transport error in words that hold no URL.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "no answer in time".to_string(),
        ureq::Error::Io(io) => format!("connection failed: {}", io.kind()),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Tls(why) => format!("TLS failed: {why}"),
        _ => "the request failed".to_string(),
    }
}

/// Deliver with retries (`retries` after the first attempt, backoff doubling from
/// [`FIRST_BACKOFF`]); the last attempt's outcome.
pub fn deliver(agent: &ureq::Agent, target: &NotifyTarget, body: &[u8], retries: u32) -> Attempt {
    let signed = target.secret.as_ref().map(|secret| signature(secret, body));
    let mut wait = FIRST_BACKOFF;
    let mut tries = 0;
    loop {
        match attempt(agent, target, body, signed.as_deref()) {
            Attempt::Retry(why) if tries < retries => {
                tries += 1;
                METRICS.notifications.with_label_values(&[&target.name, "retried"]).inc();
                tracing::debug!(
                    target_name = target.name.as_str(),
                    "notification not delivered ({why}); retrying in {wait:?}"
                );
                std::thread::sleep(wait);
                wait *= 2;
            }
            done => return done,
        }
    }
}

/// One target's thread and queue.
struct Worker {
    target: NotifyTarget,
    queue: SyncSender<Arc<Notice>>,
}

impl Worker {
    fn start(target: NotifyTarget, instance: Arc<str>) -> Worker {
        let (queue, notices) = sync_channel::<Arc<Notice>>(TARGET_QUEUE);
        let t = target.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("notify {}", target.name))
            .spawn(move || run_worker(&t, &instance, notices));
        if let Err(e) = spawned {
            tracing::error!(target_name = target.name.as_str(), "cannot start the notification thread: {e}");
        }
        Worker { target, queue }
    }
}

fn run_worker(target: &NotifyTarget, instance: &str, notices: Receiver<Arc<Notice>>) {
    let agent = agent(target);
    // Ends when the dispatcher drops the queue (the target left the config) and it is drained.
    for notice in notices {
        let started = Instant::now();
        let body = body(target, &notice, instance, SystemTime::now());
        match deliver(&agent, target, &body, RETRIES) {
            Attempt::Delivered(code) => {
                METRICS.notifications.with_label_values(&[&target.name, "sent"]).inc();
                tracing::debug!(target_name = target.name.as_str(), code, elapsed = ?started.elapsed(), "notification sent");
            }
            Attempt::Retry(why) | Attempt::Refused(why) => {
                METRICS.notifications.with_label_values(&[&target.name, "failed"]).inc();
                tracing::warn!(
                    target_name = target.name.as_str(),
                    event = notice.event.as_str(),
                    "notification not delivered: {why}"
                );
            }
        }
    }
}

static QUEUE_IN: OnceLock<SyncSender<Notice>> = OnceLock::new();

/// Tell every `[[notify]]` target that wants it. Returns at once; a notice the queue cannot
/// take is dropped and counted. Before [`start`] (a process without notifications, a test in
/// process) it goes nowhere.
pub fn send(notice: Notice) {
    let Some(queue) = QUEUE_IN.get() else { return };
    if let Err(TrySendError::Full(n) | TrySendError::Disconnected(n)) = queue.try_send(notice) {
        METRICS.notifications.with_label_values(&["*", "dropped"]).inc();
        tracing::warn!(event = n.event.as_str(), "notification dropped: the queue is full");
    }
}

/// Start delivering: the targets are read from the config serving at each notice, so a reload
/// that adds, changes or removes one applies to the next notice.
pub fn start(shared: Arc<Shared>, instance: String) {
    let (queue, notices) = sync_channel::<Notice>(QUEUE);
    if QUEUE_IN.set(queue).is_err() {
        return;
    }
    let instance: Arc<str> = instance.into();
    let spawned = std::thread::Builder::new().name("notify".into()).spawn(move || {
        let mut workers: Vec<Worker> = Vec::new();
        for notice in notices {
            let targets = shared.load().config.notify.clone();
            // Keep the workers of targets still configured as they are; start the new ones.
            let mut kept: Vec<Worker> = Vec::with_capacity(targets.len());
            for t in targets {
                match workers.iter().position(|w| w.target == t) {
                    Some(i) => kept.push(workers.swap_remove(i)),
                    None => kept.push(Worker::start(t, instance.clone())),
                }
            }
            workers = kept;
            let notice = Arc::new(notice);
            for w in workers.iter().filter(|w| w.target.wants(notice.kind)) {
                if w.queue.try_send(notice.clone()).is_err() {
                    METRICS.notifications.with_label_values(&[&w.target.name, "dropped"]).inc();
                    tracing::warn!(
                        target_name = w.target.name.as_str(),
                        "notification dropped: the target's queue is full"
                    );
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the notification dispatcher: {e}");
    }
}

/// `strangler notify test`: a sample notice POSTed to every target (whatever its events), once
/// each without retries; each target's outcome.
pub fn test_all(targets: &[NotifyTarget], instance: &str) -> Vec<(String, Attempt, Duration)> {
    let notice = Notice::new(
        NoticeKind::Rollout,
        "test",
        None,
        "a test notification from `strangler notify test`: this target receives strangler's notifications".into(),
        serde_json::json!({}),
    );
    targets
        .iter()
        .map(|t| {
            let started = Instant::now();
            let body = body(t, &notice, instance, SystemTime::now());
            let signed = t.secret.as_ref().map(|secret| signature(secret, &body));
            let outcome = attempt(&agent(t), t, &body, signed.as_deref());
            (t.name.clone(), outcome, started.elapsed())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(format: NotifyFormat) -> NotifyTarget {
        NotifyTarget {
            name: "hooks".into(),
            url: "http://127.0.0.1:9/".into(),
            events: NoticeKind::ALL.to_vec(),
            format,
            secret: Some("s3cret".into()),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn json_and_slack_bodies_say_what_happened() {
        let n = Notice::new(
            NoticeKind::Weight,
            "weight_changed",
            Some("orders"),
            "weight 1% -> 10%".into(),
            serde_json::json!({"from": 1.0, "to": 10.0}),
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let json: serde_json::Value =
            serde_json::from_slice(&body(&target(NotifyFormat::Json), &n, "proxy-a", at)).expect("JSON");
        assert_eq!(json["kind"], "weight");
        assert_eq!(json["event"], "weight_changed");
        assert_eq!(json["route"], "orders");
        assert_eq!(json["details"]["to"], 10.0);
        assert_eq!(json["instance"], "proxy-a");
        assert_eq!(json["at"], "2027-01-15T08:00:00Z");
        let slack: serde_json::Value =
            serde_json::from_slice(&body(&target(NotifyFormat::Slack), &n, "proxy-a", at)).expect("JSON");
        assert_eq!(slack["text"], "strangler on proxy-a · route *orders*: weight 1% -> 10%");
    }

    #[test]
    fn a_closed_port_is_worth_a_retry_and_says_so_without_the_url() {
        let t = target(NotifyFormat::Json);
        match attempt(&agent(&t), &t, b"{}", None) {
            Attempt::Retry(why) => assert!(!why.contains("127.0.0.1"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
