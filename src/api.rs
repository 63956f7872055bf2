//! Every request and response shape of the admin API, as serde types. The server serialises
//! them, the CLI and the tests deserialise them, and the console and other instances read the
//! same JSON: a shape is a contract, so renaming a field here is a breaking change that the
//! compiler shows on both sides.
//!
//! The API lives under [`PREFIX`] (`/api/v1`); `/api/...` without the version is an alias of the
//! current version, kept for scripts written against it. A change that removes or renames a
//! field gets a new version; adding a field does not (readers ignore fields they do not know).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::compare::difference::{DiffRecord, Difference, Field, LineDiff, MismatchKind, SideAnswer};
pub use crate::compare::report::{
    EndpointReport, Example, Finding, NoiseField, NoiseRate, Report, ReportRules, Verdict,
};
pub use crate::control::gates::GateFailure;
pub use crate::control::machine::{RolloutAction, RolloutStatus};
pub use crate::core::Side;
pub use crate::live::{HistorySample, LiveWindow, PairedLatency, SideLive};
pub use crate::shadow::replay::{KeptRequest, ReplayOutcome, ReplayResult};
pub use crate::shadow::state::ShadowCounts;

/// The version of the shapes below.
pub const VERSION: u32 = 1;
/// Where the current version of the API is served.
pub const PREFIX: &str = "/api/v1";

// === errors ===

/// Every 4xx and 5xx answer of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and, where there is one, what to do instead.
    pub error: String,
    /// For a refused reload: each problem of the config file, one per entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

// === routes ===

/// `GET /api/v1/routes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routes {
    pub routes: Vec<RouteView>,
    /// The span the `live` figures cover, in seconds.
    pub window_seconds: u64,
    /// Whether this instance is in a fleet (`GET /api/v1/cluster` describes it).
    #[serde(default)]
    pub fleet: bool,
    /// In a fleet: every route's counts summed over the instances, each since it started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fleet_totals: Vec<FleetRoute>,
    /// In a fleet: every registered instance, with the revision it serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceView>,
    /// The last reload of the config file that was refused, until one is applied: the running
    /// config is older than the file on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_reload: Option<RefusedReload>,
}

/// A reload of the config file that was refused: nothing of it applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedReload {
    /// When, RFC 3339, UTC.
    pub at: String,
    /// What asked for it: `file change`, `SIGHUP` or `admin API`.
    pub trigger: String,
    pub file: String,
    /// Every problem found, as `check` names them.
    pub problems: Vec<ConfigProblem>,
}

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// Key path, `routes[0].weight`; empty for the file as a whole.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub message: String,
    /// 1-based line, when the parser located it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// A route's figures over the whole fleet: the sum of what every instance published (each
/// counts from its own start), and each instance's share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetRoute {
    pub route: String,
    /// `seconds` is 0: these are totals, not a window.
    pub total: LiveWindow,
    pub instances: Vec<InstanceCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCount {
    pub instance: String,
    pub legacy_requests: u64,
    pub new_requests: u64,
}

/// `GET /api/v1/routes/{name}`, and each entry of [`Routes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    pub name: String,
    /// Host patterns; empty = any host.
    pub hosts: Vec<String>,
    pub path_prefix: String,
    /// Percent of requests served by new.
    pub weight: f64,
    /// `cookie:NAME`, `header:NAME` or `client_ip`; `None` = a random draw per request.
    pub sticky: Option<String>,
    #[serde(rename = "override")]
    pub override_: Option<OverrideView>,
    pub expose_side: bool,
    pub failover: bool,
    pub sides: Sides,
    /// Every address of new's pool is down: all non-forced traffic goes to legacy.
    pub new_pool_down: bool,
    pub live: LiveWindow,
    pub shadow: Option<ShadowView>,
    pub rollout: Option<RolloutView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideView {
    pub header: String,
    /// Whether a token is required; the token itself is never shown.
    pub token: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sides {
    pub legacy: PoolView,
    pub new: PoolView,
}

/// An upstream pool as the route uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolView {
    pub upstream: String,
    pub addresses: Vec<AddressView>,
    /// Addresses not found down.
    pub healthy: usize,
    pub tls: bool,
    /// What the health check does (`GET /healthz every 1s`); `None` when checks are off.
    pub health_check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressView {
    pub address: String,
    pub healthy: bool,
}

/// `GET /api/v1/routes/{name}/history`: the route's figures per interval, oldest first, over the
/// last 15 minutes (less just after start), for charts of legacy and new on the same axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub route: String,
    /// Seconds each sample covers.
    pub step_seconds: u64,
    pub samples: Vec<HistorySample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowView {
    pub enabled: bool,
    /// `other`, `legacy` or `new`.
    pub target: String,
    /// Percent of eligible requests.
    pub sample: f64,
    pub methods: Vec<String>,
    pub max_body: usize,
    pub max_in_flight: usize,
    pub in_flight: usize,
    pub timeout_ms: u64,
    pub compare: CompareView,
    pub counts: ShadowCounts,
    pub noise: Vec<NoiseField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareView {
    pub ignore_headers: Vec<String>,
    pub ignore_json_paths: Vec<String>,
    /// Percent of compared requests also sent again to the serving side to learn noise.
    pub noise_sample: f64,
    pub keep_diffs: usize,
    pub redact_headers: Vec<String>,
}

// === rollout ===

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutView {
    pub status: RolloutStatus,
    /// 1-based; `None` while starting.
    pub step: Option<usize>,
    /// Each step's weight, percent.
    pub steps: Vec<f64>,
    pub step_weight: Option<f64>,
    /// How long the current step has held; for a stopped rollout, how long it held until it
    /// stopped (it holds no longer).
    pub held_ms: Option<u64>,
    /// When the rollout stopped (paused, rolled back, aborted, complete), RFC 3339, UTC;
    /// absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Milliseconds since it stopped; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_ms_ago: Option<u64>,
    /// Why it paused, rolled back or resumed.
    pub reason: Option<String>,
    /// The gate the rollout failed, with its figures, when a gate stopped it (rolled back or
    /// held); `reason` says the same in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_gate: Option<GateFailure>,
    /// The last failure to write a weight, if the controller is stuck on one.
    pub error: Option<String>,
    /// Why the running step cannot pass yet, however long it holds (too few requests on new,
    /// too few shadow comparisons for the mismatch gate).
    #[serde(default)]
    pub waiting: Option<String>,
    /// The earliest moment the running step may pass (RFC 3339, UTC): when its hold ends,
    /// moved to the next opening of its windows and past its freezes. The gates may hold it
    /// longer. Absent unless running with a step to go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_at: Option<String>,
    /// Why the schedule holds a step now (`frozen (...)`, `outside the rollout windows (...)`);
    /// absent when a step may pass now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    pub limits: RolloutLimits,
    /// The gates' figures since the step began; `None` while starting.
    pub window: Option<GateWindow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutLimits {
    pub hold_ms: u64,
    pub min_requests: u64,
    pub max_error_rate: f64,
    pub max_mismatch_rate: Option<f64>,
    /// Comparisons before the mismatch gate decides.
    #[serde(default)]
    pub min_comparisons: u64,
    pub max_latency_ratio: f64,
    /// How many milliseconds new's p99 may add to legacy's whatever the ratio; absent: only
    /// the ratio counts.
    #[serde(default)]
    pub max_latency_added_ms: Option<u64>,
    /// `rollback` or `hold`.
    pub on_failure: String,
    /// When steps may pass, as configured; empty: at any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<String>,
    /// Periods in which no step passes, as configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateWindow {
    pub new_requests: u64,
    pub error_rate: Option<f64>,
    pub mismatch_rate: Option<f64>,
    pub latency_ratio: Option<f64>,
    /// new p99 - legacy p99, milliseconds, when the ratio is known.
    #[serde(default)]
    pub latency_added_ms: Option<f64>,
}

/// The answer to a rollout action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutActed {
    pub route: String,
    pub rollout: RolloutView,
}

// === weight and reload ===

/// `PUT /api/v1/routes/{name}/weight` body: `{"percent": 50}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightRequest {
    pub percent: f64,
}

/// The answer to a weight change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightChanged {
    pub route: String,
    /// Percent before and after.
    pub old: f64,
    pub weight: f64,
    /// The file the change was written to before this answer (nothing is written when the
    /// weight already was the one asked for).
    pub persisted: String,
    /// The change paused the route's rollout: the operator wins.
    pub rollout_paused: bool,
    /// The route already had this weight: nothing changed and nothing was written.
    #[serde(default)]
    pub unchanged: bool,
}

/// `POST /api/v1/reload` answered 200.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reloaded {
    pub reloaded: bool,
    /// Each route's weight in the config now serving, percent.
    pub weights: BTreeMap<String, f64>,
}

// === diffs ===

/// `GET /api/v1/routes/{name}/diffs?limit=N`: the newest mismatches first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diffs {
    pub route: String,
    pub diffs: Vec<DiffRecord>,
    pub noise: Vec<NoiseField>,
}

// === cutover report ===

// === replay ===

/// `POST /api/v1/routes/{name}/replay`: send kept mismatching requests to both sides again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayRequest {
    /// Only requests of this endpoint (`GET /orders/{id}`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// At most this many, newest first (default 20).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replayed {
    pub route: String,
    pub fixed: usize,
    pub differs: usize,
    pub errors: usize,
    pub results: Vec<ReplayResult>,
}

/// `GET /api/v1/routes/{name}/replays`: the kept requests, redacted, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replays {
    pub route: String,
    pub requests: Vec<KeptRequest>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn fields_round_trip_through_their_text() {
        for text in ["status", "body", "header:x-request-id", "json:$.items[*].id", "json:$"] {
            let f: Field = text.parse().unwrap();
            assert_eq!(f.to_string(), text);
            assert_eq!(serde_json::to_value(&f).unwrap(), Value::from(text));
        }
        for bad in ["", "header:", "json:items", "statuses", "cookie:sid"] {
            assert!(bad.parse::<Field>().is_err(), "{bad:?} must be refused");
        }
        assert_eq!(Field::Json("$.a".into()).kind(), MismatchKind::Body);
        assert_eq!(Field::Header("a".into()).kind().as_str(), "header");
    }

    #[test]
    fn a_diff_record_reads_back_as_written() {
        let record = DiffRecord {
            at: "2026-11-22T10:00:00.000Z".into(),
            route: "orders".into(),
            method: "GET".into(),
            path: "/orders/7".into(),
            served_by: Side::New,
            legacy: SideAnswer { status: 200, duration_ms: 3.0 },
            new: SideAnswer { status: 404, duration_ms: 1.0 },
            differences: vec![
                Difference {
                    field: Field::Status,
                    legacy: Some(200.into()),
                    new: Some(404.into()),
                    offset: None,
                    lines: None,
                },
                Difference {
                    field: Field::Json("$.total".into()),
                    legacy: Some(3.into()),
                    new: None,
                    offset: None,
                    lines: None,
                },
                Difference {
                    field: Field::Json("$.note".into()),
                    legacy: None,
                    new: Some(Value::Null),
                    offset: None,
                    lines: None,
                },
            ],
            truncated: false,
            request_headers: BTreeMap::new(),
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["served_by"], "new");
        assert_eq!(json["differences"][1]["where"], "json:$.total");
        assert!(json["differences"][1].get("new").is_none(), "absent stays absent, not null");
        let back: DiffRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn weight_requests_refuse_unknown_fields() {
        assert!(serde_json::from_str::<WeightRequest>(r#"{"percent": 5}"#).is_ok());
        assert!(serde_json::from_str::<WeightRequest>(r#"{"percent": 5, "route": "x"}"#).is_err());
    }
}

// === cluster ===

/// `GET /api/v1/cluster`: this instance's view of its fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub instance: String,
    /// The routing document's key in etcd.
    pub key: String,
    pub endpoints: Vec<String>,
    /// Whether etcd answers now.
    pub connected: bool,
    /// The etcd revision of the routing document being served; `None` before any was pushed.
    pub revision: Option<i64>,
    /// When it was applied, RFC 3339.
    pub applied_at: Option<String>,
    /// Serving the locally cached document, not yet confirmed by etcd since the start.
    pub stale: bool,
    /// The newest document this instance refused, and why; cleared once a valid one applies.
    pub rejected: Option<RejectedDoc>,
    /// Why etcd was last unreachable.
    pub last_error: Option<String>,
    /// The instance elected to run the fleet's rollouts, as last seen.
    #[serde(default)]
    pub leader: Option<String>,
    /// Whether this instance is it.
    #[serde(default)]
    pub leads: bool,
    /// The routing document's revision in etcd now (`None` while etcd is away or empty).
    #[serde(default)]
    pub latest_revision: Option<i64>,
    /// Every instance registered in the fleet, by name (empty while etcd is away).
    #[serde(default)]
    pub instances: Vec<InstanceView>,
}

/// One instance as it registers itself in etcd (on its lease, refreshed when what it serves
/// changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    pub instance: String,
    /// Its proxy listeners and its admin listener.
    pub proxy: Vec<String>,
    pub admin: String,
    /// strangler's version.
    pub version: String,
    /// The routing document's revision it serves, and since when (RFC 3339).
    pub revision: Option<i64>,
    pub applied_at: Option<String>,
    /// Serving a revision older than the one etcd holds (filled in when read).
    #[serde(default)]
    pub behind: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedDoc {
    pub revision: i64,
    pub problems: Vec<String>,
}
