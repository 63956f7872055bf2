//! The sections that connect strangler to the tools a team already runs: `[[notify]]` webhooks
//! and `[telemetry]` traces.

use std::fmt;
use std::time::Duration;

use super::file::{NotifySection, TelemetrySection};
use super::problems::{quote, Problems};
use crate::core::Percent;

/// What a notification is about; `[[notify]] events` chooses among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A route's weight changed: by hand (API, CLI, console) or in the file.
    Weight,
    /// A rollout passed a step, paused, resumed, rolled back, completed or was aborted.
    Rollout,
    /// An endpoint's cutover verdict turned `differs`.
    Finding,
    /// The fleet's leader changed, or an instance fell behind.
    Fleet,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 4] = [NoticeKind::Weight, NoticeKind::Rollout, NoticeKind::Finding, NoticeKind::Fleet];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Weight => "weight",
            NoticeKind::Rollout => "rollout",
            NoticeKind::Finding => "finding",
            NoticeKind::Fleet => "fleet",
        }
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a notification's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// strangler's own JSON document (kind, event, route, text, details).
    Json,
    /// A Slack incoming-webhook message (`{"text": ...}`).
    Slack,
}

/// A `[[notify]]` entry, validated.
#[derive(Clone, PartialEq)]
pub struct NotifyTarget {
    /// For logs and metrics; never the URL, which may be a secret.
    pub name: String,
    pub url: String,
    pub events: Vec<NoticeKind>,
    pub format: NotifyFormat,
    pub secret: Option<String>,
    pub timeout: Duration,
}

impl NotifyTarget {
    pub fn wants(&self, kind: NoticeKind) -> bool {
        self.events.contains(&kind)
    }
}

/// Neither the URL (a Slack webhook's is its credential) nor the secret.
impl fmt::Debug for NotifyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyTarget")
            .field("name", &self.name)
            .field("events", &self.events)
            .field("format", &self.format)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

pub(super) fn build_notify(p: &mut Problems, list: &[NotifySection]) -> Vec<NotifyTarget> {
    let mut out = Vec::new();
    for (i, n) in list.iter().enumerate() {
        let key = format!("notify[{i}]");
        let host = match http::Uri::try_from(n.url.as_str()) {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
                uri.host().unwrap_or_default().to_string()
            }
            _ => {
                // The value is not echoed: a webhook URL is a credential.
                p.add(
                    format!("{key}.url"),
                    "(not shown)",
                    "must be an http:// or https:// URL, e.g. \"https://hooks.slack.com/services/T000/B000/XXX\"",
                );
                continue;
            }
        };
        let events = match &n.events {
            None => NoticeKind::ALL.to_vec(),
            Some(names) => {
                let mut events = Vec::new();
                for (j, name) in names.iter().enumerate() {
                    match NoticeKind::ALL.into_iter().find(|k| k.as_str() == name) {
                        Some(k) if !events.contains(&k) => events.push(k),
                        Some(_) => {}
                        None => p.add(
                            format!("{key}.events[{j}]"),
                            quote(name),
                            "is not an event; use \"weight\", \"rollout\", \"finding\" or \"fleet\"",
                        ),
                    }
                }
                if names.is_empty() {
                    p.add(
                        format!("{key}.events"),
                        "[]",
                        "lists no event: leave it out for every event, or remove the entry",
                    );
                }
                events
            }
        };
        let format = match n.format.as_str() {
            "json" => NotifyFormat::Json,
            "slack" => NotifyFormat::Slack,
            other => {
                p.add(format!("{key}.format"), quote(other), "must be \"json\" or \"slack\"");
                NotifyFormat::Json
            }
        };
        let timeout = p.duration(&format!("{key}.timeout"), &n.timeout);
        out.push(NotifyTarget {
            name: n.name.clone().unwrap_or(host),
            url: n.url.clone(),
            events,
            format,
            secret: n.secret.clone().filter(|s| !s.is_empty()),
            timeout,
        });
    }
    out
}

/// `[telemetry]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// Where spans are POSTed: the endpoint with `/v1/traces`.
    pub traces_url: String,
    /// Requests that start a trace, when their client sent no sampled `traceparent`.
    pub sample: Percent,
    pub service_name: String,
}

pub(super) fn build_telemetry(p: &mut Problems, t: &TelemetrySection) -> Telemetry {
    let endpoint = t.otlp_endpoint.trim_end_matches('/');
    match http::Uri::try_from(endpoint) {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
        _ => p.add(
            "telemetry.otlp_endpoint",
            quote(&t.otlp_endpoint),
            "must be the collector's OTLP/HTTP URL, e.g. \"http://127.0.0.1:4318\" (spans go to /v1/traces under it)",
        ),
    }
    let sample = Percent::parse(t.sample, "telemetry.sample").unwrap_or_else(|msg| {
        p.add("telemetry.sample", t.sample, msg);
        Percent::ZERO
    });
    if t.service_name.trim().is_empty() {
        p.add("telemetry.service_name", "\"\"", "must name the service in traces, e.g. \"strangler\"");
    }
    let traces_url =
        if endpoint.ends_with("/v1/traces") { endpoint.to_string() } else { format!("{endpoint}/v1/traces") };
    Telemetry { traces_url, sample, service_name: t.service_name.clone() }
}
