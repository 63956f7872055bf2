//! `[routes.shadow]` and `[routes.compare]`, validated.

use std::time::Duration;

use http::{HeaderName, Method};

use super::file::{CompareSection, MatcherSection, ShadowSection};
use super::problems::{bounded, quote, Problems};
use crate::core::Percent;
use crate::core::Side;

/// Shadow copies in flight per route at most: each holds up to two bodies of `max_body`.
pub const MAX_IN_FLIGHT: usize = 100_000;
use crate::compare::endpoint::Template;
use crate::compare::findings::Bounds;
use crate::compare::matchers::{MatchKind, Matcher, MatcherField};
use crate::compare::redact::Redaction;
use crate::compare::report::ReportRules;
use crate::compare::{JsonPath, Rules};

/// Where shadow copies go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowTarget {
    /// The side that did not serve the request.
    Other,
    /// Always this side; requests it served itself are not shadowed.
    Fixed(Side),
}

impl ShadowTarget {
    /// The side a request served by `served` is shadowed to, if any.
    pub fn for_served(self, served: Side) -> Option<Side> {
        let other = match served {
            Side::Legacy => Side::New,
            Side::New => Side::Legacy,
        };
        match self {
            ShadowTarget::Other => Some(other),
            ShadowTarget::Fixed(s) => Some(s).filter(|s| *s != served),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShadowTarget::Other => "other",
            ShadowTarget::Fixed(s) => s.as_str(),
        }
    }
}

/// A route's shadow settings, with how the pairs are compared.
#[derive(Debug, Clone)]
pub struct Shadow {
    pub enabled: bool,
    pub target: ShadowTarget,
    /// Hundredths of a percent of eligible requests, 0..=10000.
    pub sample: Percent,
    pub methods: Vec<Method>,
    pub max_body: usize,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub compare: Compare,
}

#[derive(Debug, Clone)]
pub struct Compare {
    /// Lowercase names.
    pub ignore_headers: Vec<HeaderName>,
    pub ignore_json_paths: Vec<JsonPath>,
    /// Hundredths of a percent, 0..=10000.
    pub noise_sample: Percent,
    pub keep_diffs: usize,
    pub keep_diffs_bytes: usize,
    /// The defaults and what the route adds.
    pub redaction: Redaction,
    /// Declared endpoint templates, tried in order before an inferred one.
    pub endpoints: Vec<Template>,
    pub max_endpoints: usize,
    /// `max_endpoints`, `max_evidence` and `noise_max_age`, as the findings take them.
    pub bounds: Bounds,
    /// What a finding and a `ready` endpoint take.
    pub rules: ReportRules,
    pub matchers: Vec<Matcher>,
    pub keep_replays: usize,
    pub replay_unsafe: bool,
}

impl Compare {
    /// The matchers that apply to requests counted under `endpoint`.
    pub fn matchers_for(&self, endpoint: &str) -> Vec<&Matcher> {
        self.matchers.iter().filter(|m| m.applies_to(endpoint)).collect()
    }

    /// How a pair is compared: this route's ignore lists, with `matchers` (from
    /// [`Compare::matchers_for`] the pair's endpoint).
    pub fn rules<'a>(&'a self, matchers: &'a [&'a Matcher]) -> Rules<'a> {
        Rules { ignore_headers: &self.ignore_headers, ignore_paths: &self.ignore_json_paths, matchers }
    }
}

/// The smallest evidence budget a route may have.
pub const MIN_EVIDENCE: usize = 64 * 1024;

/// Endpoints a route may track at most.
pub const MAX_ENDPOINTS: usize = 10_000;

/// Methods that are safe to send twice, for noise learning.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

pub(super) fn build(
    p: &mut Problems,
    key: &str,
    shadow: Option<&ShadowSection>,
    compare: Option<&CompareSection>,
) -> Option<Shadow> {
    let Some(s) = shadow else {
        if compare.is_some() {
            p.add(
                format!("{key}.compare"),
                "{ ... }",
                format!("compares shadow pairs, but the route has no shadow: add [{key}.shadow] or remove the section"),
            );
        }
        return None;
    };
    let skey = format!("{key}.shadow");
    let target = match s.target.as_str() {
        "other" => ShadowTarget::Other,
        "new" => ShadowTarget::Fixed(Side::New),
        "legacy" => ShadowTarget::Fixed(Side::Legacy),
        other => {
            p.add(format!("{skey}.target"), quote(other), "must be \"other\", \"new\" or \"legacy\"");
            ShadowTarget::Other
        }
    };
    let sample = p.percent(&format!("{skey}.sample"), s.sample, "percentages");
    let mut methods = Vec::new();
    for (i, m) in s.methods.iter().enumerate() {
        match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(method) if !m.is_empty() => methods.push(method),
            _ => p.add(format!("{skey}.methods[{i}]"), quote(m), "is not an HTTP method; e.g. \"GET\" or \"POST\""),
        }
    }
    let max_body = p.size(&format!("{skey}.max_body"), &s.max_body, "1MiB");
    let max_in_flight = if s.max_in_flight == 0 {
        p.add(format!("{skey}.max_in_flight"), 0, "must be at least 1 (set enabled = false to stop shadowing)");
        1
    } else {
        bounded(p, &format!("{skey}.max_in_flight"), s.max_in_flight, 1, MAX_IN_FLIGHT)
    };
    let timeout = p.duration(&format!("{skey}.timeout"), &s.timeout);

    let default = CompareSection::default();
    let compare = build_compare(p, &format!("{key}.compare"), compare.unwrap_or(&default));
    Some(Shadow { enabled: s.enabled, target, sample, methods, max_body, max_in_flight, timeout, compare })
}

/// `[routes.compare]`: what is compared and how, what is redacted, what the evidence may hold.
fn build_compare(p: &mut Problems, ckey: &str, c: &CompareSection) -> Compare {
    let headers = |p: &mut Problems, field: &str, list: &[String]| -> Vec<HeaderName> {
        list.iter()
            .enumerate()
            .filter_map(|(i, h)| match HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
                Ok(name) => Some(name),
                Err(_) => {
                    p.add(format!("{ckey}.{field}[{i}]"), quote(h), "is not a valid header name");
                    None
                }
            })
            .collect()
    };
    let json_paths = |p: &mut Problems, field: &str, list: &[String]| -> Vec<JsonPath> {
        list.iter()
            .enumerate()
            .filter_map(|(i, path)| match JsonPath::parse(path) {
                Ok(jp) => Some(jp),
                Err(msg) => {
                    p.add(format!("{ckey}.{field}[{i}]"), quote(path), msg);
                    None
                }
            })
            .collect()
    };
    let ignore_headers = headers(p, "ignore_headers", &c.ignore_headers);
    let redact_headers = headers(p, "redact_headers", &c.redact_headers);
    let ignore_json_paths = json_paths(p, "ignore_json_paths", &c.ignore_json_paths);
    let redact_json_paths = json_paths(p, "redact_json_paths", &c.redact_json_paths);
    for (i, w) in c.redact_query.iter().enumerate() {
        if w.trim().is_empty() {
            p.add(format!("{ckey}.redact_query[{i}]"), quote(w), "must be a word such as \"session\"");
        }
    }
    let redaction = Redaction::new(
        redact_headers,
        c.redact_query.iter().map(|w| w.trim().to_string()).collect(),
        redact_json_paths,
    );
    let keep_diffs_bytes = p.size(&format!("{ckey}.keep_diffs_bytes"), &c.keep_diffs_bytes, "1MiB");
    let noise_sample = p.percent(&format!("{ckey}.noise_sample"), c.noise_sample, "percentages");
    let mut endpoints = Vec::new();
    for (i, t) in c.endpoints.iter().enumerate() {
        match Template::parse(t) {
            Ok(t) => endpoints.push(t),
            Err(msg) => p.add(format!("{ckey}.endpoints[{i}]"), quote(t), msg),
        }
    }
    let max_endpoints = bounded(p, &format!("{ckey}.max_endpoints"), c.max_endpoints, 1, MAX_ENDPOINTS);
    let max_evidence = p.size(&format!("{ckey}.max_evidence"), &c.max_evidence, "4MiB");
    if max_evidence < MIN_EVIDENCE {
        p.add(
            format!("{ckey}.max_evidence"),
            quote(&c.max_evidence),
            "must be at least 64KiB: the report needs room for its endpoints",
        );
    }
    let bounds = Bounds {
        max_endpoints,
        max_bytes: max_evidence,
        noise_max_age: p.duration(&format!("{ckey}.noise_max_age"), &c.noise_max_age),
    };
    let matchers =
        c.matchers.iter().enumerate().filter_map(|(i, m)| matcher(p, &format!("{ckey}.matchers[{i}]"), m)).collect();
    let mut rate = |field: &str, v: f64, max: f64| {
        if !(0.0..=max).contains(&v) {
            p.add(format!("{ckey}.{field}"), v, format!("must be a number of percent from 0 to {max}"));
            return 0.0;
        }
        v
    };
    let rules = ReportRules {
        finding_absolute: rate("finding_absolute", c.finding_absolute, 100.0),
        finding_relative: rate("finding_relative", c.finding_relative, 10_000.0),
        ready_after: bounded(p, &format!("{ckey}.ready_after"), c.ready_after, 1, 1_000_000_000),
    };
    Compare {
        ignore_headers,
        ignore_json_paths,
        noise_sample,
        keep_diffs: c.keep_diffs,
        keep_diffs_bytes,
        redaction,
        endpoints,
        max_endpoints,
        bounds,
        rules,
        matchers,
        keep_replays: bounded(p, &format!("{ckey}.keep_replays"), c.keep_replays, 0, 10_000),
        replay_unsafe: c.replay_unsafe,
    }
}

/// One `[[routes.compare.matchers]]` entry; every problem is named by its key.
fn matcher(p: &mut Problems, key: &str, m: &MatcherSection) -> Option<Matcher> {
    let before = p.len();
    let field = match m.field.parse::<crate::compare::difference::Field>() {
        Ok(crate::compare::difference::Field::Header(h)) => {
            match HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
                Ok(name) => Some(MatcherField::Header(name)),
                Err(_) => {
                    p.add(format!("{key}.field"), quote(&m.field), "is not a valid header name");
                    None
                }
            }
        }
        Ok(crate::compare::difference::Field::Json(path)) => match JsonPath::parse(&path) {
            Ok(jp) => Some(MatcherField::Json(jp)),
            Err(msg) => {
                p.add(format!("{key}.field"), quote(&m.field), msg);
                None
            }
        },
        _ => {
            p.add(format!("{key}.field"), quote(&m.field), "must be \"header:NAME\" or \"json:$.path\"");
            None
        }
    };
    let number = |p: &mut Problems, name: &str, v: Option<f64>| -> f64 {
        match v {
            Some(x) if x.is_finite() && x >= 0.0 => x,
            Some(x) => {
                p.add(format!("{key}.{name}"), x, "must be a number from 0 up");
                0.0
            }
            None => 0.0,
        }
    };
    let kind = match m.kind.as_str() {
        "ignore" => Some(MatchKind::Ignore),
        "tolerance" => {
            if m.absolute.is_none() && m.relative.is_none() {
                p.add(format!("{key}.kind"), quote(&m.kind), "needs absolute = N or relative = PERCENT (or both)");
            }
            Some(MatchKind::Tolerance {
                absolute: number(p, "absolute", m.absolute),
                relative: number(p, "relative", m.relative),
            })
        }
        "unordered" => Some(MatchKind::Unordered),
        "present" => Some(MatchKind::Present),
        "case_insensitive" => Some(MatchKind::CaseInsensitive),
        "same_shape" => match m.pattern.as_deref().map(regex::Regex::new) {
            Some(Ok(re)) => Some(MatchKind::SameShape(re)),
            Some(Err(e)) => {
                let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                p.add(
                    format!("{key}.pattern"),
                    quote(m.pattern.as_deref().unwrap_or("")),
                    format!("is not a regular expression: {first}"),
                );
                None
            }
            None => {
                p.add(format!("{key}.kind"), quote(&m.kind), "needs pattern = \"REGEX\", e.g. \"^[0-9a-f-]{36}$\"");
                None
            }
        },
        other => {
            p.add(
                format!("{key}.kind"),
                quote(other),
                "must be \"ignore\", \"tolerance\", \"unordered\", \"same_shape\", \"present\" or \"case_insensitive\"",
            );
            None
        }
    };
    if let (Some(MatcherField::Header(_)), Some(k)) = (&field, &kind) {
        if !matches!(k, MatchKind::Ignore | MatchKind::SameShape(_)) {
            p.add(format!("{key}.kind"), quote(&m.kind), "a header takes \"ignore\" or \"same_shape\"");
        }
    }
    if m.pattern.is_some() && !matches!(kind, Some(MatchKind::SameShape(_))) && m.kind != "same_shape" {
        p.add(
            format!("{key}.pattern"),
            quote(m.pattern.as_deref().unwrap_or("")),
            "is only read by kind = \"same_shape\"",
        );
    }
    if let Some(e) = &m.endpoint {
        let template = e.split_once(' ').map_or(e.as_str(), |(method, t)| {
            if Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
                p.add(format!("{key}.endpoint"), quote(e), "must be \"/template\" or \"METHOD /template\"");
            }
            t
        });
        if let Err(msg) = Template::parse(template) {
            p.add(format!("{key}.endpoint"), quote(e), msg);
        }
    }
    if p.len() > before {
        return None;
    }
    Some(Matcher { field: field?, endpoint: m.endpoint.clone(), kind: kind? })
}
