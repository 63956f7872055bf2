//! The cutover report: the evidence to flip a route, endpoint by endpoint, as [`super::findings`]
//! reads it out. These are also the admin API's shapes (re-exported by `api`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::difference::{present, Field};

/// `GET /api/v1/routes/{name}/report`: the evidence to flip a route, endpoint by endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub route: String,
    /// RFC 3339, UTC.
    pub generated_at: String,
    pub rules: ReportRules,
    /// Busiest endpoints first.
    pub endpoints: Vec<EndpointReport>,
    /// Compared requests counted under `{other}` once the route had `max_endpoints` templates.
    pub folded: u64,
    /// In a fleet: the instances whose evidence is pooled in this report (every instance that
    /// published since the route's last reset; this one alone while etcd is away or with
    /// `?scope=instance`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pooled_from: Vec<String>,
    /// Endpoints with comparisons, in all pages.
    #[serde(default)]
    pub total_endpoints: usize,
    /// Where the next page starts (`?offset=`), when `limit` or the answer's size cut this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
    /// Estimated bytes the route's evidence holds (endpoints, fields, examples, templates),
    /// against `max_evidence`.
    #[serde(default)]
    pub evidence_bytes: usize,
    /// Fields and examples not kept, and endpoints counted under `{other}`, because the
    /// route's evidence budget was spent.
    #[serde(default)]
    pub over_budget: u64,
}

/// What the verdicts are judged by (`[routes.compare]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRules {
    /// A finding's rate must exceed its noise rate by this many percentage points...
    pub finding_absolute: f64,
    /// ...and by this many percent of the noise rate.
    pub finding_relative: f64,
    /// Comparisons an endpoint needs before it can be `ready`.
    pub ready_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Enough comparisons and no significant finding.
    Ready,
    /// At least one field differs more than its noise explains.
    Differs,
    /// No significant finding yet, but fewer comparisons than `ready_after`.
    NotEnoughData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::Differs => "differs",
            Verdict::NotEnoughData => "not enough data",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    /// `METHOD /path/{id}`.
    pub endpoint: String,
    pub verdict: Verdict,
    /// Legacy/new pairs compared.
    pub comparisons: u64,
    /// Pairs with a difference in a field not known as noise.
    pub mismatches: u64,
    /// Percent of `comparisons`.
    pub mismatch_rate: f64,
    /// Same-side pairs (the serving side asked twice) behind the noise rates.
    pub noise_samples: u64,
    /// RFC 3339, UTC.
    pub first_seen: String,
    pub last_seen: String,
    /// Significant findings, highest rate first.
    pub findings: Vec<Finding>,
    /// Fields seen differing between two answers of the same side, with how often (percent of
    /// the current noise window) and how many pairs their noise explained.
    pub noise: Vec<NoiseRate>,
    /// Pairs that differed only in fields noise explained: neither matches nor mismatches.
    #[serde(default)]
    pub explained: u64,
    /// Same-side samples the noise rates are judged on now (the newest, younger than
    /// `noise_max_age`)...
    #[serde(default)]
    pub noise_window: u64,
    /// ...and the distinct clients they came from: each counts once.
    #[serde(default)]
    pub noise_clients: u64,
    /// Counted under a template declared in `[routes.compare] endpoints`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub declared: bool,
    /// For an inferred template, how many distinct values each `{id}` was inferred from (at
    /// most 256 are counted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inferred_from: Vec<u64>,
}

/// A field that differs between legacy and new more than its noise explains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Array indices generalised: `json:$.items[*].price`.
    pub field: Field,
    /// Pairs it differed in.
    pub differing: u64,
    /// Percent of the endpoint's comparisons.
    pub rate: f64,
    /// Percent of the endpoint's noise samples it differed in.
    pub noise_rate: f64,
    pub first_seen: String,
    pub last_seen: String,
    /// The first pairs it differed in (redacted like every stored diff).
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseRate {
    pub field: Field,
    pub rate: f64,
    /// Legacy/new pairs whose difference in this field its noise explained.
    #[serde(default)]
    pub explained: u64,
}

/// One pair a finding was seen in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// When the pair was compared, RFC 3339 with milliseconds: the same instant as the pair's
    /// [`DiffRecord::at`](super::difference::DiffRecord::at) when the pair is among the recent diffs.
    pub at: String,
    /// Path and query of the request.
    pub path: String,
    /// Where exactly (`$.items[3].price`).
    pub at_field: Field,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub legacy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub new: Option<Value>,
}

/// A field learned as noise, with how many same-side pairs it differed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseField {
    pub field: Field,
    pub seen: u64,
}
